"""Where the service-desk pipeline goes after triage, and how it hands a ticket to people.

``_route`` follows the model's decision except where code must decide (issue 13): incidents,
critical priority and low confidence go to people; a fault many people share is an incident
whatever the model said; a ticket on someone else's behalf is recorded for the policy.
``_escalate_ticket`` hands a ticket over with a staff summary and plain words for the requester.
"""

from __future__ import annotations

from typing import Any

from agentops import audit
from agentops.prepared import prepared
from agents.models import Run, ToolCall
from incidents import diagnosis, replies, third_party
from incidents.desk_support import _args, _ticket
from incidents.models import Priority, ReplyKind, Status, Ticket
from incidents.portal import notify

MIN_CONFIDENCE = 0.5


def _route(ctx, ticket: Ticket, triage: dict[str, Any], text: str) -> tuple[str, str]:
    """Where triage goes next, and why in words. The model's decision, except where code
    must decide: incidents, critical priority and low confidence go to people; a fault many
    share is an incident whatever the model said; a ticket on someone else's behalf whose
    person the directory does not know goes to a person."""
    decision = triage["decision"]
    scope = diagnosis.scope(ticket, text, category=triage["category"])
    ctx.state["scope"] = scope.as_dict()
    party = third_party.detect(ctx.tenant, text, requester_email=ticket.requester_email)
    if party is not None:
        ctx.state["third_party"] = party.as_dict()
        ctx.state["on_behalf_of"] = party.who
        ctx.state["beneficiary_email"] = party.email
    if ticket.kind == "incident":
        return "escalate", "Triage sent it to a person: an incident."
    if triage["priority"] == Priority.CRITICAL:
        return "escalate", "Triage sent it to a person: critical priority."
    if decision == "incident" or (scope.wide and decision == "auto_resolve"):
        why = "; ".join(scope.reasons) or "the model judged it a shared fault"
        return "incident", f"A fault many people share ({why}): no per-device fix."
    if triage["confidence"] < MIN_CONFIDENCE:
        return (
            "escalate",
            f"Triage sent it to a person: low confidence ({triage['confidence']:.2f}).",
        )
    if decision == "human":
        return "escalate", "Triage sent it to a person: the model judged it needs a human."
    if decision in ("answer", "redirect"):
        return decision, ""
    if party is not None and not party.email:
        return "escalate", (
            f"The ticket asks on behalf of {party.who}, whom the directory does not identify: a "
            "person must check who it is for before anything changes on anyone's account."
        )
    return "diagnose", ""


def _public_escalation(state: dict[str, Any]) -> str:
    """What the requester reads when a person takes over: plain words, no tool names."""
    lines = ["Thank you for your request."]
    found = state.get("requester_findings") or []
    if found:
        lines.append("Here is what we found: " + " ".join(found))
        lines.append("So there was nothing for us to change automatically.")
    if state.get("on_behalf_of"):
        lines.append(
            f"You asked on behalf of {state['on_behalf_of']}. For their security, we do not "
            "change someone else's account without checking with them first."
        )
    lines.append(
        "A person from the service desk will take your ticket from here; you can add details "
        "by replying on it."
    )
    return "\n\n".join(lines)


@prepared
def _calls_of(tenant_id: int, run_id: int):
    return ToolCall.objects.for_tenant(tenant_id).filter(run_id=run_id).order_by("id")


def _escalate_ticket(run: Run, reason: str, *, public: str = "") -> None:
    """Hand the ticket to people: escalated, unassigned, with an internal summary and, for the
    requester, a public message in plain words. Never lost."""
    from incidents import services

    tried = _calls_of(run.tenant_id, run.pk)
    lines = [
        f"- {c.tool_name}({_args(c.args_json)}): {c.get_status_display().lower()}"
        + (
            f" — {c.policy_reason or c.error_message or c.result_summary}"
            if (c.policy_reason or c.error_message or c.result_summary)
            else ""
        )
        for c in tried
    ]
    body = f"Escalated by the service-desk agent. Why it stopped: {reason}\n\nWhat was tried:\n" + (
        "\n".join(lines) or "- nothing"
    )
    with audit.batched(), notify.grouped():  # the requester hears of it once
        ticket = _ticket(run, lock=True)
        # The status change below stamps the ticket's updated_at: the notes need no touch.
        moves = Status.ESCALATED in ticket.allowed_transitions
        if public and ticket.is_open:  # the requester's words first, then the staff summary
            replies.reply_post(
                row_locked=True,
                touch=not moves,
                ticket=ticket,
                kind=ReplyKind.ESCALATED,
                body=public,
                run_id=run.run_id,
            )
        services.ticket_comment(
            ticket=ticket,
            actor=None,
            body=body[:9000],
            is_internal=True,
            row_locked=True,
            touch=not moves,
        )
        if moves:
            services.ticket_transition(
                ticket=ticket,
                actor=None,
                status=Status.ESCALATED,
                note=reason[:500],
                row_locked=True,
            )
