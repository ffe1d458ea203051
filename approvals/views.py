"""The reviewer queue, its decisions and the reviewer's availability. Every view goes through
the gate in ``approvals.selectors`` (404 / 403)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from agentops.access import tenant_member
from approvals import handlers, selectors, services, slack
from approvals.forms import AvailabilityForm, DecisionForm
from approvals.models import ApprovalRequest
from approvals.selectors import access_approval, access_queue

TEMPLATE = "approvals/queue.html"


def _filter_name(value) -> str:
    return value if value in selectors.FILTERS else selectors.DEFAULT_FILTER


def _url(name: str, value) -> str | None:
    if value in (None, ""):
        return None
    try:
        return reverse(name, args=[str(value)])
    except NoReverseMatch:
        return None


def _present(approval: ApprovalRequest, *, user, now) -> ApprovalRequest:
    """Attach what the item shows, so the template only displays (no decisions there)."""
    evidence = approval.evidence if isinstance(approval.evidence, dict) else {}
    triage = evidence.get("triage")
    approval.arguments_text = json.dumps(approval.arguments, indent=2, ensure_ascii=False)
    approval.edited_text = (
        json.dumps(approval.edited_arguments, indent=2, ensure_ascii=False)
        if approval.edited_arguments is not None
        else ""
    )
    approval.is_pending = approval.status == ApprovalRequest.Status.PENDING
    approval.breached = bool(approval.is_pending and approval.sla_due and approval.sla_due < now)
    approval.own_request = approval.requested_by_id is not None and approval.requested_by_id == (
        user.pk
    )
    approval.ev_ticket = evidence.get("ticket") or ""
    approval.ev_ticket_url = _url("incidents:ticket-detail", approval.ev_ticket)
    approval.ev_run = evidence.get("run_id") or ""
    approval.ev_run_url = _url("agents:run-detail", approval.ev_run)
    approval.ev_triage = list(triage.items()) if isinstance(triage, dict) else []
    approval.ev_text = str(evidence.get("ticket_text") or "")[:1000]
    approval.ev_timeline = _timeline(evidence.get("timeline"), pending=approval.is_pending)
    approval.ev_citations = _citations(evidence.get("citations"))
    # An operation's blast radius and the hypothesis behind it (incident response).
    approval.ev_blast_radius = str(evidence.get("blast_radius") or "")[:1000]
    hypothesis = evidence.get("hypothesis")
    approval.ev_hypothesis = (
        {
            "title": str(hypothesis.get("title") or "")[:200],
            "evidence": ", ".join(str(e) for e in (hypothesis.get("evidence") or [])[:20]),
            "reasons": [str(r)[:300] for r in (hypothesis.get("reasons") or [])[:6]],
        }
        if isinstance(hypothesis, dict)
        else None
    )
    approval.was_breached = approval.breached_at is not None
    approval.breached = bool(approval.is_pending and (approval.breached or approval.was_breached))
    approval.edit_value = approval.arguments_text
    approval.comment_value = ""
    approval.errors = []
    approval.edit_open = False
    return approval


# The snapshot's step statuses in words. A step still "running" in the snapshot is the one
# that asked for this decision: it waits for it (pending) or waited for it (decided); it is
# never shown as running, which it has not been since the run parked.
STEP_WORDS = {"success": "done", "failure": "failed", "waiting": "waiting"}


def _timeline(value, *, pending: bool = True) -> list[dict]:
    """The run's latest steps as the opener stored them (untrusted: shown escaped)."""
    rows = value if isinstance(value, list) else []
    parked = "waiting for this decision" if pending else "waited for this decision"
    shown = []
    for row in rows[:10]:
        if not isinstance(row, dict):
            continue
        status = str(row.get("status") or "")[:20]
        in_flight = status in ("running", "queued", "")
        shown.append(
            {
                "seq": row.get("seq", ""),
                "name": str(row.get("name") or "")[:100],
                "status": "waiting" if in_flight else status,
                "label": parked if in_flight else STEP_WORDS.get(status, status),
                "summary": str(row.get("summary") or "")[:300],
            }
        )
    return shown


def _describe(approvals: list) -> None:
    """What is true now about each request's subject (the run), from its handler."""
    sentences = handlers.describe(approvals)
    for approval in approvals:
        approval.subject_now = sentences.get(approval.pk, "")


def _safe_link(url: str) -> str:
    """Only http(s) and same-site links become hrefs (no javascript: from a document)."""
    url = (url or "").strip()
    if url.startswith("/") and not url.startswith("//"):
        return url
    if url.lower().startswith(("https://", "http://")):
        return url
    return ""


def _citations(value) -> list[dict]:
    rows = value if isinstance(value, list) else []
    return [
        {
            "title": str(row.get("title") or row.get("url") or "Untitled")[:200],
            "heading": str(row.get("heading") or "")[:200],
            "url": _safe_link(str(row.get("url") or "")),
        }
        for row in rows[:10]
        if isinstance(row, dict)
    ]


def _tabs(counts: dict[str, int], current: str) -> list[dict]:
    return [
        {"key": key, "label": label, "count": counts.get(key, 0), "active": key == current}
        for key, label in selectors.FILTERS.items()
    ]


def _results_context(
    request, current: str, *, failed: DecisionForm | None = None, stamp: str | None = None
) -> dict:
    membership = request.membership
    now = timezone.now()
    rows = list(selectors.approval_queue(membership, current)[: selectors.QUEUE_LIMIT + 1])
    approvals = [_present(a, user=request.user, now=now) for a in rows[: selectors.QUEUE_LIMIT]]
    _describe(approvals)
    if failed is not None:
        for approval in approvals:
            if approval.pk == failed.approval.pk:
                approval.errors = [m for errs in failed.errors.values() for m in errs]
                approval.edit_value = failed.data.get("arguments", approval.arguments_text)
                approval.comment_value = failed.data.get("comment", "")
                approval.edit_open = failed.data.get("decision") == "edit"
    return {
        "current": current,
        "current_label": selectors.FILTERS[current],
        "stamp": stamp if stamp is not None else selectors.queue_stamp(membership),
        "approvals": approvals,
        "truncated": len(rows) > selectors.QUEUE_LIMIT,
        "limit": selectors.QUEUE_LIMIT,
        "read_only": current == "decided",
        "queue_url": f"{reverse('approvals:index')}?filter={current}",
    }


@tenant_member
@require_GET
def queue(request):
    """The reviewer queue: pending requests by priority then SLA, filters with counters."""
    access_queue(request.membership)
    current = _filter_name(request.GET.get("filter"))
    partial = request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request
    counts_only = partial and request.GET.get("part") == "counts"
    context = {"current": current}
    if partial and request.GET.get("part") == "live":
        return _live(request, current)
    if partial and not counts_only:
        context.update(_results_context(request, current))
        return render(request, f"{TEMPLATE}#results", context)
    # The active tab is the filter asked for: none on a single request's page ("none").
    shown = request.GET.get("filter", current) if counts_only else current
    counts, stamp = selectors.queue_counts_and_stamp(request.membership)
    context["tabs"] = _tabs(counts, shown)
    if counts_only:  # the counters refresh themselves on approvalDecided / approvalsChanged
        return render(request, f"{TEMPLATE}#counts", context)
    context.update(_results_context(request, current, stamp=stamp))
    context.update(_availability_context(request))
    context["scoped"] = selectors.is_scoped(request.membership)
    return render(request, TEMPLATE, context)


def _live(request, current: str):
    """The queue's poll: 204 while nothing the reviewer sees has changed since the stamp the
    page holds; otherwise the fresh results (which carry the new stamp) and approvalsChanged,
    on which the counters refresh. console.js skips polls while the tab is hidden, the
    reviewer is idle, or is typing a comment."""
    if request.GET.get("stamp", "") == selectors.queue_stamp(request.membership):
        return HttpResponse(status=204)
    response = render(request, f"{TEMPLATE}#results", _results_context(request, current))
    response["HX-Trigger"] = "approvalsChanged"
    return response


def _availability_context(request, form: AvailabilityForm | None = None) -> dict:
    row = selectors.availability_of(request.membership)
    now = timezone.now()
    return {
        "available": row is None or row.available_at(now),
        "away_until": row.away_until if row is not None and row.is_away else None,
        "availability_form": form,
        "availability_errors": (
            [m for errs in form.errors.values() for m in errs] if form is not None else []
        ),
    }


@tenant_member
@require_POST
def availability(request):
    """The reviewer's own availability toggle (admins set anyone's in the Django admin)."""
    access_queue(request.membership)
    form = AvailabilityForm(request.POST)
    if form.is_valid():
        try:
            services.set_availability(
                tenant=request.tenant,
                user=request.user,
                actor=request.user,
                away=form.cleaned_data["away"],
                away_until=form.cleaned_data["away_until"],
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("away_until", message)
    if request.htmx:
        context = _availability_context(request, form if form.errors else None)
        return render(
            request,
            f"{TEMPLATE}#availability",
            context,
            status=400 if form.errors else 200,
        )
    if form.errors:
        messages.error(request, " ".join(m for errs in form.errors.values() for m in errs))
    return redirect("approvals:index")


@tenant_member
@require_GET
def detail(request, pk: int):
    """One request on its own (where notifications link to), with the queue's controls."""
    approval = access_approval(request.membership, pk, decide=True)
    current = selectors.DEFAULT_FILTER
    presented = [_present(approval, user=request.user, now=timezone.now())]
    _describe(presented)
    presented[0].expanded = True
    context = {
        "current": current,
        "current_label": f"Approval request {approval.pk}",
        # One request on its own page: no filter tab is the one shown.
        "tabs": _tabs(selectors.queue_counts(request.membership), ""),
        "approvals": presented,
        "truncated": False,
        "limit": selectors.QUEUE_LIMIT,
        "read_only": False,
        "queue_url": reverse("approvals:detail", args=[approval.pk]),
        "single": True,
        "scoped": selectors.is_scoped(request.membership),
    }
    context.update(_availability_context(request))
    return render(request, TEMPLATE, context)


@tenant_member
@require_POST
def decide(request, pk: int):
    """Approve, reject or edit-then-approve. HTMX gets the re-rendered list and the event."""
    approval = access_approval(request.membership, pk, decide=True)
    form = DecisionForm(request.POST, approval=approval)
    notice: tuple[str, str] | None = None
    changed = False
    if form.is_valid():
        data = form.cleaned_data
        try:
            decided = services.decide(
                request=approval,
                actor=request.user,
                approve=data["decision"] != "reject",
                comment=data["comment"],
                edited_arguments=data["edited_arguments"],
            )
        except services.DecisionConflict as exc:
            # Someone else decided first: nothing of ours was saved; show the list as it is now.
            notice = ("error", f"{exc} Someone else decided first; your decision was not saved.")
            changed = True
        except PermissionDenied as exc:  # four-eyes (the role was checked by the gate)
            form.add_error(None, str(exc))
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            verb = {
                "approve": "approved",
                "reject": "rejected",
                "edit": "approved with edited arguments",
            }[data["decision"]]
            notice = ("success", f"{approval.action}: {verb}.")
            changed = True
            slack.show_decision_after_commit(decided)  # the Slack message says so too
    if request.htmx:
        current = _filter_name(request.POST.get("filter"))
        context = _results_context(request, current, failed=form if form.errors else None)
        context["notice"] = notice
        response = render(
            request, f"{TEMPLATE}#results", context, status=400 if form.errors else 200
        )
        if changed:
            response["HX-Trigger"] = "approvalDecided"
        return response
    if form.errors:
        messages.error(request, " ".join(m for errs in form.errors.values() for m in errs))
    elif notice:
        getattr(messages, notice[0])(request, notice[1])
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("incidents:queue")
