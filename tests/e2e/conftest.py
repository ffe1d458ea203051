"""Browser fixtures: a real headless Chromium (Debian's, not Playwright's download) via Playwright.

``browser`` is started once for all the browser tests (package scope, see below) and ``page``
is a fresh browser context per test (own cookies), pointed at pytest-django's ``live_server``
and recording console messages and uncaught page errors in ``browser_log``.

Why package scope and not session scope: Playwright's sync API leaves its asyncio loop
registered as the *running* loop of the main thread from ``start()`` until ``stop()``. While
that is so, Django refuses ORM access in this thread (SynchronousOnlyOperation) unless
DJANGO_ALLOW_ASYNC_UNSAFE is set. A session-scoped browser would therefore either break every
database test that runs after the first browser test, or force that safety switch on for the
rest of the suite. Package scope starts Chromium once for all of tests/e2e and stops it (and
restores the environment) before the next package's tests run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]
DEFAULT_TIMEOUT_MS = 10_000


def chromium_path() -> str:
    return os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # Lets the page fixture know whether the test body failed (for a failure screenshot).
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser():
    path = chromium_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"The browser tests need Chromium, and there is no executable at {path}. Install it "
            "(Debian: apt-get install chromium, or `make chromium`) or set CHROMIUM_PATH to a "
            "Chromium/Chrome binary. (Playwright's own browser download is not used.)",
            pytrace=False,
        )
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - only without the dev dependencies
        pytest.fail(
            "The browser tests need the playwright Python package: pip install -e '.[dev]'.",
            pytrace=False,
        )

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # see the module docstring
    playwright = sync_playwright().start()
    try:
        try:
            chromium = playwright.chromium.launch(
                executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=30_000
            )
        except PlaywrightError as exc:
            pytest.fail(
                f"Chromium at {path} did not start under Playwright: {exc}. Check that it runs "
                f"(`{path} --headless --no-sandbox --dump-dom about:blank`) or set CHROMIUM_PATH.",
                pytrace=False,
            )
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class BrowserLog:
    """What the page said: console messages and uncaught exceptions."""

    console: list = field(default_factory=list)  # (type, text, url)
    page_errors: list = field(default_factory=list)

    def errors(self, ignore: str | None = None) -> list[str]:
        """Console errors and uncaught exceptions, minus those whose text or URL match ignore."""
        found = [f"console.{t}: {text} ({url})" for t, text, url in self.console if t == "error"]
        found += [f"uncaught: {e}" for e in self.page_errors]
        return [e for e in found if not (ignore and re.search(ignore, e))]

    def csp_violations(self) -> list[str]:
        pattern = re.compile(r"Content Security Policy|Content-Security-Policy", re.I)
        return [text for _, text, _ in self.console if pattern.search(text)]

    def clear(self) -> None:
        self.console.clear()
        self.page_errors.clear()


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def page(request, browser, live_server, browser_log):
    failure_shot = ARTIFACTS / f"FAILED-{request.node.name}.png"
    failure_shot.unlink(missing_ok=True)  # from an earlier run
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1360, "height": 900}, locale="en-US"
    )
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
    tab = context.new_page()
    tab.on(
        "console",
        lambda msg: browser_log.console.append((msg.type, msg.text, msg.location.get("url", ""))),
    )
    tab.on("pageerror", lambda exc: browser_log.page_errors.append(str(exc)))
    try:
        yield tab
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            try:
                tab.screenshot(path=str(failure_shot), full_page=True)
            except Exception as exc:  # a crashed page must not hide the real failure
                print(f"(no failure screenshot: {exc})")
        context.close()


@pytest.fixture
def login(page):
    """``login(user)``: sign in through the real login form (password "pw-" + username), then
    open the ticket queue, where most journeys start. ``login(user, landing=True)`` stays on
    the role's landing page (dashboard, my work, or the requester's requests)."""

    def sign_in(user, password: str | None = None, *, landing: bool = False) -> None:
        page.goto("/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password or f"pw-{user.username}")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login/" not in url)
        if not landing and not re.search(r"/tickets/$", page.url):
            page.goto("/tickets/")

    return sign_in


@pytest.fixture
def screenshot(page):
    """``screenshot("name.png")``: a full-page screenshot in test-artifacts/ (gitignored)."""

    def take(name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def sign_in(tab, user) -> None:
    """Sign ``user`` in on a tab of its own (a second person in another browser context);
    waits until the login page is left for the role's landing page."""
    tab.goto("/login/")
    tab.get_by_label("Username").fill(user.username)
    tab.get_by_label("Password").fill(f"pw-{user.username}")
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(lambda url: "/login/" not in url)
