"""Hand-written telemetry: a tiny builder for seed-002 payloads with realistic times."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class RunBuilder:
    def __init__(
        self,
        run_id: str,
        *,
        agent="support-bot",
        version="2.0.0",
        status="failure",
        error_type=None,
        error_message=None,
        correlation_ids=(),
    ):
        self.t = T0
        self.payload = {
            "run_id": run_id,
            "agent_name": agent,
            "agent_version": version,
            "model": "claude-x",
            "environment": "prod",
            "started_at": _iso(T0),
            "status": status,
            "error_type": error_type,
            "error_message": error_message,
            "correlation_ids": list(correlation_ids),
            "steps": [],
            "tool_calls": [],
            "guardrail_events": [],
            "cost": {"tokens_prompt": 100, "tokens_completion": 20, "total_cost_usd": None},
        }

    def step(self, name, status="success", *, ms=1000, input_summary="", output="", coe=False):
        sid = f"s{len(self.payload['steps']) + 1}"
        start = self.t
        self.t += timedelta(milliseconds=ms)
        self.payload["steps"].append(
            {
                "step_id": sid,
                "name": name,
                "status": status,
                "started_at": _iso(start),
                "ended_at": _iso(self.t),
                "input_summary": input_summary,
                "output_summary": output,
                "retries": 0,
                "latency_ms": ms,
                "continue_on_error": coe,
            }
        )
        return sid

    def call(
        self,
        tool,
        status="success",
        *,
        step=None,
        args=None,
        result="",
        error_class=None,
        error=None,
        code=None,
        ms=200,
        at_offset_ms=0,
    ):
        step = step or self.payload["steps"][-1]["step_id"]
        cid = f"c{len(self.payload['tool_calls']) + 1}"
        step_start = next(s for s in self.payload["steps"] if s["step_id"] == step)["started_at"]
        start = datetime.fromisoformat(step_start.replace("Z", "+00:00")) + timedelta(
            milliseconds=at_offset_ms or 10 * len(self.payload["tool_calls"])
        )
        args = args if args is not None else {"q": cid}
        self.payload["tool_calls"].append(
            {
                "call_id": cid,
                "step_id": step,
                "tool_name": tool,
                "status": status,
                "args_json": args,
                "args_hash": hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[
                    :16
                ],
                "result_summary": result,
                "error_class": error_class,
                "error_message": error,
                "status_code": code,
                "retries": 0,
                "latency_ms": ms,
                "started_at": _iso(start),
            }
        )
        return cid

    def guard(self, type_, message, *, step=None, call=None):
        gid = f"g{len(self.payload['guardrail_events']) + 1}"
        self.payload["guardrail_events"].append(
            {
                "event_id": gid,
                "type": type_,
                "message": message,
                "step_id": step,
                "call_id": call,
                "created_at": _iso(self.t),
            }
        )
        return gid

    def build(self) -> dict:
        self.payload["ended_at"] = _iso(self.t)
        return self.payload
