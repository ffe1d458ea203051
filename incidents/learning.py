"""Tickets feeding the knowledge base: the incidents side of the learning loop.

``knowledge.history`` and ``knowledge.learning`` take plain values; this module turns tickets,
their agent runs and approvals into those values, and reads the results back for one viewer.

- A resolved ticket becomes a labelled example (category, priority, queue; the tools its agent
  run used) and a ``historical_ticket`` source (``learn_from_resolution``, from a task queued
  after the resolving commit) only when someone or something vouches for its resolution
  (``vouched_for``): a verified tool call that changed something, a reviewer's approval, a
  rating of 4 or 5, or a person who resolved it. An agent "resolution" that changed nothing
  (it pushed a profile the laptop already had) teaches nothing: it is not knowledge and does
  not vote in triage. Its text is summarised and capped (``knowledge.summary``).
- A resolution a reviewer approved, or one the requester rated 4 or 5, becomes a golden path.
- The ticket page shows similar past tickets the viewer may see, and a playbook suggestion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse

from agentops.prepared import prepared
from agents.models import Run, RunStatus, ToolCall
from agents.redaction import redact
from incidents.models import Status, Ticket
from knowledge import history, learning
from knowledge.models import IndexStatus, Source, SourceKind
from knowledge.summary import summarise

GOLDEN_CSAT = 4  # a rating at or above this makes the resolution a golden path
SIMILAR_SHOWN = 5
SIMILAR_CANDIDATES = 25  # neighbours read to find SIMILAR_SHOWN the viewer may see
# Runs that ended like this did not resolve the ticket themselves: a person did.
AGENT_DID_NOT_RESOLVE = {RunStatus.FAILED, RunStatus.ESCALATED, RunStatus.CANCELLED}


def ticket_text(ticket: Ticket) -> str:
    return f"{ticket.title}\n\n{ticket.description}".strip()


@dataclass(frozen=True)
class AgentResolution:
    """How the agent resolved a ticket: its run, the tools it ran, who approved them."""

    run: Run | None
    tools: list[str]
    approval: object | None  # approvals.models.ApprovalRequest
    # The verified tool calls that changed something (a subset of ``tools``).
    changed: list[str] = field(default_factory=list)

    @property
    def approver(self) -> str:
        decided_by = getattr(self.approval, "decided_by", None)
        return decided_by.get_username() if decided_by is not None else ""


@prepared
def _latest_run(tenant_id: int, number: str):
    return (
        Run.objects.for_tenant(tenant_id)
        .filter(subject_type="ticket", subject_id=number)
        .order_by("-created_at", "-id")[:1]
    )


@prepared
def _verified_calls(tenant_id: int, run_id: int):
    return (
        ToolCall.objects.for_tenant(tenant_id)
        .filter(run_id=run_id, status=ToolCall.Status.SUCCESS, verified=True)
        .order_by("id")
        .values_list("tool_name", "result_json")
    )


def agent_resolution(ticket: Ticket) -> AgentResolution:
    """The ticket's latest agent run and its successful, verified tool calls in order, and the
    approval a reviewer gave one of them. A run that failed or escalated did not resolve the
    ticket (a person did): no tools then. The run's own status may still read "running" here:
    the resolve step commits the ticket before the engine records the step. (Compiled once per
    process, ``agentops.prepared``: every resolved ticket is learnt from.)"""
    from agents.engine import APPROVAL_HANDLER
    from approvals.selectors import latest_approved

    run = _latest_run.first(ticket.tenant_id, ticket.number)
    if run is None or run.status in AGENT_DID_NOT_RESOLVE:
        return AgentResolution(run=None, tools=[], approval=None)
    calls = _verified_calls(ticket.tenant_id, run.pk)
    tools = [name for name, _result in calls]
    changed = [name for name, result in calls if changed_something(result)]
    approval = None
    if tools:
        approval = latest_approved.first(ticket.tenant_id, APPROVAL_HANDLER, "run", str(run.pk))
    return AgentResolution(run=run, tools=tools, approval=approval, changed=changed)


def changed_something(result: Any) -> bool:
    """Whether a tool call's result says it changed the state it acts on.

    Read from the connector's answer (``ToolCall.result_json``), most explicit first:
    1. ``changed``: a boolean the tool states itself;
    2. ``already_…`` true ("already had administrator access", "already installed");
    3. ``was_…`` false ("was_locked": false: the account was not locked);
    4. ``previous_X`` equal to the value now held in a field ending in X (the profile pushed
       was the version the laptop had, the adapter reset was already up).
    A result that says none of these counts as a change (most actions always change
    something: a new temporary password, an MFA enrolment)."""
    data = result.get("data", result) if isinstance(result, dict) else {}
    if not isinstance(data, dict):
        return True
    if isinstance(data.get("changed"), bool):
        return data["changed"]
    for key, value in data.items():
        if key.startswith("already") and value is True:
            return False
        if key.startswith("was_") and value is False:
            return False
    for key, before in data.items():
        if not key.startswith("previous_"):
            continue
        suffix = key.removeprefix("previous_")
        after = [v for k, v in data.items() if k != key and k.endswith(suffix)]
        if after and all(v == before for v in after):
            return False
    return True


def vouched_for(ticket: Ticket, resolution: AgentResolution) -> str:
    """Why the ticket's resolution may become knowledge, or "" when nothing vouches for it.

    A reviewer approved it; the requester rated it 4 or 5; a verified tool call changed
    something; or a person resolved it (no agent run resolved it: the run escalated, failed,
    or there was none). An agent run that resolved it with no change and no approval teaches
    nothing, whatever its notes say, until a rating of 4 or 5 says it helped."""
    if resolution.approval is not None:
        return "a reviewer approved the resolution"
    if ticket.csat_score is not None and ticket.csat_score >= GOLDEN_CSAT:
        return f"the requester rated it {ticket.csat_score}/5"
    if resolution.changed:
        return "a verified action changed something: " + ", ".join(resolution.changed)
    if resolution.run is None:
        return "a person resolved it"
    return ""


def _historical_markdown(ticket: Ticket, tools: list[str]) -> str:
    lines = [
        f"# {ticket.number}: {ticket.title}",
        "",
        f"- Category: {ticket.get_category_display() or '—'}",
        f"- Priority: {ticket.get_priority_display()}",
        f"- Queue: {ticket.queue.name if ticket.queue_id else '—'}",
    ]
    if tools:
        lines.append(f"- Resolved with: {learning.join_path(tools)}")
    # Summarised and capped: a past ticket is a pointer to a resolution, not a copy of
    # whatever was pasted into it.
    lines += ["", "## Problem", "", summarise(ticket.description or ticket.title), ""]
    lines += ["## Resolution", "", summarise(ticket.resolution_notes) or "(no notes)", ""]
    # The text is read back by agents and people of the tenant: no secrets from the ticket.
    return redact("\n".join(lines)).text


def historical_key(ticket: Ticket) -> str:
    return f"ticket:{ticket.number}"


def forget(ticket: Ticket) -> None:
    """Take the ticket out of what the tenant learns from: its labelled example (it no longer
    votes in triage) and its historical-ticket source (no longer retrieved)."""
    from knowledge.services import source_deactivate

    history.forget(ticket.tenant, ticket.number)
    source = (
        Source.objects.for_tenant(ticket.tenant)
        .filter(kind=SourceKind.HISTORICAL_TICKET, external_key=historical_key(ticket))
        .first()
    )
    if source is not None and source.is_active:
        source_deactivate(source=source)


def learn_from_resolution(ticket: Ticket) -> None:
    """Index a resolved ticket whose resolution someone vouches for (``vouched_for``): a
    labelled example, a historical-ticket source, and a golden path when a reviewer approved
    the agent's resolution. One nobody vouches for is forgotten (it may have been learnt from
    an earlier resolution). Idempotent (upserts by ticket)."""
    from knowledge.services import ingest_text

    if ticket.status not in (Status.RESOLVED, Status.CLOSED):
        return  # reopened before the task ran
    resolution = agent_resolution(ticket)
    reason = vouched_for(ticket, resolution)
    if not reason:
        forget(ticket)
        return
    history.index_examples(
        ticket.tenant,
        [
            {
                "ref": ticket.number,
                "text": redact(summarise(ticket_text(ticket))).text,
                "category": ticket.category,
                "priority": ticket.priority,
                "assignment_group": ticket.queue.name if ticket.queue_id else "",
                "resolution_path": learning.join_path(resolution.tools),
                "resolved_ok": ticket.csat_score is None or ticket.csat_score >= 3,
            }
        ],
        origin="ticket",
    )
    document = ingest_text(
        tenant=ticket.tenant,
        kind=SourceKind.HISTORICAL_TICKET,
        title=f"{ticket.number}: {ticket.title}"[:300],
        content=_historical_markdown(ticket, resolution.tools),
        origin=f"ticket:{ticket.number}",
        external_key=historical_key(ticket),
        provenance={"ticket": ticket.number, "reason": reason},
        index_after_commit=False,
    )
    if document.status == IndexStatus.PENDING:
        # Indexed here rather than by a task of its own (both run on the knowledge queue): a
        # broker message, a task and a reload fewer per resolved ticket. If this task dies
        # first, the version stays pending and the beat indexes it (knowledge.tasks).
        from knowledge.tasks import index_document_now

        index_document_now(document.pk)
    if resolution.approval is not None:
        promote(ticket, resolution, reason="a reviewer approved the resolution")


def promote(ticket: Ticket, resolution: AgentResolution | None = None, *, reason: str):
    """Make the ticket's resolution a golden path, with its provenance."""
    resolution = resolution or agent_resolution(ticket)
    provenance: dict = {"ticket": ticket.number, "reason": reason}
    if resolution.run is not None:
        provenance["run"] = resolution.run.run_id
    if resolution.tools:
        provenance["tools"] = resolution.tools
    if resolution.approval is not None:
        provenance["approver"] = resolution.approver
        decided_at = getattr(resolution.approval, "decided_at", None)
        if decided_at is not None:
            provenance["approved_at"] = decided_at.isoformat(timespec="seconds")
    if ticket.csat_score is not None:
        provenance["csat"] = ticket.csat_score
        if ticket.csat_comment:
            provenance["csat_comment"] = redact(ticket.csat_comment).text
    return learning.promote_golden_path(
        tenant=ticket.tenant,
        ref=ticket.number,
        title=ticket.title,
        problem=redact(summarise(ticket.description or ticket.title)).text,
        resolution=redact(summarise(ticket.resolution_notes)).text,
        provenance=provenance,
    )


def learn_from_rating(ticket: Ticket) -> None:
    """After a CSAT rating: 4-5 promotes the resolution to a golden path; the example's
    ``resolved_ok`` follows the rating (a 1-2 is not a way to repeat).

    A lower rating retires a golden path that no longer has anyone vouching for it: a 1-2
    always (the requester says it did not work, whoever approved it), a 3 unless a reviewer
    approved the resolution. A later 4-5 brings it back."""
    score = ticket.csat_score
    history.set_resolved_ok(ticket.tenant, ticket.number, (score or 0) >= 3)
    if score is None:
        return
    if score >= GOLDEN_CSAT:
        if ticket.status in (Status.RESOLVED, Status.CLOSED):
            learn_from_resolution(ticket)  # now vouched for, if it was not before
            promote(ticket, reason=f"the requester rated it {score}/5")
        return
    if score <= 2 or agent_resolution(ticket).approval is None:
        learning.retire_golden_path(
            tenant=ticket.tenant, ref=ticket.number, reason=f"the requester rated it {score}/5"
        )


# --------------------------------------------------------------------------- reading


def similar_for_viewer(membership, ticket: Ticket) -> tuple[list[dict], learning.Playbook | None]:
    """Similar past tickets the viewer may see (at most SIMILAR_SHOWN), and for staff the
    playbook that three or more similar successful resolutions share.

    Past tickets go through the gate (``tickets_visible_to``): a requester sees only their own
    among them. Imported history (no ticket behind it) and playbooks, which name agent tools,
    are for staff only.
    """
    from incidents.selectors import tickets_visible_to

    neighbours = history.similar(
        ticket.tenant, ticket_text(ticket), SIMILAR_CANDIDATES, exclude_ref=ticket.number
    )
    threshold = history.min_similarity()
    neighbours = [n for n in neighbours if n.similarity >= threshold]
    if not neighbours:
        return [], None
    staff = membership.can("ticket.view_all")
    visible = {
        t.number: t
        for t in tickets_visible_to(membership)
        .filter(number__in=[n.ref for n in neighbours])
        .only("number", "title", "status", "category")
    }
    rows = []
    for n in neighbours:
        t = visible.get(n.ref)
        if t is not None:
            rows.append(
                {
                    "ref": n.ref,
                    "title": t.title,
                    "url": reverse("incidents:ticket-detail", args=[t.number]),
                    "status": t.get_status_display(),
                    "similarity": n.similarity,
                    "path": n.resolution_path if staff else "",
                }
            )
        elif staff and n.origin == "import":
            rows.append(
                {
                    "ref": n.ref,
                    "title": n.text.splitlines()[0][:200],
                    "url": "",
                    "status": "imported",
                    "similarity": n.similarity,
                    "path": n.resolution_path,
                }
            )
        if len(rows) >= SIMILAR_SHOWN:
            break
    playbook = None
    if staff:
        evidence = [n for n in neighbours if n.ref in visible or n.origin == "import"]
        playbook = learning.suggest_playbook(ticket.tenant, "", neighbours=evidence)
    return rows, playbook
