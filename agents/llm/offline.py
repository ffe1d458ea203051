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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agents.llm.base import LLMResponse, ToolSpec, ToolUse, Usage, tool_choice_param

MODEL_NAME = "offline-2"
DECISIONS = ("auto_resolve", "answer", "redirect", "incident", "human")

# --------------------------------------------------------------------------- intents


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


# --------------------------------------------------------------------------- enum vocabularies

FAMILIES: dict[str, dict[str, tuple[str, ...]]] = {
    "category": {
        "access": ("access", "identity", "account", "accounts", "iam", "authentication", "login"),
        "network": ("network", "networking", "connectivity", "vpn", "wifi"),
        "hardware": ("hardware", "device", "devices", "peripheral", "peripherals"),
        "software": ("software", "install", "installation"),
        "email": ("email", "e-mail", "mail", "messaging", "collaboration"),
        "security": ("security", "secops", "infosec"),
        "infrastructure": ("infrastructure", "infra", "cloud", "server", "servers", "platform"),
        "application": ("application", "applications", "app", "apps", "business"),
        "other": ("other", "general", "misc", "miscellaneous", "unknown", "none"),
    },
    "priority": {
        "critical": ("critical", "urgent", "p1", "highest", "blocker", "emergency"),
        "high": ("high", "p2", "major", "important"),
        "medium": ("medium", "normal", "moderate", "p3", "standard"),
        "low": ("low", "p4", "minor", "lowest", "trivial"),
    },
    "severity": {
        "critical": ("sev1", "s1", "sev-1", "critical"),
        "high": ("sev2", "s2", "sev-2", "major", "high"),
        "medium": ("sev3", "s3", "sev-3", "moderate", "medium", "minor"),
        "low": ("sev4", "s4", "sev-4", "low", "cosmetic"),
    },
    "decision": {
        "auto_resolve": (
            "auto",
            "auto_resolve",
            "autoresolve",
            "automate",
            "automated",
            "automatic",
            "agent",
            "agent_resolution",
            "self_service",
            "bot",
            "resolve",
        ),
        "human": (
            "human",
            "escalate",
            "escalation",
            "manual",
            "person",
            "human_review",
            "human_escalation",
            "needs_human",
            "review",
        ),
        "answer": ("answer", "reply", "knowledge", "kb", "self_help", "how_to", "howto"),
        "redirect": ("redirect", "route", "reroute", "non_it", "other_team", "forward"),
        "incident": ("incident", "major_incident", "outage", "widespread"),
    },
    "sentiment": {
        "negative": ("negative", "angry", "frustrated", "upset", "unhappy", "dissatisfied"),
        "neutral": ("neutral", "mixed", "calm"),
        "positive": ("positive", "happy", "satisfied", "pleased"),
    },
}

METRICS = (
    (r"\b(5xx|errors?|error rate|failed|failing|failures?)\b", "error_rate"),
    (r"\b(latency|slow|p9[59]|timeouts?|timing out|timed out)\b", "latency_p95_ms"),
    (r"\b(traffic|requests? per|throughput|rpm)\b", "requests_per_min"),
)

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


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9+]+", value.lower()) if w]


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


# --------------------------------------------------------------------------- schema filling


class Missing(Exception):
    """A required value cannot be filled from what the model knows (e.g. no e-mail)."""


def _family_for(values: list[str], name: str) -> str | None:
    hint = name.lower()
    counts: dict[str, int] = {}
    for family, _concepts in FAMILIES.items():
        counts[family] = sum(1 for v in values if _concept(family, v) is not None)
    for family in ("severity", "priority", "category", "decision", "sentiment"):
        if family in hint and counts.get(family):
            return family
    if "urgency" in hint and counts.get("priority"):
        return "priority"
    best = max(counts, key=lambda f: counts[f])
    return best if counts[best] else None


def _concept(family: str, value: str) -> str | None:
    v = value.lower().strip()
    tokens = [t for t in re.split(r"[\s_/-]+", v) if t]
    for concept, synonyms in FAMILIES[family].items():
        if v in synonyms or v.replace("-", "_") in synonyms:
            return concept
    for concept, synonyms in FAMILIES[family].items():
        if any(t in synonyms for t in tokens):
            return concept
    return None


def choose_enum(values: list[Any], name: str, analysis: Analysis) -> Any:
    strings = [v for v in values if isinstance(v, str)]
    if not strings:
        return values[0] if values else None
    family = _family_for(strings, name)
    wanted: dict[str, float] = {}
    if family == "category":
        wanted = dict(analysis.category_scores) or {"other": 1.0}
    elif family in ("priority", "severity"):
        wanted = {analysis.priority: 1.0}
    elif family == "decision":
        # A schema without the analysis's decision (e.g. only auto_resolve / human): a person.
        offered = {_concept("decision", v) for v in strings}
        wanted = {analysis.decision if analysis.decision in offered else "human": 1.0}
    elif family == "sentiment":
        wanted = {analysis.sentiment: 1.0}
    if family:
        best, best_score = None, 0.0
        for value in strings:
            score = wanted.get(_concept(family, value) or "", 0.0)
            if score > best_score:
                best, best_score = value, score
        if best is not None:
            return best
        for fallback in ("other", "medium", "unknown", "general", "none", "normal", "neutral"):
            if fallback in strings:
                return fallback
    # Unknown vocabulary: the value whose words the request uses most (ties: schema order).
    compact = analysis.lower.replace("-", "")
    best, best_score = strings[0], 0
    for value in strings:
        score = sum(
            1
            for w in _words(value)
            if re.search(rf"\b{re.escape(w)}\b", analysis.lower) or (len(w) > 3 and w in compact)
        )
        if score > best_score:
            best, best_score = value, score
    return best


def _fit_string(value: str, schema: dict[str, Any]) -> str:
    max_len = schema.get("maxLength")
    if isinstance(max_len, int) and len(value) > max_len:
        value = value[: max(0, max_len - 1)].rstrip() + "…" if max_len > 1 else value[:max_len]
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and len(value) < min_len:
        value = (value + " " + "(details in the ticket)").strip()
        if len(value) < min_len:
            value = value.ljust(min_len, ".")
    return value


def _matches(value: str, schema: dict[str, Any]) -> bool:
    pattern = schema.get("pattern")
    return not (pattern and not re.search(pattern, value))


class Filler:
    """Fills a JSON schema from an ``Analysis``; ``focus`` is the intent a call is for."""

    def __init__(self, analysis: Analysis, *, root: dict[str, Any], focus: Intent | None = None):
        self.a = analysis
        self.root = root
        self.focus: Intent | None = focus

    # -- dispatch

    def resolve(self, schema: Any) -> dict[str, Any]:
        if not isinstance(schema, dict):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = self.root
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            merged = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.resolve(merged)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                chosen = next(
                    (o for o in options if isinstance(o, dict) and o.get("type") != "null"),
                    options[0],
                )
                rest = {k: v for k, v in schema.items() if k != key}
                return self.resolve({**rest, **self.resolve(chosen)})
        if isinstance(schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            props: dict[str, Any] = dict(merged.get("properties", {}))
            required: list[str] = list(merged.get("required", []))
            for part in schema["allOf"]:
                part = self.resolve(part)
                props.update(part.get("properties", {}))
                required += [r for r in part.get("required", []) if r not in required]
                merged = {**part, **merged}
            merged["properties"], merged["required"] = props, required
            return merged
        return schema

    def value(self, schema: Any, name: str = "", *, required: bool = True) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return choose_enum(schema["enum"], name, self.a)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = (
                "object" if "properties" in schema else "array" if "items" in schema else "string"
            )
        if kind == "object":
            return self.object(schema)
        if kind == "array":
            return self.array(schema, name)
        if kind in ("number", "integer"):
            return self.number(schema, name, integer=kind == "integer")
        if kind == "boolean":
            return self.boolean(schema, name)
        if kind == "null":
            return None
        return self.string(schema, name, required=required)

    def object(self, schema: dict[str, Any]) -> dict[str, Any]:
        props = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        out: dict[str, Any] = {}
        for name, sub in props.items():
            needed = name in required
            try:
                value = self.value(sub, name, required=needed)
            except Missing:
                if needed:
                    raise
                continue
            if not needed and value in ("", None, [], {}):
                continue
            out[name] = value
        for name in required:  # required but not described: a short text
            out.setdefault(name, self.a.summary)
        return out

    def lenient(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Like ``object`` but never raises: what cannot be known becomes an empty string
        (structured output must always come back)."""
        schema = self.resolve(schema)
        out: dict[str, Any] = {}
        required = list(schema.get("required") or [])
        for name, sub in (schema.get("properties") or {}).items():
            try:
                value = self.value(sub, name, required=name in required)
            except Missing:
                value = ""
            if name in required or value not in ("", None, [], {}):
                out[name] = value
        for name in required:
            out.setdefault(name, self.a.summary)
        return out

    def array(self, schema: dict[str, Any], name: str) -> list[Any]:
        items = self.resolve(schema.get("items") or {"type": "string"})
        low = name.lower()
        values: list[Any] = []
        if isinstance(items.get("enum"), list) and items["enum"]:
            values = [choose_enum(items["enum"], name, self.a)]
        elif items.get("type", "string") == "string" and not items.get("enum"):
            if any(w in low for w in ("tool", "action")):
                values = [step[0] for intent in self.a.actionable for step in intent.steps[:1]]
            elif any(w in low for w in ("step", "plan")):
                values = [self.a.plan]
            elif any(w in low for w in ("tag", "keyword", "label", "intent")):
                values = self.a.intent_names[:5]
            elif "service" in low:
                values = [self.a.service] if self.a.service else []
            elif "email" in low:
                values = [self.a.email] if self.a.email else []
            values = [v for v in values if isinstance(v, str) and _matches(v, items)]
            values = [_fit_string(v, items) for v in values]
        elif items.get("type") == "object" and any(w in low for w in ("action", "tool", "step")):
            for intent in self.a.actionable:
                try:
                    values.append(Filler(self.a, root=self.root, focus=intent).object(items))
                except Missing:
                    continue
        min_items = schema.get("minItems", 0) or 0
        while len(values) < min_items:
            values.append(self.value(items, name[:-1] if name.endswith("s") else name))
        max_items = schema.get("maxItems")
        if isinstance(max_items, int):
            values = values[:max_items]
        return values

    def number(self, schema: dict[str, Any], name: str, *, integer: bool) -> float | int:
        low = name.lower()
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if isinstance(schema.get("exclusiveMinimum"), int | float):
            lo = schema["exclusiveMinimum"] + (1 if integer else 1e-6)
        if isinstance(schema.get("exclusiveMaximum"), int | float):
            hi = schema["exclusiveMaximum"] - (1 if integer else 1e-6)
        rank = {"critical": 1, "high": 2, "medium": 3, "low": 4}[self.a.priority]
        if any(w in low for w in ("confidence", "probability", "certainty", "score")):
            value: float = self.a.confidence
            if isinstance(hi, int | float) and hi > 1:
                value = value * hi
        elif "priority" in low or "severity" in low or "urgency" in low:
            value = rank
        elif any(w in low for w in ("minute", "window", "lookback", "since")):
            value = 60
        elif "hour" in low:
            value = 1
        elif any(w in low for w in ("limit", "count", "lines", "top", "max")):
            value = 20
        elif "default" in schema:
            value = schema["default"]
        else:
            value = lo if isinstance(lo, int | float) else 0
        if isinstance(lo, int | float):
            value = max(lo, value)
        if isinstance(hi, int | float):
            value = min(hi, value)
        return round(value) if integer else round(float(value), 2)

    def boolean(self, schema: dict[str, Any], name: str) -> bool:
        low = name.lower()
        if any(w in low for w in ("human", "escalat", "approval", "manual", "review")):
            return self.a.decision != "auto_resolve" or bool(
                self.focus and self.focus.needs_approval
            )
        if any(w in low for w in ("auto", "resolvable", "self_service")):
            return self.a.decision == "auto_resolve"
        if "widespread" in low or "outage" in low:
            return self.a.widespread
        if "notify" in low:
            return True
        return bool(schema.get("default", False))

    def string(self, schema: dict[str, Any], name: str, *, required: bool) -> str:
        low = name.lower()
        a = self.a
        candidates: list[str]
        fmt = schema.get("format", "")
        if fmt == "email" or "email" in low or low in {"user", "upn", "principal", "requester"}:
            candidates = [a.email]
        elif low in {"username", "login", "user_name", "account_name", "samaccountname"}:
            candidates = [a.email.split("@")[0] if a.email else ""]
        elif any(
            w in low for w in ("device", "hostname", "computer", "machine", "asset", "endpoint")
        ):
            candidates = [a.device]
        elif any(w in low for w in ("software", "package", "product", "program")) or (
            low in {"app", "application", "name", "app_name"} and a.product
        ):
            candidates = [a.product]
        elif "ticket" in low or low in {"incident", "incident_id"}:
            candidates = [a.ticket]
        elif "service" in low:
            candidates = [a.service]
        elif "metric" in low:
            candidates = [m for pattern, m in METRICS if re.search(pattern, a.lower)] + [
                "error_rate"
            ]
        elif low in {"query", "pattern", "search", "keywords", "filter", "q"}:
            candidates = [self._query()]
        elif low in {"group", "group_name", "security_group"}:
            candidates = re.findall(
                r"\b([a-z0-9][a-z0-9._-]*-(?:users|group|admins|team|readers|writers|members))\b",
                a.lower,
            )
        elif low in {"system", "system_name", "target_system"}:
            candidates = re.findall(
                r"\b((?:prod|production|staging)-[a-z0-9._-]+|[a-z0-9._-]+-(?:db|prod))\b", a.lower
            )
        elif "category" in low:
            candidates = [a.category]
        elif "priority" in low or "urgency" in low:
            candidates = [a.priority]
        elif "severity" in low:
            candidates = [
                {"critical": "sev1", "high": "sev2", "medium": "sev3", "low": "sev4"}[a.priority]
            ]
        elif "decision" in low:
            candidates = [a.decision, "human"]
        elif "sentiment" in low:
            candidates = [a.sentiment]
        elif any(w in low for w in ("title", "subject", "headline")):
            candidates = [a.title]
        elif any(
            w in low
            for w in ("path", "plan", "resolution", "next_step", "recommend", "remediation")
        ):
            candidates = [a.plan]
        elif "method" in low:
            candidates = ["authenticator_app"]
        elif any(w in low for w in ("platform", "os")):
            model = " ".join(m for t, m in a.devices if t == a.device).lower()
            candidates = ["macos" if "mac" in model else "windows"]
        elif any(w in low for w in ("reason", "justification", "why")):
            candidates = [self._reason()]
        else:
            candidates = [a.summary]
        for candidate in candidates:
            if not candidate:
                continue
            candidate = _fit_string(candidate, schema)
            if _matches(candidate, schema):
                return candidate
        if "default" in schema and isinstance(schema["default"], str):
            return schema["default"]
        if required and any(
            w in low
            for w in ("email", "device", "software", "package", "service", "group", "system")
        ):
            raise Missing(name)
        if required and (fmt == "email" or schema.get("pattern")):
            raise Missing(name)
        return "" if not required else _fit_string(a.summary, schema)

    def _query(self) -> str:
        for pattern, words in (
            (r"\btim(e|ed|ing) ?out\b|\btimeouts?\b", "timeout"),
            (r"\bconnection (pool|slots)\b", "connection"),
            (r"\bdisk\b", "disk"),
            (r"\bpermission denied\b", "permission denied"),
        ):
            if re.search(pattern, self.a.lower):
                return words
        return "error"

    def _reason(self) -> str:
        who = self.a.email or "the requester"
        what = self.focus.label if self.focus else "this request"
        return f"Requested by {who} ({what}): {self.a.title}"


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
