"""GET /api/v1/blueprints, POST /api/v1/runs, GET /api/v1/runs/{run_id}."""

from __future__ import annotations

import json

import pytest

from agentops.services import api_token_create
from agents.connectors.sandbox.models import DirectoryUser, LogLine
from agents.models import BlueprintSetting, Run

API = "/api/v1"


@pytest.fixture
def call(client, personas):
    def make(user, tenant=None):
        _, raw = api_token_create(tenant=tenant or personas.tenant, user=user)
        headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

        def request(method: str, path: str, payload=None):
            if method == "get":
                return client.get(API + path, **headers)
            body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
            return client.post(API + path, data=body, content_type="application/json", **headers)

        return request

    return make


@pytest.fixture
def kim(personas):
    LogLine.objects.create(
        tenant=personas.tenant, service="auth", level="warning", message="kim locked"
    )
    return DirectoryUser.objects.create(
        tenant=personas.tenant, email="kim@acme.test", display_name="Kim", locked=True
    )


def test_blueprints_list_the_tenants_view(personas, call):
    BlueprintSetting.objects.create(
        tenant=personas.tenant, blueprint="probe", config={"max_iterations": 2}
    )
    response = call(personas.agent)("get", "/blueprints")
    assert response.status_code == 200
    by_name = {b["name"]: b for b in response.json()}
    assert {"service_desk", "probe"} <= set(by_name)
    probe = by_name["probe"]
    assert probe["kind"] == "loop" and probe["enabled"] is True
    assert probe["config"]["max_iterations"] == 2
    assert probe["tools"] == ["search_logs", "unlock_account"]
    assert probe["approval_tools"] == ["unlock_account"]
    assert probe["transitions"]["execute_tool"] == ["execute_tool", "evaluate", "wait"]
    # The other tenant sees its own defaults.
    other = call(personas.outsider, personas.other_tenant)("get", "/blueprints").json()
    assert {b["name"]: b for b in other}["probe"]["config"]["max_iterations"] == 4
    assert call(personas.requester)("get", "/blueprints").status_code == 403


def test_start_a_run_and_read_it(personas, call, kim, django_capture_on_commit_callbacks):
    api = call(personas.agent)
    with django_capture_on_commit_callbacks(execute=True):
        response = api("post", "/runs", {"blueprint": "probe", "subject_id": "kim@acme.test"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["agent_name"] == "probe" and body["subject_repr"] == "Lockouts of kim@acme.test"
    # Eager tasks after commit: the run went as far as the approval.
    run = api("get", f"/runs/{body['run_id']}").json()
    assert run["status"] == "waiting_approval"
    assert [s["state"] for s in run["steps"]][:3] == ["plan", "execute_tool", "evaluate"]
    assert [c["tool_name"] for c in run["tool_calls"]] == ["search_logs", "unlock_account"]
    assert run["tool_calls"][1]["status"] == "awaiting_approval"
    assert run["url"] == f"/runs/{body['run_id']}/"


def test_another_tenants_run_is_not_found(personas, call, kim):
    body = call(personas.agent)(
        "post", "/runs", {"blueprint": "probe", "subject_id": "kim@acme.test"}
    ).json()
    outsider = call(personas.outsider, personas.other_tenant)
    assert outsider("get", f"/runs/{body['run_id']}").status_code == 404
    assert outsider("get", "/runs/run-doesnotexist").status_code == 404


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"blueprint": "nonesuch"}, 400, "blueprint"),
        ({"blueprint": "probe", "subject_id": "not-an-email"}, 400, "subject_id"),
        ({"blueprint": "probe", "subject_id": "a@b.c", "goal": "x" * 10_000}, 400, "goal"),
        ({"blueprint": "probe", "subject_id": "a@b.c", "is_admin": True}, 400, "is_admin"),
        ({"blueprint": "service_desk"}, 400, "blueprint"),
        ("[1, 2]", 400, None),
        ("{not json", 400, None),
    ],
)
def test_bad_starts_are_clear_and_start_nothing(personas, call, payload, status, field):
    response = call(personas.agent)("post", "/runs", payload)
    assert response.status_code == status, response.content
    if field:
        assert field in response.json()["fields"], response.json()
    assert not Run.objects.for_tenant(personas.tenant).exists()


def test_a_disabled_blueprint_and_a_requester_start_nothing(personas, call, kim):
    BlueprintSetting.objects.create(tenant=personas.tenant, blueprint="probe", enabled=False)
    disabled = call(personas.agent)("post", "/runs", {"blueprint": "probe", "subject_id": "a@b.c"})
    assert disabled.status_code == 400 and "not enabled" in str(disabled.json()["fields"])
    forbidden = call(personas.requester)(
        "post", "/runs", {"blueprint": "probe", "subject_id": "a@b.c"}
    )
    assert forbidden.status_code == 403
    assert not Run.objects.for_tenant(personas.tenant).exists()
