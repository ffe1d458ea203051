"""The perimeter sweep: hostile input sent to EVERY route of the URL conf, console, admin and
API, signed in as a staff superuser with a staff API token.

The routes are read from the URL conf itself, so a new route is swept the day it is added.
Text that carries a NUL byte, a lone surrogate or a control character must get a 400 wherever
it is (path, query, form field, JSON string); every other hostile value (huge numbers, very
long strings, SQL-looking text, path traversal, Infinity in JSON) must get anything but a 5xx.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from agentops.services import api_token_create

# (label, value already percent-encoded for a path segment, unsafe?)
PATH_VALUES = [
    ("nul", "%00", True),
    ("nul-inside", "INC%000001", True),
    ("escape", "%1B%5B31m", True),
    ("backspace", "x%08y", True),
    ("invalid-utf8-surrogate", "%ED%A0%80", False),  # Django keeps it percent-encoded
    ("big-int", "99999999999999999999", False),
    ("negative", "-1", False),
    ("long", "A" * 3000, False),
    ("sql", "'%20OR%201=1--", False),
    ("traversal", "..%2F..%2Fetc%2Fpasswd", False),
    ("emoji", "%F0%9F%92%A5", False),
]
# Query parameter and form field names the console's views and the API read.
FIELD_NAMES = [
    "q", "page", "status", "priority", "kind", "category", "assignee", "sort", "cursor",
    "after", "next", "queue", "tenant", "actor", "action", "target", "since", "until",
    "date_from", "date_to", "format", "limit", "offset", "filter", "title", "description",
    "body", "comment", "score", "text", "decision", "reason", "arguments", "args_json",
    "user", "role", "until", "number", "numbers", "ids", "to", "name", "slug", "content",
    "username", "password",
]  # fmt: skip
TEXT_VALUES = [
    ("nul", "ab\x00cd", True),
    ("escape", "\x1b[2J", True),
    ("bell", "\x07", True),
    ("del", "x\x7fy", True),
    ("big-int", "99999999999999999999", False),
    ("negative", "-5", False),
    ("float-overflow", "1e309", False),
    ("long", "x" * 20000, False),
    ("sql", "' OR 1=1; DROP TABLE incidents_ticket; --", False),
    ("html", "<script>alert(1)</script>", False),
    ("empty", "", False),
]
JSON_BODIES = [
    ("nul", json.dumps(dict.fromkeys(FIELD_NAMES, "a\u0000b")), True),
    ("surrogate", json.dumps(dict.fromkeys(FIELD_NAMES, "\ud800")), True),
    ("control-in-key", json.dumps({"ti\u0001tle": "x"}), True),
    ("nested-nul", json.dumps({"affected_services": ["vpn", "\u0000"]}), True),
    ("infinity", '{"score": Infinity, "limit": NaN, "title": "x"}', False),
    ("huge-int", json.dumps(dict.fromkeys(FIELD_NAMES, 10**30)), False),
    ("wrong-types", json.dumps({key: {"$gt": ""} for key in FIELD_NAMES}), False),
    ("array", json.dumps([1, 2, 3]), False),
    ("deep", "[" * 5000 + "]" * 5000, False),
]


@dataclass(frozen=True)
class Route:
    template: str  # "/tickets/{number}/comment"
    params: tuple[tuple[str, str], ...]  # (name, converter) in order
    name: str


_ROUTE_PARAM = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^()]*)\)")


def _template(pattern) -> tuple[str, list[tuple[str, str]]]:
    """A route's text as a template with {name} holes, and its parameters."""
    text = str(pattern)
    params: list[tuple[str, str]] = []
    if hasattr(pattern, "_route"):  # path(): <conv:name>

        def hole(m: re.Match) -> str:
            params.append((m.group("name"), m.group("conv") or "str"))
            return "{" + m.group("name") + "}"

        return _ROUTE_PARAM.sub(hole, text), params

    def group(m: re.Match) -> str:
        body = m.group("body")
        literal = body.split("|")[0] if re.fullmatch(r"[\w|.-]+", body) else ""
        params.append((m.group("name"), f"re:{literal}"))
        return "{" + m.group("name") + "}"

    text = _REGEX_GROUP.sub(group, text).lstrip("^").rstrip("$").replace("\\.", ".")
    return text, params


def all_routes() -> list[Route]:
    routes: list[Route] = []

    def walk(patterns, prefix: str, prefix_params: list):
        for entry in patterns:
            text, params = _template(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + text, [*prefix_params, *params])
            elif isinstance(entry, URLPattern):
                routes.append(
                    Route("/" + prefix + text, tuple(prefix_params + params), entry.name or "")
                )

    walk(get_resolver().url_patterns, "", [])
    return list({r.template: r for r in routes}.values())  # GET and POST share a path


def filler(converter: str) -> str:
    """A well-formed value for a parameter that names nothing that exists."""
    if converter.startswith("re:"):
        return converter[3:] or "x"
    return {"int": "999999", "slug": "no-such-slug", "uuid": "0" * 32}.get(converter, "NOPE404")


def fill(route: Route, real: dict | None = None, **values: str) -> str:
    """The route's URL: hostile ``values`` where given, else a real object's id (``real``),
    else a well-formed id of nothing."""
    real = real or {}
    return route.template.format(
        **{name: values.get(name, real.get(name, filler(conv))) for name, conv in route.params}
    )


def test_the_sweep_reads_every_kind_of_route_from_the_url_conf():
    templates = {r.template for r in all_routes()}
    assert "/api/v1/tickets/{number}/csat" in templates
    assert "/tickets/{number}/comment" in templates
    assert "/admin/auth/user/{object_id}/change/" in templates
    assert "/audit/export.{fmt}" in templates
    assert len(templates) > 200


@pytest.fixture
def staff_client(personas):
    admin = personas.admin
    admin.is_staff = admin.is_superuser = True
    admin.save(update_fields=["is_staff", "is_superuser"])
    _, raw = api_token_create(tenant=personas.tenant, user=admin)
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.force_login(admin)
    return client, admin


def _check(failures: list, label: str, response, unsafe: bool) -> None:
    status = response.status_code
    if status == 503 and label.split()[1].startswith("/healthz"):
        status = 200  # the health check's own answer: no worker runs beside this test
    if status >= 500 or (unsafe and status != 400):
        failures.append(f"{label} -> {status}")


def _sweep_route(client, admin, route: Route, real: dict, failures: list) -> None:
    relogin = "logout" in route.name
    for param, _conv in route.params:  # hostile values in each path parameter
        for label, value, unsafe in PATH_VALUES:
            url = fill(route, real, **{param: value})
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                _check(failures, f"{method.upper()} {url[:80]} [{label}]", response, unsafe)
                if relogin:
                    client.force_login(admin)
    url = fill(route, real)  # hostile query, form and JSON on a real object where one fits
    for label, value, unsafe in TEXT_VALUES:
        query = dict.fromkeys(FIELD_NAMES, value)
        _check(failures, f"GET {url}?…={label}", client.get(url, query), unsafe)
        _check(failures, f"POST {url} form …={label}", client.post(url, query), unsafe)
        if relogin:
            client.force_login(admin)
    for label, body, unsafe in JSON_BODIES:
        response = client.post(url, body, content_type="application/json")
        _check(failures, f"POST {url} json [{label}]", response, unsafe)
        if relogin:
            client.force_login(admin)
    for method in ("put", "patch", "delete"):  # methods no route is written for
        for label, body, unsafe in (JSON_BODIES[0], JSON_BODIES[4]):
            response = getattr(client, method)(url, body, content_type="application/json")
            _check(failures, f"{method.upper()} {url} json [{label}]", response, unsafe)


@pytest.mark.parametrize("area", ["api", "console", "admin"])
def test_no_route_answers_5xx_and_unsafe_text_is_400_everywhere(
    staff_client, area, personas, make_ticket
):
    client, admin = staff_client
    ticket = make_ticket(personas.tenant, personas.requester, title="VPN drops every hour")
    real = {"number": ticket.number}
    routes = [
        r
        for r in all_routes()
        if {"api": r.template.startswith("/api/"), "admin": r.template.startswith("/admin/")}.get(
            area,
            not r.template.startswith(("/api/", "/admin/")),
        )
    ]
    assert routes
    failures: list[str] = []
    for route in routes:
        _sweep_route(client, admin, route, real, failures)
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:60])
