"""Approval requests in Slack: a Block Kit message with Approve / Reject / Open, and the
signed interactions that come back, decided through the same ``services.decide``.

A button press is checked with the app's signing secret (slack_sdk's SignatureVerifier),
its Slack user mapped to the linked AgentOps user (``SlackUserLink``), and decided exactly as
in the console: four-eyes, role, scope and the arguments hash all apply. An unlinked or
unauthorised Slack user gets an ephemeral refusal and nothing changes. Reject opens a modal
for the reason (a rejection needs one, as in the console).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.signature import SignatureVerifier

from approvals import services
from approvals.models import ApprovalRequest, SlackApprovalMessage, SlackConnection, SlackUserLink

log = logging.getLogger(__name__)
APPROVE, REJECT, OPEN = "approval_approve", "approval_reject", "approval_open"
REJECT_MODAL = "approval_reject_reason"


class SlackRefused(Exception):
    """401: not signed by the workspace's app (or stale)."""


class SlackBadRequest(Exception):
    """400: not an interaction payload we understand."""


@dataclass
class Answer:
    """What the interaction endpoint answers Slack (an empty 200 acknowledges)."""

    body: dict = field(default_factory=dict)


def client_for(connection: SlackConnection) -> WebClient:
    return WebClient(token=connection.bot_token, base_url=settings.SLACK_API_BASE_URL, timeout=5)


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters; untrusted text never becomes a link or a mention."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _console_url(request: ApprovalRequest) -> str:
    return settings.CONSOLE_BASE_URL.rstrip("/") + reverse("approvals:detail", args=[request.pk])


def blocks_for(request: ApprovalRequest) -> list[dict]:
    """The message: what is asked, why, for what; the three buttons while it is pending."""
    args = json.dumps(request.edited_arguments or request.arguments, sort_keys=True)[:1500]
    summary = (
        f"*Approval needed: {_escape(request.action)}* ({request.get_priority_display()})\n"
        f"For: {_escape(request.subject_repr or request.subject_id)}\n"
        f"Reason: {_escape(request.reason[:500]) or '—'}"
    )
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": summary}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{_escape(args)}```"}},
    ]
    if request.status == ApprovalRequest.Status.PENDING:
        value = str(request.pk)
        blocks.append(
            {
                "type": "actions",
                "block_id": f"approval:{request.pk}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE,
                        "style": "primary",
                        "value": value,
                        "text": {"type": "plain_text", "text": "Approve"},
                    },
                    {
                        "type": "button",
                        "action_id": REJECT,
                        "style": "danger",
                        "value": value,
                        "text": {"type": "plain_text", "text": "Reject"},
                    },
                    {
                        "type": "button",
                        "action_id": OPEN,
                        "url": _console_url(request),
                        "text": {"type": "plain_text", "text": "Open"},
                    },
                ],
            }
        )
    else:
        who = request.decided_by.get_username() if request.decided_by_id else "nobody"
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"{request.get_status_display()} by {_escape(who)}"}
                ],
            }
        )
    return blocks


def _text(request: ApprovalRequest) -> str:
    return f"Approval needed: {request.action} for {request.subject_repr or request.subject_id}"


# --------------------------------------------------------------------------- posting


def connection_of(tenant) -> SlackConnection | None:
    return SlackConnection.objects.for_tenant(tenant).filter(is_active=True).first()


def announce_after_commit(request: ApprovalRequest) -> None:
    """Called when a request opens: post it to the tenant's channel once it is committed."""
    connection = connection_of(request.tenant)
    if connection is None or not connection.post_approvals:
        return
    from approvals.tasks import post_approval_to_slack

    pk = request.pk
    transaction.on_commit(lambda: post_approval_to_slack.delay(pk), robust=True)


def post_request(*, request: ApprovalRequest) -> SlackApprovalMessage | None:
    """Post the message (once: a redelivered task finds it posted) and remember where."""
    connection = connection_of(request.tenant)
    if connection is None:
        return None
    posted = SlackApprovalMessage.objects.for_tenant(request.tenant).filter(request=request).first()
    if posted is not None:
        return posted
    response = client_for(connection).chat_postMessage(
        channel=connection.channel_id, text=_text(request), blocks=blocks_for(request)
    )
    return SlackApprovalMessage.objects.create(
        tenant=request.tenant,
        request=request,
        channel_id=str(response.get("channel") or connection.channel_id),
        ts=str(response["ts"]),
    )


def _show_decision(connection, request: ApprovalRequest) -> None:
    posted = SlackApprovalMessage.objects.for_tenant(request.tenant).filter(request=request).first()
    if posted is None:
        return
    try:
        client_for(connection).chat_update(
            channel=posted.channel_id, ts=posted.ts, text=_text(request), blocks=blocks_for(request)
        )
    except SlackClientError:  # the decision stands; the message just stays as it was
        log.warning("Could not update the Slack message of approval %s", request.pk, exc_info=True)


def show_decision_after_commit(request: ApprovalRequest) -> None:
    """A decision taken elsewhere (the console): its Slack message shows it too, after commit."""
    if not SlackApprovalMessage.objects.for_tenant(request.tenant).filter(request=request).exists():
        return
    from approvals.tasks import update_slack_message

    pk = request.pk
    transaction.on_commit(lambda: update_slack_message.delay(pk), robust=True)


def refresh_message(*, request: ApprovalRequest) -> None:
    connection = connection_of(request.tenant)
    if connection is not None:
        _show_decision(connection, request)


def _ephemeral(connection, payload: dict, text: str) -> None:
    channel = (payload.get("channel") or {}).get("id") or connection.channel_id
    user = (payload.get("user") or {}).get("id")
    try:
        client_for(connection).chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackClientError:
        log.warning("Could not send an ephemeral Slack message", exc_info=True)


# --------------------------------------------------------------------------- interactions


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _payload(body: bytes) -> dict:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        raise SlackBadRequest("Expected a form field 'payload' holding JSON.") from None
    if not isinstance(payload, dict):
        raise SlackBadRequest("The payload must be a JSON object.")
    if _has_nul(payload):
        raise SlackBadRequest("NUL characters are not accepted.")
    return payload


def _connection_for(payload: dict) -> SlackConnection:
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    connection = (
        SlackConnection.objects.unscoped("the workspace id names its own tenant")
        .select_related("tenant")
        .filter(team_id=str(team.get("id") or ""), is_active=True, tenant__is_active=True)
        .first()
    )
    if connection is None:
        raise SlackRefused("unknown workspace")
    return connection


def _verify(connection: SlackConnection, body: bytes, headers) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-slack-request-timestamp", "")
    if not timestamp.isdigit():
        raise SlackRefused("missing or unreadable X-Slack-Request-Timestamp")
    if not SignatureVerifier(connection.signing_secret).is_valid(
        body=body, timestamp=timestamp, signature=lowered.get("x-slack-signature")
    ):
        raise SlackRefused("signature mismatch or stale timestamp")


def _linked_user(connection: SlackConnection, slack_user_id: str):
    link = (
        SlackUserLink.objects.for_tenant(connection.tenant)
        .filter(slack_user_id=slack_user_id, user__is_active=True)
        .select_related("user")
        .first()
    )
    return link.user if link else None


def _request(connection: SlackConnection, value) -> ApprovalRequest | None:
    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    found = ApprovalRequest.objects.for_tenant(connection.tenant).filter(pk=pk).first()
    if found is not None:
        found.tenant = connection.tenant
    return found


def handle_interaction(*, body: bytes, headers) -> Answer:
    """One signed interaction: a button press (block_actions) or the reject reason (modal)."""
    payload = _payload(body)
    connection = _connection_for(payload)
    _verify(connection, body, headers)
    kind = payload.get("type")
    if kind == "block_actions":
        return _on_button(connection, payload)
    if kind == "view_submission" and (payload.get("view") or {}).get("callback_id") == REJECT_MODAL:
        return _on_reject_reason(connection, payload)
    return Answer()  # anything else is acknowledged and ignored


def _on_button(connection, payload: dict) -> Answer:
    actions = payload.get("actions") or [{}]
    action = actions[0] if isinstance(actions[0], dict) else {}
    action_id = action.get("action_id")
    if action_id not in (APPROVE, REJECT):
        return Answer()  # Open is a link; Slack still tells us it was pressed
    user = _linked_user(connection, str((payload.get("user") or {}).get("id") or ""))
    if user is None:
        _ephemeral(
            connection,
            payload,
            "Your Slack account is not linked to an AgentOps user, "
            "so you cannot decide approvals here. Ask an admin to link it.",
        )
        return Answer()
    request = _request(connection, action.get("value"))
    if request is None:
        _ephemeral(connection, payload, "That approval request no longer exists.")
        return Answer()
    if action_id == REJECT:
        return _open_reject_modal(connection, payload, request, user)
    _decide(connection, payload, request, user, approve=True)
    return Answer()


def _open_reject_modal(connection, payload, request, user) -> Answer:
    from approvals import access

    if not access.may_decide(user, request):  # refuse before asking for a reason
        _ephemeral(connection, payload, "You may not decide this approval request.")
        return Answer()
    view = {
        "type": "modal",
        "callback_id": REJECT_MODAL,
        "private_metadata": str(request.pk),
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why do you reject it?"},
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
            }
        ],
    }
    try:
        client_for(connection).views_open(
            trigger_id=str(payload.get("trigger_id") or ""), view=view
        )
    except SlackClientError:
        log.warning("Could not open the Slack reject dialog", exc_info=True)
    return Answer()


def _on_reject_reason(connection, payload: dict) -> Answer:
    view = payload.get("view") or {}
    user = _linked_user(connection, str((payload.get("user") or {}).get("id") or ""))
    request = _request(connection, view.get("private_metadata"))
    values = ((view.get("state") or {}).get("values") or {}).get("reason") or {}
    reason = str((values.get("text") or {}).get("value") or "")
    if user is None or request is None:
        return Answer(
            {"response_action": "errors", "errors": {"reason": "You may not decide this."}}
        )
    problem = _decide(connection, payload, request, user, approve=False, comment=reason)
    if problem:
        return Answer({"response_action": "errors", "errors": {"reason": problem}})
    return Answer()


def _decide(connection, payload, request, user, *, approve: bool, comment: str = "") -> str:
    """Decide through the one service; tell the presser (ephemerally) when it was refused."""
    try:
        decided = services.decide(request=request, actor=user, approve=approve, comment=comment)
    except PermissionDenied as exc:
        problem = str(exc) or "You may not decide this approval request."
    except services.DecisionConflict as exc:
        problem = str(exc)
    except ValidationError as exc:
        problem = " ".join(exc.messages)
    else:
        _show_decision(connection, decided)
        return ""
    if payload.get("type") == "block_actions":
        _ephemeral(connection, payload, problem)
    return problem
