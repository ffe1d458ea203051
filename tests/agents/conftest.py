"""Fixtures for the agent runtime tests: a fake Anthropic server and unique Redis names."""

from __future__ import annotations

import uuid

import pytest

from tests.agents.fake_anthropic import FakeAnthropic


@pytest.fixture
def fake_anthropic():
    """A real HTTP server speaking the Messages API on 127.0.0.1; script it per test."""
    server = FakeAnthropic().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_names():
    """A unique token for bucket and breaker names; every Redis key containing it is
    deleted afterwards, so tests never share limits or breakers."""
    from agents.resilience import _key, redis_client

    token = f"t{uuid.uuid4().hex[:10]}"
    yield token
    client = redis_client()
    for key in client.scan_iter(match=_key("*") + f"*{token}*"):
        client.delete(key)
