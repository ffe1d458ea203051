"""A scripted stand-in for the model: returns queued responses, records what it was asked.

It obeys whatever it is told to say — including instructions injected in a ticket — which
is exactly what the policy tests need: the model proposing anything, policy deciding.
"""

from __future__ import annotations

from agents.llm.base import LLMResponse, LLMUnavailable, ToolUse, Usage


class ScriptedBackend:
    name = "scripted"
    model = "scripted-1"

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[dict] = []

    def complete(
        self, *, system, messages, tools=(), tool_choice=None, max_tokens=None, limit_key="global"
    ):
        self.requests.append(
            {
                "system": system,
                "messages": messages,
                "tools": [t.name for t in tools],
                "tool_choice": tool_choice,
            }
        )
        if not self.responses:
            raise AssertionError("the scripted model ran out of responses")
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        if callable(item):
            item = item(system=system, messages=messages, tools=tools, tool_choice=tool_choice)
        return item


def tool_reply(*calls: tuple[str, dict], text: str = "") -> LLMResponse:
    return LLMResponse(
        text=text,
        tool_uses=[
            ToolUse(id=f"toolu_{i}", name=name, input=args) for i, (name, args) in enumerate(calls)
        ],
        usage=Usage(100, 20),
        model="scripted-1",
        backend="scripted",
        stop_reason="tool_use" if calls else "end_turn",
        cost_usd=0.001,
    )


def triage_reply(
    category="access",
    priority="medium",
    decision="auto_resolve",
    confidence=0.9,
    path="Unlock the account",
) -> LLMResponse:
    return tool_reply(
        (
            "submit_triage",
            {
                "category": category,
                "priority": priority,
                "decision": decision,
                "confidence": confidence,
                "suggested_path": path,
            },
        )
    )


def unavailable(message="529 overloaded") -> LLMUnavailable:
    return LLMUnavailable(message, status_code=529)
