"""Opening and deciding approval requests. Decisions are final, race-free and four-eyes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Count, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from agentops import audit
from agentops.models import Membership
from agentops.notifications import notify
from approvals import access, handlers, selectors
from approvals.models import ApprovalRequest, ApprovalSettings, ReviewerAvailability

Status = ApprovalRequest.Status
# The roles that decide every request of their tenant (capability "approval.decide").
DECIDER_ROLES = access.roles_with(access.DECIDE_ALL)


class DecisionConflict(Exception):
    """The request was already decided (or expired) by the time this decision arrived."""


def arguments_hash(arguments: dict) -> str:
    return hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- settings, clock


def settings_for(tenant) -> ApprovalSettings:
    """The tenant's approval settings; the defaults (unsaved) until an admin saves some."""
    found = ApprovalSettings.objects.for_tenant(tenant).first()
    return found if found is not None else ApprovalSettings(tenant=tenant)


def sla_due_for(tenant, priority: str, *, start: datetime, config=None) -> datetime:
    config = config or settings_for(tenant)
    return start + timedelta(hours=config.hours_for(priority))


def expiry_for(tenant, priority: str, *, start: datetime, config=None) -> datetime | None:
    config = config or settings_for(tenant)
    if not config.expiry_factor:
        return None
    return start + timedelta(hours=config.hours_for(priority) * config.expiry_factor)


# --------------------------------------------------------------------------- availability


def is_available(user, tenant, *, now: datetime | None = None) -> bool:
    row = ReviewerAvailability.objects.for_tenant(tenant).filter(user=user).first()
    return row is None or row.available_at(now or timezone.now())


@transaction.atomic
def set_availability(
    *, tenant, user, actor, away: bool, away_until: datetime | None = None
) -> ReviewerAvailability:
    """A reviewer marks themself (or an admin marks them) away (until a time) or available."""
    now = timezone.now()
    if away and away_until is not None and away_until <= now:
        raise ValidationError({"away_until": "Pick a time in the future, or leave it empty."})
    row, _ = ReviewerAvailability.objects.for_tenant(tenant).get_or_create(tenant=tenant, user=user)
    row.is_away = away
    row.away_until = away_until if away else None
    row.updated_at = now
    row.save(update_fields=["is_away", "away_until", "updated_at"])
    audit.record(
        tenant=tenant,
        actor=actor,
        action="approval.availability",
        target_type="user",
        target_id=user.pk,
        target_repr=user.get_username(),
        changes={"away": away, "away_until": away_until.isoformat() if away_until else None},
    )
    return row


# --------------------------------------------------------------------------- assignment


def _lock_assignment(tenant) -> None:
    """Serialise assignment within a tenant until the caller's transaction ends, so two
    requests created at once never both count the same reviewer as least loaded.

    The lock is the tenant's audit-chain lock (``agentops.audit``), which opening a request
    takes anyway for its audit event: one lock, taken in one order. A lock of its own would
    deadlock against a step that audited first (policy verdict) and then opens a request.
    Advisory locks are re-entrant within a session, so taking it twice is harmless."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [audit.AUDIT_LOCK_NAMESPACE, tenant.pk % 2147483647],  # the very key audit takes
        )


def reviewers_by_load(
    tenant, *, now: datetime | None = None, exclude_ids=(), roles=None
) -> list[tuple[int, int]]:
    """(user id, pending assigned) of the tenant's available deciders, least loaded first;
    ties by user id, so the order is stable. One query."""
    now = now or timezone.now()
    load = (
        ApprovalRequest.objects.for_tenant(tenant)
        .filter(status=Status.PENDING, assigned_to=OuterRef("user_id"))
        .order_by()
        .values("assigned_to")
        .annotate(n=Count("pk"))
        .values("n")
    )
    away = (
        ReviewerAvailability.objects.for_tenant(tenant)
        .filter(is_away=True)
        .filter(Q(away_until__isnull=True) | Q(away_until__gt=now))
        .values("user_id")
    )
    rows = (
        Membership.objects.filter(
            tenant=tenant, role__in=sorted(roles or DECIDER_ROLES), user__is_active=True
        )
        .exclude(user_id__in=[i for i in exclude_ids if i is not None])
        .exclude(user_id__in=Subquery(away))
        .annotate(load=Coalesce(Subquery(load), Value(0)))
        .order_by("load", "user_id")
        .values_list("user_id", "load")
    )
    return list(rows)


def pick_reviewer(tenant, *, exclude_ids=(), now=None, roles=None) -> int | None:
    """The least-loaded available decider (not one of ``exclude_ids``), or None. Call inside
    a transaction: it takes the tenant's assignment lock."""
    _lock_assignment(tenant)
    ranked = reviewers_by_load(tenant, now=now, exclude_ids=exclude_ids, roles=roles)
    return ranked[0][0] if ranked else None


# --------------------------------------------------------------------------- opening


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
    scope: str = "",
    expires_at: datetime | None = None,
    auto_assign: bool = True,
    parties: list[dict] | None = None,
) -> ApprovalRequest:
    """Open a request: SLA due and expiry from the tenant's settings, auto-assigned to the
    least-loaded available reviewer who did not request it (none: unassigned), audited."""
    handlers.get(handler)  # fail now, not at decision time
    now = timezone.now()
    config = settings_for(tenant)
    assignee_id = (
        pick_reviewer(
            tenant,
            exclude_ids=[getattr(requested_by, "pk", None)]
            + [p["user_id"] for p in _parties(requested_by, parties) if p.get("user_id")],
            now=now,
        )
        if auto_assign
        else None
    )
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
        sla_due=sla_due_for(tenant, priority, start=now, config=config),
        expires_at=expires_at or expiry_for(tenant, priority, start=now, config=config),
        scope=scope[:200],
        requested_by=requested_by,
        requested_by_label=requested_by_label,
        parties=_parties(requested_by, parties),
        assigned_to_id=assignee_id,
        created_at=now,
    )
    audit.record(
        tenant=tenant,
        actor=requested_by,
        action="approval.requested",
        target_type="approval",
        target_id=request.pk,
        target_repr=str(request),
        changes={
            "action": action,
            "arguments": arguments,
            "reason": reason,
            "assigned_to": assignee_id,
            "scope": request.scope,
        },
    )
    from approvals import slack

    slack.announce_after_commit(request)  # to the tenant's Slack channel, if connected
    if assignee_id is not None:  # the bell: a new request is waiting for them
        _tell(
            request,
            _user(assignee_id),
            verb="approval.assigned",
            title=f"Your decision is needed: {action} for {request.subject_repr or subject_id}",
        )
    return request


def _tell(request: ApprovalRequest, user, *, verb: str, title: str) -> None:
    """An in-console notification (the bell) about ``request`` for one user; no e-mail: these
    come in bursts, and the queue is live."""
    notify(
        tenant=request.tenant,
        user=user,
        verb=verb,
        title=title,
        link=_queue_link(request),
        email=False,
    )


def can_decide(user, tenant) -> bool:
    """Whether ``user`` decides every request of ``tenant`` (scoped deciders: access.may_decide)."""
    return Membership.objects.filter(user=user, tenant=tenant, role__in=DECIDER_ROLES).exists()


PARTY_REASONS = {
    "starter": "You started the run that asks for this",
    "requester": "You asked for this on your own ticket",
    "beneficiary": "This action is for you",
    "editor": "You edited these arguments",
}


def _parties(requested_by, parties: list[dict] | None) -> list[dict]:
    """The parties as stored: role, user id, e-mail (lower case); the requester of the
    request is always one of them (the run's starter)."""
    found: list[dict] = []
    if getattr(requested_by, "pk", None) is not None:
        found.append(
            {
                "role": "starter",
                "user_id": requested_by.pk,
                "email": (getattr(requested_by, "email", "") or "").strip().lower(),
            }
        )
    for party in parties or []:
        email = str(party.get("email") or "").strip().lower()
        user_id = party.get("user_id")
        if not email and not user_id:
            continue
        entry = {
            "role": str(party.get("role") or "beneficiary"),
            "user_id": user_id,
            "email": email,
        }
        if entry not in found:
            found.append(entry)
    return found


def party_conflict(request: ApprovalRequest, actor) -> str | None:
    """Why ``actor`` may not decide ``request`` (four-eyes), or None. A party is matched by
    account or by e-mail address, so a second account with the same address counts too."""
    email = (getattr(actor, "email", "") or "").strip().lower()
    parties = list(request.parties or [])
    if request.requested_by_id is not None and not any(
        p.get("user_id") == request.requested_by_id for p in parties
    ):
        parties.append({"role": "starter", "user_id": request.requested_by_id, "email": ""})
    for party in parties:
        if (party.get("user_id") and party["user_id"] == actor.pk) or (
            email and party.get("email") and party["email"] == email
        ):
            why = PARTY_REASONS.get(party.get("role", ""), "You are a party to this action")
            return f"{why}: a second person must decide it (four-eyes rule)."
    return None


def decide(
    *,
    request: ApprovalRequest,
    actor,
    approve: bool,
    comment: str = "",
    edited_arguments: dict | None = None,
) -> ApprovalRequest:
    """Approve or reject. Exactly one decision wins; the loser gets DecisionConflict.

    Nobody who is a party to the action decides it: the run's starter, the ticket's
    requester, whoever the action is for, whoever edited it. Such a refusal is audited (in
    a transaction of its own, so it stays when the refusal is raised). The parties are
    fixed when the request is opened, so they are checked on ``request`` as given."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise PermissionDenied("Only a signed-in person can decide an approval.")
    conflict = party_conflict(request, actor)
    if conflict is not None:
        _require_decider(request, actor)
        with transaction.atomic():
            audit.record(
                tenant=request.tenant,
                actor=actor,
                action="approval.refused",
                target_type="approval",
                target_id=request.pk,
                target_repr=str(request),
                metadata={"reason": conflict, "approve": approve},
            )
        raise PermissionDenied(conflict)
    return _decide(
        request=request,
        actor=actor,
        approve=approve,
        comment=(comment or "").strip(),
        edited_arguments=edited_arguments,
    )


def _require_decider(request: ApprovalRequest, actor) -> None:
    """403 unless ``actor`` may decide ``request`` (tenant-wide, or through a granted scope)."""
    if not access.may_decide(actor, request):
        raise PermissionDenied("Only reviewers and admins of this tenant can decide approvals.")


_CLAIM_SQL = None


def _claim_sql() -> str:
    """One statement that decides a pending request and reads what the decision needs.

    The conditional UPDATE is the claim: of concurrent decisions exactly one matches
    ``status = 'pending'`` (the others wait for its row lock, then match nothing), and the
    request's row stays locked until the transaction ends, as ``SELECT … FOR UPDATE`` kept
    it. With ``%s`` for ``only_deciders`` true it also requires the actor to be a tenant-wide
    decider, so the common case needs no membership query of its own. The tenant (the audit
    and the handler need it) and the assignee (active, not the actor: the bell needs them)
    come back joined."""
    global _CLAIM_SQL
    if _CLAIM_SQL is None:
        from django.contrib.auth import get_user_model

        from agentops.models import Tenant

        table = ApprovalRequest._meta.db_table
        _CLAIM_SQL = (
            f'WITH claimed AS (UPDATE "{table}" r SET status = %s, decided_by_id = %s, '  # noqa: S608
            "decided_at = %s, comment = %s "
            "WHERE r.id = %s AND r.tenant_id = %s AND r.status = 'pending' "
            "AND (r.expires_at IS NULL OR r.expires_at > %s) "
            f"AND (NOT %s OR {_tenant_decider_sql()}) "
            f"RETURNING {_columns(ApprovalRequest, 'r')}) "
            f"SELECT {_columns(ApprovalRequest, 'claimed')}, {_columns(Tenant, 't')}, "
            f"{_columns(get_user_model(), 'u')} FROM claimed "
            f'JOIN "{Tenant._meta.db_table}" t ON t.id = claimed.tenant_id '
            f'LEFT JOIN "{get_user_model()._meta.db_table}" u ON u.id = claimed.assigned_to_id '
            "AND u.id <> claimed.decided_by_id AND u.is_active"
        )
    return _CLAIM_SQL


def _tenant_decider_sql() -> str:
    """Whether user %s has one of the roles %s in the tenant of request ``r``."""
    return (
        f'EXISTS (SELECT 1 FROM "{Membership._meta.db_table}" m '  # noqa: S608
        "WHERE m.tenant_id = r.tenant_id AND m.user_id = %s AND m.role = ANY(%s))"
    )


def _columns(model, alias: str) -> str:
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


def _instance(model, values):
    """A model instance from raw column values, converted as the ORM would (JSON …)."""
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        for converter in connection.ops.get_db_converters(field) + field.get_db_converters(
            connection
        ):
            value = converter(value, field, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def _claim(request, *, actor, approve: bool, comment: str, now, only_deciders: bool):
    """(the decided request with its tenant, its assignee to tell or None), or None when
    nothing matched."""
    from django.contrib.auth import get_user_model

    from agentops.models import Tenant

    status = Status.APPROVED if approve else Status.REJECTED
    params = [status, actor.pk, now, comment, request.pk, request.tenant_id, now]
    params += [only_deciders, actor.pk, sorted(DECIDER_ROLES)]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(ApprovalRequest._meta.concrete_fields)
    t = n + len(Tenant._meta.concrete_fields)
    claimed = _instance(ApprovalRequest, row[:n])
    claimed.tenant = _instance(Tenant, row[n:t])
    assignee = _instance(get_user_model(), row[t:]) if row[t] is not None else None
    return claimed, assignee


def _unclaimed(request: ApprovalRequest, actor, now) -> tuple[str, bool, bool] | None:
    """Why a claim matched nothing, in one read: (status, expired, whether ``actor`` decides
    every request of the tenant); None when there is no such request."""
    table = ApprovalRequest._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.status, r.expires_at IS NOT NULL AND r.expires_at <= %s, "  # noqa: S608
            f'{_tenant_decider_sql()} FROM "{table}" r WHERE r.id = %s AND r.tenant_id = %s',
            [now, actor.pk, sorted(DECIDER_ROLES), request.pk, request.tenant_id],
        )
        return cursor.fetchone()


def _conflict(status: str) -> DecisionConflict:
    """The loser's answer: the request was decided first, or its deadline passed."""
    if status != Status.PENDING:
        return DecisionConflict(f"This request was already {Status(status).label.lower()}.")
    # Past its deadline: the SLA task expires it (and tells the handler); too late to decide.
    return DecisionConflict("This request expired before a decision; nothing was changed.")


def _claim_or_refuse(request, *, actor, approve: bool, comment: str, now):
    """The claim, and when it matched nothing, the reason (one more read for a tenant-wide
    decider who lost a race: 403 before anything about the request is told to anyone else)."""
    found = _claim(
        request, actor=actor, approve=approve, comment=comment, now=now, only_deciders=True
    )
    if found is not None:
        return found
    why = _unclaimed(request, actor, now)
    if why is not None and why[2]:  # a tenant-wide decider: decided first, or expired
        raise _conflict(why[0])
    # A scoped decider (their grant is checked here), a stranger, or no such request.
    _require_decider(request, actor)
    if why is None:
        raise ApprovalRequest.DoesNotExist("No such approval request.")
    found = _claim(
        request, actor=actor, approve=approve, comment=comment, now=now, only_deciders=False
    )
    if found is None:  # decided (or expired) since the read
        raise _conflict(
            ApprovalRequest.objects.for_tenant(request.tenant_id).get(pk=request.pk).status
        )
    return found


@transaction.atomic
def _decide(*, request, actor, approve, comment, edited_arguments) -> ApprovalRequest:
    """Numbered steps, cheapest first; anything raised rolls the claim back.

    Statements of an approval by a tenant-wide reviewer, edits aside: the claim (which reads
    the assignee too), the assignee's notification, the audit append (lock + head, INSERT),
    then COMMIT. The audit append comes last: it holds the tenant's chain lock until commit,
    and every decision of the tenant waits for that lock."""
    now = timezone.now()
    # 1. Claim: decide the row if it is still pending and the actor may decide it.
    locked, assignee = _claim_or_refuse(
        request, actor=actor, approve=approve, comment=comment, now=now
    )
    if not approve and not comment:
        raise ValidationError({"comment": "Say why you reject it."})
    # 2. An edit goes through the handler's own check (every path: console, Slack, API).
    if approve and edited_arguments is not None and edited_arguments != locked.arguments:
        validate = handlers.validator_for(locked.handler)
        problems = validate(locked, edited_arguments) if validate is not None else []
        if problems:
            raise ValidationError({"edited_arguments": problems})
        locked.edited_arguments = edited_arguments
        locked.arguments_hash = arguments_hash(edited_arguments)
        locked.save(update_fields=["edited_arguments", "arguments_hash"])
    locked.decided_by = actor
    # 3. The handler (a parked run resumes after commit).
    handlers.get(locked.handler)(locked)
    # 4. Another reviewer decided what was assigned to them: their bell says so.
    if assignee is not None:
        verb = "approved" if approve else "rejected"
        _tell(
            locked,
            assignee,
            verb=f"approval.{verb}_by_other",
            title=f"{actor.get_username()} {verb} {locked.action} "
            f"for {locked.subject_repr or locked.subject_id}",
        )
    # 5. Last: the audit append holds the tenant's chain lock until commit.
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
    return locked


def lock_pending(tenant, *, handler: str, subject_type: str, subject_id: str) -> list[int]:
    """Lock a subject's pending requests (``SELECT … FOR UPDATE``), in the order a decision
    takes its locks (the request, then whatever its handler locks). Call it before locking the
    subject itself; returns their ids."""
    return list(
        selectors.requests_for(
            tenant,
            handler=handler,
            subject_type=subject_type,
            subject_id=subject_id,
            statuses=[ApprovalRequest.Status.PENDING],
        )
        .select_for_update()
        .values_list("pk", flat=True)
    )


@transaction.atomic
def cancel_pending(
    tenant, *, handler: str, subject_type: str, subject_id: str, actor=None, reason: str = ""
) -> int:
    """Cancel a subject's pending requests (its run ended, say): no decision can land on them
    any more. Each cancellation is audited; returns how many were cancelled."""
    ids = lock_pending(tenant, handler=handler, subject_type=subject_type, subject_id=subject_id)
    if not ids:
        return 0
    cancelled = list(
        ApprovalRequest.objects.for_tenant(tenant)
        .filter(pk__in=ids, status=ApprovalRequest.Status.PENDING)
        .only("pk", "action", "subject_repr", "subject_id", "status")
    )
    ApprovalRequest.objects.for_tenant(tenant).filter(pk__in=[r.pk for r in cancelled]).update(
        status=ApprovalRequest.Status.CANCELLED
    )
    for request in cancelled:
        request.status = ApprovalRequest.Status.CANCELLED
        audit.record(
            tenant=tenant,
            actor=actor,
            action="approval.cancelled",
            target_type="approval",
            target_id=request.pk,
            target_repr=str(request),
            metadata={"reason": reason[:500]} if reason else {},
        )
    return len(cancelled)


# --------------------------------------------------------------------------- SLA, escalation

RAISED_PRIORITY = {"low": "medium", "medium": "high", "high": "critical", "critical": "critical"}


def _queue_link(request: ApprovalRequest) -> str:
    return reverse("approvals:detail", args=[request.pk])


def _deciders(tenant, roles=None) -> list:
    from django.contrib.auth import get_user_model

    return list(
        get_user_model()
        .objects.filter(
            is_active=True,
            memberships__tenant=tenant,
            memberships__role__in=sorted(roles or DECIDER_ROLES),
        )
        .order_by("pk")
    )


def _user(pk):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=pk, is_active=True).first() if pk else None


@transaction.atomic
def expire(*, request: ApprovalRequest, now: datetime | None = None) -> ApprovalRequest | None:
    """Expire a pending request past its deadline. Never approves: the handler hears
    "expired" (the runtime escalates the run to a person). None if already decided."""
    now = now or timezone.now()
    locked = (
        ApprovalRequest.objects.for_tenant(request.tenant)
        .select_for_update()
        .filter(pk=request.pk)
        .first()
    )
    if locked is None or locked.status != Status.PENDING:
        return None
    locked.tenant = request.tenant
    locked.status = Status.EXPIRED
    locked.decided_at = now
    locked.comment = "Expired: no reviewer decided before the deadline."
    locked.save(update_fields=["status", "decided_at", "comment"])
    audit.record(
        tenant=locked.tenant,
        actor=None,
        action="approval.expired",
        target_type="approval",
        target_id=locked.pk,
        target_repr=str(locked),
        metadata={"expires_at": locked.expires_at.isoformat() if locked.expires_at else None},
    )
    handlers.get(locked.handler)(locked)
    recipients = [locked.assigned_to] if locked.assigned_to_id else []
    for user in recipients:
        notify(
            tenant=locked.tenant,
            user=user,
            verb="approval.expired",
            title=f"Approval expired: {locked.action} for {locked.subject_repr or locked.subject_id}",
            body="No one decided it in time. It was not approved; the work goes to a person.",
            link=_queue_link(locked),
        )
    return locked


@transaction.atomic
def mark_breached(*, request: ApprovalRequest, now: datetime | None = None) -> bool:
    """Flag a pending request past its SLA due, once (a conditional UPDATE claims it), and
    notify its reviewer (unassigned: every available reviewer) by e-mail and in the console."""
    now = now or timezone.now()
    claimed = (
        ApprovalRequest.objects.for_tenant(request.tenant)
        .filter(pk=request.pk, status=Status.PENDING, breached_at__isnull=True, sla_due__lte=now)
        .update(breached_at=now)
    )
    if not claimed:
        return False
    request.breached_at = now
    audit.record(
        tenant=request.tenant,
        actor=None,
        action="approval.sla_breached",
        target_type="approval",
        target_id=request.pk,
        target_repr=str(request),
        metadata={"sla_due": request.sla_due.isoformat() if request.sla_due else None},
    )
    if request.assigned_to_id:
        recipients = [_user(request.assigned_to_id)]
    else:
        available = {
            uid
            for uid, _ in reviewers_by_load(
                request.tenant, now=now, exclude_ids=[request.requested_by_id]
            )
        }
        recipients = [u for u in _deciders(request.tenant) if u.pk in available]
    for user in recipients:
        notify(
            tenant=request.tenant,
            user=user,
            verb="approval.breached",
            title=f"SLA breached: {request.action} for {request.subject_repr or request.subject_id}",
            body=(
                f"The {request.get_priority_display().lower()} approval request was due "
                f"{request.sla_due:%Y-%m-%d %H:%M} UTC and is still waiting for a decision."
            ),
            link=_queue_link(request),
        )
    return True


def _escalation_target(rule, request: ApprovalRequest, now) -> tuple[int | None, list]:
    """Who the request goes to next (None: keep the assignee) and who else hears of it."""
    Target = rule.Target
    excluded = [request.requested_by_id]
    if rule.target == Target.USER and rule.user_id and rule.user_id != request.requested_by_id:
        ranked = {
            uid for uid, _ in reviewers_by_load(request.tenant, now=now, exclude_ids=excluded)
        }
        if rule.user_id in ranked:
            return rule.user_id, []
    roles = {"admin"} if rule.target == Target.ADMINS else None
    others = [request.assigned_to_id, *excluded]
    _lock_assignment(request.tenant)
    ranked = reviewers_by_load(request.tenant, now=now, exclude_ids=others, roles=roles)
    if not ranked and roles:
        ranked = reviewers_by_load(request.tenant, now=now, exclude_ids=excluded, roles=roles)
    target = ranked[0][0] if ranked else None
    also = []
    if rule.target == Target.ADMINS:
        also = [u for u in _deciders(request.tenant, roles) if u.pk not in (target, *excluded)]
    return target, also


@transaction.atomic
def escalate(
    *, request: ApprovalRequest, rule, level: int, now: datetime | None = None
) -> ApprovalRequest | None:
    """Apply escalation step ``level`` (``rule``): reassign, raise the priority if the rule
    says so, restart the SLA clock from the (new) priority. Claimed by a row lock and the
    level it expects, so a step applies once."""
    now = now or timezone.now()
    locked = (
        ApprovalRequest.objects.for_tenant(request.tenant)
        .select_for_update(skip_locked=True)
        .filter(pk=request.pk, status=Status.PENDING, escalation_level=level)
        .first()
    )
    if locked is None or locked.sla_due is None:
        return None
    locked.tenant = request.tenant
    if locked.sla_due + timedelta(minutes=rule.after_minutes) > now:
        return None
    before = {"assigned_to": locked.assigned_to_id, "priority": locked.priority}
    target, also = _escalation_target(rule, locked, now)
    if target is not None:
        locked.assigned_to_id = target
    if rule.raise_priority:
        locked.priority = RAISED_PRIORITY.get(locked.priority, locked.priority)
    locked.sla_due = sla_due_for(locked.tenant, locked.priority, start=now)
    locked.escalation_level = level + 1
    locked.escalated_at = now
    locked.save(
        update_fields=["assigned_to", "priority", "sla_due", "escalation_level", "escalated_at"]
    )
    audit.record(
        tenant=locked.tenant,
        actor=None,
        action="approval.escalated",
        target_type="approval",
        target_id=locked.pk,
        target_repr=str(locked),
        changes={
            "assigned_to": [before["assigned_to"], locked.assigned_to_id],
            "priority": [before["priority"], locked.priority],
            "level": locked.escalation_level,
        },
        metadata={"rule": str(rule)},
    )
    recipients = [_user(locked.assigned_to_id)] if locked.assigned_to_id else []
    for user in [*recipients, *also]:
        notify(
            tenant=locked.tenant,
            user=user,
            verb="approval.escalated",
            title=f"Escalated to you: {locked.action} for {locked.subject_repr or locked.subject_id}",
            body=(
                f"Overdue approval request, now {locked.get_priority_display().lower()} priority, "
                f"due {locked.sla_due:%Y-%m-%d %H:%M} UTC."
            ),
            link=_queue_link(locked),
        )
    return locked


def _rules_for(tenant) -> list:
    from approvals.models import EscalationRule

    return list(
        EscalationRule.objects.for_tenant(tenant)
        .filter(policy__is_active=True)
        .select_related("user")
        .order_by("order", "id")
    )


def check_tenant_sla(tenant, *, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """One pass of the SLA clock over one tenant: expire, flag breaches, escalate."""
    now = now or timezone.now()
    done = {"expired": 0, "breached": 0, "escalated": 0}
    pending = ApprovalRequest.objects.for_tenant(tenant).filter(status=Status.PENDING)
    # 1. Past the deadline: expired (never approved), the handler is told.
    for request in pending.filter(expires_at__lte=now).order_by("expires_at", "id")[:batch]:
        done["expired"] += expire(request=request, now=now) is not None
    # 2. Past the SLA due for the first time: flagged and notified, once.
    overdue = pending.filter(sla_due__lte=now).select_related("tenant")
    for request in overdue.filter(breached_at__isnull=True).order_by("sla_due", "id")[:batch]:
        done["breached"] += mark_breached(request=request, now=now)
    # 3. Overdue long enough for the next step of the policy: escalated.
    rules = _rules_for(tenant)
    if rules:
        for request in overdue.order_by("sla_due", "id")[:batch]:
            matching = [rule for rule in rules if rule.matches(request)]
            if request.escalation_level >= len(matching):
                continue
            rule = matching[request.escalation_level]
            if request.sla_due + timedelta(minutes=rule.after_minutes) > now:
                continue
            done["escalated"] += (
                escalate(request=request, rule=rule, level=request.escalation_level, now=now)
                is not None
            )
    return done


def check_sla(*, now: datetime | None = None) -> dict[str, int]:
    """The beat task's pass over every active tenant."""
    from agentops.models import Tenant

    now = now or timezone.now()
    total = {"expired": 0, "breached": 0, "escalated": 0}
    for tenant in Tenant.objects.filter(is_active=True).order_by("pk"):
        for key, value in check_tenant_sla(tenant, now=now).items():
            total[key] += value
    return total
