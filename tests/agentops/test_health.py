"""GET /healthz: live checks of the database, pgvector, the broker and a Celery worker."""

from __future__ import annotations

import pytest

from agentops.celery import app as celery_app

ALL_OK = {"database": "ok", "pgvector": "ok", "broker": "ok", "worker": "ok"}


def no_other_worker_answers() -> None:
    replies = celery_app.control.ping(timeout=1.0)
    if replies:
        pytest.fail(
            f"A Celery worker outside this test answers on the tests' broker db: {replies}. "
            "Stop it (it shares REDIS_DB with the test suite) and run again.",
            pytrace=False,
        )


@pytest.mark.worker
def test_all_ok_with_a_worker_running(client, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == ALL_OK
    assert "no-cache" in response["Cache-Control"]


def test_503_when_no_worker_answers(client, db):
    no_other_worker_answers()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert set(body) == set(ALL_OK)
    assert {k: v for k, v in body.items() if k != "worker"} == {
        "database": "ok",
        "pgvector": "ok",
        "broker": "ok",
    }
    assert body["worker"].startswith("error:")
    assert "no Celery worker answered" in body["worker"]


def test_503_when_redis_is_unreachable(client, db, settings):
    missing = "/nonexistent-agentops-health/redis.sock"
    settings.REDIS_URL = f"unix://{missing}?db=1"
    # The Celery broker connection needs no patching: with the broker check failing, the
    # worker check is not attempted (a ping through a dead broker would retry for seconds).

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["pgvector"] == "ok"
    assert body["broker"].startswith("error:")
    assert missing in body["broker"]  # the text says what could not be reached
    assert body["worker"] == "error: broker unreachable"
