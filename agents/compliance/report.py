"""The compliance report of one tenant for one period, signed with the audit chain head.

Sections (each a list of flat rows, so the page, the CSV and the PDF show the same thing):

- ``privileged``: every privileged action (an approval request: the policy said a person must
  decide) with who requested it, who decided, the decision and the arguments (as proposed,
  and as approved when a reviewer edited them);
- ``overrides``: policy overrides, i.e. the tenant's rules that replace the built-in policy
  for an action, and approvals whose arguments a reviewer edited before approving;
- ``blocked``: tool calls the policy blocked, with their arguments;
- ``refusals``: four-eyes refusals (``approval.refused``: a party to the request tried to
  decide it);
- ``sla_breaches``: ticket and approval SLA breaches.

The signature binds the report to the audit trail as it stood when the report was made: the
chain head (seq and hash of the tenant's newest audit event) and a sha256 digest of the
report's canonical JSON, HMAC-signed with the audit checkpoint key (agentops.audit_witness),
which is not in the database. ``verify`` recomputes the report and checks the head is still
in the chain with the same hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from agentops.models import AuditEvent
from agentops.redaction import redact_value
from agents.models import PolicyRule, ToolCall
from approvals.models import ApprovalRequest

SECTIONS = {
    "privileged": "Privileged actions",
    "overrides": "Policy overrides",
    "blocked": "Blocked attempts",
    "refusals": "Four-eyes refusals",
    "sla_breaches": "SLA breaches",
}
COLUMNS = {
    "privileged": [
        "at",
        "action",
        "subject",
        "requested_by",
        "decided_by",
        "decision",
        "decided_at",
        "arguments",
        "approved_arguments",
    ],
    "overrides": ["at", "kind", "action", "by", "detail"],
    "blocked": ["at", "tool", "reason", "run", "arguments"],
    "refusals": ["at", "who", "request", "reason"],
    "sla_breaches": ["at", "kind", "target", "title", "due"],
}
MAX_ROWS = 5000  # per section; a larger period says so (``truncated``) rather than time out


def _iso(value) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


def _args(value) -> str:
    if value in (None, {}, []):
        return ""
    return json.dumps(redact_value(value)[0], sort_keys=True, ensure_ascii=False)


def _events(tenant, start, end, actions):
    return (
        AuditEvent.objects.for_tenant(tenant)
        .filter(created_at__gte=start, created_at__lt=end, action__in=actions)
        .order_by("created_at", "seq")
    )


def _privileged(tenant, start, end) -> list[dict]:
    requests = (
        ApprovalRequest.objects.for_tenant(tenant)
        .filter(created_at__gte=start, created_at__lt=end)
        .select_related("decided_by", "requested_by")
        .order_by("created_at", "id")[:MAX_ROWS]
    )
    return [
        {
            "at": _iso(r.created_at),
            "action": r.action,
            "subject": r.subject_repr or r.subject_id,
            "requested_by": r.requested_by.get_username()
            if r.requested_by
            else r.requested_by_label,
            "decided_by": r.decided_by.get_username() if r.decided_by else "",
            "decision": r.status,
            "decided_at": _iso(r.decided_at),
            "arguments": _args(r.arguments),
            "approved_arguments": _args(r.edited_arguments),
        }
        for r in requests
    ]


def _overrides(tenant, start, end) -> list[dict]:
    rules = [
        {
            "at": "in force",
            "kind": "policy rule",
            "action": rule.action,
            "by": "tenant admin",
            "detail": f"{rule.get_verdict_display()}: {rule.reason}".strip(": "),
        }
        for rule in PolicyRule.objects.for_tenant(tenant).order_by("action")
    ]
    edited = (
        ApprovalRequest.objects.for_tenant(tenant)
        .filter(decided_at__gte=start, decided_at__lt=end, edited_arguments__isnull=False)
        .select_related("decided_by")
        .order_by("decided_at", "id")[:MAX_ROWS]
    )
    return rules + [
        {
            "at": _iso(r.decided_at),
            "kind": "arguments edited before approval",
            "action": r.action,
            "by": r.decided_by.get_username() if r.decided_by else "",
            "detail": f"{_args(r.arguments)} → {_args(r.edited_arguments)}",
        }
        for r in edited
    ]


def _blocked(tenant, start, end) -> list[dict]:
    events = [
        e
        for e in _events(tenant, start, end, ["policy.verdict"])[: MAX_ROWS * 4]
        if (e.changes or {}).get("verdict") == "block"
    ][:MAX_ROWS]
    calls = dict(
        ToolCall.objects.for_tenant(tenant)
        .filter(call_id__in=[e.target_id for e in events])
        .values_list("call_id", "args_json")
    )
    return [
        {
            "at": _iso(e.created_at),
            "tool": e.target_repr,
            "reason": (e.changes or {}).get("reason", ""),
            "run": (e.metadata or {}).get("run_id", ""),
            "arguments": _args(calls.get(e.target_id)),
        }
        for e in events
    ]


def _refusals(tenant, start, end) -> list[dict]:
    return [
        {
            "at": _iso(e.created_at),
            "who": e.actor_label,
            "request": e.target_repr or f"approval {e.target_id}",
            "reason": (e.metadata or {}).get("reason", ""),
        }
        for e in _events(tenant, start, end, ["approval.refused"])[:MAX_ROWS]
    ]


def _sla_breaches(tenant, start, end) -> list[dict]:
    kinds = {"ticket.sla_breached": "ticket", "approval.sla_breached": "approval"}
    return [
        {
            "at": _iso(e.created_at),
            "kind": kinds[e.action],
            "target": e.target_id,
            "title": e.target_repr,
            "due": (e.metadata or {}).get("due_at") or (e.metadata or {}).get("sla_due") or "",
        }
        for e in _events(tenant, start, end, list(kinds))[:MAX_ROWS]
    ]


def chain_head(tenant, *, at: datetime | None = None) -> dict:
    """The tenant's newest audit event (at or before ``at``): its seq and hash."""
    events = AuditEvent.objects.for_tenant(tenant)
    if at is not None:
        events = events.filter(created_at__lte=at)
    head = events.order_by("-seq").values("seq", "hash").first()
    return head or {"seq": 0, "hash": "0" * 64}


def build(tenant, start: datetime, end: datetime) -> dict:
    """The report's content (no signature): sections of rows and their counts."""
    sections = {
        "privileged": _privileged(tenant, start, end),
        "overrides": _overrides(tenant, start, end),
        "blocked": _blocked(tenant, start, end),
        "refusals": _refusals(tenant, start, end),
        "sla_breaches": _sla_breaches(tenant, start, end),
    }
    return {
        "tenant": tenant.slug,
        "period": {"start": _iso(start), "end": _iso(end)},
        "sections": sections,
        "counts": {name: len(rows) for name, rows in sections.items()},
        "truncated": [name for name, rows in sections.items() if len(rows) >= MAX_ROWS],
    }


def digest(content: dict) -> str:
    body = json.dumps(content, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(body.encode()).hexdigest()


def _signature(payload: dict) -> str:
    from agentops.audit_witness import sign

    return sign(payload)


def generate(tenant, start: datetime, end: datetime, *, now: datetime | None = None) -> dict:
    """The signed report: content, the chain head now, the digest and its HMAC."""
    now = now or timezone.now()
    content = build(tenant, start, end)
    head = chain_head(tenant)
    signed = {
        "tenant": tenant.slug,
        "generated_at": _iso(now),
        "chain_seq": head["seq"],
        "chain_hash": head["hash"],
        "digest": digest(content),
    }
    return {**content, "signature": {**signed, "hmac": _signature(signed)}}


def verify(tenant, report: dict) -> list[str]:
    """What no longer holds about a signed report (empty: it verifies)."""
    problems = []
    signature = dict(report.get("signature") or {})
    given = signature.pop("hmac", "")
    if not hmac.compare_digest(given, _signature(signature)):
        problems.append("The signature does not match (the report or its head was changed).")
    content = {k: v for k, v in report.items() if k != "signature"}
    if digest(content) != signature.get("digest"):
        problems.append("The report's content differs from what was signed.")
    period = report.get("period") or {}
    start = datetime.fromisoformat(period["start"])
    end = datetime.fromisoformat(period["end"])
    if digest(build(tenant, start, end)) != signature.get("digest"):
        problems.append("The audit trail now gives another report for this period.")
    stored = (
        AuditEvent.objects.for_tenant(tenant)
        .filter(seq=signature.get("chain_seq"))
        .values_list("hash", flat=True)
        .first()
    )
    if signature.get("chain_seq") and stored != signature.get("chain_hash"):
        problems.append("The audit chain no longer has the signed head.")
    return problems
