"""Evidence ids: one name per timeline item, shared by the API, the console anchors and RCA.

Seed 002's shapes: ``ev_tool_<call_id>``, ``ev_guard_<event_id>``; steps and the run follow
the same pattern. Ids of ingested items are restricted to ``[A-Za-z0-9._:@-]``, so an
evidence id is also a valid, stable HTML anchor.
"""

from __future__ import annotations


def step_ev(step_id: str) -> str:
    return f"ev_step_{step_id}"


def call_ev(call_id: str) -> str:
    return f"ev_tool_{call_id}"


def guard_ev(event_id: str) -> str:
    return f"ev_guard_{event_id}"


def run_ev(run_id: str) -> str:
    return f"ev_run_{run_id}"


def baseline_ev(run_id: str) -> str:
    return f"ev_baseline_{run_id}"
