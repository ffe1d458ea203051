"""What a provider's payload means, in one shape: open a ticket, comment, change status,
a handshake, nothing to do, or an event type we do not know (stored and acknowledged).

Each reader takes the parsed JSON body and the (lower-cased) headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

CREATE, COMMENT, STATUS, IGNORE, UNKNOWN, HANDSHAKE = (
    "create",
    "comment",
    "status",
    "ignore",
    "unknown",
    "handshake",
)


@dataclass
class Event:
    action: str
    event_type: str
    delivery_id: str
    external_id: str = ""
    title: str = ""
    description: str = ""
    requester_email: str = ""
    priority: str = ""
    status: str = ""  # our status (incidents.models.Status), already mapped
    body: str = ""  # a comment's text
    author: str = ""  # who wrote it over there
    challenge: str = ""  # Slack's url_verification


def body_digest(raw: bytes) -> str:
    """A delivery id for payloads that carry none: the same body is the same delivery."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _text(value) -> str:
    """Plain text of a string or of an Atlassian document (Jira Cloud's rich text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("type") == "text":
            return str(value.get("text", ""))
        parts = [_text(child) for child in value.get("content") or []]
        sep = "\n" if value.get("type") in ("doc", None) else ""
        return sep.join(p for p in parts if p)
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _get(data, *path, default=None):
    for key in path:
        if not isinstance(data, Mapping):
            return default
        data = data.get(key)
    return default if data is None else data


# --------------------------------------------------------------------------- generic

GENERIC_STATUS = {
    "new": "new",
    "open": "new",
    "triaged": "triaged",
    "in_progress": "in_progress",
    "on_hold": "on_hold",
    "pending": "on_hold",
    "escalated": "escalated",
    "resolved": "resolved",
    "solved": "resolved",
    "closed": "closed",
    "cancelled": "cancelled",
}
PRIORITIES = ("critical", "high", "medium", "low")


def read_generic(data: dict, headers: Mapping[str, str], raw: bytes) -> Event:
    kind = str(data.get("type") or data.get("event") or "")
    item = data.get("data") if isinstance(data.get("data"), dict) else {}
    delivery = headers.get("webhook-id") or body_digest(raw)
    base = {"event_type": kind, "delivery_id": delivery}
    if kind in ("ticket.created", "issue.created"):
        return Event(
            CREATE,
            external_id=str(item.get("id") or ""),
            title=_text(item.get("title")),
            description=_text(item.get("description")),
            requester_email=str(item.get("requester_email") or ""),
            priority=str(item.get("priority") or "").lower(),
            **base,
        )
    if kind in ("comment.created", "ticket.commented"):
        return Event(
            COMMENT,
            external_id=str(item.get("ticket_id") or ""),
            body=_text(item.get("body")),
            author=str(item.get("author") or ""),
            **base,
        )
    if kind in ("ticket.status_changed", "issue.status_changed"):
        status = str(item.get("status") or "").lower().replace(" ", "_")
        return Event(
            STATUS,
            external_id=str(item.get("ticket_id") or ""),
            status=GENERIC_STATUS.get(status, ""),
            body=_text(item.get("note")),
            **base,
        )
    return Event(UNKNOWN, **base)


# --------------------------------------------------------------------------- jira

JIRA_PRIORITY = {"highest": "critical", "high": "high", "medium": "medium", "low": "low"}
JIRA_PRIORITY["lowest"] = "low"
JIRA_STATUS = {
    "to do": "new",
    "open": "new",
    "backlog": "new",
    "selected for development": "triaged",
    "in progress": "in_progress",
    "in review": "in_progress",
    "blocked": "on_hold",
    "waiting for customer": "on_hold",
    "escalated": "escalated",
    "done": "resolved",
    "resolved": "resolved",
    "closed": "closed",
    "won't do": "cancelled",
    "cancelled": "cancelled",
}
JIRA_CATEGORY = {"new": "new", "indeterminate": "in_progress", "done": "resolved"}


def read_jira(data: dict, headers: Mapping[str, str], raw: bytes) -> Event:
    kind = str(data.get("webhookEvent") or "")
    delivery = headers.get("x-atlassian-webhook-identifier") or body_digest(raw)
    key = str(_get(data, "issue", "key", default=""))
    base = {"event_type": kind, "delivery_id": delivery, "external_id": key}
    fields = _get(data, "issue", "fields", default={})
    if kind == "jira:issue_created":
        return Event(
            CREATE,
            title=_text(fields.get("summary")),
            description=_text(fields.get("description")),
            requester_email=str(_get(fields, "reporter", "emailAddress", default="")),
            priority=JIRA_PRIORITY.get(
                str(_get(fields, "priority", "name", default="")).lower(), ""
            ),
            **base,
        )
    if kind in ("comment_created", "jira:issue_commented"):
        return Event(
            COMMENT,
            body=_text(_get(data, "comment", "body", default="")),
            author=str(_get(data, "comment", "author", "displayName", default="")),
            **base,
        )
    if kind == "jira:issue_updated":
        for item in _get(data, "changelog", "items", default=[]) or []:
            if isinstance(item, dict) and item.get("field") == "status":
                name = str(item.get("toString") or "").lower()
                category = str(_get(fields, "status", "statusCategory", "key", default=""))
                status = JIRA_STATUS.get(name) or JIRA_CATEGORY.get(category, "")
                return Event(
                    STATUS, status=status, body=f"Jira status: {item.get('toString')}", **base
                )
        return Event(IGNORE, **base)
    return Event(UNKNOWN, **base)


# --------------------------------------------------------------------------- zendesk

ZENDESK_PRIORITY = {"urgent": "critical", "high": "high", "normal": "medium", "low": "low"}
ZENDESK_STATUS = {
    "new": "new",
    "open": "in_progress",
    "pending": "on_hold",
    "hold": "on_hold",
    "solved": "resolved",
    "closed": "closed",
}
ZENDESK_PREFIX = "zen:event-type:"


def read_zendesk(data: dict, headers: Mapping[str, str], raw: bytes) -> Event:
    kind = str(data.get("type") or "")
    delivery = (
        headers.get("x-zendesk-webhook-invocation-id")
        or str(data.get("id") or "")
        or body_digest(raw)
    )
    detail = data.get("detail") if isinstance(data.get("detail"), dict) else {}
    event = data.get("event") if isinstance(data.get("event"), dict) else {}
    base = {"event_type": kind, "delivery_id": delivery, "external_id": str(detail.get("id") or "")}
    short = kind.removeprefix(ZENDESK_PREFIX)
    if short == "ticket.created":
        return Event(
            CREATE,
            title=_text(detail.get("subject")),
            description=_text(detail.get("description")),
            priority=ZENDESK_PRIORITY.get(str(detail.get("priority") or "").lower(), ""),
            **base,
        )
    if short == "ticket.comment_added":
        comment = event.get("comment") if isinstance(event.get("comment"), dict) else {}
        return Event(
            COMMENT,
            body=_text(comment.get("body")),
            author=str(_get(comment, "author", "name", default="")),
            **base,
        )
    if short == "ticket.status_changed":
        current = str(event.get("current") or "").lower()
        return Event(
            STATUS,
            status=ZENDESK_STATUS.get(current, ""),
            body=f"Zendesk status: {current}",
            **base,
        )
    return Event(UNKNOWN, **base)


# --------------------------------------------------------------------------- slack (Events API)


def read_slack(data: dict, headers: Mapping[str, str], raw: bytes) -> Event:
    kind = str(data.get("type") or "")
    if kind == "url_verification":
        return Event(HANDSHAKE, kind, "", challenge=str(data.get("challenge") or ""))
    event = data.get("event") if isinstance(data.get("event"), dict) else {}
    event_type = f"{kind}:{event.get('type', '')}" if kind == "event_callback" else kind
    delivery = str(data.get("event_id") or "") or body_digest(raw)
    base = {"event_type": event_type, "delivery_id": delivery}
    if kind != "event_callback" or event.get("type") not in ("app_mention", "message"):
        return Event(UNKNOWN, **base)
    if event.get("bot_id") or event.get("subtype"):
        return Event(IGNORE, **base)  # our own messages, edits, joins
    channel, text = str(event.get("channel") or ""), _text(event.get("text"))
    thread = str(event.get("thread_ts") or "")
    if thread and thread != event.get("ts"):
        return Event(
            COMMENT,
            external_id=f"{channel}:{thread}",
            body=text,
            author=str(event.get("user") or ""),
            **base,
        )
    if event.get("type") != "app_mention":
        return Event(IGNORE, **base)  # chatter in the channel; a mention opens a ticket
    return Event(
        CREATE,
        external_id=f"{channel}:{event.get('ts', '')}",
        title=text.splitlines()[0] if text else "",
        description=text,
        author=str(event.get("user") or ""),
        **base,
    )


READERS = {"generic": read_generic, "jira": read_jira, "zendesk": read_zendesk, "slack": read_slack}
