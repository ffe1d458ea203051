"""Who may decide which approval requests, below the tenant-wide reviewers: the service desk's
answer to ``approvals.access``.

An approval opened for a ticket's run carries the scope ``queue:<id>/ticket:<number>`` (or
``ticket:<number>`` when the ticket has no queue). A guardian grant to *work* a queue
(``work_queue`` / ``change_queue``) or a ticket (``change_ticket``), to the user or to one of
their own groups (not the role groups, which mirror tenant-wide roles), covers it: permissions
inherit tenant → queue → ticket. View-only grants never let anyone decide.
"""

from __future__ import annotations

from django.db.models import CharField, Q, Value
from django.db.models.functions import Cast

from agentops.models import Role
from approvals.access import forget_grants, register_scope_resolver, scope_path

QUEUE_DECIDE_PERMS = ("work_queue", "change_queue")
TICKET_DECIDE_PERMS = ("change_ticket",)


def scope_for(ticket) -> str:
    """The scope of an approval opened for ``ticket``'s run."""
    queue = f"queue:{ticket.queue_id}" if ticket.queue_id else ""
    return scope_path(queue, f"ticket:{ticket.number}")


def granted_scopes(user, tenant) -> set[str]:
    """The queues and tickets of ``tenant`` that ``user`` was granted to work, as scopes."""
    from incidents.models import (
        QueueGroupObjectPermission,
        QueueUserObjectPermission,
        TicketGroupObjectPermission,
        TicketUserObjectPermission,
    )

    if user is None or not user.is_authenticated:
        return set()
    own_groups = Q(group__user=user) & ~Q(group__name__in=Role.values)
    # One query: the four grant tables, as ("queue", id) / ("ticket", number) rows.
    parts = [
        model.objects.filter(who, content_object__tenant=tenant, permission__codename__in=perms)
        .annotate(level=Value(level), ref=Cast(column, CharField()))
        .values_list("level", "ref")
        for model, who, level, perms, column in (
            (
                QueueUserObjectPermission,
                Q(user=user),
                "queue",
                QUEUE_DECIDE_PERMS,
                "content_object_id",
            ),
            (
                QueueGroupObjectPermission,
                own_groups,
                "queue",
                QUEUE_DECIDE_PERMS,
                "content_object_id",
            ),
            (
                TicketUserObjectPermission,
                Q(user=user),
                "ticket",
                TICKET_DECIDE_PERMS,
                "content_object__number",
            ),
            (
                TicketGroupObjectPermission,
                own_groups,
                "ticket",
                TICKET_DECIDE_PERMS,
                "content_object__number",
            ),
        )
    ]
    return {f"{level}:{ref}" for level, ref in parts[0].union(*parts[1:], all=True)}


def _grant_changed(sender, instance, **kwargs) -> None:
    """A user's queue/ticket grant changed: the approvals nav link follows at once."""
    tenant_id = getattr(instance.content_object, "tenant_id", None)
    if tenant_id is not None and getattr(instance, "user_id", None) is not None:
        forget_grants(tenant_id, instance.user_id)


def register() -> None:
    from django.db.models.signals import post_delete, post_save

    from incidents.models import QueueUserObjectPermission, TicketUserObjectPermission

    register_scope_resolver(granted_scopes)
    for model in (QueueUserObjectPermission, TicketUserObjectPermission):
        for signal in (post_save, post_delete):
            signal.connect(_grant_changed, sender=model, dispatch_uid=f"approval-scopes-{model}")
