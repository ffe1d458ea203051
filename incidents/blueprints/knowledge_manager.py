"""The knowledge manager: finds the gaps in the knowledge base and drafts articles for them.

    find_gaps ──▶ draft ──▶ done
        └──────────────────▶ done (no gap)

A gap is a ticket the service desk could not answer from its knowledge: it was escalated to a
person or reopened by its requester, a person has since resolved it with notes, and retrieval
over the curated knowledge (runbooks, guides, policies, golden paths) finds nothing close to it
even now (no passage at the embedder's similarity bar, ``history.min_similarity``). For each
gap, up to ``max_drafts`` a run, it drafts an article from the ticket's problem and its
resolution (summarised, redacted) for a person to review, edit and publish
(``knowledge.drafts``; publishing indexes it). A ticket is drafted once, ever: a rejected
draft is not proposed again. Offline and deterministic: the draft is the resolution put in
order, not text a model invented.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from agentops.models import AuditEvent
from agents import blueprints
from agents.blueprints import DONE, Blueprint, Outcome
from agents.models import Run, RunStatus
from agents.redaction import redact
from incidents.models import Status, Ticket
from knowledge import drafts, history, retrieval
from knowledge.models import SourceKind
from knowledge.summary import summarise

NAME = "knowledge_manager"
CURATED = [SourceKind.RUNBOOK, SourceKind.GUIDE, SourceKind.POLICY, SourceKind.GOLDEN_PATH]
CANDIDATES_MAX = 200  # tickets examined per run, newest resolutions first
DONE_STATUSES = (Status.RESOLVED, Status.CLOSED)


def _escalated_or_reopened(tenant, since) -> dict[str, str]:
    """ticket number → why it is a candidate, for tickets escalated or reopened since ``since``."""
    why: dict[str, str] = {}
    events = (
        AuditEvent.objects.for_tenant(tenant)
        .filter(action="ticket.status_changed", target_type="ticket", created_at__gte=since)
        .filter(
            Q(changes__status__to=Status.ESCALATED)
            | Q(changes__status__from__in=[str(s) for s in DONE_STATUSES])
        )
        .values_list("target_id", "changes")
    )
    for number, changes in events:
        change = (changes or {}).get("status") or {}
        if change.get("to") == Status.ESCALATED:
            why.setdefault(number, "escalated to a person")
        elif change.get("to") not in DONE_STATUSES:
            why[number] = "reopened by its requester"
    escalated_runs = (
        Run.objects.for_tenant(tenant)
        .filter(subject_type="ticket", status=RunStatus.ESCALATED, created_at__gte=since)
        .values_list("subject_id", flat=True)
    )
    for number in escalated_runs:
        why.setdefault(number, "the agent escalated it")
    return why


def find_gaps(tenant, *, days: int, limit: int) -> list[dict]:
    """The gaps (see the module's docstring), most recently resolved first."""
    since = timezone.now() - timedelta(days=days)
    why = _escalated_or_reopened(tenant, since)
    if not why:
        return []
    tickets = list(
        Ticket.objects.for_tenant(tenant)
        .filter(number__in=list(why), status__in=DONE_STATUSES)
        .exclude(resolution_notes="")
        .order_by("-resolved_at", "-id")
        .only("number", "title", "description", "resolution_notes")[:CANDIDATES_MAX]
    )
    done = drafts.drafted_refs(tenant, [t.number for t in tickets])
    bar = history.min_similarity()
    gaps = []
    for ticket in tickets:
        if ticket.number in done:
            continue
        text = summarise(f"{ticket.title}. {ticket.description}", 1000)
        hits = retrieval.search(tenant, text, k=3, kinds=CURATED)
        best = max((h.scores.vector for h in hits), default=0.0)
        if best >= bar:
            continue  # the knowledge base has something close: not a gap
        gaps.append(
            {
                "ticket": ticket.number,
                "title": ticket.title[:200],
                "reason": why[ticket.number],
                "best_similarity": round(best, 3),
                "bar": bar,
            }
        )
        if len(gaps) >= limit:
            break
    return gaps


def article_markdown(ticket: Ticket, gap: dict, run_id: str) -> str:
    """The draft: the problem and its resolution, summarised and redacted, with where it came
    from and what the reviewer should check."""
    problem = summarise(ticket.description or ticket.title, 1200)
    resolution = summarise(ticket.resolution_notes, 2000)
    lines = [
        f"# {ticket.title}",
        "",
        "## Symptoms",
        "",
        problem,
        "",
        "## Resolution",
        "",
        resolution,
        "",
        "## Where this came from",
        "",
        f"- Drafted by the knowledge manager (run {run_id}) from {ticket.number}, which was "
        f"{gap['reason']}; the knowledge base had nothing close to it (best similarity "
        f"{gap['best_similarity']:.2f}, bar {gap['bar']:.2f}).",
        "- Reviewer: generalise the steps (no one person's names or devices) before publishing.",
    ]
    return redact("\n".join(lines)).text + "\n"


class KnowledgeManagerBlueprint(Blueprint):
    name = NAME
    version = "1"
    title = "Knowledge manager"
    description = (
        "Finds escalated or reopened tickets the knowledge base could not answer and drafts an "
        "article from each resolution for a person to review and publish."
    )
    initial = "find_gaps"
    states = {"find_gaps": "Find knowledge gaps", "draft": "Draft articles for review"}
    transitions = {"find_gaps": ("draft", DONE), "draft": (DONE,)}
    default_config = {"days": 30, "max_drafts": 5}

    def start_input(self, *, tenant, actor, goal, subject_type, subject_id):
        days = (goal or "").strip() or "30"
        if not days.isdigit() or not 1 <= int(days) <= 365:
            raise ValidationError({"goal": "Say how many days back to look (1-365), or nothing."})
        return {
            "subject_type": "knowledge",
            "subject_id": "gaps",
            "subject_repr": f"Knowledge gaps of the last {int(days)} days",
            "input": {"days": int(days)},
        }

    def state_find_gaps(self, ctx) -> Outcome:
        days = int(ctx.run.input.get("days") or ctx.blueprint_config.get("days", 30))
        limit = int(ctx.blueprint_config.get("max_drafts", 5))
        gaps = find_gaps(ctx.tenant, days=days, limit=limit)
        ctx.state["gaps"] = gaps
        if not gaps:
            return Outcome(
                DONE, summary=f"No knowledge gap in the last {days} days.", detail={"gaps": []}
            )
        listing = ", ".join(f"{g['ticket']} ({g['reason']})" for g in gaps)
        return Outcome("draft", summary=f"{len(gaps)} gap(s): {listing}", detail={"gaps": gaps})

    def state_draft(self, ctx) -> Outcome:
        made = []
        for gap in ctx.state.get("gaps", []):
            ticket = Ticket.objects.for_tenant(ctx.tenant).filter(number=gap["ticket"]).first()
            if ticket is None:
                continue
            draft = drafts.draft_create(
                tenant=ctx.tenant,
                ref=ticket.number,
                title=ticket.title,
                content=article_markdown(ticket, gap, ctx.run.run_id),
                provenance={
                    "ticket": ticket.number,
                    "run": ctx.run.run_id,
                    "reason": gap["reason"],
                },
            )
            if draft is not None:
                made.append({"draft": draft.pk, "ticket": ticket.number, "title": draft.title})
        ctx.state["drafts"] = made
        names = ", ".join(d["ticket"] for d in made) or "none (drafted already)"
        return Outcome(
            DONE,
            summary=f"{len(made)} article draft(s) wait for review: {names}",
            detail={"drafts": made},
        )


def register() -> None:
    blueprints.register(KnowledgeManagerBlueprint())
