"""Shared fault handling for everything the agents call: the LLM and the connectors.

- ``TokenBucket``: requests/min and tokens/min limits shared by every web and worker process
  through Redis (one atomic Lua script), per tenant and global, with a maximum wait.
- ``CircuitBreaker``: opens after repeated failures, fails fast while open, lets one trial
  call through after the cool-down (half-open), closes again on success. State in Redis, so
  every worker sees the same breaker, and the console can show it.
- ``backoff_delay``: exponential backoff with full jitter, honouring a server's retry-after.

Both fail open when Redis itself is unreachable (restarting, flushed, partitioned): they protect
a dependency, they are not a gate of correctness, so a broker outage must not turn into failed
tool calls and escalated tickets. Each such pass is logged.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from django.conf import settings

T = TypeVar("T")
log = logging.getLogger(__name__)

_client: redis.Redis | None = None
_scripts: dict[tuple[int, str], object] = {}


def redis_client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5
        )
    return _client


def _script(source: str):
    """The registered Lua script (its SHA is computed once per client, not on every call)."""
    client = redis_client()
    key = (id(client), source)
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = client.register_script(source)
    return script


def _key(*parts: str) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "agentops")
    return ":".join([prefix, *parts])


# --------------------------------------------------------------------------- token bucket

# KEYS[1] bucket hash; ARGV: capacity, refill per second, cost, now (seconds, float).
# Returns {granted (0/1), wait_seconds (string)}. Refill is computed lazily from the last time.
_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local granted = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  granted = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return {granted, tostring(wait)}
"""


class RateLimitTimeout(Exception):
    """Waiting for the bucket would exceed the maximum wait."""

    def __init__(self, bucket: str, wait: float):
        super().__init__(f"rate limit {bucket}: would wait {wait:.1f}s, more than allowed")
        self.bucket = bucket
        self.wait = wait


@dataclass
class TokenBucket:
    """``capacity`` units per minute, refilled continuously; shared through Redis."""

    name: str
    per_minute: float

    def try_take(self, cost: float = 1.0) -> float:
        """Take ``cost`` units if available; return 0.0, or the seconds to wait before retrying."""
        if self.per_minute <= 0:
            return 0.0
        cost = min(cost, self.per_minute)  # a single huge request must still fit eventually
        try:
            granted, wait = _script(_BUCKET_LUA)(
                keys=[_key("bucket", self.name)],
                args=[self.per_minute, self.per_minute / 60.0, cost, time.time()],
            )
        except redis.RedisError as exc:  # fail open: see the module docstring
            log.warning("rate limit %s not enforced, Redis unavailable: %s", self.name, exc)
            return 0.0
        return 0.0 if int(granted) else float(wait)

    def take(
        self, cost: float = 1.0, *, max_wait: float, sleep: Callable[[float], None] = time.sleep
    ) -> float:
        """Block until ``cost`` units are granted; return the seconds waited."""
        waited = 0.0
        while True:
            wait = self.try_take(cost)
            if wait <= 0:
                return waited
            if waited + wait > max_wait:
                raise RateLimitTimeout(self.name, waited + wait)
            sleep(wait)
            waited += wait


# --------------------------------------------------------------------------- circuit breaker


class CircuitOpen(Exception):
    """The breaker is open: the dependency failed repeatedly and is given time to recover."""

    def __init__(self, name: str, retry_in: float):
        super().__init__(f"circuit {name} is open; retry in {retry_in:.0f}s")
        self.name = name
        self.retry_in = retry_in


@dataclass
class BreakerState:
    name: str
    state: str  # closed / open / half_open
    failures: int
    opened_at: float | None
    last_error: str


class CircuitBreaker:
    """Counts consecutive failures in Redis; open after ``threshold``, trial after ``cooldown``."""

    def __init__(self, name: str, *, threshold: int = 5, cooldown: float = 30.0):
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self.key = _key("breaker", name)
        self.trial_key = self.key + ":trial"

    def state(self) -> BreakerState:
        try:
            raw = redis_client().hgetall(self.key)
        except redis.RedisError as exc:  # fail open (closed): see the module docstring
            log.warning("circuit %s treated as closed, Redis unavailable: %s", self.name, exc)
            return BreakerState(self.name, "closed", 0, None, "")
        failures = int(raw.get(b"failures", 0))
        opened_at = float(raw[b"opened_at"]) if raw.get(b"opened_at") else None
        state = "closed"
        if opened_at is not None:
            state = "half_open" if time.time() - opened_at >= self.cooldown else "open"
        return BreakerState(
            self.name, state, failures, opened_at, raw.get(b"last_error", b"").decode()
        )

    def before_call(self) -> BreakerState:
        """Raise CircuitOpen if calls must not go out now; else the state seen."""
        current = self.state()
        if current.state == "open":
            raise CircuitOpen(self.name, self.cooldown - (time.time() - (current.opened_at or 0)))
        if current.state == "half_open":
            # Only one trial call: whoever sets the trial key gets it, the others fail fast.
            # SET NX PX is atomic: a crash can never leave a trial key without expiry behind
            # (that would keep the breaker open for ever).
            ttl_ms = int(max(self.cooldown, 1.0) * 1000) + 1000
            try:
                trial = redis_client().set(self.trial_key, time.time(), nx=True, px=ttl_ms)
            except redis.RedisError:
                trial = True  # fail open
            if not trial:
                raise CircuitOpen(self.name, self.cooldown)
        return current

    def record_success(self) -> None:
        try:
            pipe = redis_client().pipeline()
            pipe.delete(self.key)
            pipe.delete(self.trial_key)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("circuit %s: success not recorded, Redis unavailable: %s", self.name, exc)

    def record_failure(self, error: BaseException | str) -> None:
        try:
            self._record_failure(error)
        except redis.RedisError as exc:
            log.warning("circuit %s: failure not recorded, Redis unavailable: %s", self.name, exc)

    def _record_failure(self, error: BaseException | str) -> None:
        client = redis_client()
        failures = client.hincrby(self.key, "failures", 1)
        pipe = client.pipeline()
        # threshold and cooldown are kept so that all_breakers() reports the right state.
        pipe.hset(
            self.key,
            mapping={
                "last_error": str(error)[:300],
                "threshold": self.threshold,
                "cooldown": self.cooldown,
            },
        )
        if failures >= self.threshold:
            pipe.hset(self.key, "opened_at", time.time())
            pipe.delete(self.trial_key)
        pipe.expire(self.key, int(self.cooldown * 20) + 60)
        pipe.execute()

    def call(
        self, fn: Callable[[], T], *, is_failure: Callable[[BaseException], bool] = lambda e: True
    ) -> T:
        """Run ``fn`` behind the breaker. An exception for which ``is_failure`` is false means
        the dependency answered (e.g. "not found"): it counts as a success, not a failure."""
        seen = self.before_call()
        # A clean breaker (no failures, never opened) has nothing for a success to reset: no
        # write. A failure another worker records meanwhile then stands, where a reset would
        # have hidden it; the count is of consecutive failures either way.
        clean = seen.failures == 0 and seen.opened_at is None
        try:
            result = fn()
        except Exception as exc:
            if is_failure(exc):
                self.record_failure(exc)
            elif not clean:
                self.record_success()
            raise
        if not clean:
            self.record_success()
        return result

    def reset(self) -> None:
        self.record_success()


def all_breakers() -> list[BreakerState]:
    """Every breaker that has state in Redis (for the console)."""
    client = redis_client()
    prefix = _key("breaker", "")
    states = []
    for key in sorted(client.scan_iter(match=prefix + "*")):
        name = key.decode()[len(prefix) :]
        if name.endswith(":trial"):
            continue
        raw = client.hmget(key, ["threshold", "cooldown"])
        breaker = CircuitBreaker(
            name,
            threshold=int(float(raw[0])) if raw[0] else 5,
            cooldown=float(raw[1]) if raw[1] else 30.0,
        )
        states.append(breaker.state())
    return states


def breakers_for_tenant(tenant_id: int) -> list[BreakerState]:
    """The breakers one tenant may see: the shared ones and its own (``…:tenant-<id>``)."""
    own = f":tenant-{tenant_id}"
    return [b for b in all_breakers() if ":tenant-" not in b.name or b.name.endswith(own)]


# --------------------------------------------------------------------------- backoff


def backoff_delay(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): full jitter, or retry-after."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cap)
    return random.uniform(0, min(cap, base * (2 ** (attempt - 1))))
