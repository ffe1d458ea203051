"""OTLP/HTTP traces (JSON, or protobuf through opentelemetry-proto) onto the same run rows.

An agent instrumented with the OpenTelemetry GenAI conventions sends its spans unchanged:
1. Decode the export request (``resourceSpans`` → spans, ids as hex, attributes flattened).
2. Group by trace: one trace is one run (``otel-<trace id>``). Spans of a trace often arrive
   over several exports, so the spans already received are kept on the run (``input``) and
   merged under a per-run advisory lock before the run is rebuilt.
3. Map: the ``invoke_agent`` span (or the root) is the run (``gen_ai.agent.name``/``version``,
   ``deployment.environment``), ``execute_tool`` spans are tool calls (``gen_ai.tool.name``,
   ``gen_ai.tool.call.arguments``/``result``, ``error.type``, exception events), other spans
   (``chat`` …) are steps; ``gen_ai.usage.*`` tokens add up; span events named ``guardrail*``
   are guardrail events.
4. The payload goes through the seed-002 validation and the same upsert as JSON runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime

from django.db import transaction

from agents.models import Run
from agents.telemetry import rollup, services
from agents.telemetry.schemas import MAX_CHILDREN, PayloadError, bad_text_paths, parse_run

HEX_ID = re.compile(r"^[0-9a-fA-F]{16}$|^[0-9a-fA-F]{32}$")
TOOL_OPS = {"execute_tool"}
AGENT_OPS = {"invoke_agent", "create_agent"}


def decode_protobuf(raw: bytes) -> dict:
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        message = ExportTraceServiceRequest.FromString(raw)
    except (DecodeError, RecursionError) as exc:
        raise PayloadError({"body": [f"Not an OTLP protobuf export request: {exc}"]}) from None
    return MessageToDict(message)


def _id(value) -> str:
    """OTLP JSON ids are hex; protobuf-as-JSON ids are base64. Both become lowercase hex."""
    if not value:
        return ""
    value = str(value)
    if HEX_ID.match(value):
        return value.lower()
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        raise PayloadError({"spans": [f"Bad span or trace id {value[:40]!r}"]}) from None


def _value(v: dict):
    if not isinstance(v, dict):
        return v
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return _attrs(v["kvlistValue"].get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attrs(items) -> dict:
    if not isinstance(items, list):
        raise PayloadError({"attributes": ["Attributes must be a list of key/value pairs."]})
    return {str(kv.get("key")): _value(kv.get("value", {})) for kv in items if isinstance(kv, dict)}


def _time(nanos) -> str | None:
    try:
        n = int(nanos or 0)
    except (TypeError, ValueError):
        raise PayloadError({"startTimeUnixNano": ["Times are nanoseconds since 1970."]}) from None
    if n <= 0:
        return None
    try:
        return datetime.fromtimestamp(n / 1e9, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise PayloadError({"startTimeUnixNano": [f"Time out of range: {n}"]}) from None


def _status(span: dict) -> tuple[str, str]:
    status = span.get("status") or {}
    code = status.get("code", 0)
    error = code in (2, "2", "STATUS_CODE_ERROR")
    return ("ERROR" if error else "OK"), str(status.get("message") or "")


def flatten(doc: dict) -> list[dict]:
    """Every span of the export request as a plain dict; a malformed request is a 400."""
    try:
        return _flatten(doc)
    except (AttributeError, TypeError, ValueError, KeyError, RecursionError):
        raise PayloadError({"resourceSpans": ["Not an OTLP ExportTraceServiceRequest."]}) from None


def _flatten(doc: dict) -> list[dict]:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans", []), list):
        raise PayloadError({"resourceSpans": ["Expected an OTLP ExportTraceServiceRequest."]})
    spans = []
    for rs in doc.get("resourceSpans", []):
        resource = _attrs((rs.get("resource") or {}).get("attributes", []))
        for ss in rs.get("scopeSpans", []) or []:
            for s in ss.get("spans", []) or []:
                status, message = _status(s)
                spans.append(
                    {
                        "trace_id": _id(s.get("traceId")),
                        "span_id": _id(s.get("spanId")),
                        "parent_id": _id(s.get("parentSpanId")),
                        "name": str(s.get("name") or "span")[:200],
                        "start": _time(s.get("startTimeUnixNano")),
                        "end": _time(s.get("endTimeUnixNano")),
                        "status": status,
                        "status_message": message[:5000],
                        "attrs": _attrs(s.get("attributes", [])),
                        "events": [
                            {
                                "name": str(e.get("name", "")),
                                "time": _time(e.get("timeUnixNano")),
                                "attrs": _attrs(e.get("attributes", [])),
                            }
                            for e in s.get("events", []) or []
                        ],
                        "resource": resource,
                    }
                )
    if any(not s["trace_id"] or not s["span_id"] or not s["start"] for s in spans):
        raise PayloadError({"spans": ["Every span needs a traceId, a spanId and a start time."]})
    return spans


def _op(span: dict) -> str:
    return str(span["attrs"].get("gen_ai.operation.name") or "")


def _exception(span: dict) -> tuple[str, str]:
    for event in span["events"]:
        if event["name"] == "exception":
            a = event["attrs"]
            return str(a.get("exception.type") or ""), str(a.get("exception.message") or "")
    return "", ""


def _tokens(spans: list[dict], *keys: str) -> int:
    total = 0
    for span in spans:
        for key in keys:
            value = span["attrs"].get(key)
            if isinstance(value, int | float):
                total += int(value)
                break
    return total


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _args(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"arguments": value}
        return parsed if isinstance(parsed, dict) else {"arguments": parsed}
    return {} if value is None else {"arguments": value}


def _root(spans: list[dict]) -> dict | None:
    agents = [s for s in spans if _op(s) in AGENT_OPS]
    if agents:
        return min(agents, key=lambda s: s["start"])
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if not s["parent_id"] or s["parent_id"] not in ids]
    return (
        min(roots, key=lambda s: s["start"])
        if roots and not any(s["parent_id"] for s in roots)
        else None
    )


def _tool_call(span: dict, step_id: str | None) -> dict:
    a = span["attrs"]
    error_class, error_message = _exception(span)
    failed = span["status"] == "ERROR"
    code = a.get("http.response.status_code") or a.get("http.status_code")
    return {
        "call_id": f"span-{span['span_id']}",
        "step_id": step_id,
        "tool_name": str(a.get("gen_ai.tool.name") or span["name"])[:100],
        "status": "failure" if failed else "success",
        "args_json": _args(a.get("gen_ai.tool.call.arguments")),
        "result_summary": _text(a.get("gen_ai.tool.call.result"))[:20_000],
        "error_class": (str(a.get("error.type") or "") or error_class or None) if failed else None,
        "error_message": (span["status_message"] or error_message or None) if failed else None,
        "status_code": int(code) if isinstance(code, int) and 100 <= code <= 599 else None,
        "started_at": span["start"],
        "ended_at": span["end"],
    }


def _step(span: dict) -> dict:
    a = span["attrs"]
    return {
        "step_id": f"span-{span['span_id']}",
        "name": span["name"],
        "status": "failure"
        if span["status"] == "ERROR"
        else ("success" if span["end"] else "running"),
        "started_at": span["start"],
        "ended_at": span["end"],
        "input_summary": _text(a.get("gen_ai.input.messages") or a.get("gen_ai.prompt"))[:4000],
        "output_summary": (
            span["status_message"]
            or _text(a.get("gen_ai.output.messages") or a.get("gen_ai.completion"))
        )[:4000],
        "tokens_prompt": _tokens([span], "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
        "tokens_completion": _tokens(
            [span], "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"
        ),
    }


def to_payload(trace_id: str, spans: list[dict]) -> dict:
    """One trace's spans as a seed-002 run payload."""
    spans = sorted(spans, key=lambda s: (s["start"], s["span_id"]))
    root = _root(spans)
    resource = (root or spans[0])["resource"]
    ra = (root or {}).get("attrs", {})
    steps, calls, events = [], [], []
    current = None
    for span in spans:
        if span is root:
            continue
        if _op(span) in TOOL_OPS:
            calls.append(_tool_call(span, current))
        else:
            steps.append(_step(span))
            current = steps[-1]["step_id"]
        for e in span["events"]:
            if e["name"].startswith("guardrail"):
                events.append(
                    {
                        "event_id": f"ev-{span['span_id']}-{len(events) + 1}",
                        "type": str(e["attrs"].get("guardrail.type") or e["name"])[:40],
                        "message": str(e["attrs"].get("message") or e["name"])[:20_000],
                        "step_id": None if _op(span) in TOOL_OPS else f"span-{span['span_id']}",
                        "call_id": f"span-{span['span_id']}" if _op(span) in TOOL_OPS else None,
                        "created_at": e["time"] or span["start"],
                    }
                )
    failed = root is not None and root["status"] == "ERROR"
    error_class, error_message = _exception(root) if root else ("", "")
    model = next(
        (
            s["attrs"].get("gen_ai.request.model")
            for s in spans
            if s["attrs"].get("gen_ai.request.model")
        ),
        "",
    )
    conversation = ra.get("gen_ai.conversation.id") or next(
        (
            s["attrs"].get("gen_ai.conversation.id")
            for s in spans
            if s["attrs"].get("gen_ai.conversation.id")
        ),
        None,
    )
    return {
        "run_id": f"otel-{trace_id}",
        "agent_name": str(
            ra.get("gen_ai.agent.name") or resource.get("service.name") or "otel-agent"
        )[:100],
        "agent_version": str(
            ra.get("gen_ai.agent.version") or resource.get("service.version") or ""
        )[:40],
        "model": str(model)[:100],
        "environment": str(
            resource.get("deployment.environment.name")
            or resource.get("deployment.environment")
            or "prod"
        )[:40],
        "started_at": (root or spans[0])["start"],
        "ended_at": root["end"] if root else None,
        "status": ("failure" if failed else "success") if root and root["end"] else "running",
        "error_type": (str(ra.get("error.type") or "") or error_class or None) if failed else None,
        "error_message": (root["status_message"] or error_message or None) if failed else None,
        "trace_id": trace_id,
        "correlation_ids": [str(conversation)] if conversation else [],
        "steps": steps,
        "tool_calls": calls,
        "guardrail_events": events,
        "cost": {
            "tokens_prompt": _tokens(
                spans, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"
            ),
            "tokens_completion": _tokens(
                spans, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"
            ),
            "total_cost_usd": None,
        },
    }


@transaction.atomic
def ingest_spans(*, tenant, spans: list[dict], actor=None) -> list[dict]:
    """Merge the spans into their traces' runs and upsert them; one summary per run."""
    bad = bad_text_paths(spans, "spans")
    if bad:  # the spans are kept as JSON on the run: everything in them must be storable
        raise PayloadError({where: [message] for where, message in bad})
    by_trace: dict[str, dict[str, dict]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], {})[span["span_id"]] = span
    run_ids = [f"otel-{t}" for t in by_trace]
    rollup.lock_runs(tenant.pk, run_ids)
    stored = dict(
        Run.objects.for_tenant(tenant)
        .filter(run_id__in=run_ids, origin="ingested")
        .values_list("run_id", "input")
    )
    runs, inputs = [], {}
    for trace_id, new in by_trace.items():
        merged = {**(stored.get(f"otel-{trace_id}") or {}).get("otlp_spans", {}), **new}
        if len(merged) > MAX_CHILDREN:
            raise PayloadError({"spans": [f"A trace may hold at most {MAX_CHILDREN} spans."]})
        payload = to_payload(trace_id, list(merged.values()))
        runs.append(parse_run(payload, prefix=f"trace {trace_id}: "))
        inputs[payload["run_id"]] = {"otlp_spans": merged}
    return services.ingest_runs(tenant=tenant, runs=runs, actor=actor, via="otlp", inputs=inputs)
