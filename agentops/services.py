"""Core services: memberships, API tokens, per-tenant sequences. Keyword-only, atomic, audited."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from agentops import audit
from agentops.audit_context import MEMBERSHIP, recorded_by_caller
from agentops.models import ApiToken, Membership, Role, Sequence, Tenant


def sequence_next(*, tenant: Tenant, name: str, step: int = 1) -> int:
    """Advance a per-tenant counter by ``step`` and return its new value.

    One race-free upsert, one round trip; ``step`` > 1 reserves a block ending at the value.
    """
    if step < 1:
        raise ValueError("step must be positive")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Sequence._meta.db_table} (tenant_id, name, value) VALUES (%s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (tenant_id, name) DO UPDATE SET value = {Sequence._meta.db_table}.value + EXCLUDED.value "
            "RETURNING value",
            [tenant.pk, name, step],
        )
        return cursor.fetchone()[0]


def sync_role_groups(user) -> None:
    """Keep the user's Django groups equal to the roles they hold in any tenant."""
    roles = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    role_groups = Group.objects.filter(name__in=Role.values)
    # One DELETE for the roles no longer held and one INSERT for those held, rather than a
    # statement per role: every membership change (and every test persona) goes through here.
    user.groups.remove(*[g for g in role_groups if g.name not in roles])
    user.groups.add(*[g for g in role_groups if g.name in roles])


@transaction.atomic
def membership_set(*, tenant: Tenant, user, role: str, actor=None) -> Membership:
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}")
    if not Membership.objects.filter(user=user, tenant=tenant).exists():
        from agentops import quotas

        quotas.check_users(tenant)  # a new member: within the tier's user limit
    with recorded_by_caller(MEMBERSHIP):  # the event below says it all
        membership, created = Membership.objects.update_or_create(
            user=user, tenant=tenant, defaults={"role": role}
        )
        sync_role_groups(user)
    audit.record(
        tenant=tenant,
        actor=actor,
        action="membership.created" if created else "membership.changed",
        target_type="user",
        target_id=user.pk,
        target_repr=user.get_username(),
        changes={"role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor=None) -> None:
    user, tenant = membership.user, membership.tenant
    if not Membership.objects.filter(user=user, tenant=tenant).exists():
        from agentops import quotas

        quotas.check_users(tenant)  # a new member: within the tier's user limit
    with recorded_by_caller(MEMBERSHIP):  # the event below says it all
        membership.delete()
        sync_role_groups(user)
    audit.record(
        tenant=tenant,
        actor=actor,
        action="membership.removed",
        target_type="user",
        target_id=user.pk,
        target_repr=user.get_username(),
        changes={"role": membership.role},
    )


@transaction.atomic
def api_token_create(
    *, tenant: Tenant, user, name: str = "api", actor=None, expires_at=None
) -> tuple[ApiToken, str]:
    """Create a token; returns it and the raw secret, which is shown once and never stored.
    ``expires_at`` (optional): after it the token answers 401 like a revoked one."""
    if not Membership.objects.filter(user=user, tenant=tenant).exists():
        raise ValueError(f"{user.get_username()} is not a member of tenant {tenant.slug}")
    prefix = secrets.token_hex(4)
    raw = f"ao_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        tenant=tenant,
        user=user,
        name=name,
        prefix=prefix,
        token_hash=ApiToken.hash_secret(raw),
        expires_at=expires_at,
    )
    audit.record(
        tenant=tenant,
        actor=actor or user,
        action="api_token.created",
        target_type="api_token",
        target_id=token.pk,
        target_repr=str(token),
        metadata={"expires_at": expires_at.isoformat() if expires_at else None},
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor=None) -> None:
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit.record(
        tenant=token.tenant,
        actor=actor,
        action="api_token.revoked",
        target_type="api_token",
        target_id=token.pk,
        target_repr=str(token),
    )


@transaction.atomic
def api_token_set_expiry(*, token: ApiToken, expires_at, actor=None) -> None:
    """Set or clear (None) when a token stops working; audited with the old and new time."""
    old = token.expires_at
    if old == expires_at:
        return
    token.expires_at = expires_at
    token.save(update_fields=["expires_at"])
    audit.record(
        tenant=token.tenant,
        actor=actor,
        action="api_token.expiry_set",
        target_type="api_token",
        target_id=token.pk,
        target_repr=str(token),
        changes={
            "expires_at": [
                old.isoformat() if old else None,
                expires_at.isoformat() if expires_at else None,
            ]
        },
    )
