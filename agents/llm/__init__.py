"""The LLM layer: one interface (agents.llm.base), Claude and an offline deterministic model.

from agents.llm import get_backend
from agents.llm.config import LLMConfig

backend = get_backend(LLMConfig.from_settings(model=..., api_key=..., limit_key="tenant-7"))
response = backend.complete(system=..., messages=[...], tools=[ToolSpec(...)])
"""

from __future__ import annotations

from agents.llm.base import (
    LLMBackend,
    LLMError,
    LLMRequestError,
    LLMResponse,
    LLMUnavailable,
    ToolSpec,
    ToolUse,
    Usage,
)
from agents.llm.config import LLMConfig

__all__ = [
    "LLMBackend",
    "LLMConfig",
    "LLMError",
    "LLMRequestError",
    "LLMResponse",
    "LLMUnavailable",
    "ToolSpec",
    "ToolUse",
    "Usage",
    "get_backend",
]


def get_backend(config: LLMConfig | None = None) -> LLMBackend:
    """The backend ``config`` asks for (default: ``LLMConfig.from_settings()``).

    "offline" → ``OfflineBackend``; "anthropic" → ``AnthropicBackend`` on a per-process cached
    SDK client (one per api_key, base_url, timeout). Raises ``LLMRequestError`` when the
    anthropic backend is asked for without an API key.
    """
    if config is None:
        config = LLMConfig.from_settings()
    if config.backend == "offline":
        from agents.llm.offline import OfflineBackend

        return OfflineBackend(config)
    from agents.llm.anthropic_backend import AnthropicBackend

    return AnthropicBackend(config)
