"""The perimeter: unsafe characters, strict JSON bodies, token expiry and flood limits, login
lockout, production settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from agentops import perimeter
from agentops.models import ApiToken, AuditEvent
from agentops.services import api_token_create
from incidents.models import Ticket

TICKETS = "/api/v1/tickets"


def all_tickets():
    return Ticket.objects.unscoped("tests count rows across tenants")


def api_client(raw: str, **extra) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", **extra)


@pytest.fixture
def agent_token(personas):
    return api_token_create(tenant=personas.tenant, user=personas.agent)


# --------------------------------------------------------------------------- unsafe characters


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "VPN\u0000down"}, "title"),
        ({"title": "ok", "description": "lone \ud83d surrogate"}, "description"),
        (
            {"title": "ok", "affected_services": ["vpn", "mail\u001b[2J"]},
            "affected_services[1]",
        ),
    ],
    ids=["nul", "surrogate", "escape-in-list"],
)
def test_unsafe_text_in_a_json_field_is_400_naming_the_field(personas, agent_token, body, field):
    response = api_client(agent_token[1]).post(
        TICKETS, json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "invalid_characters"
    assert field in answer["fields"], answer
    assert all_tickets().count() == 0


def test_tabs_and_newlines_are_ordinary_text(personas, agent_token):
    body = {"title": "VPN down", "description": "Steps:\n\t1. connect\r\n\t2. timeout"}
    response = api_client(agent_token[1]).post(
        TICKETS, json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 201, response.content
    assert all_tickets().get().description == body["description"]


def test_nul_in_a_console_form_is_a_styled_400_and_writes_nothing(client, personas):
    client.force_login(personas.requester)

    response = client.post("/tickets/new", {"title": "Printer\x00jam", "description": "x"})

    assert response.status_code == 400
    html = response.content.decode()
    assert "form field &#x27;title&#x27; contains a NUL byte" in html
    assert "console.css" in html  # the styled page, not a bare error
    assert all_tickets().count() == 0


def test_nul_in_a_query_parameter_or_path_is_400(client, personas):
    client.force_login(personas.agent)

    assert client.get("/tickets/", {"q": "vpn\x00"}).status_code == 400
    assert client.get("/tickets/INC%000001/").status_code == 400
    response = api_client(api_token_create(tenant=personas.tenant, user=personas.agent)[1]).get(
        "/api/v1/tickets/REQ%000001"
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {"path": [response.json()["message"]]}


@pytest.mark.parametrize("depth", [100, 990, 100_000])
def test_deeply_nested_json_is_a_400_not_a_crash(client, personas, agent_token, depth):
    body = "[" * depth + "]" * depth
    client.force_login(personas.agent)

    api = api_client(agent_token[1]).post(TICKETS, body, content_type="application/json")
    console = client.post("/tickets/new", body, content_type="application/json")

    assert api.status_code == 400
    assert "nested" in api.json()["message"]
    assert console.status_code == 400


# --------------------------------------------------------------------------- strict bodies


@pytest.mark.parametrize("extra", ["is_admin", "tenant", "status"])
def test_an_unknown_json_field_is_400_naming_it(personas, agent_token, extra):
    body = {"title": "VPN down", extra: "acme" if extra == "tenant" else True}
    response = api_client(agent_token[1]).post(
        TICKETS, json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400
    fields = response.json()["fields"]
    assert list(fields) == [extra]
    assert "Unknown field" in fields[extra][0]
    assert all_tickets().count() == 0


def test_every_api_body_schema_refuses_unknown_fields():
    from agentops.api import StrictIn, api

    bodies = []
    for _prefix, router in api._routers:
        for path_view in router.path_operations.values():
            for operation in path_view.operations:
                for model in operation.models:
                    if model.__ninja_param_source__ == "body":
                        bodies.extend(f.annotation for f in model.model_fields.values())
    assert bodies, "no body schemas found: the walk is broken"
    for schema in bodies:
        assert issubclass(schema, StrictIn), schema
        assert schema.model_config.get("extra") == "forbid", schema


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_415(personas, agent_token, content_type):
    body = "title=VPN+down" if "form" in content_type else '{"title": "VPN down"}'
    response = api_client(agent_token[1]).post(TICKETS, body, content_type=content_type)

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert content_type in response.json()["message"]
    assert all_tickets().count() == 0


# --------------------------------------------------------------------------- token expiry


def test_an_expired_token_is_401_like_a_revoked_one(personas):
    token, raw = api_token_create(
        tenant=personas.tenant, user=personas.agent, expires_at=timezone.now() + timedelta(hours=1)
    )
    assert api_client(raw).get(TICKETS).status_code == 200

    ApiToken.objects.for_tenant(personas.tenant).filter(pk=token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = api_client(raw).get(TICKETS)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_create_api_token_command_sets_an_expiry(personas):
    out = StringIO()
    call_command(
        "create_api_token", personas.agent.username, tenant="acme", expires_days=7, stdout=out
    )

    token = ApiToken.objects.for_tenant(personas.tenant).get()
    assert timedelta(days=6, hours=23) < token.expires_at - timezone.now() <= timedelta(days=7)
    assert api_client(out.getvalue().strip()).get(TICKETS).status_code == 200


def test_admin_shows_last_used_and_expiry(client, personas, agent_token):
    token, raw = agent_token
    api_client(raw).get(TICKETS)  # sets last_used_at
    admin = personas.admin
    admin.is_staff = admin.is_superuser = True
    admin.save(update_fields=["is_staff", "is_superuser"])
    client.force_login(admin)

    html = client.get("/admin/agentops/apitoken/").content.decode()

    assert "Last used at" in html
    assert "Expires at" in html
    token.refresh_from_db()
    assert token.last_used_at is not None
    change = client.get(f"/admin/agentops/apitoken/{token.pk}/change/").content.decode()
    assert 'name="expires_at_0"' in change  # an admin can set or clear the expiry

    response = client.post(
        f"/admin/agentops/apitoken/{token.pk}/change/",
        {"expires_at_0": "2020-01-01", "expires_at_1": "00:00:00"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    token.refresh_from_db()
    assert token.expires_at.year == 2020
    assert api_client(raw).get(TICKETS).status_code == 401  # expired now
    event = AuditEvent.objects.for_tenant(personas.tenant).get(action="api_token.expiry_set")
    assert event.actor_label == admin.username


# --------------------------------------------------------------------------- token flood


def test_a_flooding_token_gets_429_with_retry_after_and_others_do_not(personas, settings):
    settings.API_TOKEN_REQUESTS_PER_MINUTE = 5
    _, flooder = api_token_create(tenant=personas.tenant, user=personas.agent)
    _, quiet = api_token_create(tenant=personas.tenant, user=personas.agent2)
    # The count is kept per clock minute: start well inside one, or a minute that turns
    # between the fifth and sixth request starts a fresh count (a fresh-clone CI run met it).
    while 60 - time.time() % 60 < 5:
        time.sleep(0.5)

    answers = [api_client(flooder).get(TICKETS) for _ in range(8)]

    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    last = answers[-1]
    assert last.json()["error"] == "rate_limited"
    assert 1 <= int(last["Retry-After"]) <= 60
    assert api_client(quiet).get(TICKETS).status_code == 200


def test_the_flood_count_lives_in_redis_shared_by_every_process(personas, settings):
    import time

    from django.core.cache import cache

    settings.API_TOKEN_REQUESTS_PER_MINUTE = 3
    token, raw = api_token_create(tenant=personas.tenant, user=personas.agent)
    window = int(time.time() // 60)
    keys = [f"api-rate:{token.prefix}:{w}" for w in (window, window + 1)]
    # Another web process already counted three requests of this token in this minute (and,
    # should the minute turn during the test, in the next one).
    for key in keys:
        cache.set(key, 3, timeout=120)

    response = api_client(raw).get(TICKETS)

    assert response.status_code == 429
    assert max(cache.get(key) for key in keys) == 4


# --------------------------------------------------------------------------- login lockout


def _sign_in(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


def test_twenty_wrong_passwords_lock_the_account_even_for_the_right_one(personas):
    client = Client(REMOTE_ADDR="10.1.1.1")
    answers = [_sign_in(client, "alex", f"wrong-{i}").status_code for i in range(20)]

    right = _sign_in(client, "alex", "pw-alex")

    assert answers[:4] == [200] * 4  # the form again, with its error
    assert set(answers[5:]) == {429}
    assert right.status_code == 429
    assert "Too many failed sign-in attempts" in right.content.decode()
    assert int(right["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session
    # Another address is refused too: the account itself is locked.
    assert _sign_in(Client(REMOTE_ADDR="10.9.9.9"), "alex", "pw-alex").status_code == 429


def test_an_address_guessing_many_accounts_is_locked_for_every_account(personas):
    guesser = Client(REMOTE_ADDR="10.2.2.2")
    for name in ["nobody1", "nobody2", "nobody3", "nobody4", "nobody5", "nobody6"]:
        _sign_in(guesser, name, "guess")

    assert _sign_in(guesser, "riley", "pw-riley").status_code == 429
    elsewhere = _sign_in(Client(REMOTE_ADDR="10.3.3.3"), "riley", "pw-riley")
    assert elsewhere.status_code == 302  # the account is fine from another address


def test_a_lockout_is_audited_in_the_accounts_tenant(personas):
    client = Client(REMOTE_ADDR="10.4.4.4")
    for i in range(6):
        _sign_in(client, "alex", f"wrong-{i}")

    events = AuditEvent.objects.for_tenant(personas.tenant).filter(action="auth.locked_out")
    assert events.count() >= 1
    event = events.first()
    assert event.target_repr == "alex"
    assert event.metadata["ip_address"] == "10.4.4.4"
    assert not AuditEvent.objects.for_tenant(personas.other_tenant).filter(action="auth.locked_out")


def test_an_admin_unlocks_an_account_in_the_admin(personas):
    from axes.models import AccessAttempt

    locked = Client(REMOTE_ADDR="10.5.5.5")
    for i in range(6):
        _sign_in(locked, "alex", f"wrong-{i}")
    assert _sign_in(locked, "alex", "pw-alex").status_code == 429

    admin = personas.admin
    admin.is_staff = admin.is_superuser = True
    admin.save(update_fields=["is_staff", "is_superuser"])
    staff = Client()
    staff.force_login(admin)
    listing = staff.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "alex" in listing.content.decode()
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    staff.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )

    assert not AccessAttempt.objects.exists()
    assert _sign_in(locked, "alex", "pw-alex").status_code == 302


# --------------------------------------------------------------------------- production


def test_production_settings_pass_the_deploy_check():
    env = {
        **os.environ,
        "AGENTOPS_ENV": "production",
        "DJANGO_SETTINGS_MODULE": "agentops.settings",
        "SECRET_KEY": "p" * 20 + "-a-long-random-production-secret-0123456789",
        "ALLOWED_HOSTS": "agentops.example.com",
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    }
    env.pop("DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_debug():
    env = {
        **os.environ,
        "AGENTOPS_ENV": "production",
        "DEBUG": "1",
        "SECRET_KEY": "p" * 60,
        "DJANGO_SETTINGS_MODULE": "agentops.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "DEBUG" in result.stderr


_json_text = st.text(alphabet=st.characters(codec=None, max_codepoint=0x1FFFF), max_size=12)
_json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | _json_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_json_text, children, max_size=4)
    ),
    max_leaves=30,
)


def _unsafe_anywhere(document) -> bool:
    return any(
        perimeter.UNSAFE_CHARACTERS.search(text)
        for _where, text in perimeter._json_strings(document)
    )


@hypothesis_settings(max_examples=300, deadline=None)
@given(document=_json_docs, ascii_only=st.booleans())
def test_the_raw_text_shortcut_never_lets_an_unsafe_string_through(document, ascii_only):
    """The middleware skips parsing a JSON body whose raw text is plainly safe; whenever it
    says so, no string of the decoded document (keys included) holds an unsafe character."""
    try:
        body = json.dumps(document, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot even be sent as UTF-8 unescaped
        return
    if perimeter.plainly_safe_json(body):
        assert not _unsafe_anywhere(json.loads(body))


def test_the_raw_text_shortcut_sends_deep_or_escaped_bodies_to_the_walk():
    assert perimeter.plainly_safe_json(b'{"title": "VPN \\u00e9 down", "n": [1, {"a": "]["}]}')
    assert not perimeter.plainly_safe_json(b'{"title": "a\\u0000b"}')
    assert not perimeter.plainly_safe_json(b'{"title": "\\ud800"}')
    assert not perimeter.plainly_safe_json(b'{"title": "back\\bspace"}')  # U+0008
    deep = b"[" * (perimeter.MAX_JSON_DEPTH + 1) + b"]" * (perimeter.MAX_JSON_DEPTH + 1)
    assert not perimeter.plainly_safe_json(deep)
    assert not perimeter.plainly_safe_json(b"\xff\xfe")
