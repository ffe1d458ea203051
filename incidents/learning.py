"""Tickets feeding the knowledge base: the incidents side of the learning loop.

``knowledge.history`` and ``knowledge.learning`` take plain values; this module turns tickets,
their agent runs and approvals into those values, and reads the results back for one viewer.

- A resolved ticket becomes a labelled example (category, priority, queue; the tools its agent
  run used) and a ``historical_ticket`` source (``learn_from_resolution``, from a task queued
  after the resolving commit).
- A resolution a reviewer approved, or one the requester rated 4 or 5, becomes a golden path.
- The ticket page shows similar past tickets the viewer may see, and a playbook suggestion.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from agents.models import Run, RunStatus, ToolCall
from agents.redaction import redact
from incidents.models import Status, Ticket
from knowledge import history, learning
from knowledge.models import SourceKind

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

    @property
    def approver(self) -> str:
        decided_by = getattr(self.approval, "decided_by", None)
        return decided_by.get_username() if decided_by is not None else ""


def agent_resolution(ticket: Ticket) -> AgentResolution:
    """The ticket's latest agent run and its successful, verified tool calls in order, and the
    approval a reviewer gave one of them. A run that failed or escalated did not resolve the
    ticket (a person did): no tools then. The run's own status may still read "running" here:
    the resolve step commits the ticket before the engine records the step."""
    from agents.engine import APPROVAL_HANDLER
    from approvals.models import ApprovalRequest
    from approvals.selectors import requests_for

    run = (
        Run.objects.for_tenant(ticket.tenant)
        .filter(subject_type="ticket", subject_id=ticket.number)
        .order_by("-created_at", "-id")
        .first()
    )
    if run is None or run.status in AGENT_DID_NOT_RESOLVE:
        return AgentResolution(run=None, tools=[], approval=None)
    tools = list(
        ToolCall.objects.for_tenant(ticket.tenant)
        .filter(run=run, status=ToolCall.Status.SUCCESS, verified=True)
        .order_by("id")
        .values_list("tool_name", flat=True)
    )
    approval = None
    if tools:
        approval = (
            requests_for(
                ticket.tenant,
                handler=APPROVAL_HANDLER,
                subject_type="run",
                subject_id=str(run.pk),
                statuses=[ApprovalRequest.Status.APPROVED],
            )
            .select_related("decided_by")
            .order_by("-decided_at", "-id")
            .first()
        )
    return AgentResolution(run=run, tools=tools, approval=approval)


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
    lines += ["", "## Problem", "", ticket.description or ticket.title, ""]
    lines += ["## Resolution", "", ticket.resolution_notes or "(no notes)", ""]
    # The text is read back by agents and people of the tenant: no secrets from the ticket.
    return redact("\n".join(lines)).text


def learn_from_resolution(ticket: Ticket) -> None:
    """Index a resolved ticket: a labelled example, a historical-ticket source, and a golden
    path when a reviewer approved the agent's resolution. Idempotent (upserts by ticket)."""
    from knowledge.services import ingest_text

    if ticket.status not in (Status.RESOLVED, Status.CLOSED):
        return  # reopened before the task ran
    resolution = agent_resolution(ticket)
    history.index_examples(
        ticket.tenant,
        [
            {
                "ref": ticket.number,
                "text": redact(ticket_text(ticket)).text,
                "category": ticket.category,
                "priority": ticket.priority,
                "assignment_group": ticket.queue.name if ticket.queue_id else "",
                "resolution_path": learning.join_path(resolution.tools),
                "resolved_ok": ticket.csat_score is None or ticket.csat_score >= 3,
            }
        ],
        origin="ticket",
    )
    ingest_text(
        tenant=ticket.tenant,
        kind=SourceKind.HISTORICAL_TICKET,
        title=f"{ticket.number}: {ticket.title}"[:300],
        content=_historical_markdown(ticket, resolution.tools),
        origin=f"ticket:{ticket.number}",
        external_key=f"ticket:{ticket.number}",
        provenance={"ticket": ticket.number},
    )
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
        problem=redact(ticket.description or ticket.title).text,
        resolution=redact(ticket.resolution_notes).text,
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
