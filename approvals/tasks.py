"""Celery tasks for approvals. Thin: call a service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from approvals import services


@shared_task(name="approvals.tasks.check_approval_slas")
def check_approval_slas() -> dict[str, int]:
    """Beat, every minute: expire, flag breaches (notify once) and escalate per policy."""
    return services.check_sla()


@shared_task(
    name="approvals.tasks.post_approval_to_slack",
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def post_approval_to_slack(approval_id: int) -> None:
    """Post a new approval request to its tenant's Slack channel (approvals.slack)."""
    from approvals import slack
    from approvals.models import ApprovalRequest

    request = (
        ApprovalRequest.objects.unscoped("a task loads its row by id")
        .select_related("tenant")
        .filter(pk=approval_id)
        .first()
    )
    if request is not None:
        slack.post_request(request=request)


@shared_task(name="approvals.tasks.update_slack_message")
def update_slack_message(approval_id: int) -> None:
    """Show a console decision on the request's Slack message (approvals.slack)."""
    from approvals import slack
    from approvals.models import ApprovalRequest

    request = (
        ApprovalRequest.objects.unscoped("a task loads its row by id")
        .select_related("tenant", "decided_by")
        .filter(pk=approval_id)
        .first()
    )
    if request is not None:
        slack.refresh_message(request=request)


# A pending request older than this with no Slack message lost its post (the broker was down
# when it opened, or the post gave up its retries while Slack was down). Only the last day's
# are posted again: older ones have reached reviewers through the queue and its escalations.
SLACK_GRACE = timedelta(minutes=10)
SLACK_LOOKBACK = timedelta(days=1)


@shared_task(name="approvals.tasks.post_missed_slack_approvals", ignore_result=True)
def post_missed_slack_approvals() -> int:
    """Beat: post to Slack the pending requests whose post was lost, for the tenants whose
    Slack connection posts approvals. A request already posted is not posted twice (the post
    checks for its message first)."""
    from approvals.models import ApprovalRequest, SlackApprovalMessage, SlackConnection

    now = timezone.now()
    posting = SlackConnection.objects.unscoped("maintenance: tenants that post approvals")
    messages = SlackApprovalMessage.objects.unscoped("maintenance: requests already posted")
    missed = list(
        ApprovalRequest.objects.unscoped("maintenance: every tenant's unposted requests")
        .filter(
            status=ApprovalRequest.Status.PENDING,
            created_at__lt=now - SLACK_GRACE,
            created_at__gte=now - SLACK_LOOKBACK,
            tenant_id__in=posting.filter(is_active=True, post_approvals=True).values("tenant_id"),
        )
        .exclude(pk__in=messages.values("request_id"))
        .order_by("created_at", "id")
        .values_list("pk", flat=True)[:500]
    )
    for approval_id in missed:
        post_approval_to_slack.delay(approval_id)
    return len(missed)
