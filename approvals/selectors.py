"""Reading the approvals queue, and the gate every approvals URL goes through.

``approvals_for`` is the one tenant-scoped, permission-filtered queryset (tenant-wide reviewers
see every request, reviewers granted a queue or ticket only those scopes, see
``approvals.access``); ``access_queue`` and ``access_approval`` raise 404 (may not see it: do
not reveal it exists) or 403 (a staff role that decides nothing).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from agentops.prepared import prepared
from approvals import access
from approvals.models import ApprovalRequest, ReviewerAvailability

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


def _filter_q(name: str, user, now) -> Q:
    pending = Q(status=Status.PENDING)
    return {
        "all": pending,
        "mine": pending & Q(assigned_to=user),
        "unassigned": pending & Q(assigned_to__isnull=True),
        # Past due now, or breached before and escalated (the clock restarted): still shown.
        "breached": pending & (Q(sla_due__lt=now) | Q(breached_at__isnull=False)),
        "decided": ~pending,
    }[name]


def _visible(membership) -> Q | None:
    """Memoised on the membership (one resolver pass per request)."""
    if "_approval_visibility" not in membership.__dict__:
        membership.__dict__["_approval_visibility"] = access.visibility_filter(membership)
    return membership.__dict__["_approval_visibility"]


def approvals_for(membership) -> QuerySet[ApprovalRequest]:
    """The requests of the member's tenant they may see: all for tenant-wide reviewers, the
    granted scopes for scoped reviewers, none for anyone else."""
    qs = ApprovalRequest.objects.for_tenant(membership.tenant)
    visible = _visible(membership)
    return qs.none() if visible is None else qs.filter(visible)


def access_queue(membership) -> None:
    """The queue page's gate: 403, in words, for those who decide nothing (requesters,
    auditors, agents without a granted queue or ticket). A request itself is 404 for them
    (``access_approval``): that it exists is not theirs to know."""
    if membership is None:
        raise Http404("No such page")
    if not membership.can("ticket.view_all"):
        raise PermissionDenied("The approvals queue is for reviewers and admins.")
    if _visible(membership) is None:
        raise PermissionDenied("Only reviewers and admins decide approvals.")


def access_approval(membership, pk: int, *, decide: bool = False) -> ApprovalRequest:
    """One request or 404: another tenant's, out of the member's scopes, or no staff role."""
    if membership is None or not membership.can("ticket.view_all"):
        raise Http404("No such approval")
    request = approvals_for(membership).filter(pk=pk).first()
    if request is None:
        # Staff of this tenant who decide nothing may know the request exists (they see its
        # ticket): 403. Another tenant's, or outside a scoped reviewer's grants: 404.
        own = ApprovalRequest.objects.for_tenant(membership.tenant).filter(pk=pk)
        if _visible(membership) is None and own.exists():
            raise PermissionDenied("Only reviewers and admins decide approvals.")
        raise Http404("No such approval")
    return request


def is_scoped(membership) -> bool:
    """True for reviewers who see only granted queues/tickets (the page says so)."""
    return not membership.can(access.DECIDE_ALL)


def availability_of(membership, now=None) -> ReviewerAvailability | None:
    return (
        ReviewerAvailability.objects.for_tenant(membership.tenant)
        .filter(user=membership.user)
        .first()
    )


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
    # The stored priority_rank: the pending-order indexes serve this without a sort.
    return qs.order_by("priority_rank", F("sla_due").asc(nulls_last=True), "id")


def queue_counts(membership) -> dict[str, int]:
    """How many requests each filter holds, in one query."""
    now = timezone.now()
    return approvals_for(membership).aggregate(
        **{name: Count("pk", filter=_filter_q(name, membership.user, now)) for name in FILTERS}
    )


def requests_for(
    tenant, *, handler: str, subject_type: str, subject_id: str, statuses=None
) -> QuerySet[ApprovalRequest]:
    """The requests a handler opened about one subject (a run, say), oldest first; only these
    statuses when given. The one query the rest of the house uses for "this run's requests"."""
    qs = ApprovalRequest.objects.for_tenant(tenant).filter(
        handler=handler, subject_type=subject_type, subject_id=str(subject_id)
    )
    if statuses is not None:
        qs = qs.filter(status__in=list(statuses))
    return qs.order_by("created_at", "id")


@prepared  # (learning from every resolved ticket asks)
def latest_approved(tenant_id: int, handler: str, subject_type: str, subject_id: str):
    """The latest approved request a handler opened about one subject, with its decider
    (``requests_for`` narrowed to APPROVED, newest decision first; ``.first()`` it)."""
    return (
        ApprovalRequest.objects.for_tenant(tenant_id)
        .filter(
            handler=handler,
            subject_type=subject_type,
            subject_id=subject_id,
            status=Status.APPROVED,
        )
        .select_related("decided_by")
        .order_by("-decided_at", "-id")[:1]
    )


def _stamp_fields(membership) -> dict:
    pending = Q(status=Status.PENDING)
    return {
        "stamp_newest": Max("pk"),
        "stamp_decided": Max("decided_at"),
        "stamp_pending": Count("pk", filter=pending),
        "stamp_mine": Count("pk", filter=pending & Q(assigned_to=membership.user)),
        "stamp_assigned": Count("pk", filter=pending & Q(assigned_to__isnull=False)),
        "stamp_escalations": Sum("escalation_level", filter=pending),
        "stamp_breaches": Count("pk", filter=pending & Q(breached_at__isnull=False)),
    }


def _stamp_of(row: dict) -> str:
    decided = row["stamp_decided"].timestamp() if row["stamp_decided"] else 0
    parts = [row[key] or 0 for key in row if key.startswith("stamp_") and key != "stamp_decided"]
    return "-".join([f"{decided:.6f}", *(str(p) for p in parts)])


def queue_stamp(membership) -> str:
    """What the live queue compares to know whether anything a reviewer sees has changed: the
    newest request, the latest decision, the pending, assigned and own counts, escalations and
    breaches (one aggregate query on the tenant's indexed rows)."""
    return _stamp_of(approvals_for(membership).aggregate(**_stamp_fields(membership)))


def queue_counts_and_stamp(membership) -> tuple[dict[str, int], str]:
    """``queue_counts`` and ``queue_stamp`` in the same single query (the full page)."""
    now = timezone.now()
    row = approvals_for(membership).aggregate(
        **{name: Count("pk", filter=_filter_q(name, membership.user, now)) for name in FILTERS},
        **_stamp_fields(membership),
    )
    return {name: row[name] for name in FILTERS}, _stamp_of(row)
