"""Tenant lifecycle for platform admins: create, suspend/activate, change tier, export every
row as JSON lines, and delete for good.

"Every table" is found, not listed: the models with a foreign key to ``Tenant`` (the tenant's
own rows) and the models pointing at one of those (rows that belong to a tenant's row without
a tenant column, e.g. guardian's object permissions on its tickets). A new app's tables are
covered without touching this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.text import slugify

from agentops import audit
from agentops.models import AuditEvent, Tenant

log = logging.getLogger(__name__)


def require_platform_admin(user) -> None:
    if not (user and user.is_authenticated and user.is_superuser and user.is_active):
        raise PermissionDenied("Only platform admins manage tenants.")


# --------------------------------------------------------------------------- which tables


def _tenant_fk(model) -> models.ForeignKey | None:
    for field in model._meta.concrete_fields:
        if isinstance(field, models.ForeignKey) and field.related_model is Tenant:
            return field
    return None


def tenant_tables() -> list[tuple[type[models.Model], str]]:
    """(model, lookup to the tenant) for every table holding a tenant's rows."""
    direct = {m: _tenant_fk(m) for m in apps.get_models() if _tenant_fk(m) is not None}
    found = [(m, fk.name) for m, fk in direct.items()]
    for model in apps.get_models():
        if model in direct or model is Tenant:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.ForeignKey) and field.related_model in direct:
                parent_fk = direct[field.related_model]
                found.append((model, f"{field.name}__{parent_fk.name}"))
                break
    return sorted(found, key=lambda pair: pair[0]._meta.label)


def _rows(model, lookup: str, tenant):
    manager = model._base_manager  # tenant-scoped managers are scoped by the lookup itself
    return manager.filter(**{lookup: tenant})


# --------------------------------------------------------------------------- export


def _plain(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "tolist"):  # pgvector / numpy vectors
        return value.tolist()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def _serialise(obj) -> dict:
    return {f.attname: _plain(f.value_from_object(obj)) for f in obj._meta.concrete_fields}


def export_lines(tenant) -> Iterator[str]:
    """The tenant as JSON lines: a header, then one line per row of every table, then the
    accounts of its members (without password hashes)."""
    yield (
        json.dumps(
            {
                "type": "tenant",
                "data": _serialise(tenant),
                "exported_at": timezone.now().isoformat(),
            }
        )
        + "\n"
    )
    for model, lookup in tenant_tables():
        for obj in _rows(model, lookup, tenant).order_by("pk").iterator(chunk_size=500):
            yield json.dumps(
                {"type": "row", "table": model._meta.db_table, "model": model._meta.label,
                 "data": _serialise(obj)}, default=str,
            ) + "\n"  # fmt: skip
    users = get_user_model().objects.filter(memberships__tenant=tenant).order_by("pk")
    for user in users:
        data = {k: v for k, v in _serialise(user).items() if k != "password"}
        yield json.dumps({"type": "user", "data": data}, default=str) + "\n"


# --------------------------------------------------------------------------- services


@transaction.atomic
def tenant_create(*, actor, name: str, slug: str = "", tier: str = Tenant.Tier.FREE) -> Tenant:
    require_platform_admin(actor)
    name = (name or "").strip()
    slug = slugify(slug or name)[:60]
    tenant = Tenant(name=name, slug=slug, tier=tier)
    tenant.full_clean()
    tenant.save()
    audit.record(
        tenant=tenant, actor=actor, action="tenant.created", target_type="tenant",
        target_id=tenant.pk, target_repr=tenant.slug, changes={"tier": tier},
    )  # fmt: skip
    return tenant


@transaction.atomic
def tenant_set_active(*, tenant: Tenant, actor, active: bool) -> Tenant:
    """Suspend (nobody signs in to it, tokens and webhooks stop) or activate again."""
    require_platform_admin(actor)
    if tenant.is_active == active:
        return tenant
    Tenant.objects.filter(pk=tenant.pk).update(is_active=active)
    tenant.is_active = active
    audit.record(
        tenant=tenant, actor=actor, action="tenant.activated" if active else "tenant.suspended",
        target_type="tenant", target_id=tenant.pk, target_repr=tenant.slug,
    )  # fmt: skip
    return tenant


@transaction.atomic
def tenant_set_tier(*, tenant: Tenant, actor, tier: str) -> Tenant:
    require_platform_admin(actor)
    if tier not in Tenant.Tier.values:
        raise ValidationError({"tier": f"Unknown tier {tier!r}."})
    old = tenant.tier
    if old == tier:
        return tenant
    Tenant.objects.filter(pk=tenant.pk).update(tier=tier)
    tenant.tier = tier
    audit.record(
        tenant=tenant, actor=actor, action="tenant.tier_changed", target_type="tenant",
        target_id=tenant.pk, target_repr=tenant.slug, changes={"tier": {"from": old, "to": tier}},
    )  # fmt: skip
    return tenant


def _purge_audit(tenant: Tenant, deleted: dict[str, int]) -> None:
    """Every audit event of ``tenant``, through the owner's function (migration 0008): the
    application's database role may not DELETE audit events itself (agentops.db_roles)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT agentops_audit_purge_tenant(%s)", [tenant.pk])
        n = cursor.fetchone()[0]
    label = AuditEvent._meta.label
    deleted[label] = deleted.get(label, 0) + n


@transaction.atomic
def tenant_purge(*, tenant: Tenant, actor, confirm_slug: str) -> dict[str, int]:
    """Delete the tenant for good: every row of every table (vectors are rows too), its audit
    trail, and the accounts that belonged to it alone. Returns rows deleted per table."""
    require_platform_admin(actor)
    if confirm_slug != tenant.slug:
        raise ValidationError({"confirm_slug": "Type the tenant's slug to confirm."})
    only_here = list(
        get_user_model()
        .objects.filter(memberships__tenant=tenant, is_superuser=False, is_staff=False)
        .exclude(memberships__tenant__in=Tenant.objects.exclude(pk=tenant.pk))
        .values_list("pk", flat=True)
    )
    deleted: dict[str, int] = {}
    # The audit trail first (it protects the tenant row), then each table, children first.
    _purge_audit(tenant, deleted)
    for model, lookup in reversed(tenant_tables()):
        if model is AuditEvent:
            continue
        _, counts = _rows(model, lookup, tenant).delete()
        for label, n in counts.items():
            deleted[label] = deleted.get(label, 0) + n
    _, counts = get_user_model().objects.filter(pk__in=only_here).delete()
    deleted.update(counts)
    # Deletions above may have been audited by signal receivers (permission changes): last.
    _purge_audit(tenant, deleted)
    Tenant.objects.filter(pk=tenant.pk).delete()
    # No tenant is left to hold an audit event of this: the platform log says it.
    log.warning("Tenant %s (%s) deleted for good by %s", tenant.slug, tenant.pk, actor)
    return {k: v for k, v in deleted.items() if v}
