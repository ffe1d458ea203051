"""The chat assistant in a real Chromium, desktop and 390 px: a requester asks, gets an answer
with its source, is asked to clarify a vague request, opens a ticket from the chat and sees its
progress; on Claude the answer streams in over server-sent events (htmx sse extension)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from incidents.models import Source, Ticket
from tests.agents.conftest import fake_anthropic, redis_names  # noqa: F401  (fixtures)
from tests.chat.conftest import claude, kb  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def open_assistant(page, width):
    if width < 1200:  # the navigation folds behind the Menu button on narrow screens
        page.get_by_role("button", name="Menu").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Assistant").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ask the assistant")


@pytest.mark.parametrize("width", [1360, 390])
def test_requester_chats_then_opens_a_ticket(
    page,
    personas,
    kb,  # noqa: F811
    login,
    browser_log,
    screenshot,
    width,
):
    page.set_viewport_size({"width": width, "height": 900})
    login(personas.requester, landing=True)
    open_assistant(page, width)
    page.get_by_label("Your message").fill("Hello, help!")
    page.get_by_role("button", name="Ask").click()
    page.wait_for_url(re.compile(r"/chat/\d+/$"))
    thread = page.locator("#thread")
    expect(thread.locator(".chat-kind-clarify")).to_contain_text("Could you tell me a little more")

    box = page.get_by_label("Your message")
    box.fill("My VPN keeps disconnecting")
    box.press("Enter")
    answer = thread.locator(".chat-kind-answer")
    expect(answer).to_contain_text("version 3")
    expect(answer.get_by_role("link", name="VPN troubleshooting")).to_be_visible()
    expect(box).to_have_value("")  # emptied for the next question

    page.get_by_role("button", name="Open a ticket with this conversation").click()
    progress = page.locator("#ticket-progress")
    expect(progress).to_contain_text(re.compile(r"REQ\d+"))
    ticket = Ticket.objects.for_tenant(personas.tenant).get()
    assert ticket.source == Source.CHAT
    expect(thread.locator(".chat-kind-ticket")).to_contain_text(ticket.number)
    expect(page.get_by_role("button", name="Open a ticket with this conversation")).to_have_count(0)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")

    # The history keeps the chat, for this user.
    page.goto("/chat/")
    expect(page.locator(".chat-history-list")).to_contain_text("Hello, help!")
    screenshot(f"chat-{width}.png")
    assert browser_log.csp_violations() == []
    assert browser_log.errors() == []


@pytest.mark.parametrize("width", [1360, 390])
def test_the_answer_streams_in_from_claude(
    page,
    personas,
    kb,  # noqa: F811
    claude,  # noqa: F811
    login,
    browser_log,
    width,
):
    claude.reply_stream(
        ["Your VPN drops ", "because of an old profile: ", "update it to version 3 [1]."],
        event_delay=0.5,
    )
    page.set_viewport_size({"width": width, "height": 900})
    login(personas.requester, landing=True)
    open_assistant(page, width)
    page.get_by_label("Your message").fill("My VPN keeps disconnecting")
    page.get_by_role("button", name="Ask").click()
    streaming = page.locator(".chat-streaming .chat-body")
    # A part, before the rest arrived (the first call also loads the SDK: allow for it).
    expect(streaming).to_contain_text("Your VPN drops", timeout=20_000)
    assert "version 3" not in streaming.inner_text()
    answer = page.locator("#thread .chat-kind-answer")
    expect(answer).to_contain_text("update it to version 3 [1].", timeout=20_000)
    expect(answer.get_by_role("link", name="VPN troubleshooting")).to_be_visible()
    expect(page.locator(".chat-streaming")).to_have_count(0)
    assert claude.bodies[0]["stream"] is True and len(claude.requests) == 1
    assert browser_log.csp_violations() == []
    assert browser_log.errors() == []
