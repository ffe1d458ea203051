"""Writing chats: a person's message, the assistant's reply (at once offline, streamed on
Claude), and a ticket opened from the conversation. Keyword-only, validated, audited where
it matters (a ticket opened)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agentops import quotas
from chat import assistant
from chat.models import Conversation, Message

log = logging.getLogger(__name__)

MAX_TEXT = 2000
CHAT_USAGE_NAME = "chat"  # what the usage page calls the chat's tokens (its blueprint column)
TITLE_CHARS = 120


def clean_text(text) -> str:
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise ValidationError({"text": "Write a message first."})
    if len(text) > MAX_TEXT:
        raise ValidationError({"text": f"Keep it under {MAX_TEXT} characters."})
    return text


def llm_config(tenant):
    from agents.engine import agent_config, llm_config

    return llm_config(agent_config(tenant))


def _history(conversation: Conversation) -> list[Message]:
    return list(
        Message.objects.for_tenant(conversation.tenant)
        .filter(conversation=conversation, state=Message.State.DONE)
        .order_by("-created_at", "-id")[: assistant.HISTORY_TURNS]
    )[::-1]


@transaction.atomic
def conversation_start(*, membership, text: str) -> tuple[Conversation, Message, Message]:
    text = clean_text(text)
    conversation = Conversation.objects.create(
        tenant=membership.tenant, user=membership.user, title=" ".join(text.split())[:TITLE_CHARS]
    )
    return (
        conversation,
        *message_post(membership=membership, conversation=conversation, text=text),
    )


@transaction.atomic
def message_post(*, membership, conversation: Conversation, text: str) -> tuple[Message, Message]:
    """The person's message and the assistant's reply to it. Offline the reply is written now;
    on Claude it is ``pending`` until the browser's stream (``stream_reply``) writes it."""
    text = clean_text(text)
    earlier = [m.body for m in _history(conversation) if m.role == Message.Role.USER]
    tenant = conversation.tenant
    asked = Message.objects.create(
        tenant=tenant, conversation=conversation, role=Message.Role.USER, body=text
    )
    planned = assistant.plan(membership, text, earlier)
    config = llm_config(tenant)
    reply = Message(
        tenant=tenant,
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        kind=planned.kind,
        citations=planned.citations,
        backend=config.backend,
    )
    if config.backend == "offline":
        reply.body = assistant.offline_reply(text, planned)
        reply.citations = assistant.cited(reply.body, planned.citations)
    else:
        reply.state = Message.State.PENDING
    reply.save(force_insert=True)
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["updated_at"])
    return asked, reply


def claim(message: Message) -> bool:
    """pending → streaming, one row or none: a reconnecting browser never asks twice."""
    return bool(
        Message.objects.for_tenant(message.tenant)
        .filter(pk=message.pk, state=Message.State.PENDING)
        .update(state=Message.State.STREAMING)
    )


def stream_reply(*, message: Message) -> Iterator[str]:
    """Stream the pending reply from Claude, yielding text deltas; store it when done. Falls
    back to the offline answer (said so) if the model cannot be reached. Claim first. A
    browser that leaves mid-stream still leaves a finished message (what arrived, or the
    offline answer), never one stuck "streaming"."""
    from agents.llm.base import LLMError

    history = _history(message.conversation)
    question = history[-1].body if history and history[-1].role == Message.Role.USER else ""
    earlier = [(m.role, m.body) for m in history[:-1]]
    planned = assistant.Plan(message.kind, list(message.citations))
    parts: list[str] = []
    backend = message.backend
    usage: dict[str, int] = {}
    config = None
    try:
        config = llm_config(message.tenant)
        quotas.check_tokens(message.tenant)  # the tenant's monthly tokens, as agent runs
        for delta in assistant.stream_claude(
            config, assistant.claude_messages(question, planned, earlier), usage=usage
        ):
            parts.append(delta)
            yield delta
    except (LLMError, quotas.QuotaExceeded) as exc:
        log.warning("Chat reply fell back to the offline answer: %s", exc)
        fallback = assistant.offline_reply(question, planned)
        yield ("\n\n" if parts else "") + fallback
        parts, backend = [fallback], "offline"
    finally:
        _meter(message, usage, model=getattr(config, "model", "") or "")
        body = "".join(parts).strip() or assistant.offline_reply(question, planned)
        # A filtered update: the row may be gone (the conversation deleted meanwhile).
        Message.objects.for_tenant(message.tenant).filter(pk=message.pk).update(
            body=body,
            citations=assistant.cited(body, planned.citations),
            state=Message.State.DONE,
            backend=backend,
        )


def _meter(message: Message, usage: dict[str, int], *, model: str) -> None:
    """The reply's Claude tokens on the tenant's usage, like an agent run's steps (the usage
    page's tokens, its 'chat' line, the monthly token quota); once per message."""
    tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
    quotas.meter(
        tenant=message.tenant,
        metric=quotas.TOKENS,
        quantity=tokens,
        key=f"chat:{message.pk}",
        blueprint=CHAT_USAGE_NAME,
        model=model,
    )


def transcript(conversation: Conversation) -> str:
    lines = ["Conversation with the chat assistant:", ""]
    for m in _history_all(conversation):
        who = "Requester" if m.role == Message.Role.USER else "Assistant"
        lines.append(f"{who}: {m.body}")
        for c in m.citations if m.role == Message.Role.ASSISTANT else []:
            lines.append(f"  [{c['n']}] {c['title']} ({c['url']})")
    return "\n".join(lines)


def _history_all(conversation: Conversation) -> list[Message]:
    return list(
        Message.objects.for_tenant(conversation.tenant)
        .filter(conversation=conversation, state=Message.State.DONE)
        .order_by("created_at", "id")
    )


@transaction.atomic
def open_ticket(*, membership, conversation: Conversation):
    """A ticket (source chat) for the person, with the conversation attached, handed to the
    service-desk agent. Once per conversation (row lock: a double click opens one)."""
    from incidents import services as ticket_services
    from incidents.models import Source

    locked = (
        Conversation.objects.for_tenant(conversation.tenant)
        .select_for_update()
        .get(pk=conversation.pk)
    )
    if locked.ticket_id is not None:
        raise ValidationError({"__all__": "A ticket is open for this conversation already."})
    asked = [m.body for m in _history_all(locked) if m.role == Message.Role.USER]
    if not asked:
        raise ValidationError({"__all__": "Tell the assistant what you need first."})
    title = max(asked, key=lambda body: len(assistant.content_words(body)))
    ticket = ticket_services.ticket_create(
        tenant=locked.tenant,
        actor=membership.user,
        requester=membership.user,
        title=" ".join(title.split())[:TITLE_CHARS],
        description=transcript(locked),
        source=Source.CHAT,
        start_agent=True,
        audit_metadata={"conversation": locked.pk},
    )
    locked.ticket = ticket
    locked.updated_at = timezone.now()
    locked.save(update_fields=["ticket", "updated_at"])
    Message.objects.create(
        tenant=locked.tenant,
        conversation=locked,
        role=Message.Role.ASSISTANT,
        kind=Message.Kind.TICKET,
        body=f"I opened {ticket.number} with this conversation attached. Our service-desk agent "
        "is on it now; you can follow it here.",
    )
    return ticket
