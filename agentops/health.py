"""Live health checks of every part the product depends on."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection

from agentops.celery import app as celery_app


def _error(exc: Exception) -> str:
    return f"error: {type(exc).__name__}: {exc}"[:300]


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _error(exc)
    return "ok"


def check_pgvector() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except Exception as exc:
        return _error(exc)
    return "ok" if row else "error: the vector extension is not installed in this database"


def check_broker() -> str:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        client.ping()
        client.close()
    except Exception as exc:
        return _error(exc)
    return "ok"


WORKER_CACHE_KEY = "health:worker"


def check_worker(timeout: float = 1.5) -> str:
    """A live ping of the workers, answered from the shared cache for a few seconds
    (HEALTH_WORKER_CACHE_SECONDS) so a load balancer's frequent checks do not each wait on
    the broker; the first reply ends the wait (``limit=1``)."""
    from django.core.cache import cache

    ttl = getattr(settings, "HEALTH_WORKER_CACHE_SECONDS", 0)
    if ttl:
        cached = cache.get(WORKER_CACHE_KEY)
        if cached is not None:
            return cached
    try:
        replies = celery_app.control.ping(timeout=timeout, limit=1)
    except Exception as exc:
        return _error(exc)
    result = "ok" if replies else "error: no Celery worker answered a ping"
    if ttl:
        cache.set(WORKER_CACHE_KEY, result, ttl)
    return result


def run_checks() -> dict[str, str]:
    result = {
        "database": check_database(),
        "pgvector": check_pgvector(),
        "broker": check_broker(),
    }
    result["worker"] = check_worker() if result["broker"] == "ok" else "error: broker unreachable"
    return result
