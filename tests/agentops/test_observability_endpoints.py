"""/metrics behind an optional token; /healthz answers the worker check from a short cache."""

from __future__ import annotations

import time

from django.core.cache import cache

from agentops import health
from agentops.celery import app as celery_app


def test_metrics_are_open_without_a_token(client, db, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 200 and b"active_workflows" in response.content


def test_metrics_require_the_token_when_one_is_set(client, db, settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-wrong"})
    right = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert b"active_workflows" not in missing.content + wrong.content
    assert right.status_code == 200 and b"active_workflows" in right.content


def test_the_worker_ping_is_cached_so_health_checks_stay_cheap(client, db, settings, monkeypatch):
    settings.HEALTH_WORKER_CACHE_SECONDS = 30
    cache.delete(health.WORKER_CACHE_KEY)
    pings = []

    def ping(timeout, limit=None):
        pings.append(limit)
        time.sleep(0.3)  # what a ping through the broker costs
        return [{"worker@test": {"ok": "pong"}}]

    monkeypatch.setattr(celery_app.control, "ping", ping)
    first = client.get("/healthz")
    started = time.monotonic()
    for _ in range(5):
        again = client.get("/healthz")
    elapsed = time.monotonic() - started
    assert first.json()["worker"] == again.json()["worker"] == "ok"
    assert pings == [1]  # one ping, which stops at the first reply
    assert elapsed < 0.3
    cache.delete(health.WORKER_CACHE_KEY)


def test_without_the_cache_every_check_pings(client, db, settings, monkeypatch):
    settings.HEALTH_WORKER_CACHE_SECONDS = 0
    pings = []
    monkeypatch.setattr(
        celery_app.control, "ping", lambda timeout, limit=None: pings.append(1) or []
    )
    for _ in range(2):
        assert client.get("/healthz").json()["worker"].startswith("error:")
    assert len(pings) == 2
