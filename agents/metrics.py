"""Prometheus metrics of the agent runtime, correct across web and worker processes.

prometheus_client runs in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by the settings
before anything imports the client): each process writes its samples to files there and the
/metrics view aggregates them. ``active_workflows`` is read from the database at scrape time,
so it is right no matter which process started or finished a run.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily

AGENT_REQUESTS = Counter(
    "agent_requests_total",
    "Blueprint steps executed, by agent, state and outcome",
    ["agent", "state", "status"],
)
AGENT_LATENCY = Histogram(
    "agent_latency_seconds",
    "Time to execute one blueprint step",
    ["agent", "state"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TOOL_EXECUTIONS = Counter(
    "tool_executions_total", "Tool calls executed, by tool and outcome", ["tool", "status"]
)
LLM_REQUESTS = Counter(
    "llm_requests_total", "Model calls, by backend and outcome", ["backend", "outcome"]
)
LLM_TOKENS = Counter(
    "llm_tokens_total", "Model tokens, by backend and direction", ["backend", "direction"]
)
LLM_RATE_LIMIT_WAITS = Counter(
    "llm_rate_limit_waits_total", "Model calls that waited on a token bucket", ["backend"]
)
LLM_RATE_LIMIT_WAIT_SECONDS = Counter(
    "llm_rate_limit_wait_seconds_total", "Seconds spent waiting on token buckets", ["backend"]
)
RUNS_FINISHED = Counter(
    "agent_runs_finished_total", "Runs that ended, by agent and status", ["agent", "status"]
)


class ActiveWorkflowsCollector:
    """active_workflows{agent,status}: runs queued, running or waiting for approval, from the DB."""

    def collect(self):
        from django.db.models import Count

        from agents.models import ACTIVE_RUN_STATUSES, Run

        gauge = GaugeMetricFamily(
            "active_workflows", "Agent runs in progress", labels=["agent", "status"]
        )
        rows = (
            Run.objects.unscoped("metrics: totals across tenants, no tenant data exposed")
            .filter(status__in=sorted(ACTIVE_RUN_STATUSES))
            .values("agent_name", "status")
            .annotate(n=Count("id"))
        )
        for row in rows:
            gauge.add_metric([row["agent_name"], row["status"]], row["n"])
        yield gauge


def registry_for_scrape() -> CollectorRegistry:
    import os

    from prometheus_client import REGISTRY

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:  # a single process (e.g. a shell): its own registry is the whole truth
        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):
            registry.register(collector)
    registry.register(ActiveWorkflowsCollector())
    return registry
