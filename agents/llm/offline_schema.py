"""How the offline model fills a JSON schema from an analysis: enum values matched by their
own spelling, strings and numbers by the property's name, required values it cannot know
raised as ``Missing`` (the caller then proposes nothing rather than guess)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from agents.llm.offline_input import Analysis, Intent

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


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9+]+", value.lower()) if w]


# --------------------------------------------------------------------------- schema filling


class Missing(Exception):
    """A required value cannot be filled from what the model knows (e.g. no e-mail)."""


@lru_cache(maxsize=1024)  # a schema's enums repeat on every call: a pure function of them
def _family_for(values: tuple[str, ...], name: str) -> str | None:
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


@lru_cache(maxsize=8192)
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
    family = _family_for(tuple(strings), name)
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
