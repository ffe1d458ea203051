"""What the offline model reads: the conversation, and the analysis the domain makes of it.

``Conversation.read`` separates the request (user text without context lines, retrieved
knowledge or tool results) from its context. ``analyse`` hands it to the analyser the domain
registered (``register_analyser``); ``Intent`` and ``Analysis`` are the contract between them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DECISIONS = ("auto_resolve", "answer", "redirect", "incident", "human")


@dataclass(frozen=True)
class Intent:
    """What a kind of request means for the agent (the domain fills a catalogue of these)."""

    name: str
    label: str  # what it is, in words
    category: str
    steps: tuple[tuple[str, ...], ...] = ()  # tools in order; each step: candidate tool names
    plan: str = ""
    escalate: bool = False  # a person owns it (security incident, outage …)
    needs_approval: bool = False  # the fix exists but policy will want a reviewer
    sequential: bool = False  # one step per turn, looking at each result (else all at once)
    requires_product: bool = False  # only an intent when a product is named
    targets_account: bool = False  # acts on a person's account (never someone else's)


EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SERVICES_RE = re.compile(r"(?im)^[ \t]*(?:affected[ \t]+)?services?[ \t]*:[ \t]*(.*)$")
CONTEXT_LINE_RE = re.compile(
    r"(?im)^[ \t]*(requester(?:[ \t]*e-?mail)?|requester[ \t]+devices?|triage)[ \t]*:.*$"
)
KNOWLEDGE_BLOCK_RE = re.compile(
    r"(?is)<(knowledge|documents?|context|kb|articles?|retrieved|search_results?|sources?)\b[^>]*>"
    r".*?</\1\s*>"
)
KNOWLEDGE_HEADER_RE = re.compile(
    r"(?i)^[ \t]*(#+[ \t]*)?(relevant[ \t]+)?(knowledge(?:[ \t]+base)?|kb[ \t]+articles?|"
    r"retrieved\b[^:\n]*|similar tickets|runbooks?|golden paths?|references?)[ \t]*:"
)
SECTION_START_RE = re.compile(
    r"(?i)^[ \t]*(ticket\b|title[ \t]*:|description[ \t]*:|requester|triage[ \t]*:|request[ \t]*:)"
)


# --------------------------------------------------------------------------- reading the input


def _block_field(block: Any, name: str, default: Any = None) -> Any:
    if isinstance(block, dict):
        return block.get(name, default)
    return getattr(block, name, default)


def _text_of(content: Any) -> str:
    """Plain text of a message content or a tool_result content."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif _block_field(block, "type") == "text":
                parts.append(str(_block_field(block, "text", "")))
        return "\n".join(parts)
    return str(content)


def strip_knowledge(text: str) -> str:
    """Drop retrieved documents: tagged blocks, and sections under a knowledge header."""
    text = KNOWLEDGE_BLOCK_RE.sub("\n", text)
    kept, skipping = [], False
    for line in text.splitlines():
        if KNOWLEDGE_HEADER_RE.match(line):
            skipping = True
            continue
        if skipping and SECTION_START_RE.match(line):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


@dataclass
class Conversation:
    """What the offline model reads from system + messages."""

    request: str  # the request text (user text minus context, knowledge, tool results)
    context: str  # system + all user text (for context lines)
    tool_uses: list[dict[str, Any]] = field(default_factory=list)  # every earlier tool_use
    last_results: list[dict[str, Any]] = field(default_factory=list)  # tool_results, last turn
    all_results: list[dict[str, Any]] = field(default_factory=list)  # every tool_result

    @classmethod
    def read(cls, system: str, messages: list[dict[str, Any]]) -> Conversation:
        request_parts: list[str] = []
        context_parts: list[str] = [system or ""]
        tool_uses: list[dict[str, Any]] = []
        last_results: list[dict[str, Any]] = []
        all_results: list[dict[str, Any]] = []
        for index, message in enumerate(messages or []):
            role = _block_field(message, "role", "")
            content = _block_field(message, "content", "")
            blocks = content if isinstance(content, list | tuple) else None
            if role == "assistant":
                for block in blocks or []:
                    if _block_field(block, "type") == "tool_use":
                        tool_uses.append(
                            {
                                "id": _block_field(block, "id", ""),
                                "name": _block_field(block, "name", ""),
                                "input": _block_field(block, "input", {}) or {},
                            }
                        )
                continue
            if role != "user":
                continue
            text = _text_of(content)
            context_parts.append(text)
            request_parts.append(text)
            results = []
            for block in blocks or []:
                if _block_field(block, "type") == "tool_result":
                    results.append(
                        {
                            "tool_use_id": _block_field(block, "tool_use_id", ""),
                            "content": _text_of(_block_field(block, "content", "")),
                            "is_error": bool(_block_field(block, "is_error", False)),
                        }
                    )
            all_results += results
            if index == len(messages) - 1:
                last_results = results
        request = strip_knowledge("\n".join(request_parts))
        request = CONTEXT_LINE_RE.sub("", request).strip()
        return cls(request, "\n".join(context_parts), tool_uses, last_results, all_results)


# --------------------------------------------------------------------------- analysis


@dataclass
class Analysis:
    """What the request is and is about; made by the registered analyser."""

    text: str  # request, original case
    lower: str
    intents: list[tuple[Intent, float]]  # found, strongest first
    email: str
    devices: list[tuple[str, str]]  # (asset tag, model)
    device: str
    product: str  # the first of products
    service: str
    ticket: str
    title: str
    category: str
    priority: str
    decision: str  # one of DECISIONS
    confidence: float
    widespread: bool
    escalate: bool  # not for the agent to fix: only read-only investigation
    sentiment: str
    category_scores: dict[str, float]
    plan: str = ""
    products: list[str] = field(default_factory=list)
    guarded_tools: frozenset[str] = frozenset()  # a tool result never proposes these

    @property
    def intent_names(self) -> list[str]:
        return [intent.name for intent, _ in self.intents]

    @property
    def actionable(self) -> list[Intent]:
        """Intents with a fix a tool can apply (policy may still want approval)."""
        return [intent for intent, _ in self.intents if intent.steps and not intent.escalate]

    @property
    def investigative(self) -> list[Intent]:
        """Intents a person owns, with read-only tools that gather evidence for them."""
        return [intent for intent, _ in self.intents if intent.steps and intent.escalate]

    @property
    def summary(self) -> str:
        what = ", ".join(intent.label for intent, _ in self.intents[:3]) or "unclassified request"
        who = f" for {self.email}" if self.email else ""
        return f"{what[0].upper()}{what[1:]}{who}: {self.title}"[:400]


Analyser = Callable[["Conversation"], Analysis]
_analyser: list[Analyser] = []


def register_analyser(analyser: Analyser) -> None:
    """The domain's analyser (one; registering again replaces it)."""
    _analyser[:] = [analyser]


def analyse(convo: Conversation) -> Analysis:
    return _analyser[0](convo) if _analyser else plain_analysis(convo)


def plain_analysis(convo: Conversation) -> Analysis:
    """No domain registered: nothing is classified, a person decides."""
    text = convo.request
    email = EMAIL_RE.search(convo.context)
    title = next((line.strip()[:160] for line in text.splitlines() if line.strip()), "(no text)")
    return Analysis(
        text=text,
        lower=text.lower(),
        intents=[],
        email=email.group(0) if email else "",
        devices=[],
        device="",
        product="",
        service=find_service(convo.context, text.lower()),
        ticket="",
        title=title,
        category="other",
        priority="medium",
        decision="human",
        confidence=0.35,
        widespread=False,
        escalate=True,
        sentiment="neutral",
        category_scores={},
        plan="No automated fix applies; a person should take it.",
    )


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def find_service(context: str, lower: str) -> str:
    for line in SERVICES_RE.findall(context):
        for item in re.split(r"[,;]", line):
            name = re.sub(r"[^a-z0-9_-]+", "-", item.strip().lower()).strip("-")
            if name:
                return name[:40]
    patterns = (
        r"\b([a-z][a-z0-9_-]{2,39})\s+(?:api|service|worker|nodes?|cluster|database|db)\b",
        r"\b(?:on|in|for|of)\s+(?:the\s+)?([a-z][a-z0-9_-]{2,39})\s+(?:service|api)\b",
        r"(?m)\b(?:on|in)\s+(?:the\s+)?([a-z][a-z0-9_-]{2,39})[ \t]*$",
    )
    stop = {"the", "our", "this", "that", "database", "connection", "all", "my", "your", "pool"}
    for pattern in patterns:
        for match in re.finditer(pattern, lower):
            if match.group(1) not in stop:
                return match.group(1)
    return ""
