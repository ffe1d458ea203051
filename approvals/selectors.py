"""Reading the approvals queue: one tenant-scoped queryset, the filters and their counters."""

from __future__ import annotations

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from approvals.models import ApprovalRequest

Status = ApprovalRequest.Status
Priority = ApprovalRequest.Priority

# The queue's tabs, in display order: key → label.
FILTERS: dict[str, str] = {
    "all": "All pending",
    "mine": "Assigned to me",
    "unassigned": "Unassigned",
    "breached": "SLA breached",
    "decided": "Decided",
}
DEFAULT_FILTER = "all"
# A queue page shows at most this many requests (the counters say how many there are).
QUEUE_LIMIT = 100

PRIORITY_RANK = Case(
    When(priority=Priority.CRITICAL, then=Value(0)),
    When(priority=Priority.HIGH, then=Value(1)),
    When(priority=Priority.MEDIUM, then=Value(2)),
    When(priority=Priority.LOW, then=Value(3)),
    default=Value(4),
    output_field=IntegerField(),
)


def _filter_q(name: str, user, now) -> Q:
    pending = Q(status=Status.PENDING)
    return {
        "all": pending,
        "mine": pending & Q(assigned_to=user),
        "unassigned": pending & Q(assigned_to__isnull=True),
        "breached": pending & Q(sla_due__lt=now),
        "decided": ~pending,
    }[name]


def approvals_for(membership) -> QuerySet[ApprovalRequest]:
    """Every approval request of the member's tenant (the gate decides who gets here)."""
    return ApprovalRequest.objects.for_tenant(membership.tenant)


def approval_queue(membership, name: str = DEFAULT_FILTER) -> QuerySet[ApprovalRequest]:
    """One filter of the queue, in the order a reviewer should work it.

    Pending: most urgent priority first, then the earliest SLA due. Decided: newest first.
    """
    now = timezone.now()
    qs = (
        approvals_for(membership)
        .filter(_filter_q(name, membership.user, now))
        .select_related("requested_by", "assigned_to", "decided_by")
    )
    if name == "decided":
        return qs.order_by(F("decided_at").desc(nulls_last=True), "-created_at", "-id")
    return qs.alias(priority_rank=PRIORITY_RANK).order_by(
        "priority_rank", F("sla_due").asc(nulls_last=True), "id"
    )


def queue_counts(membership) -> dict[str, int]:
    """How many requests each filter holds, in one query."""
    now = timezone.now()
    return approvals_for(membership).aggregate(
        **{name: Count("pk", filter=_filter_q(name, membership.user, now)) for name in FILTERS}
    )
