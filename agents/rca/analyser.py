"""The evidence-first analyser: telemetry in, a report that cites only what it indexed.

Deterministic and offline. Steps:
1. Index the evidence: the run's error, failed and blocked tool calls, failed steps, guardrail
   events, repeated and empty calls, baseline runs — each with a stable evidence id.
2. Find the root failure: the first failure that was neither overcome (a later call of the
   same tool succeeded, or its step still succeeded) nor tolerated (continue-on-error step);
   a failure the run's own error names wins over an earlier one.
3. Score every category from that failure's message and behaviour and from run-wide
   behaviours (loops, empty retrieval, a baseline that passed).
4. Answer: the best-supported category with hypotheses citing index ids, or
   insufficient_evidence with data-collection actions when nothing specific supports one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from agents.rca import library, signals
from agents.telemetry.evidence import baseline_ev, run_ev

SUPPORTED = 0.5  # the least score that counts as evidence for a category


@dataclass
class Analysis:
    run: dict
    items: list[dict]
    baselines: list[dict]
    index: dict[str, dict] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    cites: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    root: dict | None = None

    @cached_property
    def calls(self) -> list[dict]:
        return [i for i in self.items if i["type"] == "tool_call"]

    @cached_property
    def steps(self) -> dict[str, dict]:
        return {i["id"]: i for i in self.items if i["type"] == "step"}

    def guards_of(self, call_id: str) -> list[dict]:
        return [i for i in self.items if i["type"] == "guardrail" and i.get("call_id") == call_id]

    def cite(self, item: dict, *, kind: str, title: str, snippet: str, **attributes) -> str:
        ev = item["evidence_id"]
        if ev not in self.index:
            self.index[ev] = {
                "evidence_id": ev,
                "kind": kind,
                "ref_id": item["id"],
                "title": title[:200],
                "snippet": (snippet or "")[:500],
                "attributes": {k: v for k, v in attributes.items() if v not in (None, "")},
            }
        else:
            self.index[ev]["attributes"].update({k: v for k, v in attributes.items() if v})
        return ev

    def support(self, category: str, score: float, evidence: list[str], note: str = "") -> None:
        if score > self.scores.get(category, 0):
            self.scores[category] = round(score, 3)
            if note:
                self.notes[category] = note
        self.cites.setdefault(category, [])
        for ev in evidence:
            if ev not in self.cites[category]:
                self.cites[category].append(ev)


def analyse(run: dict, items: list[dict], baselines: list[dict] | None = None) -> dict:
    a = Analysis(run=run, items=items, baselines=baselines or [])
    if run.get("status") == "success":
        return _report(a, insufficient="The run succeeded: there is no failure to explain.")
    _run_error(a)
    _root_failure(a)
    _failed_steps(a)
    _loops(a)
    _empty_retrieval(a)
    _regression(a)
    return _report(a)


# -- 1 + 2: the failures ----------------------------------------------------------------------


def _failure_text(call: dict) -> str:
    return " ".join(str(call.get(k) or "") for k in ("error_class", "error_message")).strip()


def _recovered(a: Analysis, call: dict) -> bool:
    step = a.steps.get(call.get("step_id") or "")
    if step is not None and step["status"] == "success" and _outlived(step, call):
        return True  # the step went on past the failure and still succeeded
    later = [c for c in a.calls if c["at"] >= call["at"] and c is not call]
    return any(c["tool_name"] == call["tool_name"] and c["status"] == "success" for c in later)


def _outlived(step: dict, call: dict) -> bool:
    """Did the step end after the call did? (A model step that only chose the tool did not.)"""
    call_end = call.get("ended_at") or (
        call["at"] + timedelta(milliseconds=call.get("latency_ms") or 0) if call.get("at") else None
    )
    if step.get("ended_at") is None or call_end is None:
        return True
    return step["ended_at"] >= call_end


def _tolerated(a: Analysis, call: dict) -> bool:
    step = a.steps.get(call.get("step_id") or "")
    return bool(step and step.get("continue_on_error"))


def _named_by_run_error(a: Analysis, call: dict) -> bool:
    text = f"{a.run.get('error_type') or ''} {a.run.get('error_message') or ''}".lower()
    if not text.strip():
        return False
    message = (call.get("error_message") or "").lower()
    return call["tool_name"].lower() in text or (bool(message) and message[:40] in text)


def _root_failure(a: Analysis) -> None:
    failed = [c for c in a.calls if c["status"] in ("failure", "blocked")]
    candidates = []
    for call in failed:
        role = "recovered" if _recovered(a, call) else "tolerated" if _tolerated(a, call) else ""
        if role:
            a.cite(
                call,
                kind="tool_call",
                title=f"{role.capitalize()} failure: {call['tool_name']}",
                snippet=_failure_text(call),
                role=role,
                status_code=call.get("status_code"),
                error_class=call.get("error_class"),
            )
        else:
            candidates.append(call)
    if not candidates:
        return
    named = [c for c in candidates if _named_by_run_error(a, c)]
    root = (named or candidates)[0]
    a.root = root
    same = [c for c in candidates if c["tool_name"] == root["tool_name"] and c is not root]
    evidence = [
        a.cite(
            root,
            kind="tool_call",
            title=f"Failed tool call: {root['tool_name']}",
            snippet=_failure_text(root) or root.get("result_summary", ""),
            role="root",
            status_code=root.get("status_code"),
            error_class=root.get("error_class"),
            latency_ms=root.get("latency_ms"),
            args_hash=root.get("args_hash"),
        )
    ]
    for guard in a.guards_of(root["id"]):
        evidence.append(
            a.cite(
                guard,
                kind="guardrail",
                title=f"Guardrail: {guard['guardrail_type']}",
                snippet=guard["message"],
                type=guard["guardrail_type"],
            )
        )
    for call in same:
        evidence.append(
            a.cite(
                call,
                kind="tool_call",
                title=f"Same tool failed again: {call['tool_name']}",
                snippet=_failure_text(call),
                role="repeat",
                status_code=call.get("status_code"),
            )
        )
    scores = signals.classify_call(root, a.guards_of(root["id"]))
    for call in same:
        for category, s in signals.classify_call(call, a.guards_of(call["id"])).items():
            scores[category] = max(scores.get(category, 0), s - 0.05)
    for category, s in scores.items():
        a.support(
            category, s, evidence, note=f"{root['tool_name']} failed: {_failure_text(root)[:200]}"
        )
    if not scores:
        a.support(
            "unknown",
            0.55,
            evidence,
            note=f"{root['tool_name']} failed: {_failure_text(root)[:200]}",
        )


def _run_error(a: Analysis) -> None:
    text = f"{a.run.get('error_type') or ''}: {a.run.get('error_message') or ''}".strip(": ")
    if not text:
        return
    generic = signals.GENERIC_ERROR.match(a.run.get("error_message") or "") and not a.run.get(
        "error_type"
    )
    ev = a.cite(
        {"evidence_id": run_ev(a.run["run_id"]), "id": a.run["run_id"]},
        kind="run",
        title="Run error",
        snippet=text,
        error_type=a.run.get("error_type"),
        generic=bool(generic) or None,
    )
    if generic:
        return
    for category, s in signals.classify_text(text).items():
        a.support(category, s - 0.2, [ev])  # the run's own words, weaker than the failing item


def _failed_steps(a: Analysis) -> None:
    """Failed steps: tolerated ones are decoys; a root step without a tool call is classified."""
    for step in a.steps.values():
        if step["status"] != "failure":
            continue
        role = "tolerated" if step.get("continue_on_error") else ""
        if not role and a.root is not None and a.root.get("step_id") != step["id"]:
            role = "cascade" if step["at"] >= a.root["at"] else ""
        ev = a.cite(
            step,
            kind="step",
            title=f"Failed step: {step['name']}",
            snippet=step.get("output_summary", ""),
            role=role,
            retries=step.get("retries"),
            latency_ms=step.get("latency_ms"),
        )
        if role or a.root is not None:
            if a.root is not None and a.root.get("step_id") == step["id"]:
                for category in list(a.scores):
                    a.support(category, 0, [ev])
            continue
        for category, s in signals.classify_text(step.get("output_summary", "")).items():
            a.support(category, s - 0.1, [ev], note=f"step {step['name']!r} failed")
        if not step.get("output_summary") and signals.hits_deadline(step.get("latency_ms") or 0):
            a.support("timeout", 0.6, [ev], note=f"step {step['name']!r} stopped at a deadline")


# -- 3: behaviours ----------------------------------------------------------------------------


def _loops(a: Analysis) -> None:
    for group in signals.loops(a.calls):
        first = group[0]
        evidence = [
            a.cite(
                c,
                kind="tool_call",
                title=f"Repeated call: {c['tool_name']}",
                snippet=c.get("result_summary") or "(empty result)",
                role="loop",
                args_hash=c.get("args_hash"),
                repeats=len(group),
            )
            for c in group
        ]
        strength = 0.75 if len(group) == 3 else 0.9
        if signals.classify_text(a.run.get("error_message") or "").get("planner_loop"):
            strength = 0.95
        a.support(
            "planner_loop",
            strength,
            evidence,
            note=f"{first['tool_name']} called {len(group)} times with the same arguments and result",
        )


def _empty_retrieval(a: Analysis) -> None:
    looped = {id(c) for g in signals.loops(a.calls) for c in g}
    for tool, calls in signals.empty_retrievals(a.calls).items():
        distinct = {c.get("args_hash") or c["id"] for c in calls if id(c) not in looped}
        if not distinct:
            continue
        evidence = [
            a.cite(
                c,
                kind="tool_call",
                title=f"Empty result: {tool}",
                snippet=str(c.get("args_json"))[:300],
                role="empty_result",
                args_hash=c.get("args_hash"),
            )
            for c in calls
            if id(c) not in looped
        ]
        strength = 0.85 if len(distinct) >= 2 else 0.6
        if signals.RETRIEVAL_TOOL.search(tool):
            strength += 0.05
        a.support(
            "retrieval_empty",
            strength,
            evidence,
            note=f"{len(distinct)} different {tool} queries came back empty",
        )


def _regression(a: Analysis) -> None:
    if not a.baselines:
        return
    evidence = []
    for base in a.baselines[:5]:
        evidence.append(
            a.cite(
                {"evidence_id": baseline_ev(base["run_id"]), "id": base["run_id"]},
                kind="baseline_run",
                title=f"Baseline passed: {base['agent_name']} {base.get('agent_version') or ''}",
                snippet=base.get("match", "same input"),
                agent_version=base.get("agent_version"),
                status=base.get("status"),
            )
        )
    evidence += [
        e["evidence_id"]
        for e in a.index.values()
        if e["kind"] == "step" and e["attributes"].get("role") != "tolerated"
    ]
    strongest_other = max((s for c, s in a.scores.items() if c != "prompt_regression"), default=0)
    tool_explains = a.root is not None and strongest_other >= 0.8
    strength = 0.55 if tool_explains else 0.85
    a.support(
        "prompt_regression",
        strength,
        evidence,
        note=f"version {a.run.get('agent_version') or '?'} failed where "
        f"{a.baselines[0].get('agent_version') or 'a baseline'} passed on the same input",
    )


# -- 4: the report ----------------------------------------------------------------------------


def _confidence(score: float, margin: float) -> str:
    if score >= 0.8 and margin >= 0.15:
        return "high"
    return "medium" if score >= 0.6 else "low"


def _hypothesis(a: Analysis, category: str, margin: float) -> dict:
    note = a.notes.get(category, "")
    return {
        "title": f"{library.TITLES[category]}",
        "category": category,
        "description": f"{library.TITLES[category]}: {note}." if note else library.TITLES[category],
        "evidence_ids": [ev for ev in a.cites.get(category, []) if ev in a.index],
        "confidence": _confidence(a.scores[category], margin),
        "score": a.scores[category],
        "verification_steps": list(library.VERIFY[category]),
    }


def _report(a: Analysis, *, insufficient: str = "") -> dict:
    ranked = sorted(
        (c for c in a.scores if a.scores[c] >= SUPPORTED and a.cites.get(c)),
        key=lambda c: (-a.scores[c], signals.CATEGORIES.index(c)),
    )
    if not ranked and not insufficient:
        insufficient = _why_insufficient(a)
    report = {
        "run_id": a.run["run_id"],
        "category": ranked[0] if ranked and not insufficient else "unknown",
        "insufficient_evidence": bool(insufficient),
        "insufficient_reason": insufficient or None,
        "evidence_index": list(a.index.values()),
        "hypotheses": [],
        "action_items": [],
        "scores": {c: a.scores.get(c, 0.0) for c in signals.CATEGORIES},
        "root_evidence_id": a.root["evidence_id"] if a.root else None,
    }
    if insufficient:
        report["action_items"] = library.data_collection()
        report["summary"] = f"Insufficient evidence: {insufficient}"
        return report
    for i, category in enumerate(ranked[:3]):
        nxt = a.scores[ranked[i + 1]] if i + 1 < len(ranked) else 0
        report["hypotheses"].append(_hypothesis(a, category, a.scores[category] - nxt))
    report["action_items"] = library.actions(ranked[0])
    top = report["hypotheses"][0]
    report["summary"] = f"{top['description']} (confidence {top['confidence']})"
    return report


def _why_insufficient(a: Analysis) -> str:
    missing = []
    if not a.calls:
        missing.append("no tool calls were recorded")
    elif not any(c["status"] in ("failure", "blocked") for c in a.calls):
        missing.append("no tool call failed")
    if not any(s["status"] == "failure" for s in a.steps.values()):
        missing.append("every step reported success")
    if not a.run.get("error_type"):
        missing.append("the run has no error type")
    if signals.GENERIC_ERROR.match(a.run.get("error_message") or ""):
        missing.append(f"its error message is generic ({a.run.get('error_message') or 'empty'!r})")
    detail = "; ".join(missing) or "the recorded failures match no known cause"
    return f"Limited telemetry: {detail}."


def check_citations(report: dict) -> list[str]:
    """Ids cited by hypotheses that are not in the evidence index (must be empty)."""
    known = {e["evidence_id"] for e in report["evidence_index"]}
    return [ev for h in report["hypotheses"] for ev in h["evidence_ids"] if ev not in known]
