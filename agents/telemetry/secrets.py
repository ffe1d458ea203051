"""Per-tenant ingest secrets (``X-Ingest-Secret``): create, rotate, revoke, authenticate.

Only a SHA-256 hash is stored; the raw secret is shown once. Two may be active at a time so a
sender can switch to the new one before the old one is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from ninja.security import APIKeyHeader

from agentops import audit
from agents.models import IngestSecret

MAX_ACTIVE = 2
MIN_LENGTH = 24


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@transaction.atomic
def secret_create(
    *, tenant, name: str = "ingest", raw: str = "", actor=None
) -> tuple[IngestSecret, str]:
    """Add an active secret (generated unless ``raw`` is given); at most MAX_ACTIVE active."""
    raw = raw or f"ais_{pysecrets.token_urlsafe(32)}"
    if len(raw) < MIN_LENGTH or len(raw) > 200:
        raise ValidationError({"secret": f"Use {MIN_LENGTH} to 200 characters."})
    # Lock the tenant's secrets so two concurrent additions cannot both pass the count.
    active = list(
        IngestSecret.objects.for_tenant(tenant).select_for_update().filter(revoked_at__isnull=True)
    )
    if len(active) >= MAX_ACTIVE:
        raise ValidationError(
            {"secret": f"{MAX_ACTIVE} secrets are active already: revoke the old one first."}
        )
    secret = IngestSecret.objects.create(tenant=tenant, name=name, secret_hash=hash_secret(raw))
    audit.record(
        tenant=tenant,
        actor=actor,
        action="ingest_secret.created",
        target_type="ingest_secret",
        target_id=secret.pk,
        target_repr=str(secret),
    )
    return secret, raw


@transaction.atomic
def secret_revoke(*, secret: IngestSecret, actor=None) -> None:
    secret.revoked_at = timezone.now()
    secret.save(update_fields=["revoked_at"])
    audit.record(
        tenant=secret.tenant,
        actor=actor,
        action="ingest_secret.revoked",
        target_type="ingest_secret",
        target_id=secret.pk,
        target_repr=str(secret),
    )


def tenant_for_secret(raw: str):
    """The tenant whose active secret this is, or None (compared in constant time)."""
    if not raw or len(raw) > 200:
        return None
    digest = hash_secret(raw)
    found = (
        IngestSecret.objects.unscoped("the secret names its own tenant")
        .select_related("tenant")
        .filter(secret_hash=digest, revoked_at__isnull=True, tenant__is_active=True)
        .first()
    )
    if found is None or not hmac.compare_digest(found.secret_hash, digest):
        return None
    now = timezone.now()
    if found.last_used_at is None or (now - found.last_used_at).total_seconds() > 60:
        IngestSecret.objects.for_tenant(found.tenant).filter(pk=found.pk).update(last_used_at=now)
    return found.tenant


class IngestSecretAuth(APIKeyHeader):
    """``X-Ingest-Secret: <secret>``: the tenant, with no user (ingest only)."""

    param_name = "X-Ingest-Secret"

    def authenticate(self, request, key):
        tenant = tenant_for_secret(key or "")
        if tenant is None:
            return None
        request.tenant = tenant
        request.membership = None
        request.ingest_secret = True
        return tenant
