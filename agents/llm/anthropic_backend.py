"""Claude through the ``anthropic`` SDK (Messages API with tool use), behind our own limits.

The SDK client is created with ``max_retries=0``: retries happen here, so that every attempt
first takes from the shared token buckets and passes the circuit breaker.

One ``complete`` call:

1. before each attempt (after failing fast if the breaker is open), take from the token buckets — per tenant (``llm:{limit_key}:rpm`` and
   ``:tpm``) and global (``llm:rpm`` / ``llm:tpm``, ``settings.LLM_GLOBAL_*``) — waiting at most
   ``config.max_wait`` in total (``LLMUnavailable`` beyond that);
2. pass the ``llm:anthropic`` circuit breaker (open → ``LLMUnavailable`` without a request);
3. send the request. 429, 529, 5xx, 408/409, timeouts and connection errors are transient:
   they count against the breaker and are retried up to ``config.max_retries`` times with
   exponential backoff and jitter, honouring ``retry-after``; then ``LLMUnavailable``.
   400, 401, 403, 404, 413, 422 and spend-limit / billing errors are permanent:
   ``LLMRequestError`` at once, no retry, not counted against the breaker.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import anthropic
from django.conf import settings

from agents.llm.base import (
    LLMRequestError,
    LLMResponse,
    LLMUnavailable,
    ToolSpec,
    ToolUse,
    Usage,
    tool_choice_param,
)
from agents.llm.config import LLMConfig
from agents.resilience import (
    CircuitBreaker,
    CircuitOpen,
    RateLimitTimeout,
    TokenBucket,
    backoff_delay,
)

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- prices

# US$ per million tokens (input, output), matched by model-id prefix (ids carry a date suffix).
# Longest prefix wins. Cache writes cost 1.25x input, cache reads 0.1x input.
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus-4-2025": (15.0, 75.0),
    "claude-3-opus": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-3-haiku": (0.25, 1.25),
}
DEFAULT_PRICE = (3.0, 15.0)  # a model not listed is priced like Sonnet (edit PRICES to add)


def price_for(model: str) -> tuple[float, float]:
    best = ""
    for prefix in PRICES:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return PRICES[best] if best else DEFAULT_PRICE


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_write_tokens: int = 0,
    cache_read_tokens: int = 0,
) -> float:
    price_in, price_out = price_for(model)
    total = (
        input_tokens * price_in
        + cache_write_tokens * price_in * 1.25
        + cache_read_tokens * price_in * 0.1
        + output_tokens * price_out
    )
    return round(total / 1_000_000, 8)


# --------------------------------------------------------------------------- the SDK client

_clients: dict[tuple[int, str, str, float], anthropic.Anthropic] = {}
_clients_lock = threading.Lock()


def client_for(api_key: str, base_url: str = "", timeout: float = 60.0) -> anthropic.Anthropic:
    """One SDK client per (api_key, base_url, timeout) in this process (per pid: a forked
    worker never shares the parent's connection pool). The SDK does no retries of its own."""
    key = (os.getpid(), api_key, base_url, float(timeout))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = anthropic.Anthropic(
                api_key=api_key,
                base_url=base_url or None,
                timeout=float(timeout),
                max_retries=0,
            )
            _clients[key] = client
        return client


# --------------------------------------------------------------------------- errors

TRANSIENT_STATUS = frozenset({408, 409, 429, 529})
SPEND_LIMIT_CODES = frozenset(
    {
        "contract_spend_limit_reached",
        "enforced_spend_limit_reached",
        "linked_organization_spend_limit_reached",
        "linked_organization_billing_unavailable",
        "user_profile_billing_not_authorized",
        "user_profile_not_billable",
    }
)
SPEND_LIMIT_WORDS = ("spend limit", "credit balance", "billing", "usage limit", "quota exceeded")


def is_spend_limit(exc: anthropic.APIStatusError) -> bool:
    """Out of money or over the organisation's spend limit: waiting a minute does not help."""
    if exc.status_code == 402:
        return True
    if getattr(exc, "error_code", None) in SPEND_LIMIT_CODES:
        return True
    text = f"{getattr(exc, 'api_message', '') or ''} {exc.message}".lower()
    return exc.status_code in (400, 403, 429) and any(w in text for w in SPEND_LIMIT_WORDS)


def describe(exc: BaseException) -> str:
    """A short label for messages and the breaker: "HTTP 529 overloaded_error: Overloaded"."""
    if isinstance(exc, anthropic.APITimeoutError):
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError):
        return f"connection error ({exc.__cause__ or exc})"[:200]
    if isinstance(exc, anthropic.APIStatusError):
        kind = getattr(exc, "type", None) or ""
        message = getattr(exc, "api_message", None) or ""
        label = f"HTTP {exc.status_code}"
        if kind:
            label += f" {kind}"
        if message:
            label += f": {message}"
        return label[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, anthropic.APIConnectionError):  # APITimeoutError included
        return True
    if isinstance(exc, anthropic.APIStatusError):
        if is_spend_limit(exc):
            return False
        return exc.status_code in TRANSIENT_STATUS or exc.status_code >= 500
    return False


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), if any."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, float(email.utils.mktime_tz(parsed) - time.time()))


def server_says_no_retry(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    return response is not None and response.headers.get("x-should-retry") == "false"


# --------------------------------------------------------------------------- the backend


def estimate_tokens(system: str, messages: list[dict[str, Any]], tools: list[ToolSpec]) -> int:
    """Input tokens, roughly: characters / 4."""
    chars = len(system or "") + len(json.dumps(messages, default=str, ensure_ascii=False))
    for tool in tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.input_schema))
    return chars // 4 + 1


class AnthropicBackend:
    name = "anthropic"
    # The process-wide buckets are "{global_bucket}:rpm" / ":tpm" (tests may rename them).
    global_bucket = "llm"
    # Backoff between attempts when the server gives no retry-after.
    backoff_base = 0.5
    backoff_cap = 20.0

    def __init__(self, config: LLMConfig, *, client: anthropic.Anthropic | None = None):
        if not config.api_key:
            raise LLMRequestError("No Anthropic API key is configured for this tenant.")
        self.config = config
        self.model = config.model
        self.client = client or client_for(config.api_key, config.base_url, config.timeout)
        self.sleep: Callable[[float], None] = time.sleep  # tests inject a fake
        self.breaker = CircuitBreaker(
            config.breaker_name,
            threshold=(
                config.breaker_threshold
                if config.breaker_threshold is not None
                else settings.LLM_BREAKER_THRESHOLD
            ),
            cooldown=(
                config.breaker_cooldown
                if config.breaker_cooldown is not None
                else float(settings.LLM_BREAKER_COOLDOWN_SECONDS)
            ),
        )

    # -- limits ----------------------------------------------------------------------------

    def buckets(self, limit_key: str) -> list[tuple[TokenBucket, str]]:
        """(bucket, "requests" | "tokens"), tenant first, then global."""
        cfg = self.config
        global_rpm = (
            cfg.global_requests_per_minute
            if cfg.global_requests_per_minute is not None
            else settings.LLM_GLOBAL_REQUESTS_PER_MINUTE
        )
        global_tpm = (
            cfg.global_tokens_per_minute
            if cfg.global_tokens_per_minute is not None
            else settings.LLM_GLOBAL_TOKENS_PER_MINUTE
        )
        return [
            (TokenBucket(f"llm:{limit_key}:rpm", cfg.requests_per_minute), "requests"),
            (TokenBucket(f"llm:{limit_key}:tpm", cfg.tokens_per_minute), "tokens"),
            (TokenBucket(f"{self.global_bucket}:rpm", global_rpm), "requests"),
            (TokenBucket(f"{self.global_bucket}:tpm", global_tpm), "tokens"),
        ]

    def _acquire(self, limit_key: str, tokens: int, budget: float) -> float:
        """Take one request and ``tokens`` tokens from every bucket; return the seconds waited."""
        waited = 0.0
        for bucket, unit in self.buckets(limit_key):
            cost = 1 if unit == "requests" else tokens
            try:
                waited += bucket.take(cost, max_wait=max(0.0, budget - waited), sleep=self.sleep)
            except RateLimitTimeout as exc:
                raise LLMUnavailable(
                    f"Rate limit {exc.bucket}: the next slot is {exc.wait:.1f}s away, more than "
                    f"the {self.config.max_wait:g}s this call may wait.",
                    status_code=429,
                ) from exc
        return waited

    def _pass_breaker(self, last: str) -> None:
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            raise LLMUnavailable(
                f"circuit open: the model failed repeatedly, retry in "
                f"{max(exc.retry_in, 0):.0f}s" + (f" (last: {last})" if last else ""),
                status_code=503,
            ) from exc

    # -- the call --------------------------------------------------------------------------

    def complete(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[ToolSpec] = (),
        tool_choice: str | None = None,
        max_tokens: int | None = None,
        limit_key: str | None = None,
    ) -> LLMResponse:
        cfg = self.config
        tools = list(tools or ())
        limit_key = limit_key or cfg.limit_key
        max_tokens = max_tokens or cfg.max_tokens
        params: dict[str, Any] = {
            "model": cfg.model,
            "max_tokens": max_tokens,
            "messages": messages,
        }
        if system:
            params["system"] = system
        if tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                for t in tools
            ]
        choice = tool_choice_param(tool_choice, tools)
        if choice is not None:
            params["tool_choice"] = choice
        estimate = estimate_tokens(system, messages, tools) + max_tokens

        started = time.monotonic()
        bucket_wait = 0.0
        retry_wait = 0.0
        attempts = 0
        last = ""
        while True:
            if self.breaker.state().state == "open":  # fail fast, before taking any quota
                self._pass_breaker(last)
            budget = cfg.max_wait - bucket_wait - retry_wait
            bucket_wait += self._acquire(limit_key, estimate, budget)
            self._pass_breaker(last)  # closed, or claims the half-open trial
            attempts += 1
            try:
                message = self.client.messages.create(**params)
            except anthropic.AnthropicError as exc:
                if not isinstance(exc, anthropic.APIError):  # e.g. credentials: nothing was sent
                    raise LLMRequestError(f"The model client failed: {describe(exc)}") from exc
                if not is_transient(exc):
                    # The API answered: it is up. Permanent errors never reach the breaker's count.
                    self.breaker.record_success()
                    raise LLMRequestError(
                        f"The model rejected the request ({describe(exc)}); not retried.",
                        status_code=getattr(exc, "status_code", None),
                    ) from exc
                last = describe(exc)
                self.breaker.record_failure(last)
                status = getattr(exc, "status_code", None)
                logger.warning("LLM attempt %s failed: %s", attempts, last)
                if attempts > cfg.max_retries or server_says_no_retry(exc):
                    raise LLMUnavailable(
                        f"The model is unavailable after {attempts} attempt(s); last: {last}.",
                        status_code=status,
                    ) from exc
                retry_after = retry_after_seconds(exc)
                delay = backoff_delay(
                    attempts,
                    base=self.backoff_base,
                    cap=max(self.backoff_cap, retry_after or 0.0),
                    retry_after=retry_after,
                )
                if bucket_wait + retry_wait + delay > cfg.max_wait:
                    raise LLMUnavailable(
                        f"The model is unavailable ({last}); waiting {delay:.1f}s more would "
                        f"exceed the {cfg.max_wait:g}s this call may wait.",
                        status_code=status,
                    ) from exc
                self.sleep(delay)
                retry_wait += delay
                continue
            self.breaker.record_success()
            break

        return self._response(
            message,
            started=started,
            attempts=attempts,
            bucket_wait=bucket_wait,
            retry_wait=retry_wait,
        )

    def _response(
        self, message: Any, *, started: float, attempts: int, bucket_wait: float, retry_wait: float
    ) -> LLMResponse:
        texts: list[str] = []
        uses: list[ToolUse] = []
        for block in message.content or []:
            kind = getattr(block, "type", "")
            if kind == "text":
                texts.append(block.text)
            elif kind == "tool_use":
                uses.append(ToolUse(id=block.id, name=block.name, input=dict(block.input or {})))
        usage = message.usage
        input_tokens = int(getattr(usage, "input_tokens", 0) or 0)
        output_tokens = int(getattr(usage, "output_tokens", 0) or 0)
        cache_write = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        cache_read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        model = message.model or self.model
        return LLMResponse(
            text="\n".join(t for t in texts if t),
            tool_uses=uses,
            usage=Usage(
                input_tokens=input_tokens + cache_write + cache_read, output_tokens=output_tokens
            ),
            model=model,
            backend=self.name,
            stop_reason=message.stop_reason or "end_turn",
            cost_usd=cost_usd(model, input_tokens, output_tokens, cache_write, cache_read),
            latency_ms=int((time.monotonic() - started) * 1000),
            attempts=attempts,
            rate_limit_wait_ms=int(bucket_wait * 1000),
            retry_wait_ms=int(retry_wait * 1000),
            raw=message.to_dict(mode="json"),
        )
