"""Monitored services, deploys, spans and the remediation tools: operations really change
what monitoring reads next (the fault clears, or not), once per idempotency key."""

from __future__ import annotations

import pytest

from agents.connectors.sandbox import scenarios
from agents.connectors.sandbox.models import Deploy, MonitoredService, Operation
from agents.resilience import CircuitBreaker
from agents.tools import registry
from agents.tools.base import ToolContext
from agents.tools.builtin import register_builtin_tools


@pytest.fixture(autouse=True)
def tools():
    register_builtin_tools()
    for kind in ("monitoring", "operations"):
        CircuitBreaker(f"connector:{kind}").reset()


def run(tenant, name, args, key="run-1:op-1"):
    tool = registry.get(name)
    assert registry.validate_args(tool, args) == []
    context = ToolContext(tenant=tenant, run_id=1, idempotency_key=key)
    result = tool.run(context, args)
    return tool, context, result


def error_rate(tenant, service):
    return run(
        tenant, "query_metrics", {"service": service, "metric": "error_rate", "minutes": 60}
    )[2].data


REASON = "disk at 100 % and writes failing"


def test_clear_cache_fixes_disk_full_and_the_error_rate_falls(personas):
    acme = personas.tenant
    scenarios.generate(acme, "disk_full")
    before = error_rate(acme, "search-indexer")
    assert before["latest"] > 0.15 and before["count"] == 60
    disk = run(
        acme,
        "query_metrics",
        {"service": "search-indexer", "metric": "disk_used_pct", "minutes": 10},
    )
    assert disk[2].data["latest"] > 95
    logs = run(
        acme, "search_logs", {"service": "search-indexer", "query": "no space", "minutes": 30}
    )
    assert logs[2].data["errors"] > 0

    tool, context, result = run(
        acme, "clear_cache", {"service": "search-indexer", "reason": REASON}
    )
    assert result.ok and result.data["faults_cleared"] == ["search-indexer: disk_full"]
    assert tool.verify(context, {"service": "search-indexer", "reason": REASON}, result)
    assert error_rate(acme, "search-indexer")["latest"] < 0.05
    # the same key again: the recorded answer, no second operation
    again = run(acme, "clear_cache", {"service": "search-indexer", "reason": REASON})[2]
    assert again.summary == result.summary
    assert Operation.objects.for_tenant(acme).filter(operation="clear_cache").count() == 1


def test_the_wrong_fix_or_an_ineffective_one_leaves_the_errors(personas):
    acme = personas.tenant
    scenarios.generate(acme, "disk_full", ineffective=True)
    _, _, result = run(acme, "clear_cache", {"service": "search-indexer", "reason": REASON})
    assert result.ok and result.data["faults_cleared"] == []
    assert error_rate(acme, "search-indexer")["latest"] > 0.15
    scenarios.generate(acme, "memory_leak")
    args = {"service": "inventory", "replicas": 6, "reason": "more capacity for the load"}
    assert run(acme, "scale_service", args, key="k2")[2].data["faults_cleared"] == []
    assert error_rate(acme, "inventory")["latest"] > 0.1


def test_deploys_rollback_and_traces_downstream(personas):
    acme = personas.tenant
    scenarios.generate(acme, "bad_deploy")
    deploys = run(acme, "get_deploys", {"service": "checkout", "minutes": 60})[2]
    assert [d["version"] for d in deploys.data["deploys"]] == ["4.3.0"]
    assert deploys.data["previous"]["version"] == "4.2.0"
    args = {"service": "checkout", "to_version": "4.2.0", "reason": "errors began at 4.3.0"}
    tool, context, result = run(acme, "rollback_deploy", args)
    assert result.ok and tool.verify(context, args, result)
    assert Deploy.objects.for_tenant(acme).filter(rollback=True, version="4.2.0").count() == 1
    assert error_rate(acme, "checkout")["latest"] < 0.05

    scenarios.generate(acme, "dependency_timeout")
    traces = run(acme, "get_traces", {"service": "payments", "minutes": 30})[2]
    [down] = traces.data["downstream"]
    assert down["service"] == "bank-gateway" and down["at_timeout"] > 0
    tool = registry.get("failover")
    args = {"service": "bank-gateway", "region": "eu-west-2", "reason": "gateway calls time out"}
    context = ToolContext(tenant=acme, run_id=1, idempotency_key="k3")
    radius = tool.blast_radius(context, args)
    assert "Dependents affected: payments" in radius and "eu-west-2" in radius
    result = tool.run(context, args)
    assert result.data["faults_cleared"] == ["payments: dependency_timeout"]
    assert error_rate(acme, "payments")["latest"] < 0.05


def test_tenants_do_not_see_each_others_services(personas):
    scenarios.generate(personas.tenant, "disk_full")
    globex = personas.other_tenant
    result = run(globex, "clear_cache", {"service": "search-indexer", "reason": REASON})[2]
    assert not result.ok and result.status_code == 404
    assert not MonitoredService.objects.for_tenant(globex).exists()
    assert (
        run(globex, "get_deploys", {"service": "search-indexer", "minutes": 60})[2].status_code
        == 404
    )


def test_bad_arguments_are_refused_by_the_schema(personas):
    tool = registry.get("scale_service")
    assert registry.validate_args(tool, {"service": "orders", "replicas": 4})  # no reason
    assert registry.validate_args(tool, {"service": "orders", "replicas": 0, "reason": REASON})
    assert registry.validate_args(tool, {"service": "Orders\x00", "replicas": 2, "reason": REASON})
    with pytest.raises(KeyError):
        scenarios.generate(personas.tenant, "no_such_fault")
