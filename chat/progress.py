"""The progress of the ticket a conversation opened, as the chat shows it inline.

The ticket is read through its gate (``access_ticket``: the requester's own ticket, or staff).
Staff see the agent's steps and a link to the run; requesters see where it stands in plain
words (agent internals are staff-only, as everywhere in the console)."""

from __future__ import annotations

from agents.models import ACTIVE_RUN_STATUSES, Run, RunStatus, Step
from incidents.portal.plain import plain_status
from incidents.selectors import access_ticket

STEPS_SHOWN = 8

RUN_WORDS = {
    RunStatus.QUEUED: "Our service-desk agent starts in a moment.",
    RunStatus.RUNNING: "Our service-desk agent is working on it.",
    RunStatus.WAITING_APPROVAL: "A person is approving the agent's next step.",
    RunStatus.SUCCEEDED: "Our service-desk agent has finished.",
    RunStatus.FAILED: "A person from the service desk takes it from here.",
    RunStatus.ESCALATED: "A person from the service desk takes it from here.",
    RunStatus.CANCELLED: "The agent stopped; a person takes it from here.",
}


def progress_for(membership, conversation) -> dict:
    ticket = access_ticket(membership, conversation.ticket.number)
    run = (
        Run.objects.for_tenant(ticket.tenant)
        .filter(subject_type="ticket", subject_id=ticket.number)
        .order_by("-created_at", "-id")
        .first()
    )
    staff = membership.can("ticket.view_all")
    steps = []
    if run is not None and staff:
        steps = list(
            Step.objects.for_tenant(ticket.tenant)
            .filter(run=run)
            .order_by("-seq")
            .values("name", "status")[:STEPS_SHOWN]
        )[::-1]
    return {
        "ticket": ticket,
        "plain_status": plain_status(ticket),
        "run": run,
        "run_words": RUN_WORDS.get(run.status, "") if run else "A person will pick it up.",
        "active": run is not None and run.status in ACTIVE_RUN_STATUSES,
        "steps": steps,
        "staff": staff,
    }
