"""The sentiment monitor: flags a ticket whose requester is frustrated, or which keeps being
reopened, for a person, with the evidence, and proposes a priority raise that a person accepts.

    read ──▶ assess ──▶ flag ──▶ (a person decides the raise) ──▶ apply / declined ──▶ done
                  └──▶ done (no sign of frustration)

It reads the requester's own words (the description and their public comments, never internal
notes) and the ticket's history (how often it was reopened), weighs them in code
(``incidents.blueprints.sentiment``), and on a flag writes an internal note with the evidence
and proposes ``raise_priority``, which always waits for a person's approval here. The
requester's words are data: they decide nothing beyond the flag itself, and the only action
is one step up in priority for this run's own ticket, once a person has said yes.

Started by ``watch(ticket, reason)`` when a requester writes on their ticket or it is
reopened, and only when there is something to weigh.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from agents import blueprints
from agents.blueprints import DONE, FAILED, WAIT, Blueprint, Outcome
from agents.models import ToolCall
from agents.tools.base import Tool, ToolContext, ToolResult
from incidents.blueprints import sentiment
from incidents.models import OPEN_STATUSES, Priority, Status, Ticket

log = logging.getLogger(__name__)

NAME = "sentiment_monitor"
LADDER = [Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.CRITICAL]
REOPENED_FROM = (Status.RESOLVED, Status.CLOSED)
TEXT_CHARS = 4000


def raised(priority: str) -> str | None:
    """One step up the ladder; None at the top."""
    try:
        index = LADDER.index(priority)
    except ValueError:
        return Priority.HIGH
    return LADDER[index + 1] if index + 1 < len(LADDER) else None


def _ticket_of_run(tenant, run_id) -> Ticket | None:
    from agents.models import Run

    run = Run.objects.for_tenant(tenant).filter(pk=run_id).first()
    if run is None or run.subject_type != "ticket":
        return None
    return Ticket.objects.for_tenant(tenant).filter(number=run.subject_id).first()


class RaisePriority(Tool):
    name = "raise_priority"
    description = "Raise the priority of this run's ticket (only that ticket), with a reason."
    connector = "ticketing"
    input_schema = {
        "type": "object",
        "properties": {
            "priority": {"type": "string", "enum": [str(p) for p in LADDER[1:]]},
            "reason": {"type": "string", "minLength": 3, "maxLength": 1000},
        },
        "required": ["priority", "reason"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        from incidents import services

        ticket = _ticket_of_run(ctx.tenant, ctx.run_id)
        if ticket is None:
            return ToolResult(
                False, "No ticket for this run.", status_code=404, error_class="NotFound"
            )
        if LADDER.index(args["priority"]) <= LADDER.index(ticket.priority):
            return ToolResult(True, f"{ticket.number} is already {ticket.get_priority_display()}.")
        services.ticket_update(ticket=ticket, actor=None, priority=args["priority"])
        services.ticket_comment(
            ticket=ticket,
            actor=None,
            is_internal=True,
            body=f"Priority raised to {args['priority']} (approved): {args['reason']}",
        )
        return ToolResult(True, f"{ticket.number} raised to {args['priority']}.")

    def verify(self, ctx, args, result) -> bool:
        ticket = _ticket_of_run(ctx.tenant, ctx.run_id)
        return ticket is not None and LADDER.index(ticket.priority) >= LADDER.index(
            args["priority"]
        )


class SentimentMonitor(Blueprint):
    name = NAME
    title = "Sentiment monitor"
    description = (
        "Flags tickets whose requester is frustrated or which keep being reopened, with the "
        "evidence, and proposes a priority raise that a person accepts."
    )
    initial = "read"
    states = {
        "read": "Read the requester's words and the ticket's history",
        "assess": "Weigh the signs of frustration",
        "flag": "Flag it for a person and propose a priority raise",
        "apply": "Raise the priority (approved)",
        "declined": "Keep the priority (not approved)",
    }
    transitions = {
        "read": ("assess", DONE),
        "assess": ("flag", DONE),
        "flag": (WAIT, DONE),
        "apply": (DONE, FAILED),
        "declined": (DONE,),
    }
    tools = ("raise_priority",)
    approval_tools = ("raise_priority",)

    # -- states ----------------------------------------------------------------------------

    def state_read(self, ctx) -> Outcome:
        ticket = Ticket.objects.for_tenant(ctx.tenant).filter(number=ctx.run.subject_id).first()
        if ticket is None:
            return Outcome(DONE, summary="The ticket is gone.")
        texts, unanswered = _requester_words(ticket)
        ctx.state.update(texts=texts, unanswered=unanswered, reopen_count=_reopen_count(ticket))
        return Outcome(
            "assess",
            summary=f"{len(texts)} message(s) of the requester, reopened {ctx.state['reopen_count']} time(s)",
        )

    def state_assess(self, ctx) -> Outcome:
        found = sentiment.assess(
            ctx.state.get("texts", []),
            reopen_count=ctx.state.get("reopen_count", 0),
            unanswered_followups=ctx.state.get("unanswered", 0),
        )
        evidence = found.evidence()
        ctx.state["evidence"] = evidence
        if not found.flagged:
            return Outcome(DONE, summary=f"No flag (score {found.score}).", detail=evidence)
        return Outcome("flag", summary=_describe(evidence), detail=evidence)

    def state_flag(self, ctx) -> Outcome:
        from incidents import approval_scopes, services

        ticket = Ticket.objects.for_tenant(ctx.tenant).get(number=ctx.run.subject_id)
        evidence = ctx.state["evidence"]
        words = _describe(evidence)
        services.ticket_comment(
            ticket=ticket, actor=None, is_internal=True, body=f"Sentiment monitor: {words}"
        )
        target = raised(ticket.priority)
        if target is None or ticket.status not in OPEN_STATUSES:
            return Outcome(DONE, summary=f"Flagged for a person: {words}", detail=evidence)
        call = ctx.propose("raise_priority", {"priority": str(target), "reason": words[:1000]})
        verdict = ctx.check_policy(call)
        if verdict.decision != "needs_approval":  # the blueprint makes it wait; never less
            return Outcome(DONE, summary=f"Flagged; the raise was refused: {verdict.reason}")
        ctx.request_approval(
            call,
            priority="high" if target in (Priority.HIGH, Priority.CRITICAL) else "medium",
            evidence={
                "ticket": ticket.number,
                "from": ticket.priority,
                "to": str(target),
                **evidence,
            },
            scope=approval_scopes.scope_for(ticket),
        )
        ctx.state["proposal"] = call.pk
        return Outcome(
            WAIT,
            summary=f"Flagged; proposes {ticket.priority} → {target}. {words}",
            detail=evidence,
            step_status="waiting",
        )

    def state_apply(self, ctx) -> Outcome:
        call = ToolCall.objects.for_tenant(ctx.tenant).get(pk=ctx.state["proposal"])
        call = ctx.execute(call)
        if call.status != ToolCall.Status.SUCCESS:
            return Outcome(
                FAILED, summary=call.error_message or "The raise failed.", step_status="failure"
            )
        return Outcome(DONE, summary=call.result_summary)

    def state_declined(self, ctx) -> Outcome:
        return Outcome(DONE, summary="A person kept the priority as it was.")

    def on_decision(self, run, call, approved: bool) -> str:
        return "apply" if approved else "declined"


def _requester_words(ticket: Ticket) -> tuple[list[str], int]:
    """The requester's own public words (description first) and how many of their comments
    came after the desk's last public reply."""
    from incidents.models import Comment

    texts = [f"{ticket.title}\n{ticket.description}"]
    unanswered = 0
    comments = (
        Comment.objects.for_tenant(ticket.tenant)
        .filter(ticket=ticket, is_internal=False)
        .order_by("created_at", "id")
        .only("author_id", "body")
    )
    for comment in comments:
        if ticket.requester_id and comment.author_id == ticket.requester_id:
            texts.append(comment.body)
            unanswered += 1
        elif comment.author_id is not None:
            unanswered = 0  # someone on the desk answered
    return [t[:TEXT_CHARS] for t in texts[-20:]], unanswered


def _reopen_count(ticket: Ticket) -> int:
    from agentops.models import AuditEvent

    return (
        AuditEvent.objects.for_tenant(ticket.tenant)
        .filter(
            action="ticket.status_changed",
            target_type="ticket",
            target_id=ticket.number,
            changes__status__from__in=[str(s) for s in REOPENED_FROM],
            changes__status__to__in=[str(s) for s in OPEN_STATUSES],
        )
        .count()
    )


def _describe(evidence: dict) -> str:
    parts = []
    if evidence.get("phrases"):
        quotes = "; ".join(f"“{p['quote']}” ({p['lang']})" for p in evidence["phrases"][:5])
        parts.append(f"frustrated words: {quotes}")
    if evidence.get("reopen_count"):
        parts.append(f"reopened {evidence['reopen_count']} time(s)")
    if len(evidence.get("shouting", [])) >= 2:
        parts.append("writes in capitals")
    if evidence.get("piled_punctuation"):
        parts.append("piled-up !? marks")
    if evidence.get("unanswered_followups", 0) >= 3:
        parts.append(f"{evidence['unanswered_followups']} follow-ups without an answer")
    return "; ".join(parts) or "no clear sign"


def watch(*, ticket: Ticket, reason: str) -> None:
    """Start the monitor for ``ticket`` when there is something to weigh (the requester's
    words show a sign, or the ticket was reopened) and no monitor run is active for it."""
    from agents.engine import BlueprintDisabled, start_run
    from agents.models import ACTIVE_RUN_STATUSES, Run

    if reason != "reopened":
        texts, unanswered = _requester_words(ticket)
        if not sentiment.assess(texts[-3:], unanswered_followups=unanswered).score:
            return
    active = Run.objects.for_tenant(ticket.tenant).filter(
        agent_name=NAME,
        subject_type="ticket",
        subject_id=ticket.number,
        status__in=sorted(ACTIVE_RUN_STATUSES),
    )
    if active.exists():
        return
    with contextlib.suppress(BlueprintDisabled):  # the tenant switched the monitor off
        start_run(
            tenant=ticket.tenant,
            blueprint=NAME,
            subject_type="ticket",
            subject_id=ticket.number,
            subject_repr=f"Sentiment of {ticket.number}: {ticket.title}"[:200],
            input={"reason": reason},
        )


def register() -> None:
    from agents.tools import registry

    registry.register(RaisePriority())
    blueprints.register(SentimentMonitor())
