"""What the analyser reads in telemetry: failure messages, and behaviours across calls.

Classification is by message and behaviour first, status code second: a quota message under a
403 is a rate limit, throttling under a 400 is a rate limit, a 200 whose body then fails to
parse is a schema change, a call that dies at a round deadline with no error is a timeout.
Each detector returns ``{category: strength}`` (0..1); the analyser combines them.
"""

from __future__ import annotations

import re
from collections import defaultdict

CATEGORIES = (
    "tool_schema_mismatch",
    "rate_limited",
    "tool_permission",
    "timeout",
    "planner_loop",
    "retrieval_empty",
    "prompt_regression",
    "unknown",
)

_PATTERNS = {
    "rate_limited": re.compile(
        r"rate[ _-]?limit|too many requests|throttl|quota|usage limit|requests per|"
        r"retry[ _-]?after|slow down|resource[ _-]?exhausted|overloaded|\b429\b",
        re.I,
    ),
    "tool_permission": re.compile(
        r"permission|forbidden|unauthori[sz]ed|access[ _-]?denied|not (allowed|authorized|permitted)|"
        r"insufficient[ _-]?(scope|privilege|right)|missing scope|invalid[ _-]?(token|credential|api key)|"
        r"expired[ _-]?(token|credential)|authenticat|\bacl\b|\biam\b|\b40[13]\b",
        re.I,
    ),
    "timeout": re.compile(
        r"time[ _-]?d? ?out|timed out|deadline|took too long|etimedout|read timeout|"
        r"connect(ion)? timeout|\b50[4]\b|\b408\b",
        re.I,
    ),
    "tool_schema_mismatch": re.compile(
        r"schema|validation|missing required|required (field|param|argument|property)|"
        r"invalid (argument|parameter|field|type|value|request body|json)|unexpected (field|keyword|"
        r"argument|property|key|response)|unknown (field|parameter|argument)|type ?error|"
        r"cannot parse|could not parse|failed to parse|parse error|json ?decode|deserializ|"
        r"keyerror|key error|no such field|unrecognized (field|argument)|shape|format changed|"
        r"is not of type|additional properties",
        re.I,
    ),
    "planner_loop": re.compile(
        r"max(imum)?[ _-]?(iterations?|steps|turns)|iteration limit|recursion limit|step limit|"
        r"infinite loop|stuck in a loop|loop detected|repeated the same",
        re.I,
    ),
    "retrieval_empty": re.compile(
        r"no (relevant )?(results|documents|matches|hits|context|passages)|0 (results|documents|hits)|"
        r"empty (result|retrieval|context)|nothing found|not found in (the )?(index|knowledge)",
        re.I,
    ),
}
_STATUS = {
    429: ("rate_limited", 0.6),
    401: ("tool_permission", 0.6),
    403: ("tool_permission", 0.6),
    408: ("timeout", 0.6),
    504: ("timeout", 0.6),
    400: ("tool_schema_mismatch", 0.45),
    422: ("tool_schema_mismatch", 0.6),
}
_GUARD_TYPES = {
    "schema_validation": "tool_schema_mismatch",
    "rate_limited": "rate_limited",
    "rate_limit": "rate_limited",
    "permission": "tool_permission",
    "policy": "tool_permission",
    "timeout": "timeout",
    "loop": "planner_loop",
    "loop_detected": "planner_loop",
}
EMPTY_RESULT = re.compile(
    r"^\s*(|\[\]|\{\}|null|none|0 results?|no results?( found)?|empty|nothing found|"
    r"no (documents|matches|hits)( found)?)\s*\.?\s*$",
    re.I,
)
RETRIEVAL_TOOL = re.compile(r"search|retriev|lookup|query|find|rag|vector|knowledge|kb|index", re.I)
# Specific words a generic failure message lacks.
GENERIC_ERROR = re.compile(
    r"^\s*(|error|failed|failure|internal( server)? error|unknown( error)?|exception|"
    r"something went wrong|500)\s*\.?\s*$",
    re.I,
)


def classify_text(text: str) -> dict[str, float]:
    """Categories a failure message points at, by what it says."""
    found: dict[str, float] = {}
    for category, pattern in _PATTERNS.items():
        if pattern.search(text or ""):
            found[category] = 0.9
    # A quota or throttling message is a rate limit whatever else it says (403 quota, 400
    # throttled); a permission word then only describes the refusal.
    if "rate_limited" in found:
        found.pop("tool_permission", None)
        found.pop("tool_schema_mismatch", None)
    # "validation" and "invalid" are common words: a more specific reason in the same message
    # (a denied permission, a deadline) is the better reading.
    if "tool_schema_mismatch" in found and len(found) > 1:
        found["tool_schema_mismatch"] = 0.7
    return found


def classify_call(call: dict, guards: list[dict]) -> dict[str, float]:
    """A failed call: its message, its guardrail events, its status code, its latency."""
    text = " ".join(
        str(call.get(k) or "") for k in ("error_class", "error_message", "result_summary")
    )
    scores = classify_text(text)
    for g in guards:
        category = _GUARD_TYPES.get(g.get("guardrail_type", ""))
        if category:
            scores[category] = max(scores.get(category, 0), 0.8)
        for cat, s in classify_text(g.get("message", "")).items():
            scores[cat] = max(scores.get(cat, 0), s - 0.1)
    code = call.get("status_code")
    if code in _STATUS and not scores:
        category, strength = _STATUS[code]
        scores[category] = strength
    if code is not None and 200 <= code < 300 and "tool_schema_mismatch" in scores:
        scores["tool_schema_mismatch"] = 0.95  # the call succeeded, its response did not parse
    if not text.strip() and hits_deadline(call.get("latency_ms") or 0):
        scores["timeout"] = max(scores.get("timeout", 0), 0.8)
    return scores


def hits_deadline(ms: int) -> bool:
    """A latency sitting on a round deadline (within 3% under a whole number of seconds ≥ 5 s,
    or 30 s and more): what a client-side timeout with no error class looks like."""
    if ms >= 30_000:
        return True
    if ms < 4_850:
        return False
    nearest = round(ms / 1000) * 1000
    return nearest >= 5000 and 0 <= nearest - ms <= nearest * 0.03


def loops(calls: list[dict], *, threshold: int = 3) -> list[list[dict]]:
    """Groups of calls with the same tool, arguments hash and result, repeated ≥ threshold."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for call in calls:
        if call.get("status") in ("success", "failure"):
            key = (
                call["tool_name"],
                call.get("args_hash") or "",
                (call.get("result_summary") or "").strip().lower(),
                (call.get("error_message") or "").strip().lower(),
            )
            groups[key].append(call)
    return [g for g in groups.values() if len(g) >= threshold and g[0].get("status") == "success"]


def empty_retrievals(calls: list[dict]) -> dict[str, list[dict]]:
    """Per tool: successful calls that came back empty, when the tool never returned anything."""
    by_tool: dict[str, list[dict]] = defaultdict(list)
    nonempty: set[str] = set()
    for call in calls:
        if call.get("status") != "success":
            continue
        if EMPTY_RESULT.match(call.get("result_summary") or "") or _PATTERNS[
            "retrieval_empty"
        ].search(call.get("result_summary") or ""):
            by_tool[call["tool_name"]].append(call)
        else:
            nonempty.add(call["tool_name"])
    return {tool: calls for tool, calls in by_tool.items() if tool not in nonempty}
