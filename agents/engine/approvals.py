"""Asking a person: the run ↔ approval seam, on the engine's side.

A step that needs a decision opens an ``ApprovalRequest`` (``request_approval``) and the run
parks; ``on_approval_decided`` (the "agents.run" handler) resumes it in the state the blueprint
names. Only ``approvals.selectors`` reads and only ``approvals.services`` writes the requests.
"""

from __future__ import annotations

from django.utils import timezone

from agentops import audit
from agents import blueprints
from agents.engine.base import args_hash
from agents.engine.claiming import enqueue
from agents.models import Run, RunStatus, Step, ToolCall
from approvals.models import ApprovalRequest
from approvals.selectors import requests_for
from approvals.services import cancel_pending as cancel_pending_requests
from approvals.services import lock_pending as lock_pending_requests
from approvals.services import request_approval

APPROVAL_HANDLER = "agents.run"
DECIDED = (
    ApprovalRequest.Status.APPROVED,
    ApprovalRequest.Status.REJECTED,
    ApprovalRequest.Status.EXPIRED,
)


class ApprovalSteps:
    """Mixed into ``StepContext``: a step asks a person, or finds the answer it was given."""

    def request_approval(
        self,
        call: ToolCall,
        *,
        priority: str = "high",
        evidence: dict | None = None,
        scope: str = "",
    ):
        call.status = ToolCall.Status.AWAITING_APPROVAL
        call.save(update_fields=["status"])
        return request_approval(
            tenant=self.tenant,
            handler=APPROVAL_HANDLER,
            handler_ref=str(call.pk),
            subject_type="run",
            subject_id=str(self.run.pk),
            subject_repr=self.run.subject_repr,
            action=call.tool_name,
            arguments=call.args_json,
            risk="high",
            reason=call.policy_reason,
            evidence={**self.approval_evidence(), **(evidence or {})},
            priority=priority,
            requested_by=self.run.started_by,
            requested_by_label=f"agent ({self.run.agent_name})",
            scope=scope,  # who else may decide it (approvals.access), named by the blueprint
            parties=self.approval_parties(call),
        )

    def approval_parties(self, call: ToolCall) -> list[dict]:
        """Who may not decide this call (four-eyes): the run's starter, the person the run
        works for, and everyone the arguments name or the tool acts on."""
        from agents.approval_hooks import beneficiaries

        parties = []
        starter = self.run.started_by
        if starter is not None:
            parties.append({"role": "starter", "user_id": starter.pk, "email": starter.email})
        requester = self.state.get("subject_email") or ""
        if requester:
            parties.append({"role": "requester", "user_id": None, "email": requester})
        parties += [
            {"role": "beneficiary", "user_id": None, "email": email}
            for email in sorted(beneficiaries(self.tenant, call.tool_name, call.args_json))
        ]
        return parties

    def approval_evidence(self, *, steps: int = 6, citations: int = 8) -> dict:
        """What a reviewer sees beside the action: the run's latest steps and the knowledge
        articles they cited (a step's detail, or the run's state, may carry "citations":
        [{title, url, heading}])."""
        recent = list(
            Step.objects.for_tenant(self.tenant)
            .filter(run=self.run)
            .order_by("-seq")
            .values("seq", "name", "state", "status", "output_summary", "detail")[:steps]
        )
        timeline, found = [], []
        for step in reversed(recent):
            timeline.append(
                {
                    "seq": step["seq"],
                    "name": step["name"] or step["state"],
                    "status": step["status"],
                    "summary": (step["output_summary"] or "")[:300],
                }
            )
            if isinstance(step["detail"], dict):
                found.append(step["detail"].get("citations"))
        found.append(self.state.get("citations"))
        cited, seen = [], set()
        for items in found:
            for item in items if isinstance(items, list) else []:
                if not isinstance(item, dict) or len(cited) >= citations:
                    continue
                key = (item.get("url") or "", item.get("title") or "", item.get("heading") or "")
                if key not in seen:
                    seen.add(key)
                    cited.append(
                        {
                            "title": str(key[1])[:200],
                            "url": str(key[0])[:500],
                            "heading": str(key[2])[:200],
                        }
                    )
        return {"timeline": timeline, "citations": cited}

    def approved(self, call: ToolCall) -> bool:
        """An approval exists for exactly these arguments (edited arguments rebind the hash)."""
        return (
            requests_for(
                self.tenant,
                handler=APPROVAL_HANDLER,
                subject_type="run",
                subject_id=str(self.run.pk),
                statuses=[ApprovalRequest.Status.APPROVED],
            )
            .filter(handler_ref=str(call.pk), arguments_hash=call.args_hash)
            .exists()
        )


def on_approval_decided(request) -> None:
    """Approval handler "agents.run": a reviewer decided on a parked tool call."""
    run = Run.objects.for_tenant(request.tenant).select_for_update().get(pk=int(request.subject_id))
    call = ToolCall.objects.for_tenant(request.tenant).get(pk=int(request.handler_ref), run=run)
    approved = request.status == ApprovalRequest.Status.APPROVED
    if approved and request.edited_arguments is not None:
        # Edit-then-approve: the call now carries the edited arguments; the approval is bound
        # to their hash (approvals.services rebinds it), so executing them is allowed.
        call.args_json = request.edited_arguments
        call.args_hash = args_hash(request.edited_arguments)
    call.status = ToolCall.Status.PROPOSED if approved else ToolCall.Status.REJECTED
    if approved:
        call.policy_reason = (
            f"{call.policy_reason} Approved by {audit.actor_label(request.decided_by)}."
        )
    elif (
        request.status == ApprovalRequest.Status.EXPIRED
    ):  # expiry never approves: the run goes to a person
        call.policy_reason = "Not approved in time: the approval request expired undecided."
    else:
        call.policy_reason = (
            f"Rejected by {audit.actor_label(request.decided_by)}: {request.comment}"
        )
    call.save(update_fields=["status", "policy_reason", "args_json", "args_hash"])
    if call.step_id:  # the live timeline shows the decision on the step that proposed it
        Step.objects.for_tenant(request.tenant).filter(pk=call.step_id).update(
            updated_at=timezone.now()
        )
    if run.status != RunStatus.WAITING_APPROVAL:
        return  # cancelled or finished meanwhile: the decision is recorded, nothing resumes
    bp = blueprints.get(run.agent_name)
    run.state = bp.on_decision(run, call, approved)
    run.status = RunStatus.QUEUED
    run.updated_at = timezone.now()
    run.save(update_fields=["state", "status", "updated_at"])
    enqueue(run.pk)


def decided_while_parking(run: Run, *, since):
    """The first approval of ``run`` decided since its parking step began, with its tool call."""
    request = (
        requests_for(
            run.tenant,
            handler=APPROVAL_HANDLER,
            subject_type="run",
            subject_id=str(run.pk),
            statuses=DECIDED,
        )
        .filter(decided_at__gte=since)
        .order_by("decided_at", "pk")
        .first()
    )
    if request is None:
        return None
    call = ToolCall.objects.for_tenant(run.tenant).get(pk=int(request.handler_ref), run=run)
    return request, call


def lock_pending(run: Run) -> None:
    """Lock the run's pending requests before the run itself: the order a decision takes."""
    lock_pending_requests(
        run.tenant, handler=APPROVAL_HANDLER, subject_type="run", subject_id=str(run.pk)
    )


def cancel_pending(run: Run, *, actor=None, reason: str = "") -> int:
    """The run ended: its pending requests are cancelled (audited), no decision can land."""
    return cancel_pending_requests(
        run.tenant,
        handler=APPROVAL_HANDLER,
        subject_type="run",
        subject_id=str(run.pk),
        actor=actor,
        reason=reason,
    )
