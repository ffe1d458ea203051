"""API tokens: bearer authentication of /api/v1/ and the create_api_token command."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agentops.models import ApiToken, AuditEvent, Membership
from agentops.services import api_token_create, api_token_revoke
from incidents.models import Ticket

TICKETS = "/api/v1/tickets"


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def all_tokens():
    return ApiToken.objects.unscoped("tests look across tenants")


def all_tickets():
    return Ticket.objects.unscoped("tests count rows across tenants")


@pytest.fixture
def token(personas):
    """(ApiToken, raw secret) of personas.agent in acme."""
    return api_token_create(tenant=personas.tenant, user=personas.agent)


@pytest.fixture
def ticket(personas, make_ticket):
    return make_ticket(personas.tenant, personas.requester, title="Cannot connect to VPN")


def requests_for(ticket):
    """One request of each endpoint: (method, path, body)."""
    return [
        ("get", TICKETS, None),
        ("get", f"{TICKETS}/{ticket.number}", None),
        ("post", TICKETS, {"title": "Should not be created"}),
    ]


def send(client, method, path, body=None, **headers):
    if method == "post":
        return client.post(path, data=json.dumps(body), content_type="application/json", **headers)
    return client.get(path, **headers)


def assert_unauthenticated(response):
    assert response.status_code == 401, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthenticated"


# ---------------------------------------------------------------- bearer authentication


def test_valid_token_authenticates_every_endpoint(client, personas, token, ticket):
    _, raw = token
    for method, path, body in requests_for(ticket):
        response = send(client, method, path, body, **bearer(raw))
        assert response.status_code in (200, 201), (method, path, response.content)


def test_no_header_is_401_on_every_endpoint(client, personas, ticket):
    for method, path, body in requests_for(ticket):
        assert_unauthenticated(send(client, method, path, body))
    assert all_tickets().count() == 1  # the POST wrote nothing


def test_a_console_session_is_not_api_authentication(client, personas, ticket):
    client.force_login(personas.agent)

    assert_unauthenticated(client.get(TICKETS))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer garbage",
        "Bearer ao_",
        "Bearer ao_deadbeef_not-a-real-secret",
        "Token ao_deadbeef_secret",
        "Basic YWxleDpwdy1hbGV4",
    ],
)
def test_garbage_authorization_is_401(client, personas, token, header):
    assert_unauthenticated(client.get(TICKETS, HTTP_AUTHORIZATION=header))


def test_right_prefix_wrong_secret_is_401(client, personas, token):
    api_token, raw = token
    forged = f"ao_{api_token.prefix}_{'A' * 43}"
    assert forged != raw

    assert_unauthenticated(client.get(TICKETS, **bearer(forged)))
    # A truncated or extended secret is as wrong as a forged one.
    assert_unauthenticated(client.get(TICKETS, **bearer(raw[:-1])))
    assert_unauthenticated(client.get(TICKETS, **bearer(raw + "x")))


def test_only_the_hash_is_stored(personas, token):
    api_token, raw = token

    assert raw.startswith(f"ao_{api_token.prefix}_")
    assert raw not in api_token.token_hash
    assert api_token.token_hash == ApiToken.hash_secret(raw)


def test_revoked_token_is_401(client, personas, token):
    api_token, raw = token
    assert client.get(TICKETS, **bearer(raw)).status_code == 200

    api_token_revoke(token=api_token, actor=personas.admin)

    assert_unauthenticated(client.get(TICKETS, **bearer(raw)))
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="api_token.revoked", actor_id=personas.admin.pk, target_id=str(api_token.pk))
        .exists()
    )


def test_revoking_one_token_leaves_the_others_working(client, personas, token):
    api_token, raw = token
    _, other_raw = api_token_create(tenant=personas.tenant, user=personas.agent, name="second")

    api_token_revoke(token=api_token)

    assert_unauthenticated(client.get(TICKETS, **bearer(raw)))
    assert client.get(TICKETS, **bearer(other_raw)).status_code == 200


def test_token_of_an_inactive_user_is_401(client, personas, token):
    _, raw = token
    personas.agent.is_active = False
    personas.agent.save(update_fields=["is_active"])

    assert_unauthenticated(client.get(TICKETS, **bearer(raw)))


def test_token_of_an_inactive_tenant_is_401(client, personas, token):
    _, raw = token
    personas.tenant.is_active = False
    personas.tenant.save(update_fields=["is_active"])

    assert_unauthenticated(client.get(TICKETS, **bearer(raw)))


def test_token_of_a_user_who_left_the_tenant_is_401(client, personas, token):
    _, raw = token
    Membership.objects.filter(user=personas.agent, tenant=personas.tenant).delete()

    assert_unauthenticated(client.get(TICKETS, **bearer(raw)))


def test_token_follows_a_role_change(client, personas, make_ticket):
    """The token carries no role of its own: demoting the user narrows what it sees."""
    make_ticket(personas.tenant, personas.requester2, title="Rosa's phone")
    _, raw = api_token_create(tenant=personas.tenant, user=personas.agent)
    assert client.get(TICKETS, **bearer(raw)).json()["count"] == 1

    Membership.objects.filter(user=personas.agent, tenant=personas.tenant).update(role="requester")

    assert client.get(TICKETS, **bearer(raw)).json()["count"] == 0


def test_token_is_bound_to_its_tenant(client, personas, make_ticket):
    """A user in two tenants has one token per tenant; each sees only its own tenant."""
    from agentops.services import membership_set

    membership_set(tenant=personas.other_tenant, user=personas.agent, role="agent")
    make_ticket(personas.tenant, personas.requester, title="Acme ticket")
    make_ticket(personas.other_tenant, personas.outsider, title="Globex ticket")
    _, acme_raw = api_token_create(tenant=personas.tenant, user=personas.agent)
    _, globex_raw = api_token_create(tenant=personas.other_tenant, user=personas.agent)

    acme = client.get(TICKETS, **bearer(acme_raw)).json()["items"]
    globex = client.get(TICKETS, **bearer(globex_raw)).json()["items"]

    assert [i["title"] for i in acme] == ["Acme ticket"]
    assert [i["title"] for i in globex] == ["Globex ticket"]


def test_last_used_is_recorded_at_most_once_a_minute(client, personas, token, settings):
    api_token, raw = token
    assert api_token.last_used_at is None

    client.get(TICKETS, **bearer(raw))
    api_token.refresh_from_db()
    first = api_token.last_used_at
    assert first is not None

    client.get(TICKETS, **bearer(raw))
    api_token.refresh_from_db()
    assert api_token.last_used_at == first  # within API_TOKEN_TOUCH_SECONDS: not rewritten

    stale = timezone.now() - timedelta(seconds=settings.API_TOKEN_TOUCH_SECONDS + 5)
    all_tokens().filter(pk=api_token.pk).update(last_used_at=stale)
    client.get(TICKETS, **bearer(raw))
    api_token.refresh_from_db()
    assert api_token.last_used_at > stale


def test_token_create_refuses_a_non_member(personas):
    with pytest.raises(ValueError, match="not a member"):
        api_token_create(tenant=personas.tenant, user=personas.outsider)
    assert all_tokens().count() == 0


# ---------------------------------------------------------------- manage.py create_api_token


def run_command(*args) -> str:
    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue()


def test_command_prints_a_token_that_authenticates(client, personas):
    raw = run_command(personas.agent.username, "--tenant", personas.tenant.slug).strip()

    assert raw.startswith("ao_")
    api_token = all_tokens().get()
    assert api_token.tenant == personas.tenant
    assert api_token.user == personas.agent
    assert api_token.name == "api"
    assert api_token.token_hash == ApiToken.hash_secret(raw)
    response = client.get(TICKETS, **bearer(raw))
    assert response.status_code == 200
    created = client.post(
        TICKETS,
        data=json.dumps({"title": "From the command's token"}),
        content_type="application/json",
        **bearer(raw),
    )
    assert created.status_code == 201
    assert AuditEvent.objects.for_tenant(personas.tenant).get(action="ticket.created").actor_id == (
        personas.agent.pk
    )


def test_command_names_the_token(personas):
    run_command(personas.agent.username, "--tenant", personas.tenant.slug, "--name", "nagios")

    assert all_tokens().get().name == "nagios"


def test_command_tokens_are_distinct(personas):
    first = run_command(personas.agent.username, "--tenant", personas.tenant.slug).strip()
    second = run_command(personas.agent.username, "--tenant", personas.tenant.slug).strip()

    assert first != second
    assert all_tokens().count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nobody", "--tenant", "acme"), "No user named 'nobody'"),
        (("alex", "--tenant", "initech"), "No tenant with slug 'initech'"),
        # gus is an agent of globex, not of acme.
        (("gus", "--tenant", "acme"), "gus is not a member of tenant acme"),
    ],
    ids=["unknown-user", "unknown-tenant", "not-a-member"],
)
def test_command_errors(personas, args, message):
    with pytest.raises(CommandError, match=message):
        run_command(*args)
    assert all_tokens().count() == 0


def test_command_requires_the_tenant(personas):
    with pytest.raises(CommandError, match="--tenant"):
        run_command(personas.agent.username)
