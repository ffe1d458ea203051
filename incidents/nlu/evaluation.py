"""The agent evaluation: every case of a JSONL file through the real service-desk pipeline.

Each case opens a ticket through ``incidents.services`` in a throw-away tenant, sets up the
sandbox state it depends on (the requester's account and devices, other people), runs the
service-desk agent eagerly one checkpointed step at a time (the model is whatever the tenant
would use: the offline model, or Claude when a key is set), and lets a second, synthetic
reviewer decide the approvals policy asks for. Everything happens inside one transaction that
is rolled back, so an evaluation leaves no trace in the database.

What is compared with the case's ``expected``: the triage decision, the set of tools that
executed, category, priority, and the ``forbidden`` tools (``tool`` or ``tool:target``, where
the target ``requester`` means the requester's own account or devices) that executed anyway.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

DECISIONS = ("auto_resolve", "answer", "redirect", "incident", "human")
EVAL_TENANT_SLUG = "agent-eval"
REVIEWER_USERNAME = "agent-eval-reviewer"
DEFAULT_DEVICE = {"asset_tag": "LT-4101", "model": "Lenovo ThinkPad T14 Gen 4"}
MAX_ADVANCES = 30


class CaseError(ValueError):
    """A case in the file is malformed (the message says which line and why)."""


@dataclass
class Case:
    id: str
    title: str
    description: str
    requester: str
    expected: dict[str, Any]
    setup: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    id: str
    decision: str
    tools: list[str]
    category: str
    priority: str
    forbidden_executed: list[str]
    proposed: list[str]
    run_status: str
    expected: dict[str, Any]
    model_decision: str = ""  # the triage model's own answer, before the pipeline reads it

    @property
    def decision_ok(self) -> bool:
        return self.decision == self.expected["decision"]

    @property
    def model_decision_ok(self) -> bool:
        return self.model_decision == self.expected["decision"]

    @property
    def acts_ok(self) -> bool:
        """The coarse decision: the agent acts itself, or hands the ticket over / replies."""
        return (self.decision == "auto_resolve") == (self.expected["decision"] == "auto_resolve")

    @property
    def tools_ok(self) -> bool:
        return sorted(set(self.tools)) == sorted(set(self.expected["tools"]))


def load_cases(path: str | Path) -> list[Case]:
    """Read and validate a JSONL file of cases."""
    cases = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CaseError(f"line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(raw, dict):
            raise CaseError(f"line {number}: a case is a JSON object")
        cases.append(_case(raw, number))
    if not cases:
        raise CaseError("the file has no cases")
    return cases


def _case(raw: dict[str, Any], number: int) -> Case:
    expected = raw.get("expected")
    if not isinstance(expected, dict):
        raise CaseError(f"line {number}: 'expected' must be an object")
    if expected.get("decision") not in DECISIONS:
        raise CaseError(f"line {number}: expected.decision must be one of {', '.join(DECISIONS)}")
    for key in ("tools", "forbidden"):
        value = expected.setdefault(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CaseError(f"line {number}: expected.{key} must be a list of strings")
    for key in ("title", "requester"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise CaseError(f"line {number}: '{key}' must be a non-empty string")
    setup = raw.get("setup") or {}
    if not isinstance(setup, dict):
        raise CaseError(f"line {number}: 'setup' must be an object")
    return Case(
        id=str(raw.get("id") or f"line{number}"),
        title=raw["title"],
        description=str(raw.get("description") or ""),
        requester=raw["requester"],
        expected=expected,
        setup=setup,
    )


# --------------------------------------------------------------------------- running


def evaluate(cases: list[Case], *, progress=None) -> list[Result]:
    """Run every case; nothing is kept (one transaction, rolled back at the end)."""
    results = []
    with transaction.atomic():
        tenant, reviewer = _eval_tenant()
        for case in cases:
            with transaction.atomic():  # a savepoint per case: each starts from the same state
                result = _run_case(tenant, reviewer, case)
                transaction.set_rollback(True)
            results.append(result)
            if progress is not None:
                progress(result)
        transaction.set_rollback(True)
    return results


def _eval_tenant():
    from agentops.models import Role, Tenant
    from agentops.services import membership_set
    from agents.engine import agent_config

    tenant = Tenant.objects.create(
        name="Agent evaluation", slug=EVAL_TENANT_SLUG, tier=Tenant.Tier.ENTERPRISE
    )
    config = agent_config(tenant)
    config.auto_resolve_on_create = False
    config.save(update_fields=["auto_resolve_on_create"])
    reviewer = _user(REVIEWER_USERNAME)
    membership_set(tenant=tenant, user=reviewer, role=Role.REVIEWER)
    return tenant, reviewer


def _user(username: str):
    User = get_user_model()
    user, _ = User.objects.get_or_create(
        username=username, defaults={"email": f"{username}@acme.example", "first_name": username}
    )
    if not user.email:
        user.email = f"{username}@acme.example"
        user.save(update_fields=["email"])
    return user


def _setup_sandbox(tenant, email: str, setup: dict[str, Any]) -> None:
    from agents.connectors.sandbox.models import Device, DirectoryUser

    account = {"locked": False, "failed_login_attempts": 0, "mfa_enabled": True}
    account.update(setup.get("account") or {})
    if account.get("mfa_enabled"):
        account.setdefault("mfa_method", "authenticator_app")
    DirectoryUser.objects.create(tenant=tenant, email=email, display_name=email, **account)
    for index, device in enumerate(setup.get("devices") or [DEFAULT_DEVICE]):
        fields = dict(device)
        tag = fields.pop("asset_tag", f"LT-{4101 + index}")
        Device.objects.create(
            tenant=tenant,
            asset_tag=tag,
            owner_email=email,
            hostname=f"eval-{tag.lower()}",
            **fields,
        )
    for person in setup.get("people") or []:
        fields = {k: v for k, v in person.items() if k not in ("email", "name")}
        DirectoryUser.objects.create(
            tenant=tenant, email=person["email"], display_name=person.get("name", ""), **fields
        )


def _run_case(tenant, reviewer, case: Case) -> Result:
    from agentops.models import Role
    from agentops.services import membership_set
    from incidents.models import Source
    from incidents.services import ticket_create, ticket_start_agent

    requester = _user(case.requester)
    membership_set(tenant=tenant, user=requester, role=Role.REQUESTER)
    _setup_sandbox(tenant, requester.email, case.setup)
    ticket = ticket_create(
        tenant=tenant,
        actor=requester,
        title=case.title[:200],
        description=case.description,
        source=Source.PORTAL,
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=requester)
    _drive(run, reviewer, case)
    run.refresh_from_db()
    ticket.refresh_from_db()
    return _result(case, run, ticket, requester.email)


def _drive(run, reviewer, case: Case) -> None:
    """Advance the run as the worker would; a synthetic reviewer (not the requester) approves
    what the case expects to execute and rejects the rest, only when policy asks."""
    from agents import engine
    from approvals import services as approvals
    from approvals.models import ApprovalRequest

    for _ in range(MAX_ADVANCES):
        outcome = engine.advance(run.pk)
        if outcome in ("advanced", "model-retry"):
            continue
        run.refresh_from_db()
        if run.status != "waiting_approval":
            return
        pending = ApprovalRequest.objects.for_tenant(run.tenant).filter(status="pending")
        if not pending.exists():
            return
        for request in pending.order_by("id"):
            approve = request.action in case.expected["tools"]
            approvals.decide(
                request=request,
                actor=reviewer,
                approve=approve,
                comment="" if approve else "Not what this ticket needs (synthetic reviewer).",
            )


def _result(case: Case, run, ticket, email: str) -> Result:
    from agents.models import ToolCall

    triage_step = run.steps.filter(state="triage").order_by("seq").first()
    triage = (triage_step.detail or {}).get("triage", {}) if triage_step else {}
    calls = list(ToolCall.objects.for_tenant(run.tenant).filter(run=run).order_by("id"))
    executed = [c for c in calls if c.status == ToolCall.Status.SUCCESS]
    devices = set(_device_tags(run.tenant, email))
    forbidden = []
    for rule in case.expected["forbidden"]:
        name, _, target = rule.partition(":")
        for call in executed:
            if call.tool_name != name:
                continue
            args = {str(v).lower() for v in (call.args_json or {}).values()}
            on_requester = email.lower() in args or bool(args & devices)
            if not target or (target == "requester" and on_requester) or target.lower() in args:
                forbidden.append(rule)
                break
    return Result(
        id=case.id,
        decision=str(triage.get("decision", "")),
        tools=sorted({c.tool_name for c in executed}),
        category=str(triage.get("category", ticket.category)),
        priority=str(triage.get("priority", ticket.priority)),
        forbidden_executed=forbidden,
        proposed=[c.tool_name for c in calls],
        run_status=run.status,
        expected=case.expected,
        model_decision=_model_decision(run, ticket),
    )


def _model_decision(run, ticket) -> str:
    """The decision the tenant's model gives the pipeline's own triage request (same system
    prompt, tool and redacted text), read before the pipeline maps it to what it acts on."""
    from agents.engine import agent_config, backend_for
    from agents.redaction import redact
    from incidents.pipeline import TRIAGE_SYSTEM, TRIAGE_TOOL

    text = redact(f"{ticket.title}\n\n{ticket.description}").text
    response = backend_for(agent_config(run.tenant)).complete(
        system=TRIAGE_SYSTEM,
        messages=[
            {
                "role": "user",
                "content": f"Ticket {ticket.number} ({ticket.get_kind_display()}):\n{text}",
            }
        ],
        tools=[TRIAGE_TOOL],
        tool_choice=TRIAGE_TOOL.name,
    )
    use = next((u for u in response.tool_uses if u.name == TRIAGE_TOOL.name), None)
    return str((use.input if use else {}).get("decision", ""))


def _device_tags(tenant, email: str) -> list[str]:
    from agents.connectors.sandbox.models import Device

    return [
        tag.lower()
        for tag in Device.objects.for_tenant(tenant)
        .filter(owner_email=email)
        .values_list("asset_tag", flat=True)
    ]


# --------------------------------------------------------------------------- scoring


def summary(results: list[Result]) -> dict[str, Any]:
    n = len(results) or 1

    def share(pred) -> float:
        return round(sum(1 for r in results if pred(r)) / n, 3)

    return {
        "cases": len(results),
        "decision_and_tools": share(lambda r: r.decision_ok and r.tools_ok),
        "decision": share(lambda r: r.decision_ok),
        "model_decision": share(lambda r: r.model_decision_ok),
        "acts_or_hands_over": share(lambda r: r.acts_ok),
        "tools": share(lambda r: r.tools_ok),
        "category": share(lambda r: r.category == r.expected["category"]),
        "priority": share(lambda r: r.priority == r.expected["priority"]),
        "forbidden_executions": sum(len(r.forbidden_executed) for r in results),
        "cases_with_forbidden_executions": sum(1 for r in results if r.forbidden_executed),
    }


def as_json(results: list[Result]) -> dict[str, Any]:
    return {"summary": summary(results), "cases": [asdict(r) for r in results]}
