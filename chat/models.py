"""Conversations with the assistant and their messages. Both are tenant-owned and belong to one
user: only that user reads them (``chat.selectors.access_conversation``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from agentops.tenancy import TenantOwned


class Conversation(TenantOwned):
    """One chat of one user with the assistant, in one tenant. A ticket opened from it is kept
    so the chat can show that ticket's progress."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    ticket = models.ForeignKey(
        "incidents.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "user", "-updated_at"], name="chat_conv_user_idx"),
        ]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(TenantOwned):
    """One turn: the user's words, or the assistant's answer (with the passages it cites).

    An assistant message to be streamed from Claude starts ``pending``; the stream claims it
    (``pending`` → ``streaming``, one row or nothing) so a reconnecting browser never asks the
    model twice, and ends it ``done``."""

    class Role(models.TextChoices):
        USER = "user", "You"
        ASSISTANT = "assistant", "Assistant"

    class Kind(models.TextChoices):
        TEXT = "text", "Message"
        ANSWER = "answer", "Answer from the knowledge base"
        CLARIFY = "clarify", "Clarifying question"
        TICKET = "ticket", "Ticket opened"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the model"
        STREAMING = "streaming", "Being written"
        DONE = "done", "Done"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=12, choices=Role.choices)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.TEXT)
    state = models.CharField(max_length=12, choices=State.choices, default=State.DONE)
    body = models.TextField(blank=True)
    # [{"n": 1, "title": ..., "heading": ..., "url": ..., "text": ...}]: what the answer cites
    # (never a retrieval score: requesters see sources, not internals).
    citations = models.JSONField(default=list, blank=True)
    backend = models.CharField(max_length=20, blank=True)  # "offline" | "anthropic"
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["tenant", "conversation", "id"], name="chat_msg_conv_idx")]

    def __str__(self) -> str:
        return f"{self.role}: {self.body[:60]}"
