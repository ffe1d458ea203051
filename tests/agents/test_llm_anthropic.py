"""AnthropicBackend: the real anthropic SDK against a local fake Messages API server.

Sleeps between retries are injected (recorded, not slept); the few real waits (client
timeout, breaker cool-down, bucket refill) are well under a second each.
"""

from __future__ import annotations

import time

import pytest

from agents.llm import get_backend
from agents.llm.anthropic_backend import AnthropicBackend, client_for, cost_usd, price_for
from agents.llm.base import LLMRequestError, LLMUnavailable, ToolSpec, ToolUse
from agents.llm.config import LLMConfig
from agents.llm.offline import OfflineBackend
from agents.resilience import TokenBucket

TRIAGE = ToolSpec(
    name="submit_triage",
    description="Record the triage of an IT ticket.",
    input_schema={
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["access", "network", "other"]},
            "priority": {"type": "string", "enum": ["critical", "high", "medium", "low"]},
        },
        "required": ["category", "priority"],
    },
)
UNLOCK = ToolSpec(
    name="unlock_account",
    description="Unlock a locked account.",
    input_schema={
        "type": "object",
        "properties": {"user_email": {"type": "string"}},
        "required": ["user_email"],
    },
)
MESSAGES = [{"role": "user", "content": "Cannot connect to VPN: timeout errors from home."}]


def make_backend(fake, names, **overrides) -> tuple[AnthropicBackend, list[float]]:
    values = {
        "backend": "anthropic",
        "api_key": "test-key",
        "base_url": fake.url,
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "timeout": 5.0,
        "max_retries": 3,
        "max_wait": 30.0,
        "limit_key": f"tenant-{names}",
        "requests_per_minute": 1000,
        "tokens_per_minute": 10_000_000,
        "global_requests_per_minute": 0,  # the real global buckets stay out of these tests
        "global_tokens_per_minute": 0,
        "breaker_name": f"llm:anthropic:{names}",
        "breaker_threshold": 50,
        "breaker_cooldown": 30.0,
    }
    values.update(overrides)
    backend = get_backend(LLMConfig.from_settings(**values))
    assert isinstance(backend, AnthropicBackend)
    sleeps: list[float] = []
    backend.sleep = sleeps.append
    return backend, sleeps


def ask(backend, **kwargs):
    kwargs.setdefault("system", "You are the triage agent.")
    kwargs.setdefault("messages", MESSAGES)
    return backend.complete(**kwargs)


# --------------------------------------------------------------------------- replies


def test_tool_use_reply_is_parsed_with_usage_and_cost(fake_anthropic, redis_names):
    fake_anthropic.reply_tool_use(
        "submit_triage",
        {"category": "network", "priority": "medium"},
        text="Classified.",
        tool_id="toolu_01abc",
        usage=(1000, 200),
    )
    backend, sleeps = make_backend(fake_anthropic, redis_names)
    response = ask(backend, tools=[TRIAGE], tool_choice="submit_triage")
    assert response.tool_uses == [
        ToolUse(
            id="toolu_01abc",
            name="submit_triage",
            input={"category": "network", "priority": "medium"},
        )
    ]
    assert response.text == "Classified."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 200)
    assert response.cost_usd == pytest.approx((1000 * 1.0 + 200 * 5.0) / 1_000_000)
    assert (response.backend, response.model, response.stop_reason) == (
        "anthropic",
        "claude-haiku-4-5",
        "tool_use",
    )
    assert (response.attempts, response.rate_limit_wait_ms, sleeps) == (1, 0, [])
    # The turn can go straight back into the conversation, as the API returned it.
    turn = response.assistant_message()
    assert turn["role"] == "assistant"
    assert turn["content"][1] == {
        "type": "tool_use",
        "id": "toolu_01abc",
        "name": "submit_triage",
        "input": {"category": "network", "priority": "medium"},
    }


def test_text_reply(fake_anthropic, redis_names):
    fake_anthropic.reply_text("No tool applies.", usage=(50, 7))
    backend, _ = make_backend(fake_anthropic, redis_names)
    response = ask(backend, tools=[UNLOCK])
    assert (response.text, response.tool_uses, response.stop_reason) == (
        "No tool applies.",
        [],
        "end_turn",
    )
    assert response.usage.output_tokens == 7


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("submit_triage", {"type": "tool", "name": "submit_triage"}),
        ("any", {"type": "any"}),
        (None, {"type": "auto"}),
    ],
)
def test_tools_and_tool_choice_are_sent_as_the_api_expects(
    fake_anthropic, redis_names, choice, expected
):
    fake_anthropic.reply_text("ok")
    backend, _ = make_backend(fake_anthropic, redis_names)
    ask(backend, tools=[TRIAGE, UNLOCK], tool_choice=choice, max_tokens=300)
    [request] = fake_anthropic.requests
    assert request.path == "/v1/messages"
    # anthropic 2.x sends the key as a bearer token (1.x used x-api-key).
    auth = (request.headers.get("authorization"), request.headers.get("x-api-key"))
    assert auth in (("Bearer test-key", None), (None, "test-key"))
    body = request.body
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 300
    assert body["system"] == "You are the triage agent."
    assert body["messages"] == MESSAGES
    assert body["tools"] == [
        {"name": t.name, "description": t.description, "input_schema": t.input_schema}
        for t in (TRIAGE, UNLOCK)
    ]
    assert body["tool_choice"] == expected


def test_no_tools_sends_neither_tools_nor_tool_choice(fake_anthropic, redis_names):
    fake_anthropic.reply_text("ok")
    backend, _ = make_backend(fake_anthropic, redis_names)
    ask(backend)
    body = fake_anthropic.requests[0].body
    assert "tools" not in body and "tool_choice" not in body
    assert body["max_tokens"] == 256  # the config's


def test_tool_choice_naming_no_offered_tool_is_refused_before_any_request(
    fake_anthropic, redis_names
):
    backend, _ = make_backend(fake_anthropic, redis_names)
    with pytest.raises(LLMRequestError):
        ask(backend, tools=[UNLOCK], tool_choice="submit_triage")
    assert fake_anthropic.requests == []


# --------------------------------------------------------------------------- retries


def test_429_with_retry_after_is_retried_after_that_wait(fake_anthropic, redis_names):
    fake_anthropic.rate_limited(retry_after=1)
    fake_anthropic.reply_text("ok")
    backend, sleeps = make_backend(fake_anthropic, redis_names)
    response = ask(backend)
    assert response.text == "ok"
    assert len(fake_anthropic.requests) == 2
    assert sleeps == [pytest.approx(1.0)]
    assert (response.attempts, response.retry_wait_ms) == (2, 1000)


def test_429_without_retry_after_backs_off_with_jitter(fake_anthropic, redis_names):
    fake_anthropic.rate_limited(retry_after=None)
    fake_anthropic.reply_text("ok")
    backend, sleeps = make_backend(fake_anthropic, redis_names)
    ask(backend)
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= backend.backoff_base


def test_529_and_500_are_retried_then_succeed(fake_anthropic, redis_names):
    fake_anthropic.overloaded()
    fake_anthropic.server_error(500)
    fake_anthropic.reply_text("ok")
    backend, sleeps = make_backend(fake_anthropic, redis_names)
    response = ask(backend)
    assert response.text == "ok"
    assert response.attempts == 3
    assert len(fake_anthropic.requests) == 3
    assert len(sleeps) == 2
    assert sleeps[0] <= backend.backoff_base and sleeps[1] <= backend.backoff_base * 2


def test_persistent_529_gives_up_after_max_retries(fake_anthropic, redis_names):
    for _ in range(5):
        fake_anthropic.overloaded()
    backend, sleeps = make_backend(fake_anthropic, redis_names, max_retries=2)
    with pytest.raises(LLMUnavailable) as caught:
        ask(backend)
    assert len(fake_anthropic.requests) == 3  # max_retries + 1
    assert len(sleeps) == 2
    assert caught.value.status_code == 529
    assert "529" in str(caught.value) and "overloaded_error" in str(caught.value)
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        (400, "invalid_request_error", "messages: field required"),
        (401, "authentication_error", "invalid x-api-key"),
        (403, "permission_error", "Your API key does not have permission"),
        (404, "not_found_error", "model: claude-nonexistent"),
        (400, "invalid_request_error", "Your credit balance is too low to access the API."),
    ],
)
def test_permanent_errors_are_not_retried(fake_anthropic, redis_names, status, kind, message):
    fake_anthropic.error(status, kind, message)
    fake_anthropic.reply_text("never reached")
    backend, sleeps = make_backend(fake_anthropic, redis_names)
    with pytest.raises(LLMRequestError) as caught:
        ask(backend)
    assert len(fake_anthropic.requests) == 1
    assert sleeps == []
    assert caught.value.status_code == status
    assert not caught.value.retryable
    assert backend.breaker.state().failures == 0


def test_spend_limit_429_is_permanent(fake_anthropic, redis_names):
    fake_anthropic.push(
        429,
        {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "The organization has crossed its spend limit.",
                "details": {"error_code": "enforced_spend_limit_reached"},
            },
        },
        headers={"retry-after": "1"},
    )
    backend, sleeps = make_backend(fake_anthropic, redis_names)
    with pytest.raises(LLMRequestError):
        ask(backend)
    assert len(fake_anthropic.requests) == 1 and sleeps == []


def test_server_saying_do_not_retry_is_obeyed(fake_anthropic, redis_names):
    fake_anthropic.error(503, "api_error", "maintenance", headers={"x-should-retry": "false"})
    backend, _ = make_backend(fake_anthropic, redis_names)
    with pytest.raises(LLMUnavailable):
        ask(backend)
    assert len(fake_anthropic.requests) == 1


def test_slow_answer_beyond_the_timeout_is_retried_then_unavailable(fake_anthropic, redis_names):
    fake_anthropic.slow(1.5)
    fake_anthropic.slow(1.5)
    backend, sleeps = make_backend(fake_anthropic, redis_names, timeout=0.3, max_retries=1)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable) as caught:
        ask(backend)
    assert time.monotonic() - started < 1.5  # two 0.3 s timeouts, not the server's 1.5 s
    assert len(fake_anthropic.requests) == 2
    assert len(sleeps) == 1
    assert "timeout" in str(caught.value)


def test_retry_after_beyond_max_wait_fails_without_waiting(fake_anthropic, redis_names):
    fake_anthropic.rate_limited(retry_after=120)
    backend, sleeps = make_backend(fake_anthropic, redis_names, max_wait=10)
    with pytest.raises(LLMUnavailable) as caught:
        ask(backend)
    assert sleeps == [] and len(fake_anthropic.requests) == 1
    assert caught.value.status_code == 429


# --------------------------------------------------------------------------- circuit breaker


def test_breaker_opens_fails_fast_then_a_trial_after_cooldown_closes_it(
    fake_anthropic, redis_names
):
    fake_anthropic.server_error(500)
    fake_anthropic.server_error(502)
    backend, _ = make_backend(
        fake_anthropic, redis_names, max_retries=1, breaker_threshold=2, breaker_cooldown=0.3
    )
    with pytest.raises(LLMUnavailable):
        ask(backend)
    assert len(fake_anthropic.requests) == 2
    assert backend.breaker.state().state == "open"

    with pytest.raises(LLMUnavailable) as caught:
        ask(backend)
    assert "circuit open" in str(caught.value)
    assert len(fake_anthropic.requests) == 2  # nothing reached the server

    time.sleep(0.35)
    assert backend.breaker.state().state == "half_open"
    fake_anthropic.reply_text("back")
    assert ask(backend).text == "back"
    assert len(fake_anthropic.requests) == 3
    assert backend.breaker.state().state == "closed"


def test_breaker_is_shared_by_backends_with_the_same_name(fake_anthropic, redis_names):
    fake_anthropic.overloaded()
    first, _ = make_backend(fake_anthropic, redis_names, max_retries=0, breaker_threshold=1)
    second, _ = make_backend(fake_anthropic, redis_names, max_retries=0, breaker_threshold=1)
    with pytest.raises(LLMUnavailable):
        ask(first)
    with pytest.raises(LLMUnavailable, match="circuit open"):
        ask(second)
    assert len(fake_anthropic.requests) == 1


def test_open_breaker_takes_no_rate_limit_quota(fake_anthropic, redis_names):
    backend, _ = make_backend(fake_anthropic, redis_names, requests_per_minute=1, max_wait=1)
    for _ in range(backend.breaker.threshold):
        backend.breaker.record_failure("HTTP 529 overloaded_error")
    with pytest.raises(LLMUnavailable, match="circuit open"):
        ask(backend)
    backend.breaker.reset()
    fake_anthropic.reply_text("ok")
    assert ask(backend).text == "ok"  # the one request per minute was still there


def test_request_errors_do_not_open_the_breaker(fake_anthropic, redis_names):
    for _ in range(3):
        fake_anthropic.bad_request()
    backend, _ = make_backend(fake_anthropic, redis_names, breaker_threshold=2)
    for _ in range(3):
        with pytest.raises(LLMRequestError):
            ask(backend)
    assert backend.breaker.state().state == "closed"
    assert len(fake_anthropic.requests) == 3


# --------------------------------------------------------------------------- token buckets


def test_bucket_wait_is_recorded(fake_anthropic, redis_names):
    TokenBucket(f"llm:tenant-{redis_names}:rpm", 120).try_take(120)  # drained: 2/s refill
    fake_anthropic.reply_text("ok")
    backend, _ = make_backend(fake_anthropic, redis_names, requests_per_minute=120)
    backend.sleep = time.sleep  # a real wait of about half a second
    response = ask(backend)
    assert 300 <= response.rate_limit_wait_ms <= 1500
    assert response.text == "ok"


def test_max_wait_exceeded_raises_unavailable_without_a_request(fake_anthropic, redis_names):
    fake_anthropic.reply_text("first")
    backend, sleeps = make_backend(fake_anthropic, redis_names, requests_per_minute=1, max_wait=5)
    assert ask(backend).text == "first"
    with pytest.raises(LLMUnavailable) as caught:
        ask(backend)
    assert f"llm:tenant-{redis_names}:rpm" in str(caught.value)
    assert len(fake_anthropic.requests) == 1
    assert sleeps == []


def test_token_budget_per_minute_is_enforced(fake_anthropic, redis_names):
    fake_anthropic.reply_text("first")
    # Each call is estimated at its input chars / 4 + max_tokens (256): two do not fit in 400.
    backend, _ = make_backend(fake_anthropic, redis_names, tokens_per_minute=400, max_wait=1)
    ask(backend)
    with pytest.raises(LLMUnavailable, match=":tpm"):
        ask(backend)
    assert len(fake_anthropic.requests) == 1


def test_tenants_have_independent_buckets(fake_anthropic, redis_names):
    for _ in range(3):
        fake_anthropic.reply_text("ok")
    backend, _ = make_backend(fake_anthropic, redis_names, requests_per_minute=2, max_wait=1)
    ask(backend, limit_key=f"a-{redis_names}")
    ask(backend, limit_key=f"a-{redis_names}")
    with pytest.raises(LLMUnavailable):
        ask(backend, limit_key=f"a-{redis_names}")
    assert ask(backend, limit_key=f"b-{redis_names}").text == "ok"
    assert len(fake_anthropic.requests) == 3


def test_global_bucket_limits_every_tenant(fake_anthropic, redis_names):
    fake_anthropic.reply_text("ok")
    backend, _ = make_backend(fake_anthropic, redis_names, global_requests_per_minute=1, max_wait=1)
    backend.global_bucket = f"llm-global-{redis_names}"
    ask(backend, limit_key=f"a-{redis_names}")
    with pytest.raises(LLMUnavailable, match=f"llm-global-{redis_names}:rpm"):
        ask(backend, limit_key=f"b-{redis_names}")
    assert len(fake_anthropic.requests) == 1


# --------------------------------------------------------------------------- config / factory


def test_get_backend_is_offline_without_a_key(settings):
    settings.ANTHROPIC_API_KEY = ""
    config = LLMConfig.from_settings()
    assert config.backend == "offline"
    assert isinstance(get_backend(config), OfflineBackend)


def test_get_backend_is_anthropic_with_a_key(settings, fake_anthropic):
    settings.ANTHROPIC_API_KEY = "sk-from-settings"
    config = LLMConfig.from_settings(base_url=fake_anthropic.url)
    assert config.backend == "anthropic"
    assert config.max_retries == settings.LLM_MAX_RETRIES
    assert config.requests_per_minute == settings.LLM_REQUESTS_PER_MINUTE
    assert "sk-from-settings" not in repr(config)
    assert isinstance(get_backend(config), AnthropicBackend)


def test_explicit_anthropic_without_a_key_is_a_request_error(settings):
    settings.ANTHROPIC_API_KEY = ""
    with pytest.raises(LLMRequestError):
        get_backend(LLMConfig.from_settings(backend="anthropic"))


def test_overrides_that_are_none_fall_back_to_settings(settings):
    config = LLMConfig.from_settings(requests_per_minute=None, model=None, limit_key="tenant-7")
    assert config.requests_per_minute == settings.LLM_REQUESTS_PER_MINUTE
    assert config.model == settings.ANTHROPIC_MODEL
    assert config.limit_key == "tenant-7"
    with pytest.raises(TypeError):
        LLMConfig.from_settings(colour="blue")
    with pytest.raises(ValueError):
        LLMConfig.from_settings(backend="gpt")


def test_sdk_clients_are_cached_per_key_url_and_timeout(fake_anthropic):
    first = client_for("key-1", fake_anthropic.url, 5.0)
    assert client_for("key-1", fake_anthropic.url, 5.0) is first
    assert client_for("key-2", fake_anthropic.url, 5.0) is not first
    assert client_for("key-1", fake_anthropic.url, 6.0) is not first
    assert first.max_retries == 0  # we retry, not the SDK


def test_price_table():
    assert price_for("claude-sonnet-4-5-20250929") == (3.0, 15.0)
    assert price_for("claude-haiku-4-5") == (1.0, 5.0)
    assert price_for("claude-opus-4-1-20250805") == (15.0, 75.0)
    assert price_for("claude-opus-4-5-20251101") == (5.0, 25.0)
    assert price_for("some-future-model") == (3.0, 15.0)
    assert cost_usd("claude-haiku-4-5", 1_000_000, 1_000_000) == pytest.approx(6.0)
