"""Chat views: the page (history on the side), a message (the reply at once offline, or a
server-sent-event stream from Claude), a ticket from the conversation, and that ticket's
progress, polled until its run ends (286). Every read starts from ``chat.selectors``: another
user's conversation, or another tenant's, is 404."""

from __future__ import annotations

import time

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST

from agentops.access import require_capability, tenant_member
from chat import progress, selectors, services
from chat.models import Message

PAGE = "chat/chat.html"
STREAM_WAIT_SECONDS = 60  # a second connection waits this long for the first one's answer


def _page_context(request, conversation=None, *, error: str = "") -> dict:
    membership = request.membership
    context = {
        "conversations": selectors.recent_conversations(membership),
        "conversation": conversation,
        "chat_messages": selectors.messages_of(conversation) if conversation else [],
        "can_create": membership.can("ticket.create"),
        "error": error,
    }
    if conversation is not None and conversation.ticket_id:
        try:
            context["progress"] = progress.progress_for(membership, conversation)
        except (Http404, PermissionDenied):  # the ticket is out of their sight now: the chat stays
            context["progress"] = None
    return context


@tenant_member
@require_GET
def chat_home(request):
    return render(request, PAGE, _page_context(request))


@tenant_member
@require_POST
def conversation_new(request):
    try:
        conversation, _, _ = services.conversation_start(
            membership=request.membership, text=request.POST.get("text")
        )
    except ValidationError as exc:
        return render(request, PAGE, _page_context(request, error=_words(exc)), status=400)
    return redirect("chat:conversation", conversation.pk)


@tenant_member
@require_GET
def conversation_detail(request, pk: int):
    conversation = selectors.access_conversation(request.membership, pk)
    return render(request, PAGE, _page_context(request, conversation))


@tenant_member
@require_POST
def message_send(request, pk: int):
    """The person's message and the reply, appended to the thread (HTMX) or the page again."""
    conversation = selectors.access_conversation(request.membership, pk)
    try:
        asked, reply = services.message_post(
            membership=request.membership, conversation=conversation, text=request.POST.get("text")
        )
    except ValidationError as exc:
        if request.htmx:
            response = render(request, f"{PAGE}#error", {"error": _words(exc)}, status=400)
            response["HX-Retarget"] = "#chat-error"
            response["HX-Reswap"] = "outerHTML"
            return response
        context = _page_context(request, conversation, error=_words(exc))
        return render(request, PAGE, context, status=400)
    if request.htmx:
        return render(
            request, f"{PAGE}#turn", {"conversation": conversation, "turn": [asked, reply]}
        )
    return redirect("chat:conversation", conversation.pk)


def _sse(event: str, data: str) -> str:
    lines = data.replace("\r", "").split("\n")
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


@tenant_member
@require_GET
def message_stream(request, pk: int, mid: int):
    """Server-sent events: ``delta`` (escaped text, appended) while Claude writes, then ``done``
    with the finished message (citations included), which replaces the streaming one and
    closes the stream. A second connection for the same message waits for the first."""
    conversation = selectors.access_conversation(request.membership, pk)
    message = selectors.access_message(conversation, mid)
    if message.role != Message.Role.ASSISTANT:
        raise Http404("No such reply")
    message.conversation = conversation
    claimed = services.claim(message)

    def events():
        yield ": stream open\n\n"  # headers and a first byte now: the browser shows progress
        if claimed:
            for delta in services.stream_reply(message=message):
                yield _sse("delta", str(escape(delta)))
        final = _wait_done(message)
        html = render_to_string(f"{PAGE}#message", {"m": final, "conversation": conversation})
        yield _sse("done", html)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream
    return response


def _wait_done(message: Message) -> Message:
    deadline = time.monotonic() + STREAM_WAIT_SECONDS
    while True:
        current = Message.objects.for_tenant(message.tenant).get(pk=message.pk)
        if current.state == Message.State.DONE or time.monotonic() > deadline:
            return current
        time.sleep(0.25)


@tenant_member
@require_POST
def ticket_open(request, pk: int):
    membership = request.membership
    conversation = selectors.access_conversation(membership, pk)
    require_capability(membership, "ticket.create")
    try:
        services.open_ticket(membership=membership, conversation=conversation)
    except ValidationError as exc:
        conversation.refresh_from_db()
        context = _page_context(request, conversation, error=_words(exc))
        template = f"{PAGE}#conversation" if request.htmx else PAGE
        return render(request, template, context, status=400)
    conversation.refresh_from_db()
    if request.htmx:
        return render(request, f"{PAGE}#conversation", _page_context(request, conversation))
    return redirect("chat:conversation", conversation.pk)


@tenant_member
@require_GET
def ticket_progress(request, pk: int):
    """The opened ticket's progress; 286 once its run has ended (the polling stops)."""
    conversation = selectors.access_conversation(request.membership, pk)
    if not conversation.ticket_id:
        raise Http404("No ticket for this conversation")
    state = progress.progress_for(request.membership, conversation)
    response = render(
        request, f"{PAGE}#progress", {"conversation": conversation, "progress": state}
    )
    if not state["active"]:
        response.status_code = 286
    return response


def _words(exc: ValidationError) -> str:
    return " ".join(exc.messages)
