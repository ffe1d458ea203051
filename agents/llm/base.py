"""The one interface to a language model: messages + tool schemas → text, tool calls, usage.

Backends (``agents.llm.anthropic_backend``, ``agents.llm.offline``) implement ``LLMBackend``.
``agents.llm.get_backend(config)`` builds one from an ``agents.llm.config.LLMConfig``
(``LLMConfig.from_settings(**tenant_overrides)``): ``offline`` when no API key is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, description, JSON schema of its input."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolUse:
    """One tool call the model asked for."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class LLMResponse:
    text: str
    tool_uses: list[ToolUse]
    usage: Usage
    model: str
    backend: str
    stop_reason: str = "end_turn"
    cost_usd: float = 0.0
    latency_ms: int = 0
    attempts: int = 1  # calls made, retries included
    rate_limit_wait_ms: int = 0  # time spent waiting on the token buckets
    raw: dict[str, Any] = field(default_factory=dict)
    retry_wait_ms: int = 0  # time spent in backoff between attempts (retry-after included)

    def assistant_message(self) -> dict[str, Any]:
        """This turn as an Anthropic-style assistant message, to append to ``messages``
        before sending the tool results back (``{"type": "tool_result", "tool_use_id": ...}``)."""
        if isinstance(self.raw.get("content"), list):  # the API's own blocks (thinking included)
            return {"role": "assistant", "content": self.raw["content"]}
        content: list[dict[str, Any]] = []
        if self.text:
            content.append({"type": "text", "text": self.text})
        for use in self.tool_uses:
            content.append({"type": "tool_use", "id": use.id, "name": use.name, "input": use.input})
        return {"role": "assistant", "content": content}


class LLMError(Exception):
    """The model call failed. ``retryable`` says whether trying again later may help."""

    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class LLMUnavailable(LLMError):
    """Transient: rate limited, overloaded, timed out, 5xx, circuit open — after bounded retries."""

    retryable = True


class LLMRequestError(LLMError):
    """Permanent: bad request, authentication, spend limit. Retrying will not heal it."""

    retryable = False


def tool_choice_param(tool_choice: str | None, tools: list[ToolSpec]) -> dict[str, Any] | None:
    """The Messages API's ``tool_choice`` for ours: None → auto, "any" → any, "none" → none,
    a tool's name → that tool. A name that is not offered is a request error (the API would
    answer 400), for every backend alike."""
    if not tools:
        if tool_choice not in (None, "auto", "none"):
            raise LLMRequestError(f"tool_choice {tool_choice!r} given but no tools offered")
        return None
    if tool_choice in (None, "auto"):
        return {"type": "auto"}
    names = [t.name for t in tools]
    if tool_choice in names:
        return {"type": "tool", "name": tool_choice}
    if tool_choice == "any":
        return {"type": "any"}
    if tool_choice == "none":
        return {"type": "none"}
    raise LLMRequestError(f"tool_choice {tool_choice!r} names no offered tool ({', '.join(names)})")


class LLMBackend(Protocol):
    name: str
    model: str

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
        """One model turn. ``messages`` are Anthropic-style dicts ({"role", "content"}).

        ``tool_choice``: None (model decides), "any" (must call some tool) or a tool name
        (must call that tool). ``limit_key`` names the per-tenant rate-limit buckets (None: the
        config's ``limit_key``); ``max_tokens`` None: the config's.
        Raises LLMUnavailable (transient, after retries) or LLMRequestError (permanent).
        """
        ...
