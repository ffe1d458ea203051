"""The incident responder's reasoning, in code: hypotheses over fault classes scored from
what the observations say, and the remediation each supported hypothesis calls for.

Used by the incident_response blueprint offline (it plans every turn) and with a model (the
model plans the observe turns; the hypotheses and the remediation are still checked here
against the evidence). Nothing here knows scenario names: a hypothesis is supported by log
and trace messages, metric levels, downstream span timings and deploy timing, each signal
citing the observation ("obs-N") it came from.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

ERROR_THRESHOLD = 0.05  # an error rate at or above this is an incident; below, healthy
SUPPORTED_SCORE = 2.0  # a hypothesis needs this much evidence, and a lead over the next
DEPLOY_WINDOW = timedelta(minutes=20)  # errors starting this soon after a deploy implicate it
RESOURCE_METRICS = ("disk_used_pct", "memory_used_pct", "db_pool_in_use_pct", "requests_per_min")

TITLES = {
    "bad_deploy": "a bad deploy",
    "db_pool_exhaustion": "database connection-pool exhaustion",
    "memory_leak": "a memory leak",
    "certificate_expiry": "an expired TLS certificate",
    "dependency_timeout": "a downstream dependency timing out",
    "disk_full": "a full disk",
}
MESSAGES = (
    (re.compile(r"no space left on device|disk (is )?full", re.I), "disk_full"),
    (re.compile(r"certificate (has )?expired|tls handshake fail|x509", re.I), "certificate_expiry"),
    (
        re.compile(r"connections? from the (connection )?pool|pool exhausted|too many conn", re.I),
        "db_pool_exhaustion",
    ),
    (re.compile(r"outofmemory|out of memory|oomkilled|heap space", re.I), "memory_leak"),
    (
        re.compile(r"(call|request) to \S+ timed out|deadline exceeded|upstream timed out", re.I),
        "dependency_timeout",
    ),
)
METRIC_LIMITS = {  # metric → (fault, level at or above which it is a sign)
    "disk_used_pct": ("disk_full", 95.0),
    "memory_used_pct": ("memory_leak", 90.0),
    "db_pool_in_use_pct": ("db_pool_exhaustion", 95.0),
}
SURGE_PCT = 100.0  # requests_per_min doubled: the load behind a pool running dry


def _ok(observations, tool: str, service: str | None = None):
    for obs in observations:
        data = obs.get("data") or {}
        if (
            obs["tool"] == tool
            and obs["ok"]
            and (service is None or data.get("service") == service)
        ):
            yield obs


def onset(observations, service: str) -> datetime | None:
    """When the service's error rate first crossed the threshold (from error_rate reads)."""
    times = [
        parse_datetime(p["at"])
        for obs in _ok(observations, "query_metrics", service)
        if obs["data"].get("metric") == "error_rate"
        for p in obs["data"].get("points") or []
        if float(p["value"]) >= ERROR_THRESHOLD
    ]
    return min(times) if times else None


def _signals(observations, service: str) -> list[tuple[str, float, str, str]]:
    """(fault, weight, obs id, why) for every sign the observations show."""
    found = []
    for obs in observations:
        data = obs.get("data") or {}
        if not obs["ok"]:
            continue
        texts = [line.get("message", "") for line in data.get("lines") or []]
        texts += [t.get("first_error", "") for t in data.get("failing") or []]
        for pattern, fault in MESSAGES:
            hit = next((t for t in texts if pattern.search(t)), None)
            if hit:
                found.append((fault, 1.0, obs["id"], f"message: {hit[:120]}"))
        metric, latest = data.get("metric"), data.get("latest")
        if metric in METRIC_LIMITS and latest is not None:
            fault, level = METRIC_LIMITS[metric]
            if float(latest) >= level:
                found.append((fault, 1.0, obs["id"], f"{metric} at {float(latest):g}"))
        if metric == "requests_per_min" and float(data.get("change_pct") or 0) >= SURGE_PCT:
            why = f"traffic surge: requests_per_min {float(data['change_pct']):+.0f}%"
            found.append(("db_pool_exhaustion", 0.5, obs["id"], why))
        for down in data.get("downstream") or []:
            if down.get("at_timeout"):
                why = f"calls to {down['service']} last {down['max_ms']} ms (the timeout)"
                found.append(("dependency_timeout", 1.0, obs["id"], why))
    started = onset(observations, service)
    for obs in _ok(observations, "get_deploys", service):
        for deploy in obs["data"].get("deploys") or []:
            at = parse_datetime(deploy["at"])
            if started and not deploy["rollback"] and at <= started <= at + DEPLOY_WINDOW:
                minutes = (started - at).total_seconds() / 60
                why = f"errors began {minutes:.0f} min after deploy {deploy['version']}"
                found.append(("bad_deploy", 2.0, obs["id"], why))
    return found


def hypotheses(observations: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    """Every fault class with its score, reasons and cited observations, best first."""
    table = {fault: {"fault": fault, "title": TITLES[fault], "score": 0.0, "evidence": [],
                     "reasons": []} for fault in TITLES}  # fmt: skip
    for fault, weight, obs_id, why in _signals(observations, service):
        row = table[fault]
        row["score"] += weight
        if obs_id not in row["evidence"]:
            row["evidence"].append(obs_id)
        row["reasons"].append(f"{why} [{obs_id}]")
    ranked = sorted(table.values(), key=lambda h: (-h["score"], h["fault"]))
    for index, row in enumerate(ranked):
        runner_up = ranked[1]["score"] if index == 0 and len(ranked) > 1 else ranked[0]["score"]
        row["supported"] = (
            index == 0 and row["score"] >= SUPPORTED_SCORE and row["score"] > runner_up
        )
    return ranked


def supported(ranked: list[dict[str, Any]]) -> dict[str, Any] | None:
    return ranked[0] if ranked and ranked[0]["supported"] else None


def _current(observations, service: str) -> dict[str, Any] | None:
    last = None
    for obs in _ok(observations, "get_deploys", service):
        last = obs["data"]
    return last


def slow_downstream(observations) -> list[str]:
    names = []
    for obs in _ok(observations, "get_traces"):
        for down in obs["data"].get("downstream") or []:
            if down.get("at_timeout") and down["service"] not in names:
                names.append(down["service"])
    return names


def remediation(hypothesis: dict[str, Any], observations, service: str):
    """(tool, args without reason) for the supported hypothesis, or (None, why not)."""
    fault = hypothesis["fault"]
    shape = _current(observations, service)
    if fault == "dependency_timeout":
        downstream = slow_downstream(observations)
        if not downstream:
            return None, "no downstream service was seen at the timeout"
        target = _current(observations, downstream[0])
        if target is None:
            return None, f"the shape of {downstream[0]} is not known yet"
        if not target["current"]["standby_region"]:
            return None, f"{downstream[0]} has no standby region to fail over to"
        return "failover", {"service": downstream[0], "region": target["current"]["standby_region"]}
    if fault == "memory_leak":
        return "restart_service", {"service": service}
    if fault == "disk_full":
        return "clear_cache", {"service": service}
    if shape is None:
        return None, f"the shape of {service} is not known yet"
    current = shape["current"]
    if fault == "bad_deploy":
        previous = shape.get("previous")
        if not previous:
            return None, "no earlier version to roll back to"
        return "rollback_deploy", {"service": service, "to_version": previous["version"]}
    if fault == "db_pool_exhaustion":
        return "scale_service", {"service": service, "replicas": min(100, current["replicas"] * 2)}
    if not current["standby_region"]:
        return None, f"{service} has no standby region to fail over to"
    return "failover", {"service": service, "region": current["standby_region"]}
