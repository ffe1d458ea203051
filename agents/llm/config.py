"""How to reach a model: backend, model, key, limits. ``LLMConfig.from_settings`` fills the gaps
from Django settings (the "agents / LLM" block); a tenant's own values come in as overrides."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

BACKENDS = ("offline", "anthropic")


@dataclass(kw_only=True)
class LLMConfig:
    backend: str  # "offline" | "anthropic"
    model: str
    api_key: str = ""
    base_url: str = ""  # "" → the SDK's default (or ANTHROPIC_BASE_URL in the environment)
    max_tokens: int
    timeout: float  # seconds per HTTP attempt
    requests_per_minute: int  # per limit_key (tenant); 0 = unlimited
    tokens_per_minute: int  # per limit_key (tenant); 0 = unlimited
    limit_key: str = "global"  # names the per-tenant buckets: llm:{limit_key}:rpm / :tpm
    max_retries: int  # retries after the first attempt (429, 529, 5xx, timeouts, connection)
    max_wait: float  # seconds one call may spend waiting: rate-limit buckets plus backoff
    # Added: the process-wide buckets and the breaker (None → the Django setting at call time).
    global_requests_per_minute: int | None = None
    global_tokens_per_minute: int | None = None
    breaker_name: str = "llm:anthropic"
    breaker_threshold: int | None = None
    breaker_cooldown: float | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown LLM backend {self.backend!r}; expected one of {BACKENDS}")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.max_retries < 0:
            raise ValueError("max_retries must not be negative")

    @classmethod
    def from_settings(cls, **overrides: Any) -> LLMConfig:
        """Settings-based defaults, any field overridden. Overrides that are None are ignored
        (so a tenant's unset value falls back to the setting). Without an explicit backend the
        backend is "anthropic" if there is an API key, else "offline"."""
        from django.conf import settings

        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"LLMConfig has no field(s) {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {
            "model": settings.ANTHROPIC_MODEL,
            "api_key": settings.ANTHROPIC_API_KEY or "",
            "base_url": settings.ANTHROPIC_BASE_URL or "",
            "max_tokens": settings.ANTHROPIC_MAX_TOKENS,
            "timeout": float(settings.ANTHROPIC_TIMEOUT),
            "requests_per_minute": settings.LLM_REQUESTS_PER_MINUTE,
            "tokens_per_minute": settings.LLM_TOKENS_PER_MINUTE,
            "max_retries": settings.LLM_MAX_RETRIES,
            "max_wait": float(settings.LLM_MAX_WAIT_SECONDS),
            "global_requests_per_minute": settings.LLM_GLOBAL_REQUESTS_PER_MINUTE,
            "global_tokens_per_minute": settings.LLM_GLOBAL_TOKENS_PER_MINUTE,
            "breaker_threshold": settings.LLM_BREAKER_THRESHOLD,
            "breaker_cooldown": float(settings.LLM_BREAKER_COOLDOWN_SECONDS),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("backend", "anthropic" if values["api_key"] else "offline")
        return cls(**values)

    def __repr__(self) -> str:  # never print the key
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["api_key"] = "***" if self.api_key else ""
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"LLMConfig({inner})"
