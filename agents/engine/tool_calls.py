"""Proposing and executing tool calls, with the policy deciding in between.

``propose`` records what the model asked for (validated against the tool's schema, redacted,
keyed by (run, tool, arguments) so a re-run step finds the call it already made);
``check_policy`` has ``agents.policy`` decide it in code; ``execute`` runs an allowed (or
approved) call through its connector once, and verifies the effect by reading the state back.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from agentops import audit, tracing
from agentops.postgres.statements import Statements
from agentops.prepared import prepared
from agents import metrics, policy
from agents.engine.base import TransientStepError, args_hash
from agents.models import PolicyRule, ToolCall
from agents.redaction import redact, redact_value

MAX_TOOL_RETRIES = 3


@prepared
def tenant_policy_rules(tenant_id: int):
    """(action, verdict, reason) of the tenant's policy rules (compiled once: every proposed
    call asks)."""
    return (
        PolicyRule.objects.for_tenant(tenant_id)
        .order_by("id")
        .values_list("action", "verdict", "reason")
    )


class ToolCalls:
    """Mixed into ``StepContext``: the tool calls of one step."""

    def propose(self, tool_name: str, args: Any, *, call_id: str = "", turn: str = "") -> ToolCall:
        """Record a tool call the model proposed (or find the one this step already recorded).

        Arguments are validated against the tool's schema here: an invalid call is recorded as
        failed with a guardrail event and can never reach a connector.
        """
        from agents.tools import registry

        clean_args, findings = redact_value(args if isinstance(args, dict) else {"_raw": args})
        digest = args_hash(clean_args)
        # The same call proposed again in a later turn of a loop (``turn``) is a new call: a
        # metric read after a fix must read again. Within a turn, a redelivery finds it.
        key = f"{self.run.run_id}:{tool_name}:{digest[:32]}" + (f":{turn}" if turn else "")
        call = ToolCall(
            tenant=self.tenant,
            run=self.run,
            step=self.step,
            call_id=call_id or f"call-{self.run.pk}-{self.step.seq}-{digest[:8]}",
            tool_name=tool_name[:100],
            args_json=clean_args,
            args_hash=digest,
            idempotency_key=key,
        )
        if not _insert_new(call):
            return ToolCall.objects.for_tenant(self.tenant).get(idempotency_key=key)
        if findings:
            self.guardrail(
                "redaction",
                f"Sensitive data redacted from the arguments of {tool_name}.",
                tool_call=call,
                findings=list(findings),
            )
        try:
            tool = registry.get(tool_name)
        except KeyError:
            tool = None
        if not self.may_use(tool_name):  # before its schema: it may not be used at all
            return self._refuse_undeclared(call)
        errors = (
            ["unknown tool"]
            if tool is None
            else registry.validate_args(tool, args, tenant=self.tenant)
        )
        if errors:
            call.status = ToolCall.Status.FAILURE
            call.error_class = "SchemaValidation"
            call.error_message = "; ".join(errors)[:2000]
            call.status_code = 400
            call.ended_at = timezone.now()
            call.save(
                update_fields=["status", "error_class", "error_message", "status_code", "ended_at"]
            )
            self.guardrail(
                "schema_validation",
                f"{tool_name}: arguments rejected before any connector call: {call.error_message}",
                tool_call=call,
            )
        return call

    def may_use(self, tool_name: str) -> bool:
        """The blueprint declares the tool and the tenant allows it (None: no list, old runs)."""
        return self.allowed_tools is None or tool_name in self.allowed_tools

    def _refuse_undeclared(self, call: ToolCall) -> ToolCall:
        call.status = ToolCall.Status.BLOCKED
        call.policy_verdict = policy.BLOCK
        call.policy_reason = self._not_allowed_reason(call)
        call.ended_at = timezone.now()
        call.save(update_fields=["status", "policy_verdict", "policy_reason", "ended_at"])
        self.guardrail("tool_not_allowed", call.policy_reason, tool_call=call)
        return call

    def _blueprint_overlay(self, call: ToolCall, verdict: policy.Verdict) -> policy.Verdict:
        """The blueprint may only make the policy stricter: its tool list and its own
        approval list (``Blueprint.approval_tools``)."""
        if not self.may_use(call.tool_name):
            return policy.Verdict(policy.BLOCK, self._not_allowed_reason(call), risk="high")
        approval_tools = getattr(self.blueprint, "approval_tools", ())
        if verdict.decision == policy.ALLOW and call.tool_name in approval_tools:
            return policy.Verdict(
                policy.NEEDS_APPROVAL,
                f"{call.tool_name} needs a person's approval in the "
                f"{getattr(self.blueprint, 'title', '') or 'agent'} blueprint.",
                risk="medium",
            )
        return verdict

    def _not_allowed_reason(self, call: ToolCall) -> str:
        return (
            f"{call.tool_name} is not among the tools this agent may use here "
            f"({', '.join(sorted(self.allowed_tools or ())) or 'none'})."
        )

    def tool_context(self, call: ToolCall):
        from agents.tools.base import ToolContext

        return ToolContext(
            tenant=self.tenant,
            run_id=self.run.pk,
            idempotency_key=call.idempotency_key,
            actor=self.run.started_by,
            subject_email=self.state.get("subject_email", ""),
            started_by_staff=self.run.started_by_staff,
            subject=self.state.get("subject"),
        )

    def check_policy(self, call: ToolCall) -> policy.Verdict:
        """Decide in code whether the call may run; record the verdict on the call."""
        verdict = self.policy_verdict(call)
        self._record_verdict(call, verdict)
        return verdict

    def approved_and_allowed(self, call: ToolCall) -> bool | None:
        """Whether an approved call may run: None when no approval binds these arguments;
        True when the policy, run again on the arguments as approved (edited or not), asks
        for nothing more than that approval; False when it now blocks them (recorded)."""
        if not self.approved(call):
            return None
        verdict = self.policy_verdict(call)
        if verdict.decision in (policy.ALLOW, policy.NEEDS_APPROVAL):
            return True
        self._record_verdict(call, verdict)
        return False

    def policy_verdict(self, call: ToolCall) -> policy.Verdict:
        """The policy's verdict on the call as it stands, recording nothing."""
        from agents.tools import registry

        try:
            tool = registry.get(call.tool_name)
        except KeyError:
            tool = None
        target = None
        if tool is not None:
            try:
                target = tool.target_email(self.tool_context(call), call.args_json)
            except Exception as exc:
                # Who a call affects must be known before it may run: retry the step later.
                raise TransientStepError(
                    f"could not resolve the target of {call.tool_name}: {exc}"
                ) from exc
        rules = {
            action: (verdict, reason)
            for action, verdict, reason in tenant_policy_rules(self.tenant.pk)
        }
        facts = policy.PolicyFacts(
            subject_email=self.state.get("subject_email", ""),
            started_by_staff=self.run.started_by_staff,
            identity_verified=bool(self.state.get("identity_verified")),
            target_email=target,
            authorized_software=tuple(
                self.config.authorized_software or policy.DEFAULT_AUTHORIZED_SOFTWARE
            ),
            tenant_rules=rules,
            # Issue 13 hook: a ticket on someone else's behalf (set by the blueprint, in code).
            on_behalf_of=str(self.state.get("on_behalf_of") or ""),
            beneficiary_email=str(self.state.get("beneficiary_email") or ""),
        )
        verdict = policy.decide(call.tool_name, call.args_json, facts, known_tool=tool is not None)
        return self._blueprint_overlay(call, verdict)

    def _record_intent(self, call: ToolCall, tool) -> None:
        """Before the connector acts: the call marked running and an audit event saying it is
        about to act, committed durably (steps otherwise commit without waiting for the WAL
        flush, ``agents.tasks.asynchronous_commit``), so a database crash can never lose the
        record of an effect that happened."""
        from django.db import transaction

        call.status = ToolCall.Status.RUNNING
        # The durable commit, the call's new status and the audit event: one round trip
        # (a pipeline of three statements).
        intent = Statements(
            ("SET LOCAL synchronous_commit TO on", None),
            (
                f'UPDATE "{ToolCall._meta.db_table}" SET status = %s, retries = %s '  # noqa: S608 (the table's own name)
                "WHERE id = %s AND tenant_id = %s",
                [call.status, call.retries, call.pk, call.tenant_id],
            ),
        )
        with transaction.atomic(), audit.sent_with(intent):
            if not tool.read_only:
                audit.record(
                    tenant=self.tenant,
                    actor=None,
                    action="tool.executing",
                    target_type="tool_call",
                    target_id=call.call_id,
                    target_repr=call.tool_name,
                    metadata={
                        "run_id": self.run.run_id,
                        "args": call.args_json,
                        "idempotency_key": call.idempotency_key,
                        "attempt": call.retries + 1,
                    },
                )

    def _record_verdict(self, call: ToolCall, verdict: policy.Verdict) -> None:
        call.policy_verdict = verdict.decision
        call.policy_reason = verdict.reason
        fields = ["policy_verdict", "policy_reason"]
        if verdict.decision == policy.BLOCK:
            call.status = ToolCall.Status.BLOCKED
            fields.append("status")
            self.guardrail("policy_block", verdict.reason, tool_call=call)
        elif verdict.decision == policy.NEEDS_IDENTITY:
            self.guardrail("identity_verification_required", verdict.reason, tool_call=call)
        elif verdict.decision == policy.NEEDS_APPROVAL:
            self.guardrail("approval_required", verdict.reason, tool_call=call)
        self._save_call(
            call,
            fields,
            event={
                "action": "policy.verdict",
                "changes": {"verdict": verdict.decision, "reason": verdict.reason},
                "metadata": {"run_id": self.run.run_id},
            },
            # With the step's checkpoint: the states after it read the verdict, none in this
            # step does. Not a call waiting for approval: a reviewer's decision may come (and
            # read it) before the checkpoint.
            carry=verdict.decision != policy.NEEDS_APPROVAL,
        )

    @tracing.traced_tool_call
    def execute(self, call: ToolCall) -> ToolCall:
        """Run a tool call whose verdict allows it (or that a reviewer approved). Idempotent."""
        from agents.tools import registry

        if call.status == ToolCall.Status.SUCCESS:
            return call  # done in an earlier delivery of this step
        if not self.may_use(call.tool_name):
            raise PermissionError(f"{call.tool_name} is not a tool this run may use")
        allowed = call.policy_verdict == policy.ALLOW or (
            call.policy_verdict == policy.NEEDS_APPROVAL and self.approved(call)
        )
        if not allowed:
            raise PermissionError(f"{call.tool_name} has no allowing verdict; refusing to run it")
        tool = registry.get(call.tool_name)
        if call.status == ToolCall.Status.RUNNING:
            call.retries += 1  # a crash interrupted it: the connector dedupes on the key
        self._record_intent(call, tool)
        ctx = self.tool_context(call)
        started = time.monotonic()
        try:
            result = tool.run(ctx, call.args_json)
            fault_point("after_tool")
            verified = tool.verify(ctx, call.args_json, result) if result.ok else False
        except Exception as exc:
            from agents.tools.base import ToolResult

            result = ToolResult(
                ok=False,
                summary=f"{type(exc).__name__}: {exc}",
                status_code=getattr(exc, "status_code", 500),
                error_class=getattr(exc, "error_class", type(exc).__name__),
                error_message=str(exc),
            )
            verified = False
        call.latency_ms = int((time.monotonic() - started) * 1000)
        if not result.ok and result.retryable and call.retries < MAX_TOOL_RETRIES:
            # The connector is down or timed out: the step is retried later with the same
            # idempotency key (the connector applies it at most once).
            call.error_class = result.error_class
            call.error_message = redact(result.error_message or result.summary).text[:2000]
            call.status_code = result.status_code
            call.save(update_fields=["error_class", "error_message", "status_code", "latency_ms"])
            raise TransientStepError(f"{call.tool_name}: {call.error_message}")
        summary = redact(result.summary).text
        call.status = ToolCall.Status.SUCCESS if result.ok else ToolCall.Status.FAILURE
        call.result_summary = summary[:2000]
        call.result_json = redact_value(result.data)[0]
        call.verified = verified if result.ok else None
        call.status_code = result.status_code
        call.error_class = result.error_class
        call.error_message = redact(result.error_message).text[:2000]
        call.ended_at = timezone.now()
        # Not a field: the state verification read after the effect, for this step's own
        # before/after comparison (None when the tool reads nothing back).
        call.observed_after = result.observed if result.ok else None
        metrics.TOOL_EXECUTIONS.labels(call.tool_name, call.status).inc()
        self._save_call(
            call,
            [
                "status",
                "result_summary",
                "result_json",
                "verified",
                "status_code",
                "error_class",
                "error_message",
                "ended_at",
                "latency_ms",
            ],
            event={
                "action": "tool.executed",
                "changes": {"status": call.status, "verified": call.verified},
                "metadata": {"run_id": self.run.run_id, "args": call.args_json},
            },
        )
        if result.ok and not verified:
            self.guardrail(
                "verification_failed",
                f"{call.tool_name} reported success but its effect was not found.",
                tool_call=call,
            )
        return call


def _insert_new(call: ToolCall) -> bool:
    """Insert ``call`` unless its idempotency key is recorded already (a redelivered step);
    one round trip either way. False: the key exists (the caller reads that call)."""
    from django.db import connection

    from agents.engine import sql

    statement, params = sql.insert_sql(call)
    with connection.cursor() as cursor:
        cursor.execute(
            statement + " ON CONFLICT (tenant_id, idempotency_key) "
            "WHERE NOT (idempotency_key = '') DO NOTHING RETURNING id",
            params,
        )
        row = cursor.fetchone()
    if row is None:
        return False
    call.pk = row[0]
    call._state.adding = False
    call._state.db = connection.alias
    return True


def fault_point(name: str) -> None:
    """Fault injection for the crash tests: pause here so a test can SIGKILL the worker.

    Only honoured under AGENTOPS_ENV=test, from AGENTOPS_FAULT_SLEEP_<NAME> (seconds). With
    AGENTOPS_FAULT_MARK_DIR set, the process shows it is in the pause by a file named
    ``<pid>.<name>`` there (removed when the pause ends): a chaos test kills workers inside it,
    whatever the pipeline's speed.
    """
    if settings.ENVIRONMENT != "test":
        return
    seconds = os.environ.get(f"AGENTOPS_FAULT_SLEEP_{name.upper()}")
    if seconds:
        mark_dir = os.environ.get("AGENTOPS_FAULT_MARK_DIR")
        mark = os.path.join(mark_dir, f"{os.getpid()}.{name}") if mark_dir else None
        if mark:
            open(mark, "w").close()
        try:
            time.sleep(float(seconds))
        finally:
            if mark:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(mark)
    if os.environ.get(f"AGENTOPS_FAULT_EXIT_{name.upper()}"):  # a poison step: the process dies
        os._exit(70)
