"""Audit events in words: "alex changed the status from Triaged to Escalated", not
``ticket.status_changed {'to': 'escalated', 'from': 'triaged'}``.

The ticket history and the audit page show ``describe(event)``; the stored event is untouched
(the export still gives the raw fields). Apps above register how their codes read
(``register_labels("status", dict(Status.choices))``) at startup, so this module names no
domain; an action nobody described still reads as words ("approval: sla breached").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import NoReverseMatch, reverse

# What each action says, after the actor's name. {target} is the target's kind in words.
ACTION_WORDS: dict[str, str] = {
    "ticket.created": "opened the ticket",
    "ticket.updated": "edited the ticket",
    "ticket.assigned": "changed the assignee",
    "ticket.status_changed": "changed the status",
    "ticket.queue_changed": "moved the ticket to another queue",
    "ticket.triaged": "triaged the ticket",
    "ticket.internal_note": "added an internal note",
    "ticket.commented": "replied",
    "run.succeeded": "recorded that an agent run succeeded",
    "run.escalated": "recorded that an agent run handed the ticket to people",
    "run.waiting_approval": "recorded that an agent run waits for approval",
    "ticket.sla_breached": "recorded that the ticket missed its SLA",
    "ticket.sla_warning": "warned that the ticket used 75 % of its SLA",
    "ticket.sla_escalated": "escalated the ticket for its missed SLA",
    "ticket.rated": "rated the resolution",
    "ticket.rerated": "changed the rating",
    "run.started": "started an agent run",
    "run.failed": "recorded that an agent run failed",
    "run.cancelled": "cancelled an agent run",
    "tool.executed": "ran a tool",
    "policy.verdict": "checked an action against the policy",
    "approval.requested": "asked for an approval",
    "approval.approved": "approved a request",
    "approval.rejected": "rejected a request",
    "approval.expired": "let a request expire",
    "approval.escalated": "escalated a request",
    "approval.sla_breached": "recorded that a request missed its SLA",
    "approval.availability": "changed their availability",
    "queue.created": "created a queue",
    "queue.updated": "changed a queue",
    "permission.granted": "granted access",
    "permission.revoked": "revoked access",
    "membership.created": "added a member",
    "membership.removed": "removed a member",
    "membership.changed": "changed a member's role",
    "knowledge.source_created": "added a knowledge source",
    "knowledge.source_updated": "edited a knowledge source",
    "knowledge.source_deactivated": "retired a knowledge source",
    "knowledge.reindex_requested": "asked to re-index a knowledge source",
    "api_token.created": "created an API token",
    "api_token.revoked": "revoked an API token",
}

# Field names in words.
FIELD_WORDS: dict[str, str] = {
    "requester_email": "requester",
    "csat": "rating",
    "assignee": "assignee",
    "suggested_path": "suggested path",
    "affected_services": "affected services",
    "detected_by": "detected by",
    "resolution_notes": "resolution notes",
    "sla_due": "SLA due",
    "away_until": "away until",
}

# Where a target's page is: target_type → URL name taking the target id.
TARGET_URLS: dict[str, str] = {
    "ticket": "incidents:ticket-detail",
    "approval": "approvals:detail",
    "run": "agents:run-detail",
    "knowledge_source": "knowledge:source-detail",
}

_LABELS: dict[str, dict[str, str]] = {}


def register_labels(field_name: str, labels: dict) -> None:
    """How the codes of one field read ("in_progress" → "In progress")."""
    _LABELS.setdefault(field_name, {}).update({str(k): str(v) for k, v in labels.items()})


def value_words(value, field_name: str = "") -> str:
    """One stored value in words: no None, True, dicts or raw codes."""
    if value is None or value == "":
        return "none"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list):
        return ", ".join(value_words(v, field_name) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{field_words(k)} {value_words(v, k)}" for k, v in value.items())
    text = str(value)
    labels = _LABELS.get(field_name)
    if labels and text in labels:
        return labels[text]
    return text.replace("_", " ") if text.isidentifier() else text


def field_words(name: str) -> str:
    return FIELD_WORDS.get(name, name.replace("_", " "))


def change_words(name: str, change) -> str:
    """ "status from Triaged to Escalated", "priority High"."""
    if isinstance(change, dict) and set(change) <= {"from", "to"} and change:
        before, after = change.get("from"), change.get("to")
        if before in (None, ""):
            return f"{field_words(name)} set to {value_words(after, name)}"
        if after in (None, ""):
            return f"{field_words(name)} cleared (was {value_words(before, name)})"
        return f"{field_words(name)} from {value_words(before, name)} to {value_words(after, name)}"
    return f"{field_words(name)}: {value_words(change, name)}"


def action_words(action: str) -> str:
    if action in ACTION_WORDS:
        return ACTION_WORDS[action]
    subject, _, verb = action.partition(".")
    return f"{subject.replace('_', ' ')}: {verb.replace('_', ' ')}" if verb else action


def target_url(target_type: str, target_id: str) -> str:
    name = TARGET_URLS.get(target_type)
    if not name or not target_id:
        return ""
    try:
        return reverse(name, args=[target_id])
    except NoReverseMatch:
        return ""


@dataclass
class Described:
    actor: str
    sentence: str
    changes: list[str] = field(default_factory=list)
    url: str = ""


def describe(event, *, public: bool = False) -> Described:
    """The event as a person reads it. ``public``: for a requester, whose history names no
    agents, tools or staff accounts: anyone but themselves is "the service desk"."""
    actor = event.actor_label or "system"
    if actor == "system":
        actor = "The service desk" if public else "AgentOps"
    elif public:
        actor = "You" if getattr(event, "is_viewer", False) else "The service desk"
    changes = event.changes if isinstance(event.changes, dict) else {}
    sentence = action_words(event.action)
    words = [change_words(k, v) for k, v in changes.items()]
    # "changed the status" + "status from A to B" → "changed the status from A to B".
    if len(changes) == 1:
        name = field_words(next(iter(changes)))
        if sentence.endswith(f" {name}") and words[0].startswith(f"{name} from "):
            sentence, words = f"{sentence}{words[0][len(name) :]}", []
    return Described(
        actor=actor,
        sentence=sentence,
        changes=words,
        url=target_url(event.target_type, event.target_id),
    )
