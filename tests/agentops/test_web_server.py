"""`make run`'s web server: gunicorn with whitenoise, DEBUG off by default, styled error pages."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from django.test import Client

from agentops import devstack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own server
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


@pytest.fixture
def web_server():
    """Start `make run`'s web command (gunicorn) on a free port; yields a URL maker."""
    servers = []

    def start(**env_extra) -> str:
        port = str(_free_port())
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env_extra}
        env["WEB_CONCURRENCY"] = "1"
        proc = subprocess.Popen(
            devstack.web_command(port),
            cwd=devstack.ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        servers.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
                return base
            except OSError:
                time.sleep(0.3)
        raise AssertionError("gunicorn did not start")

    yield start
    for proc in servers:
        proc.terminate()
        proc.wait(timeout=20)


def test_make_run_serves_with_gunicorn_and_debug_off(web_server):
    base = web_server(DEBUG="0")

    status, headers, html = _get(base + "/no-such-page")

    assert status == 404
    assert "Not found" in html and "console.css" in html  # the styled page
    assert "URLconf" not in html and "Technical" not in html  # never Django's debug page
    server = headers.get("Server", "")
    assert "python" not in server.lower() and "wsgiserver" not in server.lower(), server
    css_status, css_headers, css = _get(base + "/static/css/console.css")
    assert css_status == 200 and "login-card" in css  # whitenoise, from the web process
    assert "max-age" in css_headers.get("Cache-Control", "")


def test_debug_1_is_the_development_switch(web_server):
    base = web_server(DEBUG="1")

    status, _, html = _get(base + "/no-such-page")

    assert status == 404
    assert "URLconf" in html  # Django's technical 404: only when asked for


def test_the_launcher_turns_debug_off_unless_asked(monkeypatch):
    monkeypatch.delenv("DEBUG", raising=False)
    assert "--reload" not in devstack.web_command("8000")
    monkeypatch.setenv("DEBUG", "1")
    assert "--reload" in devstack.web_command("8000")
    assert devstack.web_command("8000")[2] == "gunicorn"


def test_a_failure_shows_the_styled_500_page_without_a_traceback(settings, personas):
    settings.ROOT_URLCONF = "tests.agentops.boom_urls"
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(personas.agent)

    response = client.get("/boom")

    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html and "console.css" in html
    assert "secret traceback" not in html and "RuntimeError" not in html
