"""Writing the audit trail. Services call ``record`` inside their transaction."""

from __future__ import annotations

from typing import Any

from agentops.models import AuditEvent, Tenant


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "username", None) or str(actor)


def record(
    *,
    tenant: Tenant,
    actor,
    action: str,
    target_type: str,
    target_id: Any,
    target_repr: str = "",
    changes: dict | None = None,
    metadata: dict | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        tenant=tenant,
        actor_id=getattr(actor, "pk", None),
        actor_label=actor_label(actor)[:150],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        target_repr=target_repr[:200],
        changes=changes or {},
        metadata=metadata or {},
    )
