"""Opening and deciding approval requests. Decisions are final, race-free and four-eyes."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from agentops import audit
from agentops.models import Membership, Role
from approvals import handlers
from approvals.models import ApprovalRequest

# Hours to decide, by priority (issue: tenant setting; defaults here until then).
SLA_HOURS = {"critical": 1, "high": 4, "medium": 8, "low": 24}
DECIDER_ROLES = frozenset({Role.REVIEWER, Role.ADMIN})


class DecisionConflict(Exception):
    """The request was already decided (or expired) by the time this decision arrived."""


def arguments_hash(arguments: dict) -> str:
    return hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode()).hexdigest()


@transaction.atomic
def request_approval(
    *,
    tenant,
    handler: str,
    handler_ref: str,
    subject_type: str,
    subject_id: str,
    subject_repr: str = "",
    action: str,
    arguments: dict,
    risk: str = "high",
    reason: str = "",
    evidence: dict | None = None,
    priority: str = ApprovalRequest.Priority.HIGH,
    requested_by=None,
    requested_by_label: str = "agent",
) -> ApprovalRequest:
    handlers.get(handler)  # fail now, not at decision time
    request = ApprovalRequest.objects.create(
        tenant=tenant,
        handler=handler,
        handler_ref=handler_ref,
        subject_type=subject_type,
        subject_id=subject_id,
        subject_repr=subject_repr[:200],
        action=action,
        arguments=arguments,
        arguments_hash=arguments_hash(arguments),
        risk=risk,
        reason=reason,
        evidence=evidence or {},
        priority=priority,
        sla_due=timezone.now() + timedelta(hours=SLA_HOURS.get(priority, 4)),
        requested_by=requested_by,
        requested_by_label=requested_by_label,
    )
    audit.record(
        tenant=tenant,
        actor=requested_by,
        action="approval.requested",
        target_type="approval",
        target_id=request.pk,
        target_repr=str(request),
        changes={"action": action, "arguments": arguments, "reason": reason},
    )
    return request


def can_decide(user, tenant) -> bool:
    return Membership.objects.filter(user=user, tenant=tenant, role__in=DECIDER_ROLES).exists()


@transaction.atomic
def decide(
    *,
    request: ApprovalRequest,
    actor,
    approve: bool,
    comment: str = "",
    edited_arguments: dict | None = None,
) -> ApprovalRequest:
    """Approve or reject. Exactly one decision wins; the loser gets DecisionConflict."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise PermissionDenied("Only a signed-in person can decide an approval.")
    if not can_decide(actor, request.tenant):
        raise PermissionDenied("Only reviewers and admins of this tenant can decide approvals.")
    locked = (
        ApprovalRequest.objects.for_tenant(request.tenant).select_for_update().get(pk=request.pk)
    )
    if locked.status != ApprovalRequest.Status.PENDING:
        raise DecisionConflict(f"This request was already {locked.get_status_display().lower()}.")
    if locked.requested_by_id is not None and locked.requested_by_id == actor.pk:
        raise PermissionDenied("Whoever requested an action cannot approve it (four-eyes rule).")
    comment = (comment or "").strip()
    if not approve and not comment:
        raise ValidationError({"comment": "Say why you reject it."})
    if approve and edited_arguments is not None and edited_arguments != locked.arguments:
        locked.edited_arguments = edited_arguments
        locked.arguments_hash = arguments_hash(edited_arguments)
    locked.status = ApprovalRequest.Status.APPROVED if approve else ApprovalRequest.Status.REJECTED
    locked.decided_by = actor
    locked.decided_at = timezone.now()
    locked.comment = comment
    locked.save(
        update_fields=[
            "status",
            "decided_by",
            "decided_at",
            "comment",
            "edited_arguments",
            "arguments_hash",
        ]
    )
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="approval.approved" if approve else "approval.rejected",
        target_type="approval",
        target_id=locked.pk,
        target_repr=str(locked),
        changes={"edited_arguments": edited_arguments} if locked.edited_arguments else {},
        metadata={"comment": comment} if comment else {},
    )
    handlers.get(locked.handler)(locked)
    return locked
