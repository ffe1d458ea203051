"""The telemetry contract: seed 002's agent-run payload, validated before anything is stored.

Types and bounds are pydantic's (unknown fields are refused, so a typo is never silently
dropped); the checks that span fields — a step that ends before it starts, a tool call naming
a step the run does not have, too many children — are ``check_run``'s, which names each bad
field by its path (``tool_calls[2].step_id``). Every error is collected before any write.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_CHILDREN = 5000  # steps + tool calls + guardrail events of one run
MAX_BATCH = 500

# Ids become URL parts and page anchors: no spaces, slashes or markup.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
Id = Field(min_length=1, max_length=100, pattern=ID_PATTERN)
Text = Field("", max_length=20_000)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _aware(cls, value):
        # A time without a zone is UTC (comparing naive with aware times would fail).
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class StepIn(_Strict):
    step_id: str = Id
    name: str = Field(min_length=1, max_length=200)
    status: Literal["success", "failure", "running", "skipped"]
    started_at: datetime
    ended_at: datetime | None = None
    input_summary: str | None = Text
    output_summary: str | None = Text
    retries: int = Field(0, ge=0, le=1_000_000)
    latency_ms: int | None = Field(None, ge=0, le=2_000_000_000)
    # Extensions of the seed: a step the agent continues past when it fails, and its usage.
    continue_on_error: bool = False
    tokens_prompt: int = Field(0, ge=0, le=2_000_000_000)
    tokens_completion: int = Field(0, ge=0, le=2_000_000_000)


class ToolCallIn(_Strict):
    call_id: str = Id
    step_id: str | None = Field(None, max_length=100, pattern=ID_PATTERN)
    tool_name: str = Field(min_length=1, max_length=100)
    status: Literal["success", "failure", "running", "blocked", "skipped"]
    args_json: dict[str, Any] = Field(default_factory=dict)
    args_hash: str | None = Field(None, max_length=64)
    result_summary: str | None = Text
    error_class: str | None = Field(None, max_length=100)
    error_message: str | None = Text
    status_code: int | None = Field(None, ge=100, le=599)
    retries: int = Field(0, ge=0, le=1_000_000)
    latency_ms: int | None = Field(None, ge=0, le=2_000_000_000)
    # Extensions: when the call started and ended (else the step's times are used).
    started_at: datetime | None = None
    ended_at: datetime | None = None


class GuardrailIn(_Strict):
    event_id: str = Id
    type: str = Field(min_length=1, max_length=40)
    message: str = Field(min_length=1, max_length=20_000)
    step_id: str | None = Field(None, max_length=100)
    call_id: str | None = Field(None, max_length=100)
    created_at: datetime


class CostIn(_Strict):
    tokens_prompt: int = Field(0, ge=0, le=2_000_000_000)
    tokens_completion: int = Field(0, ge=0, le=2_000_000_000)
    total_cost_usd: float | None = Field(None, ge=0, lt=1_000_000)  # numeric(12, 6)


class RunIn(_Strict):
    run_id: str = Id
    agent_name: str = Field(min_length=1, max_length=100)
    agent_version: str | None = Field("", max_length=40)
    model: str | None = Field("", max_length=100)
    environment: str | None = Field("prod", max_length=40)
    started_at: datetime
    ended_at: datetime | None = None
    status: Literal["success", "failure", "running", "cancelled"]
    error_type: str | None = Field(None, max_length=100)
    error_message: str | None = Text
    trace_id: str | None = Field(None, max_length=100)
    correlation_ids: list[str] = Field(default_factory=list, max_length=50)
    steps: list[StepIn] = Field(default_factory=list)
    tool_calls: list[ToolCallIn] = Field(default_factory=list)
    guardrail_events: list[GuardrailIn] = Field(default_factory=list)
    cost: CostIn = Field(default_factory=CostIn)


class PayloadError(Exception):
    """The payload is invalid; ``fields`` maps each bad field's path to its messages."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {v[0]}" for k, v in fields.items()))
        self.fields = fields


def _path(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


MAX_DEPTH = 32  # nesting of arguments and other JSON values
# NUL is refused by PostgreSQL, a lone surrogate cannot be encoded as UTF-8: both would fail
# deep in the write, so they are named here.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> bool:
    """The fast pass of ``bad_text_paths``: no path strings built, stops at the first fault."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            return False
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                return False
        elif isinstance(item, dict):
            if item and level + 1 > MAX_DEPTH:
                return False
            for key, sub in item.items():
                if UNSTORABLE.search(str(key)):
                    return False
                if isinstance(sub, dict | list):
                    stack.append((sub, level + 1))
                elif isinstance(sub, str) and UNSTORABLE.search(sub):
                    return False
        elif isinstance(item, list):
            stack.extend((sub, level + 1) for sub in item)
    return True


def bad_text_paths(value: Any, path: str = "", found: list | None = None, depth: int = 0):
    """``[(path, message)]`` of strings (keys included) that cannot be stored, and of values
    nested deeper than MAX_DEPTH (iterative: a deep document cannot exhaust the stack)."""
    found = [] if found is None else found
    if depth == 0 and _storable(value):
        return found  # the usual case, without naming every field on the way
    stack = [(value, path, depth)]
    while stack and len(found) < 10:
        item, where, level = stack.pop()
        if level > MAX_DEPTH:
            found.append((where or "body", f"Nested deeper than {MAX_DEPTH} levels."))
        elif isinstance(item, str):
            if UNSTORABLE.search(item):
                found.append(
                    (where or "body", "NUL characters and lone surrogates are not allowed.")
                )
        elif isinstance(item, dict):
            for key, sub in item.items():
                sub_path = f"{where}.{key}" if where else str(key)
                if UNSTORABLE.search(str(key)):
                    found.append((sub_path, "NUL characters and lone surrogates are not allowed."))
                stack.append((sub, sub_path, level + 1))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]", level + 1) for i, sub in enumerate(item))
    return found


def parse_run(data: Any, *, prefix: str = "") -> RunIn:
    """Validate one run payload; raise PayloadError naming every bad field."""
    if not isinstance(data, dict):
        raise PayloadError({prefix or "body": ["A run must be a JSON object."]})
    bad = bad_text_paths(data)
    if bad:
        raise PayloadError({prefix + where: [message] for where, message in bad})
    children = sum(len(data.get(k) or []) for k in ("steps", "tool_calls", "guardrail_events"))
    if children > MAX_CHILDREN:
        message = f"A run carries at most {MAX_CHILDREN} steps, tool calls and guardrail events; this one has {children}."
        raise PayloadError({prefix + "steps": [message]})
    try:
        run = RunIn.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors():
            fields.setdefault(prefix + _path(error["loc"]), []).append(error["msg"])
        raise PayloadError(fields) from None
    errors = check_run(run)
    if errors:
        raise PayloadError({prefix + k: v for k, v in errors.items()})
    return run


def _check_times(errors, path: str, started, ended) -> None:
    if started is not None and ended is not None and ended < started:
        errors.setdefault(f"{path}ended_at", []).append("ends before it starts")


def _unique(errors, items, key: str, path: str) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        value = getattr(item, key)
        if value in seen:
            errors.setdefault(f"{path}[{i}].{key}", []).append(f"duplicate {key} {value!r}")
        seen.add(value)
    return seen


def check_run(run: RunIn) -> dict[str, list[str]]:
    """The checks across fields: times in order, unique ids, references that resolve."""
    errors: dict[str, list[str]] = {}
    _check_times(errors, "", run.started_at, run.ended_at)
    for i, step in enumerate(run.steps):
        _check_times(errors, f"steps[{i}].", step.started_at, step.ended_at)
    step_ids = _unique(errors, run.steps, "step_id", "steps")
    call_ids = _unique(errors, run.tool_calls, "call_id", "tool_calls")
    _unique(errors, run.guardrail_events, "event_id", "guardrail_events")
    for i, call in enumerate(run.tool_calls):
        _check_times(errors, f"tool_calls[{i}].", call.started_at, call.ended_at)
        if call.step_id is not None and call.step_id not in step_ids:
            errors.setdefault(f"tool_calls[{i}].step_id", []).append(
                f"no step {call.step_id!r} in this run"
            )
    for i, event in enumerate(run.guardrail_events):
        if event.step_id is not None and event.step_id not in step_ids:
            errors.setdefault(f"guardrail_events[{i}].step_id", []).append(
                f"no step {event.step_id!r} in this run"
            )
        if event.call_id is not None and event.call_id not in call_ids:
            errors.setdefault(f"guardrail_events[{i}].call_id", []).append(
                f"no tool call {event.call_id!r} in this run"
            )
    return errors


def parse_batch(data: Any) -> list[RunIn]:
    """``{"runs": [...]}`` with at most MAX_BATCH runs, each valid, no run_id twice."""
    if not isinstance(data, dict) or set(data) != {"runs"} or not isinstance(data["runs"], list):
        raise PayloadError({"runs": ['The body must be {"runs": [run, …]}.']})
    if not data["runs"] or len(data["runs"]) > MAX_BATCH:
        raise PayloadError({"runs": [f"Send 1 to {MAX_BATCH} runs; got {len(data['runs'])}."]})
    fields: dict[str, list[str]] = {}
    runs: list[RunIn] = []
    seen: set[str] = set()
    for i, item in enumerate(data["runs"]):
        try:
            run = parse_run(item, prefix=f"runs[{i}].")
        except PayloadError as exc:
            fields.update(exc.fields)
            if len(fields) >= 50:
                break
            continue
        if run.run_id in seen:
            fields.setdefault(f"runs[{i}].run_id", []).append(f"run {run.run_id!r} sent twice")
        seen.add(run.run_id)
        runs.append(run)
    if fields:
        raise PayloadError(fields)
    return runs
