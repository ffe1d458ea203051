"""Celery tasks for approvals. Thin: call a service."""

from __future__ import annotations

from celery import shared_task

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
