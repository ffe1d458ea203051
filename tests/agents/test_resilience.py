"""agents.resilience on the real Redis: token buckets, circuit breaker, backoff."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.resilience import (
    CircuitBreaker,
    CircuitOpen,
    RateLimitTimeout,
    TokenBucket,
    _key,
    all_breakers,
    backoff_delay,
    redis_client,
)

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- token bucket


def test_bucket_of_two_per_minute_grants_two_then_asks_to_wait(redis_names):
    bucket = TokenBucket(f"llm:{redis_names}:rpm", 2)
    assert bucket.try_take() == 0.0
    assert bucket.try_take() == 0.0
    wait = bucket.try_take()
    assert 25 < wait <= 30  # one unit refills every 30 s


def test_bucket_is_shared_by_instances_with_the_same_name(redis_names):
    first = TokenBucket(f"shared-{redis_names}", 2)
    second = TokenBucket(f"shared-{redis_names}", 2)
    assert first.try_take() == 0.0
    assert second.try_take() == 0.0
    assert first.try_take() > 0
    assert second.try_take() > 0


def test_bucket_is_shared_across_processes(redis_names):
    name = f"xproc-{redis_names}"
    assert TokenBucket(name, 2).try_take() == 0.0
    code = (
        f"from agents.resilience import TokenBucket\nprint(TokenBucket({name!r}, 2).try_take())\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) == 0.0  # the other process got the second unit
    assert TokenBucket(name, 2).try_take() > 0  # and now this one has to wait


def test_take_waits_then_gives_up_beyond_max_wait(redis_names):
    bucket = TokenBucket(f"wait-{redis_names}", 2)
    bucket.take(2, max_wait=0)
    slept: list[float] = []
    with pytest.raises(RateLimitTimeout) as caught:
        bucket.take(1, max_wait=5, sleep=slept.append)
    assert caught.value.bucket == f"wait-{redis_names}"
    assert caught.value.wait > 5
    assert slept == []  # it did not sleep at all: the wait was known to be too long


def test_take_really_waits_for_the_refill(redis_names):
    bucket = TokenBucket(f"refill-{redis_names}", 120)  # 2 units per second
    assert bucket.try_take(120) == 0.0
    started = time.monotonic()
    waited = bucket.take(1, max_wait=2)
    elapsed = time.monotonic() - started
    assert 0.3 < waited < 0.7
    assert elapsed >= waited * 0.9


def test_buckets_per_tenant_are_independent(redis_names):
    tenant_a = TokenBucket(f"llm:a-{redis_names}:rpm", 2)
    tenant_b = TokenBucket(f"llm:b-{redis_names}:rpm", 2)
    tenant_a.try_take(2)
    assert tenant_a.try_take() > 0
    assert tenant_b.try_take() == 0.0


def test_zero_per_minute_means_unlimited(redis_names):
    bucket = TokenBucket(f"unlimited-{redis_names}", 0)
    assert all(bucket.try_take(10_000) == 0.0 for _ in range(5))
    assert not redis_client().exists(_key("bucket", f"unlimited-{redis_names}"))


def test_a_request_larger_than_the_bucket_still_fits_eventually(redis_names):
    bucket = TokenBucket(f"huge-{redis_names}", 100)
    assert bucket.try_take(5000) == 0.0  # capped at the capacity, not refused for ever


# --------------------------------------------------------------------------- circuit breaker


def test_breaker_opens_after_threshold_and_fails_fast(redis_names):
    breaker = CircuitBreaker(f"svc-{redis_names}", threshold=3, cooldown=30)
    for _ in range(2):
        breaker.record_failure("HTTP 529")
    assert breaker.state().state == "closed"
    breaker.record_failure("HTTP 529")
    state = breaker.state()
    assert (state.state, state.failures, state.last_error) == ("open", 3, "HTTP 529")
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    assert 0 < caught.value.retry_in <= 30


def test_breaker_half_open_lets_one_trial_through_and_success_closes(redis_names):
    breaker = CircuitBreaker(f"svc-{redis_names}", threshold=1, cooldown=0.2)
    breaker.record_failure("boom")
    assert breaker.state().state == "open"
    time.sleep(0.25)
    assert breaker.state().state == "half_open"
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen):
        CircuitBreaker(f"svc-{redis_names}", threshold=1, cooldown=0.2).before_call()
    # The trial key always expires, even if its holder dies (SET NX PX, not HSETNX + EXPIRE).
    assert redis_client().pttl(breaker.trial_key) > 0
    breaker.record_success()
    assert breaker.state().state == "closed"
    breaker.before_call()


def test_failed_trial_reopens_the_breaker(redis_names):
    breaker = CircuitBreaker(f"svc-{redis_names}", threshold=2, cooldown=0.2)
    breaker.record_failure("a")
    breaker.record_failure("b")
    time.sleep(0.25)
    breaker.before_call()
    breaker.record_failure("trial failed")
    assert breaker.state().state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_call_counts_only_failures(redis_names):
    breaker = CircuitBreaker(f"svc-{redis_names}", threshold=2, cooldown=30)

    def fail(exc):
        def fn():
            raise exc

        return fn

    with pytest.raises(ValueError):
        breaker.call(fail(ValueError("down")))
    assert breaker.state().failures == 1
    # An answer that is not a failure (e.g. "not found") means the dependency is up.
    with pytest.raises(KeyError):
        breaker.call(fail(KeyError("nope")), is_failure=lambda e: not isinstance(e, KeyError))
    assert breaker.state().failures == 0
    assert breaker.call(lambda: 42) == 42


def test_a_success_on_a_clean_breaker_writes_nothing_and_resets_a_counted_one(redis_names):
    breaker = CircuitBreaker(f"svc-{redis_names}", threshold=3, cooldown=30)
    other_worker = CircuitBreaker(f"svc-{redis_names}", threshold=3, cooldown=30)

    def meanwhile_another_worker_fails():
        other_worker.record_failure("timeout elsewhere")
        return "ok"

    # Clean when the call went out: its success writes nothing, so the failure recorded
    # meanwhile stands (one Redis round trip per call instead of two).
    assert breaker.call(meanwhile_another_worker_fails) == "ok"
    assert breaker.state().failures == 1
    # With failures counted when the call goes out, a success is what resets them.
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state().failures == 0
    assert not redis_client().exists(breaker.key)


def test_all_breakers_reports_each_breakers_own_cooldown(redis_names):
    breaker = CircuitBreaker(f"svc-{redis_names}", threshold=1, cooldown=600)
    breaker.record_failure("down")
    listed = {b.name: b for b in all_breakers()}
    # With the default 30 s cooldown a breaker opened 0 s ago would still say "open" — but one
    # with 600 s must say "open" too, and keep saying it (the state uses its own cooldown).
    assert listed[f"svc-{redis_names}"].state == "open"
    short = CircuitBreaker(f"short-{redis_names}", threshold=1, cooldown=0.1)
    short.record_failure("down")
    time.sleep(0.15)
    listed = {b.name: b for b in all_breakers()}
    assert listed[f"short-{redis_names}"].state == "half_open"  # not "open" for 30 s


# --------------------------------------------------------------------------- backoff


def test_backoff_honours_retry_after():
    assert backoff_delay(1, retry_after=2.5) == 2.5
    assert backoff_delay(3, retry_after=0) == 0


def test_backoff_is_exponential_with_full_jitter():
    for attempt in range(1, 6):
        limit = min(30.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, base=0.5, cap=30.0) for _ in range(50)]
        assert all(0 <= d <= limit for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert max(backoff_delay(20, base=0.5, cap=4.0) for _ in range(50)) <= 4.0
