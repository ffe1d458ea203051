"""The perimeter's pages in a real Chromium: the sign-in lockout and the error pages, at a
phone's width, under the strict CSP."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def no_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def test_too_many_wrong_passwords_show_the_lockout_page_then_the_right_one_is_refused(
    page, personas, browser_log
):
    page.set_viewport_size({"width": 390, "height": 844})
    for attempt in range(5):
        page.goto("/login/")
        page.get_by_label("Username").fill(personas.agent.username)
        page.get_by_label("Password").fill(f"wrong-{attempt}")
        page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_text("Too many failed sign-in attempts.")).to_be_visible()
    page.goto("/login/")
    page.get_by_label("Username").fill(personas.agent.username)
    page.get_by_label("Password").fill(f"pw-{personas.agent.username}")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("#locked-out")).to_contain_text("ask an administrator to unlock it")
    assert "/tickets/" not in page.url
    assert no_horizontal_scroll(page)
    assert browser_log.csp_violations() == []


def test_unsafe_text_and_unknown_pages_get_styled_pages(page, personas, login, browser_log):
    login(personas.agent)
    page.set_viewport_size({"width": 390, "height": 844})

    response = page.goto("/tickets/?q=vpn%00")
    assert response.status == 400
    expect(page.get_by_role("heading", name="Bad request")).to_be_visible()
    expect(page.get_by_text("contains a NUL byte")).to_be_visible()
    assert no_horizontal_scroll(page)

    response = page.goto("/tickets/INC9999999/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="There is nothing here")).to_be_visible()
    assert no_horizontal_scroll(page)
    assert browser_log.csp_violations() == []
