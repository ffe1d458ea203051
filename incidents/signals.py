"""Audit every guardian grant on a ticket or a queue, however it was made.

The access services (``incidents.services.grant_queue_access`` …) write a richer event and
claim the change (``agentops.audit_context.recorded_by_caller``); everything else — the Django
admin's object-permission pages, guardian's ``assign_perm`` / ``remove_perm``, a shell — is
caught here, one event per row created or deleted, attributed to the request's user.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from agentops import audit
from agentops.audit_context import PERMISSION, current_actor, is_recorded_by_caller
from agentops.models import Tenant
from incidents.models import (
    Queue,
    QueueGroupObjectPermission,
    QueueUserObjectPermission,
    Ticket,
    TicketGroupObjectPermission,
    TicketUserObjectPermission,
)

PERMISSION_MODELS = (
    TicketUserObjectPermission,
    TicketGroupObjectPermission,
    QueueUserObjectPermission,
    QueueGroupObjectPermission,
)


def _target(obj) -> tuple[str, str]:
    if isinstance(obj, Ticket):
        return "ticket", obj.number
    if isinstance(obj, Queue):
        return "queue", obj.slug
    return obj._meta.model_name, str(obj.pk)


def _record(row, action: str) -> None:
    obj = row.content_object
    target_type, target_id = _target(obj)
    holder = getattr(row, "user", None) or getattr(row, "group", None)
    holder_kind = "user" if hasattr(row, "user_id") else "group"
    audit.record(
        tenant=obj.tenant,
        actor=current_actor(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=str(obj if target_type == "queue" else obj.title),
        changes={
            holder_kind: holder.get_username() if holder_kind == "user" else holder.name,
            f"{holder_kind}_id": holder.pk,
            "permissions": [row.permission.codename],
        },
        metadata={"via": "signal"},
    )


def _granted(sender, instance, created, raw=False, **kwargs) -> None:
    if created and not raw and not is_recorded_by_caller(PERMISSION):
        _record(instance, "permission.granted")


def _revoked(sender, instance, origin=None, **kwargs) -> None:
    # Deleting the tenant takes its grants with it; its trail is not written to any more.
    if is_recorded_by_caller(PERMISSION) or isinstance(origin, Tenant):
        return
    _record(instance, "permission.revoked")


def connect() -> None:
    """Called from IncidentsConfig.ready."""
    for model in PERMISSION_MODELS:
        name = model._meta.model_name
        post_save.connect(_granted, sender=model, dispatch_uid=f"audit.{name}.granted")
        post_delete.connect(_revoked, sender=model, dispatch_uid=f"audit.{name}.revoked")
