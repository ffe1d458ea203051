"""Built-in tools: schemas, real effects on the sandbox, verification, idempotency, isolation,
not-found answers, the connector breaker and timeout."""

from __future__ import annotations

import threading
from unittest import mock

import pytest
from django.db import connection

from agents.connectors import base as connectors
from agents.connectors.sandbox import connector as sandbox
from agents.connectors.sandbox.models import (
    LATEST_VPN_PROFILE_VERSION,
    Device,
    DirectoryUser,
    Operation,
)
from agents.connectors.sandbox.seed import seed_sandbox
from agents.llm.base import ToolSpec
from agents.resilience import CircuitBreaker
from agents.tools import registry
from agents.tools.base import Tool, ToolContext
from agents.tools.builtin import HIGH_RISK_TOOLS, register_builtin_tools
from agents.tools.operations import REMEDIATION_TOOLS

EFFECT_TOOLS = {
    "reset_password",
    "unlock_account",
    "enable_mfa",
    "push_vpn_config",
    "install_software",
    "reset_network_adapter",
    *HIGH_RISK_TOOLS,
    *REMEDIATION_TOOLS,
}
READ_ONLY_TOOLS = {
    "run_diagnostic",
    "list_services",
    "search_logs",
    "query_metrics",
    "get_traces",
    "get_deploys",
    "generate_report",
}
# Arguments a tool documents as optional; every other property is required.
OPTIONAL_ARGUMENTS = {"search_logs": {"level"}, "generate_report": {"recommendations"}}


@pytest.fixture(autouse=True)
def clean_breakers():
    """Breakers live in Redis and are shared by every test: start and end closed."""
    for kind in ("directory", "endpoint", "monitoring"):
        CircuitBreaker(f"connector:{kind}").reset()
    yield
    for kind in ("directory", "endpoint", "monitoring"):
        CircuitBreaker(f"connector:{kind}").reset()


@pytest.fixture
def tools():
    register_builtin_tools()
    return registry


def make_user(tenant, email, **state):
    state.setdefault("display_name", email.split("@")[0].title())
    return DirectoryUser.objects.create(tenant=tenant, email=email, **state)


def make_device(tenant, tag, owner, **state):
    state.setdefault("hostname", tag.lower())
    return Device.objects.create(tenant=tenant, asset_tag=tag, owner_email=owner, **state)


@pytest.fixture
def world(personas):
    """The same person (same e-mail, same asset tag) in both tenants, in different states."""
    acme, globex = personas.tenant, personas.other_tenant
    return {
        "user": make_user(acme, "pat@corp.example", locked=True, failed_login_attempts=5),
        "foreign_user": make_user(globex, "pat@corp.example", locked=True, failed_login_attempts=3),
        "device": make_device(
            acme,
            "LT-0042",
            "pat@corp.example",
            vpn_profile_version=LATEST_VPN_PROFILE_VERSION - 2,
            vpn_status="timeout",
            adapter_state="flapping",
            installed_software=["Chrome"],
        ),
        "foreign_device": make_device(
            globex, "LT-0042", "pat@corp.example", vpn_profile_version=1, vpn_status="timeout"
        ),
    }


def ctx(tenant, key="run-1:step-1", **extra):
    return ToolContext(tenant=tenant, run_id=1, idempotency_key=key, **extra)


def call(name, tenant, args, key="run-1:step-1", **extra):
    tool = registry.get(name)
    assert registry.validate_args(tool, args) == []
    context = ctx(tenant, key, **extra)
    result = tool.run(context, args)
    return tool, context, result


# ---------------------------------------------------------------- registry and schemas


def test_registry_lists_every_builtin_tool_with_a_strict_schema(tools):
    names = set(register_builtin_tools())
    assert names == EFFECT_TOOLS | READ_ONLY_TOOLS
    for name in names:
        tool = tools.get(name)
        schema = tool.input_schema
        assert schema["additionalProperties"] is False, name
        optional = OPTIONAL_ARGUMENTS.get(name, set())
        assert set(schema["required"]) == set(schema["properties"]) - optional, name
        assert tool.read_only == (name in READ_ONLY_TOOLS), name
        assert tool.connector in {"directory", "endpoint", "monitoring", "operations", ""}, name
        assert tool.connector or name == "generate_report", name  # it writes only its result
    assert tools.get("unlock_account").target_argument == "user_email"
    assert tools.get("push_vpn_config").target_argument == "device_id"
    assert tools.get("search_logs").target_argument is None


def test_register_is_idempotent_and_refuses_a_clash(tools):
    before = [t.name for t in tools.all_tools()]
    register_builtin_tools()
    register_builtin_tools()
    assert [t.name for t in tools.all_tools()] == before

    class Impostor(Tool):
        name = "unlock_account"
        description = "not the real one"

    with pytest.raises(ValueError, match="already registered"):
        tools.register(Impostor())


def test_get_unknown_tool_names_it_and_lists_the_known(tools):
    with pytest.raises(KeyError, match=r"unknown tool 'reboot_everything'.*unlock_account"):
        tools.get("reboot_everything")


def test_specs_for_the_model(tools):
    specs = tools.specs(["unlock_account", "search_logs"])
    assert [s.name for s in specs] == ["unlock_account", "search_logs"]
    assert all(isinstance(s, ToolSpec) for s in specs)
    assert specs[0].input_schema["properties"]["user_email"]["format"] == "email"
    assert {s.name for s in tools.specs()} >= EFFECT_TOOLS | READ_ONLY_TOOLS
    with pytest.raises(KeyError):
        tools.specs(["nope"])


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("unlock_account", {}, ["user_email: this field is required"]),
        (
            "unlock_account",
            {"user_email": 42},
            ["user_email: must be of type string, got integer"],
        ),
        (
            "unlock_account",
            {"user_email": "a@b.example", "force": True},
            ["force: unexpected field (allowed: user_email)"],
        ),
        (
            "enable_mfa",
            {"user_email": "a@b.example", "method": "carrier_pigeon"},
            ["method: must be one of authenticator_app, sms, hardware_key (got 'carrier_pigeon')"],
        ),
        ("unlock_account", ["a@b.example"], ["arguments: must be a JSON object, got array"]),
        ("unlock_account", "a@b.example", ["arguments: must be a JSON object, got string"]),
        ("unlock_account", None, ["arguments: must be a JSON object, got null"]),
        (
            "push_vpn_config",
            {"device_id": "laptop 42"},
            [
                "device_id: 'laptop 42' has the wrong format; expected the device's asset tag, like LT-0042"
            ],
        ),
        (
            "search_logs",
            {"service": "payments", "query": "timeout", "minutes": 0},
            ["minutes: must be at least 1 (got 0)"],
        ),
        (
            "search_logs",
            {"service": "payments", "query": "x", "minutes": True},
            ["minutes: must be of type integer, got boolean"],
        ),
        (
            "grant_admin_access",
            {"user_email": "a@b.example", "reason": "pls"},
            ["reason: must be at least 10 characters long"],
        ),
    ],
)
def test_validation_messages_name_the_field(tools, name, args, expected):
    assert tools.validate_args(tools.get(name), args) == expected


def test_validation_reports_every_problem_and_checks_the_email_format(tools):
    errors = tools.validate_args(
        tools.get("modify_security_group"),
        {"user_email": "not-an-email", "action": "toggle", "extra": 1},
    )
    assert "group: this field is required" in errors
    assert "extra: unexpected field (allowed: action, group, user_email)" in errors
    assert "action: must be one of add, remove (got 'toggle')" in errors
    assert "user_email: 'not-an-email' is not a valid email" in errors
    assert len(errors) == 4  # one message per problem
    assert tools.validate_args(tools.get("unlock_account"), {"user_email": "a@b.example"}) == []


# ---------------------------------------------------------------- effects and verification


def reload(obj):
    return type(obj).objects.for_tenant(obj.tenant).get(pk=obj.pk)


@pytest.mark.parametrize(
    ("name", "args", "holds"),
    [
        (
            "unlock_account",
            {"user_email": "pat@corp.example"},
            lambda u, d: not u.locked and u.failed_login_attempts == 0,
        ),
        (
            "reset_password",
            {"user_email": "PAT@corp.example"},
            lambda u, d: u.must_change_password and not u.locked,
        ),
        (
            "enable_mfa",
            {"user_email": "pat@corp.example", "method": "hardware_key"},
            lambda u, d: u.mfa_enabled and u.mfa_method == "hardware_key",
        ),
        (
            "push_vpn_config",
            {"device_id": "LT-0042"},
            lambda u, d: (
                d.vpn_profile_version == LATEST_VPN_PROFILE_VERSION and d.vpn_status == "connected"
            ),
        ),
        (
            "install_software",
            {"device_id": "LT-0042", "software": "Slack"},
            lambda u, d: d.installed_software == ["Chrome", "Slack"],
        ),
        (
            "reset_network_adapter",
            {"device_id": "LT-0042"},
            lambda u, d: d.adapter_state == "up",
        ),
        (
            "grant_admin_access",
            {"user_email": "pat@corp.example", "reason": "Takes over the on-call rota"},
            lambda u, d: u.is_admin,
        ),
        (
            "modify_security_group",
            {"user_email": "pat@corp.example", "group": "finance-readers", "action": "add"},
            lambda u, d: "finance-readers" in u.groups,
        ),
        (
            "delete_user_account",
            {"user_email": "pat@corp.example"},
            lambda u, d: u.disabled and u.groups == [],
        ),
        (
            "disable_mfa",
            {"user_email": "pat@corp.example"},
            lambda u, d: not u.mfa_enabled and u.mfa_method == "",
        ),
        (
            "access_privileged_system",
            {"system": "prod-db", "reason": "Investigate the payments outage"},
            lambda u, d: "privileged:prod-db" in u.groups,
        ),
        ("export_user_data", {"user_email": "pat@corp.example"}, lambda u, d: True),
    ],
)
def test_effect_tool_changes_the_sandbox_and_verify_confirms(
    tools, personas, world, name, args, holds
):
    user, device = world["user"], world["device"]
    DirectoryUser.objects.for_tenant(personas.tenant).filter(pk=user.pk).update(
        mfa_enabled=name == "disable_mfa", mfa_method="sms" if name == "disable_mfa" else ""
    )
    tool, context, result = call(name, personas.tenant, args, subject_email="pat@corp.example")
    assert result.ok, result
    assert result.summary and result.status_code == 200
    assert holds(reload(user), reload(device))
    assert tool.verify(context, args, result) is True
    assert Operation.objects.for_tenant(personas.tenant).get().operation == name
    # The other tenant's namesakes are untouched.
    foreign_user, foreign_device = reload(world["foreign_user"]), reload(world["foreign_device"])
    assert foreign_user.locked and not foreign_user.is_admin and not foreign_user.disabled
    assert foreign_device.vpn_profile_version == 1 and foreign_device.vpn_status == "timeout"


def test_verify_reads_the_state_again(tools, personas, world):
    tool, context, result = call(
        "unlock_account", personas.tenant, {"user_email": "pat@corp.example"}
    )
    assert tool.verify(context, {"user_email": "pat@corp.example"}, result)
    # The account locks again (another failed sign-in burst): verification sees it.
    DirectoryUser.objects.for_tenant(personas.tenant).update(locked=True)
    assert tool.verify(context, {"user_email": "pat@corp.example"}, result) is False


def test_push_vpn_config_on_a_dead_adapter_applies_but_does_not_verify(tools, personas, world):
    Device.objects.for_tenant(personas.tenant).update(adapter_state="down")
    tool, context, result = call("push_vpn_config", personas.tenant, {"device_id": "LT-0042"})
    assert result.ok and "adapter is down" in result.summary
    device = reload(world["device"])
    assert device.vpn_profile_version == LATEST_VPN_PROFILE_VERSION
    assert device.vpn_status == "disconnected"
    assert tool.verify(context, {"device_id": "LT-0042"}, result) is False


def test_reset_password_never_returns_a_password(tools, personas, world):
    _, _, result = call("reset_password", personas.tenant, {"user_email": "pat@corp.example"})
    assert result.ok and "out-of-band" in result.summary
    assert set(result.data) == {
        "user_email",
        "must_change_password",
        "password_changed_at",
        "temporary_password_delivery",
        "unlocked",
    }
    assert result.data["temporary_password_delivery"] == "out_of_band"
    assert result.data["unlocked"] is True


def test_run_diagnostic_derives_findings_and_records_them(tools, personas, world):
    tool, context, result = call("run_diagnostic", personas.tenant, {"device_id": "LT-0042"})
    assert result.ok and not result.data["healthy"]
    codes = [f["code"] for f in result.data["findings"]]
    assert codes == ["adapter_flapping", "vpn_profile_outdated", "vpn_timeout"]
    assert {f["suggested_tool"] for f in result.data["findings"]} >= {
        "reset_network_adapter",
        "push_vpn_config",
    }
    device = reload(world["device"])
    assert device.last_diagnostic["findings"] == result.data["findings"]
    assert device.last_diagnostic_at is not None
    assert tool.verify(context, {"device_id": "LT-0042"}, result)
    # Read-only: nothing recorded as an applied operation, the state itself unchanged.
    assert not Operation.objects.for_tenant(personas.tenant).exists()
    assert device.adapter_state == "flapping" and device.vpn_status == "timeout"

    # After the fixes the diagnostic is clean.
    call("reset_network_adapter", personas.tenant, {"device_id": "LT-0042"}, key="fix-1")
    call("push_vpn_config", personas.tenant, {"device_id": "LT-0042"}, key="fix-2")
    _, _, again = call("run_diagnostic", personas.tenant, {"device_id": "LT-0042"})
    assert again.data["healthy"] and again.data["findings"] == []


def test_effects_on_a_deleted_account_are_refused(tools, personas, world):
    call("delete_user_account", personas.tenant, {"user_email": "pat@corp.example"}, key="del")
    _, _, result = call("unlock_account", personas.tenant, {"user_email": "pat@corp.example"})
    assert not result.ok and result.status_code == 409 and result.error_class == "AccountDisabled"


def test_target_email_is_the_person_affected(tools, personas, world):
    context = ctx(personas.tenant, subject_email="Robin@Acme.example")
    unlock, push = tools.get("unlock_account"), tools.get("push_vpn_config")
    assert unlock.target_email(context, {"user_email": "Pat@Corp.example"}) == "pat@corp.example"
    assert push.target_email(context, {"device_id": "LT-0042"}) == "pat@corp.example"
    assert push.target_email(context, {"device_id": "LT-9999"}) is None
    assert tools.get("access_privileged_system").target_email(context, {}) == "robin@acme.example"
    assert tools.get("search_logs").target_email(context, {"service": "auth"}) is None


# ---------------------------------------------------------------- idempotency


def test_same_idempotency_key_applies_once_and_answers_the_same(tools, personas, world):
    args = {"user_email": "pat@corp.example"}
    _, _, first = call("reset_password", personas.tenant, args, key="run-7:step-3")
    changed_at = reload(world["user"]).password_changed_at
    DirectoryUser.objects.for_tenant(personas.tenant).update(locked=True)  # locks again meanwhile

    _, _, second = call("reset_password", personas.tenant, args, key="run-7:step-3")

    assert second == first
    user = reload(world["user"])
    assert user.password_changed_at == changed_at and user.locked  # nothing applied again
    assert Operation.objects.for_tenant(personas.tenant).count() == 1

    # A new key is a new operation.
    _, _, third = call("reset_password", personas.tenant, args, key="run-8:step-1")
    assert third.ok and reload(world["user"]).password_changed_at > changed_at
    assert Operation.objects.for_tenant(personas.tenant).count() == 2


def test_install_twice_with_one_key_installs_once(tools, personas, world):
    args = {"device_id": "LT-0042", "software": "Zoom"}
    results = [call("install_software", personas.tenant, args, key="k")[2] for _ in range(3)]
    assert results[0] == results[1] == results[2]
    assert reload(world["device"]).installed_software == ["Chrome", "Zoom"]
    assert Operation.objects.for_tenant(personas.tenant).filter(idempotency_key="k").count() == 1


def test_a_key_reused_for_another_operation_is_a_conflict(tools, personas, world):
    call("unlock_account", personas.tenant, {"user_email": "pat@corp.example"}, key="k")
    _, _, result = call("disable_mfa", personas.tenant, {"user_email": "pat@corp.example"}, key="k")
    assert not result.ok and result.status_code == 409
    assert result.error_class == "IdempotencyConflict"


def test_idempotency_keys_are_per_tenant(tools, personas, world):
    args = {"user_email": "pat@corp.example"}
    call("unlock_account", personas.tenant, args, key="same")
    _, _, result = call("unlock_account", personas.other_tenant, args, key="same")
    assert result.ok
    assert not reload(world["foreign_user"]).locked
    assert Operation.objects.for_tenant(personas.other_tenant).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_apply_once(tools, personas, world):
    """Two workers run the same step at once: the row lock serialises them, the second finds
    the first's Operation and changes nothing."""
    args = {"device_id": "LT-0042", "software": "Slack"}
    results, barrier = [], threading.Barrier(4)

    def worker():
        try:
            barrier.wait()
            results.append(registry.get("install_software").run(ctx(personas.tenant, "dup"), args))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(r == results[0] for r in results) and results[0].ok
    assert reload(world["device"]).installed_software == ["Chrome", "Slack"]
    assert Operation.objects.for_tenant(personas.tenant).count() == 1


# ---------------------------------------------------------------- isolation and not found


def test_a_tool_never_sees_another_tenants_user(tools, personas, world):
    make_user(personas.other_tenant, "only-globex@corp.example", locked=True)
    _, _, result = call(
        "unlock_account", personas.tenant, {"user_email": "only-globex@corp.example"}
    )
    assert not result.ok and result.status_code == 404 and result.error_class == "NotFound"
    assert "only-globex@corp.example" in result.error_message
    assert (
        DirectoryUser.objects.for_tenant(personas.other_tenant)
        .get(email="only-globex@corp.example")
        .locked
    )

    _, _, unlocked = call("unlock_account", personas.tenant, {"user_email": "pat@corp.example"})
    assert unlocked.ok and unlocked.data["failed_attempts"] == 5  # acme's Pat, not globex's (3)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("reset_password", {"user_email": "ghost@corp.example"}),
        ("enable_mfa", {"user_email": "ghost@corp.example", "method": "sms"}),
        ("grant_admin_access", {"user_email": "ghost@corp.example", "reason": "No such person"}),
        ("push_vpn_config", {"device_id": "LT-9999"}),
        ("run_diagnostic", {"device_id": "LT-9999"}),
        ("install_software", {"device_id": "LT-9999", "software": "Slack"}),
        ("search_logs", {"service": "nope", "query": "", "minutes": 60}),
        ("query_metrics", {"service": "payments", "metric": "nope", "minutes": 60}),
    ],
)
def test_unknown_target_is_a_404_result(tools, personas, world, name, args):
    _, _, result = call(name, personas.tenant, args)
    assert (result.ok, result.status_code, result.error_class) == (False, 404, "NotFound")
    assert result.error_message and not result.retryable
    assert not Operation.objects.for_tenant(personas.tenant).exists()


# ---------------------------------------------------------------- monitoring


@pytest.fixture
def seeded(personas):
    seed_sandbox(personas.tenant, [("robin@acme.example", "Robin")])
    return personas.tenant


def test_search_logs_counts_and_shows_lines(tools, seeded):
    _, _, result = call(
        "search_logs",
        seeded,
        {"service": "payments", "query": "card-processor timeout", "minutes": 30},
    )
    assert result.ok and result.data["errors"] > 5
    assert result.data["total"] >= result.data["errors"]
    assert 0 < len(result.data["lines"]) <= 10
    assert all("card-processor" in line["message"] for line in result.data["lines"])
    _, _, quiet = call(
        "search_logs", seeded, {"service": "checkout", "query": "card-processor", "minutes": 30}
    )
    assert quiet.ok and quiet.data["total"] == 0


def test_query_metrics_sees_the_spike(tools, seeded):
    _, _, result = call(
        "query_metrics", seeded, {"service": "payments", "metric": "error_rate", "minutes": 120}
    )
    assert result.ok and result.data["latest"] > 0.2 and result.data["change_pct"] > 100
    assert 2 <= len(result.data["points"]) <= 13
    _, _, calm = call(
        "query_metrics", seeded, {"service": "auth", "metric": "error_rate", "minutes": 120}
    )
    assert calm.data["max"] < 0.05


def test_get_traces_summarises_failing_traces(tools, seeded):
    _, _, result = call("get_traces", seeded, {"service": "payments", "minutes": 30})
    assert result.ok and result.data["error_traces"] > 0
    assert result.data["p95_latency_ms"] >= 3000
    assert result.data["failing"][0]["first_error"].startswith("upstream card-processor timeout")
    assert not Operation.objects.for_tenant(seeded).exists()


# ---------------------------------------------------------------- breaker and timeout


def test_breaker_opens_after_repeated_failures_then_fails_fast(tools, personas, world):
    args = {"user_email": "pat@corp.example"}
    failing = mock.Mock(side_effect=ConnectionError("directory down"))
    with mock.patch.object(sandbox.SandboxDirectoryConnector, "unlock_account", failing):
        for attempt in range(connectors.BREAKER_THRESHOLD):
            _, _, result = call("unlock_account", personas.tenant, args, key=f"k{attempt}")
            assert (result.ok, result.status_code, result.error_class) == (
                False,
                502,
                "ConnectorError",
            )
            assert result.retryable
        assert failing.call_count == connectors.BREAKER_THRESHOLD

        _, _, result = call("unlock_account", personas.tenant, args, key="k-last")
        assert (result.status_code, result.error_class, result.retryable) == (
            503,
            "CircuitOpen",
            True,
        )
        assert failing.call_count == connectors.BREAKER_THRESHOLD  # failed fast: not called
    assert CircuitBreaker("connector:directory").state().state == "open"
    # Other connectors are unaffected.
    _, _, other = call("reset_network_adapter", personas.tenant, {"device_id": "LT-0042"})
    assert other.ok
    assert reload(world["user"]).locked  # nothing applied while failing


def test_business_answers_do_not_trip_the_breaker(tools, personas, world):
    for attempt in range(connectors.BREAKER_THRESHOLD + 2):
        _, _, result = call(
            "unlock_account",
            personas.tenant,
            {"user_email": "ghost@corp.example"},
            key=f"{attempt}",
        )
        assert result.status_code == 404
    assert CircuitBreaker("connector:directory").state().state == "closed"


def test_a_slow_connector_call_times_out(tools, personas, world):
    def slow(self, email, *, idempotency_key):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")

    with (
        mock.patch.object(connectors, "CONNECTOR_TIMEOUT_SECONDS", 0.1),
        mock.patch.object(sandbox.SandboxDirectoryConnector, "unlock_account", slow),
    ):
        _, _, result = call("unlock_account", personas.tenant, {"user_email": "pat@corp.example"})
    assert (result.ok, result.status_code, result.error_class) == (False, 504, "Timeout")
    assert CircuitBreaker("connector:directory").state().failures == 1
    # The surrounding transaction is still usable.
    assert reload(world["user"]).locked


def test_the_timeout_does_not_leak_into_the_callers_transaction(tools, personas, world):
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]
    with mock.patch.object(connectors, "CONNECTOR_TIMEOUT_SECONDS", 3):
        _, _, result = call("unlock_account", personas.tenant, {"user_email": "pat@corp.example"})
        assert result.ok
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == before


def test_list_devices_of_a_person(personas, world):
    make_device(personas.tenant, "DT-0001", "pat@corp.example")
    devices = connectors.get_connector("endpoint", personas.tenant).list_devices("PAT@corp.example")
    assert [d["device_id"] for d in devices] == ["DT-0001", "LT-0042"]
    assert devices[1]["vpn_status"] == "timeout" and devices[1]["owner_email"] == "pat@corp.example"
    other = connectors.get_connector("endpoint", personas.other_tenant)
    assert [d["device_id"] for d in other.list_devices("pat@corp.example")] == ["LT-0042"]
    assert other.list_devices("nobody@corp.example") == []


def test_get_connector_knows_its_kinds(personas):
    conn = connectors.get_connector("directory", personas.tenant)
    assert isinstance(conn.impl, connectors.DirectoryConnector)
    assert conn.breaker.name == "connector:directory"
    with pytest.raises(KeyError, match="unknown connector kind 'fax'"):
        connectors.get_connector("fax", personas.tenant)
    with pytest.raises(ValueError):
        connectors.get_connector("endpoint", None)
