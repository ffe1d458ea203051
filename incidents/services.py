"""Writing tickets. Views, the API, tasks, admin actions and commands all come through here.

Every function is keyword-only, validates before it writes, runs in one transaction and
records an audit event. Validation problems raise ``django.core.exceptions.ValidationError``
with a message per field, which forms and the API show next to the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agentops import audit
from agentops.models import Membership, Role, Tenant
from agentops.services import sequence_next
from incidents.models import (
    KIND_PREFIX,
    TRANSITIONS,
    Comment,
    Kind,
    Priority,
    Source,
    Status,
    Ticket,
)

NUMBER_DIGITS = 7
# Fields a person may change with ticket_update (status and assignee have their own services).
UPDATABLE_FIELDS = (
    "title",
    "description",
    "category",
    "priority",
    "severity",
    "affected_services",
    "detected_by",
    "resolution_notes",
)


def _validate(ticket: Ticket, *, exclude: Iterable[str] = ()) -> None:
    # tenant/number are set by the service; search_vector belongs to the database trigger.
    ticket.full_clean(exclude=["tenant", "search_vector", *exclude], validate_unique=False)


def sla_due_for(*, tenant: Tenant, priority: str, start=None):
    hours = (tenant.sla_hours or {}).get(priority)
    if hours is None:
        return None
    try:
        return (start or timezone.now()) + timedelta(hours=float(hours))
    except (TypeError, ValueError):
        return None


def _clean_services(services) -> list[str]:
    if services is None:
        return []
    if isinstance(services, str):
        services = services.split(",")
    return [s.strip() for s in services if s and s.strip()]


def _check_assignee(tenant: Tenant, assignee) -> None:
    if assignee is None:
        return
    if not Membership.objects.filter(
        tenant=tenant, user=assignee, role__in=[Role.AGENT, Role.ADMIN]
    ).exists():
        raise ValidationError(
            {"assignee": "The assignee must be an agent or admin of this tenant."}
        )


@transaction.atomic
def ticket_create(
    *,
    tenant: Tenant,
    actor,
    title: str,
    description: str = "",
    kind: str = Kind.REQUEST,
    requester_email: str | None = None,
    requester=None,
    category: str = "",
    priority: str = Priority.MEDIUM,
    severity: str = "",
    affected_services: Iterable[str] | str | None = None,
    detected_by: str = "",
    source: str = Source.CONSOLE,
    assignee=None,
    start_agent: bool | None = None,
    audit_metadata: dict | None = None,
) -> Ticket:
    """Open a ticket: validate, number it, start its SLA clock, audit it, start the agent.

    ``start_agent`` None follows the tenant's setting (AgentConfig.auto_resolve_on_create).
    """
    if requester is None and requester_email is None and actor is not None:
        requester = actor
    email = (requester_email or (requester.email if requester is not None else "") or "").strip()
    now = timezone.now()
    ticket = Ticket(
        tenant=tenant,
        kind=kind,
        number="PENDING",
        title=(title or "").strip(),
        description=(description or "").strip(),
        requester_email=email.lower(),
        requester=requester,
        category=category or "",
        priority=priority or Priority.MEDIUM,
        severity=severity or "",
        affected_services=_clean_services(affected_services),
        detected_by=(detected_by or "").strip(),
        source=source,
        assignee=assignee,
        created_at=now,
        updated_at=now,
    )
    _validate(ticket)
    _check_assignee(tenant, assignee)
    ticket.sla_due = sla_due_for(tenant=tenant, priority=ticket.priority, start=now)
    seq = sequence_next(tenant=tenant, name=f"ticket:{kind}")
    ticket.number = f"{KIND_PREFIX[kind]}{seq:0{NUMBER_DIGITS}d}"
    ticket.save(force_insert=True)
    audit.record(
        tenant=tenant,
        actor=actor,
        action="ticket.created",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        changes={
            "kind": kind,
            "priority": ticket.priority,
            "category": ticket.category,
            "source": source,
            "requester_email": ticket.requester_email,
        },
        metadata=audit_metadata or {},
    )
    if start_agent is None:
        from agents.engine import agent_config

        start_agent = agent_config(tenant).auto_resolve_on_create
    if start_agent:
        # The agent works for the requester, not for whoever typed the ticket in.
        ticket_start_agent(
            ticket=ticket,
            actor=actor,
            identity_verified=_identity_verified(ticket, actor),
        )
    return ticket


def _lock(ticket: Ticket) -> Ticket:
    """Re-read the ticket under a row lock, so concurrent writers serialise."""
    locked = Ticket.objects.for_tenant(ticket.tenant).select_for_update().get(pk=ticket.pk)
    locked.tenant = ticket.tenant  # the same tenant (scoped above): no query to load it again
    return locked


@transaction.atomic
def ticket_update(*, ticket: Ticket, actor, **fields) -> Ticket:
    unknown = set(fields) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in unknown})
    locked = _lock(ticket)
    changes = {}
    for name, value in fields.items():
        if name == "affected_services":
            value = _clean_services(value)
        elif isinstance(value, str):
            value = value.strip()
        old = getattr(locked, name)
        if old != value:
            changes[name] = {"from": old, "to": value}
            setattr(locked, name, value)
    if not changes:
        return locked
    _validate(locked)
    if "priority" in changes and locked.is_open:
        locked.sla_due = sla_due_for(
            tenant=locked.tenant, priority=locked.priority, start=locked.created_at
        )
        locked.sla_breached = bool(locked.sla_due and locked.sla_due <= timezone.now())
    locked.updated_at = timezone.now()
    locked.save(update_fields=[*changes, "sla_due", "sla_breached", "updated_at"])
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="ticket.updated",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes=changes,
    )
    return locked


@transaction.atomic
def ticket_assign(*, ticket: Ticket, actor, assignee) -> Ticket:
    locked = _lock(ticket)
    _check_assignee(locked.tenant, assignee)
    if locked.assignee_id == (assignee.pk if assignee else None):
        return locked
    old = locked.assignee.get_username() if locked.assignee else None
    locked.assignee = assignee
    locked.updated_at = timezone.now()
    locked.save(update_fields=["assignee", "updated_at"])
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="ticket.assigned",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes={"assignee": {"from": old, "to": assignee.get_username() if assignee else None}},
    )
    return locked


@transaction.atomic
def ticket_transition(*, ticket: Ticket, actor, status: str, note: str = "") -> Ticket:
    """Move a ticket along its lifecycle; resolving needs resolution notes."""
    if status not in Status.values:
        raise ValidationError({"status": f"Unknown status {status!r}."})
    locked = _lock(ticket)
    if status not in TRANSITIONS[locked.status]:
        raise ValidationError(
            {
                "status": f"A {locked.get_status_display().lower()} ticket cannot become "
                f"{Status(status).label.lower()}."
            }
        )
    note = (note or "").strip()
    now = timezone.now()
    fields = ["status", "updated_at"]
    if status == Status.RESOLVED:
        notes = note or locked.resolution_notes
        if not notes:
            raise ValidationError({"note": "Say how it was resolved (resolution notes)."})
        locked.resolution_notes = notes
        locked.resolved_at = now
        fields += ["resolution_notes", "resolved_at"]
    elif status == Status.CLOSED:
        locked.closed_at = now
        fields.append("closed_at")
    elif locked.status == Status.RESOLVED:  # reopened
        locked.resolved_at = None
        fields.append("resolved_at")
    old = locked.status
    locked.status = status
    locked.updated_at = now
    locked.save(update_fields=fields)
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="ticket.status_changed",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes={"status": {"from": old, "to": status}},
        metadata={"note": note} if note else {},
    )
    return locked


@transaction.atomic
def ticket_comment(*, ticket: Ticket, actor, body: str, is_internal: bool = False) -> Comment:
    comment = Comment(
        tenant=ticket.tenant,
        ticket=ticket,
        author=actor,
        author_label=audit.actor_label(actor),
        body=(body or "").strip(),
        is_internal=is_internal,
    )
    comment.full_clean(exclude=["tenant", "ticket", "author"])
    comment.save(force_insert=True)
    Ticket.objects.for_tenant(ticket.tenant).filter(pk=ticket.pk).update(
        updated_at=comment.created_at
    )
    audit.record(
        tenant=ticket.tenant,
        actor=actor,
        action="ticket.internal_note" if is_internal else "ticket.commented",
        target_type="ticket",
        target_id=ticket.number,
        target_repr=ticket.title,
        metadata={"comment_id": comment.pk},
    )
    return comment


@transaction.atomic
def ticket_record_triage(
    *, ticket: Ticket, decision: str, confidence: float, suggested_path: str
) -> Ticket:
    """The triage agent's verdict on the ticket (category/priority go through ticket_update)."""
    locked = _lock(ticket)
    locked.triage_decision = decision
    locked.triage_confidence = round(float(confidence), 3)
    locked.suggested_path = (suggested_path or "")[:500]
    locked.updated_at = timezone.now()
    locked.save(
        update_fields=["triage_decision", "triage_confidence", "suggested_path", "updated_at"]
    )
    audit.record(
        tenant=locked.tenant,
        actor=None,
        action="ticket.triaged",
        target_type="ticket",
        target_id=locked.number,
        target_repr=locked.title,
        changes={
            "decision": decision,
            "confidence": locked.triage_confidence,
            "suggested_path": locked.suggested_path,
        },
    )
    return locked


def _identity_verified(ticket: Ticket, actor) -> bool:
    """The requester opened the ticket themselves in an authenticated session."""
    return (
        ticket.requester_id is not None
        and actor is not None
        and getattr(actor, "pk", None) == ticket.requester_id
        and ticket.source in (Source.CONSOLE, Source.PORTAL, Source.CHAT)
    )


@transaction.atomic
def ticket_start_agent(*, ticket: Ticket, actor, identity_verified: bool | None = None):
    """Hand the ticket to the service-desk agent. Refuses while another run is active."""
    from agents.engine import start_run
    from agents.models import ACTIVE_RUN_STATUSES, Run
    from incidents.pipeline import NAME

    active = Run.objects.for_tenant(ticket.tenant).filter(
        subject_type="ticket", subject_id=ticket.number, status__in=sorted(ACTIVE_RUN_STATUSES)
    )
    if active.exists():
        raise ValidationError({"__all__": "An agent is already working on this ticket."})
    if not ticket.is_open:
        raise ValidationError({"__all__": f"The ticket is {ticket.get_status_display().lower()}."})
    staff = (
        actor is not None
        and Membership.objects.filter(
            user=actor, tenant=ticket.tenant, role__in=[Role.AGENT, Role.ADMIN, Role.REVIEWER]
        ).exists()
    )
    if identity_verified is None:
        identity_verified = _identity_verified(ticket, actor)
    return start_run(
        tenant=ticket.tenant,
        blueprint=NAME,
        subject_type="ticket",
        subject_id=ticket.number,
        subject_repr=f"{ticket.number} {ticket.title}"[:200],
        actor=actor,
        started_by_staff=staff,
        input={"identity_verified": identity_verified},
    )


def user_for_email(*, tenant: Tenant, email: str):
    """The tenant member with this e-mail address, if any (links API tickets to accounts)."""
    if not email:
        return None
    return (
        get_user_model()
        .objects.filter(memberships__tenant=tenant, email__iexact=email.strip())
        .first()
    )
