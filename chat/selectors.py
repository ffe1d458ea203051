"""Reading chats: one gate. A conversation is its user's alone, in its tenant: anyone else
(another user, another tenant, staff included) gets 404, never a hint that it exists."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from chat.models import Conversation, Message

HISTORY = 30


def conversations_for(membership) -> QuerySet[Conversation]:
    """The one queryset a view starts from: this member's conversations in this tenant."""
    if membership is None:
        return Conversation.objects.none()
    return Conversation.objects.for_tenant(membership.tenant).filter(user=membership.user)


def access_conversation(membership, pk) -> Conversation:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404("No such conversation") from None
    conversation = conversations_for(membership).filter(pk=pk).first()
    if conversation is None:
        raise Http404("No such conversation")
    return conversation


def recent_conversations(membership, limit: int = HISTORY) -> list[Conversation]:
    return list(conversations_for(membership).order_by("-updated_at", "-id")[:limit])


def messages_of(conversation: Conversation) -> list[Message]:
    return list(
        Message.objects.for_tenant(conversation.tenant)
        .filter(conversation=conversation)
        .order_by("created_at", "id")
    )


def access_message(conversation: Conversation, pk) -> Message:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404("No such message") from None
    message = (
        Message.objects.for_tenant(conversation.tenant)
        .filter(conversation=conversation, pk=pk)
        .first()
    )
    if message is None:
        raise Http404("No such message")
    return message
