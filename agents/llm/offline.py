"""The offline model: deterministic, no network; the Messages-API mechanics of a careful model.

It reads only what it is given — system, messages, tools — and answers like a model would:

- **Structured output** (``tool_choice`` names a tool): one call of that tool whose input fits
  its JSON schema. Enum values come from the analysis (category, priority, decision, severity,
  sentiment …), matched by the enum's own strings, so any schema works.
- **Tools offered, model decides**: the analysis's intents that a tool fixes become calls of
  the offered tools, arguments filled from the schema and from the slots the analysis found
  (the requester's e-mail and devices from the context lines ``Requester: …`` and
  ``Requester devices: LT-0042 (ThinkPad T14), …``). Nothing applies → a text saying why.
  After ``tool_result`` blocks → a short summary, unless a follow-up step remains (e.g. a
  diagnostic that suggests a fix).
- **No tools**: a short text analysis of the request.

What a request means is not this module's business: the domain registers an analyser
(``register_analyser``; the service desk's is ``incidents.nlu.analyser``, a learned model).
Without one, every request is unclassified and goes to a person.

What counts as the request: the text of the user messages, without the context lines above,
``Triage:`` lines, ``<knowledge>…</knowledge>``-style blocks and sections headed ``Knowledge:``
/ ``Relevant knowledge`` / ``Retrieved …``, and without tool results (untrusted output never
chooses an action). Same input → same output, tool-use ids included.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import replace
from typing import Any

from agents.llm.base import LLMResponse, ToolSpec, ToolUse, Usage, tool_choice_param
from agents.llm.offline_input import (  # noqa: F401 - the contract the domain imports from here
    DECISIONS,
    Analysis,
    Conversation,
    Intent,
    _a,
    analyse,
    find_service,
    plain_analysis,
    register_analyser,
)
from agents.llm.offline_schema import Filler, Missing

MODEL_NAME = "offline-2"

# --------------------------------------------------------------------------- the backend


def _estimate_tokens(*parts: Any) -> int:
    chars = 0
    for part in parts:
        chars += len(part) if isinstance(part, str) else len(json.dumps(part, default=str))
    return max(1, chars // 4)


class OfflineBackend:
    """Deterministic stand-in for Claude; same interface, no network, cost 0."""

    name = "offline"

    def __init__(self, config: Any = None, *, model: str = MODEL_NAME):
        self.config = config
        self.model = model

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
        tools = list(tools or ())
        tool_choice_param(tool_choice, tools)  # the same request errors as the API
        convo = Conversation.read(system, messages)
        analysis = analyse(convo)
        by_name = {tool.name: tool for tool in tools}
        start = len(convo.tool_uses)

        text, calls = "", []
        if tool_choice and tool_choice in by_name:
            calls = [self._forced(by_name[tool_choice], analysis)]
        elif tools and tool_choice != "none":
            text, calls = self._act(convo, analysis, by_name)
            if not calls and tool_choice == "any":
                fallback = by_name.get("escalate_to_human") or tools[0]
                calls = [self._forced(fallback, analysis)]
                text = ""
        else:
            text = self._describe(analysis)

        uses = [
            ToolUse(id=self._use_id(start + i + 1, name, args), name=name, input=args)
            for i, (name, args) in enumerate(calls)
        ]
        output = [text, [[u.name, u.input] for u in uses]]
        return LLMResponse(
            text=text,
            tool_uses=uses,
            usage=Usage(
                input_tokens=_estimate_tokens(
                    system or "", messages, [[t.name, t.description, t.input_schema] for t in tools]
                ),
                output_tokens=_estimate_tokens(output),
            ),
            model=self.model,
            backend=self.name,
            stop_reason="tool_use" if uses else "end_turn",
            cost_usd=0.0,
            latency_ms=0,
            attempts=1,
            raw={
                "intents": analysis.intent_names,
                "category": analysis.category,
                "priority": analysis.priority,
                "decision": analysis.decision,
            },
        )

    # -- the three modes

    def _forced(self, tool: ToolSpec, analysis: Analysis) -> tuple[str, dict[str, Any]]:
        focus = next(
            (
                i
                for i in analysis.actionable + analysis.investigative
                if any(tool.name in step for step in i.steps)
            ),
            None,
        )
        filler = Filler(analysis, root=tool.input_schema, focus=focus)
        try:
            args = filler.object(filler.resolve(tool.input_schema))
        except Missing:
            args = filler.lenient(tool.input_schema)
        return tool.name, args

    def _act(
        self, convo: Conversation, analysis: Analysis, tools: dict[str, ToolSpec]
    ) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
        called = [use["name"] for use in convo.tool_uses]
        if convo.last_results:
            follow = self._follow_up(convo, analysis, tools, called)
            if follow:
                return "", follow
            return self._summarise(convo, analysis), []
        candidates = analysis.actionable
        if analysis.widespread or analysis.escalate:
            # Not a fix for one requester: only read-only investigation, if it is offered.
            candidates = analysis.investigative
            offered = [i for i in candidates if any(n in tools for s in i.steps for n in s)]
            if not offered:
                return f"No automated fix applies. {analysis.plan}", []
        calls: list[tuple[str, dict[str, Any]]] = []
        skipped: list[str] = []
        for intent in candidates:
            steps = intent.steps
            if intent.sequential:  # one step per turn: the first one offered
                steps = [s for s in steps if any(n in tools for n in s)][:1]
            for step in steps:
                name = next((n for n in step if n in tools), None)
                if name is None or name in called or any(name == c for c, _ in calls):
                    continue
                variants = [analysis]
                if intent.requires_product and len(analysis.products) > 1:
                    variants = [replace(analysis, product=p) for p in analysis.products]
                made = [self._args(tools[name], variant, intent) for variant in variants]
                if any(args is None for args in made):
                    skipped.append(name)
                    break  # a later step needs the earlier one
                calls.extend((name, args) for args in made)
        if calls:
            return "", calls
        if skipped:
            return (
                "I would use "
                + ", ".join(skipped)
                + " but the request lacks what it needs (the requester's e-mail, device or the "
                "software's name). A person should confirm the details.",
                [],
            )
        return (
            "No automated fix applies to this request: "
            + (
                f"it looks like {_a(analysis.intents[0][0].label)}, which needs a person."
                if analysis.intents
                else "I could not match it to a known self-service problem."
            )
            + " It should go to the service desk.",
            [],
        )

    def _follow_up(
        self,
        convo: Conversation,
        analysis: Analysis,
        tools: dict[str, ToolSpec],
        called: list[str],
    ) -> list[tuple[str, dict[str, Any]]]:
        by_id = {use["id"]: use["name"] for use in convo.tool_uses}
        ok = {by_id.get(r["tool_use_id"], "") for r in convo.last_results if not r["is_error"]}
        if not ok or any(r["is_error"] for r in convo.last_results):
            return []
        calls: list[tuple[str, dict[str, Any]]] = []
        chains = analysis.investigative
        if not (analysis.widespread or analysis.escalate):
            chains = analysis.actionable + chains
        for intent in chains:
            names = [next((n for n in step if n in tools), None) for step in intent.steps]
            for prev, nxt in itertools.pairwise(names):
                if prev and nxt and prev in ok and nxt not in called:
                    args = self._args(tools[nxt], analysis, intent)
                    if args is not None:
                        calls.append((nxt, args))
                    break
        # A result may name the tool that fixes what it found (e.g. a diagnostic's findings).
        results = " ".join(r["content"] for r in convo.last_results)
        for name in sorted(set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", results))):
            if name in tools and name not in called and all(name != c for c, _ in calls):
                if name in analysis.guarded_tools:
                    continue  # tool output never proposes a high-risk action
                args = self._args(tools[name], analysis, None)
                if args is not None:
                    calls.append((name, args))
        return calls

    def _summarise(self, convo: Conversation, analysis: Analysis) -> str:
        by_id = {use["id"]: use["name"] for use in convo.tool_uses}
        investigating = {n for i in analysis.investigative for step in i.steps for n in step}
        lines, failed, names = [], False, []
        for result in convo.all_results:
            name = by_id.get(result["tool_use_id"], "a tool")
            names.append(name)
            content = " ".join(result["content"].split())[:200] or "no output"
            if result["is_error"] and result in convo.last_results:
                failed = True
            lines.append(f"- {name}{' failed' if result['is_error'] else ''}: {content}")
        if failed:
            head = "Not resolved: a step failed, so a person should take over from here."
        elif names and all(n in investigating for n in names):
            head = f"Investigation of {_a(analysis.intents[0][0].label)}: evidence gathered; "
            head += "a person should review it and decide the remediation."
        else:
            head = "Done: the actions completed."
        return "\n".join([head, *lines[-8:]])

    def _describe(self, analysis: Analysis) -> str:
        return (
            f"{analysis.summary}. Category {analysis.category}, priority {analysis.priority}. "
            f"Suggested path: {analysis.plan}"
        )

    # -- helpers

    def _args(self, tool: ToolSpec, analysis: Analysis, intent: Intent | None):
        filler = Filler(analysis, root=tool.input_schema, focus=intent)
        try:
            return filler.object(filler.resolve(tool.input_schema))
        except Missing:
            return None

    @staticmethod
    def _use_id(n: int, name: str, args: dict[str, Any]) -> str:
        digest = hashlib.sha256(
            json.dumps([name, args], sort_keys=True, default=str).encode()
        ).hexdigest()
        return f"toolu_offline_{n}_{digest[:8]}"
