"""The perimeter sweep: hostile input sent to EVERY route of the URL conf, console, admin and
API, signed in as a staff superuser with a staff API token.

The routes are read from the URL conf itself, so a new route is swept the day it is added.
Text that carries a NUL byte, a lone surrogate or a control character must get a 400 wherever
it is (path, query, form field, JSON string); every other hostile value (huge numbers, very
long strings, SQL-looking text, path traversal, Infinity in JSON) must get anything but a 5xx.

Every console and API route, and every admin route with a view of its own, gets every hostile
value in every place (each path parameter by GET and POST, the query, the form, JSON bodies,
PUT/PATCH/DELETE). The admin's ~60 ModelAdmins share five generic views: each still gets every
text value in its changelist's and add form's query and form, and every path value in its id;
the cells those generic views cannot tell apart (JSON bodies, other methods, the query and form
of an object view answering an id of nothing) are spread over the ModelAdmins, so each generic
view still gets every one of them (``sweep_plan`` says why, a test below holds it to that).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

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


# --------------------------------------------------------------------------- cells
# One cell is one hostile request: where the value goes (a path parameter, the query, the form,
# a JSON body, a method no route is written for), which value, and whether it is unsafe text.


@dataclass(frozen=True)
class Cell:
    where: str  # "path", "query", "form", "json", "method"
    label: str
    value: str
    unsafe: bool
    method: str = "post"
    param: str = ""


def path_cells(route: Route) -> list[Cell]:
    return [
        Cell("path", label, value, unsafe, method, param)
        for param, _conv in route.params
        for label, value, unsafe in PATH_VALUES
        for method in ("get", "post")
    ]


TEXT_CELLS = [
    Cell(where, label, value, unsafe, "get" if where == "query" else "post")
    for label, value, unsafe in TEXT_VALUES
    for where in ("query", "form")
]
BODY_CELLS = [Cell("json", label, body, unsafe) for label, body, unsafe in JSON_BODIES] + [
    Cell("method", label, body, unsafe, method)
    for method in ("put", "patch", "delete")
    for label, body, unsafe in (JSON_BODIES[0], JSON_BODIES[4])
]


def full_sweep(route: Route) -> list[Cell]:
    """Every hostile value in every place a request can carry it."""
    return path_cells(route) + TEXT_CELLS + BODY_CELLS


# --------------------------------------------------------------------------- the admin's plan
# The admin has about 60 ModelAdmins with six routes each, all served by the same five generic
# views of django.contrib.admin.ModelAdmin (none of ours overrides one) and a redirect. What a
# view reads decides which cells are worth sending to each ModelAdmin and which are the same
# request again:
# - the changelist and the add form read the query and the form through the model's own
#   configuration (lookups, search, filters, initial values, the model form): every text cell
#   goes to every ModelAdmin's changelist and add form;
# - change, delete and history (and the <id>/ redirect to change) read only the id before they
#   answer an id of nothing: get_object() parses it with the model's own primary key and
#   queryset. Every path value goes to every ModelAdmin's id once, spread over its four object
#   routes and alternating GET and POST;
# - no admin view reads a JSON body (request.POST is empty for one) and a PUT, PATCH or DELETE
#   takes the GET branch; the object views answer an id of nothing before reading the query or
#   the form. Those cells are the same generic code whichever ModelAdmin gets them, so each
#   view's set is spread over its ModelAdmins: every cell reaches every generic view once.
# Unsafe text is answered by the perimeter middleware before any URL is resolved, so spreading
# it does not skip a route that could answer it differently. Every other admin route (index,
# login, logout, guardian's permission pages, the user's password form, a ModelAdmin whose view
# is its own, ...) gets the full sweep, as do the console and the API.

_OWN_TEXT = {"ModelAdmin.changelist_view", "ModelAdmin.add_view"}
_OBJECT_VIEWS = {
    "ModelAdmin.change_view",
    "ModelAdmin.delete_view",
    "ModelAdmin.history_view",
    "View.as_view.<locals>.view",  # the <id>/ redirect to change
}


def generic_admin_view(route: Route) -> tuple[str, object] | None:
    """(the generic ModelAdmin view's name, its ModelAdmin) when the route is served by one."""
    if not route.template.startswith("/admin/"):
        return None
    func = resolve(fill(route)).func
    model_admin = getattr(func, "model_admin", None)
    view = getattr(func, "__wrapped__", None)
    if model_admin is None or view is None:
        return None
    name = view.__qualname__
    return (name, model_admin) if name in _OWN_TEXT | _OBJECT_VIEWS else None


def _spread(cells: list[Cell], routes: list[Route], plan: dict) -> None:
    """Each cell to one of the routes, evenly spaced, so that together they get the set."""
    for i, cell in enumerate(cells):
        at = i * len(routes) // len(cells) if len(cells) <= len(routes) else i % len(routes)
        plan[routes[at]].append(cell)


def sweep_plan(routes: list[Route]) -> dict[Route, list[Cell]]:
    plan: dict[Route, list[Cell]] = {}
    by_view: dict[str, list[Route]] = defaultdict(list)
    object_routes: dict[int, list[Route]] = defaultdict(list)
    for route in routes:
        generic = generic_admin_view(route)
        if generic is None:
            plan[route] = full_sweep(route)
            continue
        view, model_admin = generic
        by_view[view].append(route)
        if view in _OWN_TEXT:
            plan[route] = list(TEXT_CELLS)
        else:
            plan[route] = []
            object_routes[id(model_admin)].append(route)
    for siblings in object_routes.values():
        # every path value in the ModelAdmin's id once, over its object routes, GET and POST
        assert all(r.params == (("object_id", "path"),) for r in siblings), siblings
        for i, (label, value, unsafe) in enumerate(PATH_VALUES):
            method = ("get", "post")[(i // len(siblings)) % 2]
            cell = Cell("path", label, value, unsafe, method, "object_id")
            plan[siblings[i % len(siblings)]].append(cell)
    for view, sharing in by_view.items():
        shared = BODY_CELLS if view in _OWN_TEXT else TEXT_CELLS + BODY_CELLS
        _spread(shared, sharing, plan)
    return plan


# --------------------------------------------------------------------------- sending


def _check(failures: list, label: str, response, unsafe: bool) -> None:
    status = response.status_code
    if status == 503 and label.split()[1].startswith("/healthz"):
        status = 200  # the health check's own answer: no worker runs beside this test
    if status >= 500 or (unsafe and status != 400):
        failures.append(f"{label} -> {status}")


def _send(client, route: Route, real: dict, cell: Cell):
    """The cell's request to the route (hostile path values on an id of nothing, the rest on
    a real object where one fits); returns (what to call it in a failure, the response)."""
    if cell.where == "path":
        url = fill(route, real, **{cell.param: cell.value})
        return f"{cell.method.upper()} {url[:80]} [{cell.label}]", getattr(client, cell.method)(url)
    url = fill(route, real)
    if cell.where in ("query", "form"):
        data = dict.fromkeys(FIELD_NAMES, cell.value)
        what = (
            f"GET {url}?…={cell.label}"
            if cell.where == "query"
            else f"POST {url} form …={cell.label}"
        )
        return what, getattr(client, cell.method)(url, data)
    response = getattr(client, cell.method)(url, cell.value, content_type="application/json")
    return f"{cell.method.upper()} {url} json [{cell.label}]", response


def _sweep_route(client, admin, route: Route, cells: list[Cell], real: dict, failures: list):
    relogin = "logout" in route.name
    for cell in cells:
        label, response = _send(client, route, real, cell)
        _check(failures, label, response, cell.unsafe)
        if relogin:
            client.force_login(admin)


def test_the_admin_plan_still_sends_every_cell_to_every_generic_view_and_each_model():
    plan = sweep_plan(all_routes())
    every = {(c.where, c.label, c.method) for c in TEXT_CELLS + BODY_CELLS}
    by_view: dict[str, set] = defaultdict(set)
    ids_by_admin: dict[int, set] = defaultdict(set)
    for route, cells in plan.items():
        assert cells, f"{route.template} is not swept"
        generic = generic_admin_view(route)
        if generic is None:
            assert cells == full_sweep(route)
            continue
        view, model_admin = generic
        by_view[view] |= {(c.where, c.label, c.method) for c in cells if c.where != "path"}
        ids_by_admin[id(model_admin)] |= {c.label for c in cells if c.where == "path"}
        if view in _OWN_TEXT:
            assert set(TEXT_CELLS) <= set(cells), route.template
    assert set(by_view) == _OWN_TEXT | _OBJECT_VIEWS
    assert all(sent == every for sent in by_view.values()), by_view
    assert all(ids == {label for label, _, _ in PATH_VALUES} for ids in ids_by_admin.values())
    assert len(ids_by_admin) > 50


# Thousands of requests: each area's routes are dealt into shards, so that the shards of the
# long ones (the admin's, the console's) can run in parallel under `pytest -n`.
SHARDS = {"api": 1, "console": 2, "admin": 3}


@pytest.mark.parametrize(
    ("area", "shard"), [(area, i) for area, n in SHARDS.items() for i in range(n)]
)
def test_no_route_answers_5xx_and_unsafe_text_is_400_everywhere(
    staff_client, area, shard, personas, make_ticket
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
    # The plan is made over the whole area (it spreads shared cells over sibling routes), then
    # its routes are dealt out, each to one shard.
    for i, (route, cells) in enumerate(sweep_plan(routes).items()):
        if i % SHARDS[area] == shard:
            _sweep_route(client, admin, route, cells, real, failures)
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:60])
