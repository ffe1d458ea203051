"""Tiers, limits, usage metering and quota enforcement, checked where work enters.

- ``limits_for(tenant)``: the tier's limits (``TIER_LIMITS``), overridden field by field by
  the tenant's ``TenantLimits`` row (admin). ``None`` means unlimited.
- ``check_run`` / ``check_tokens`` / ``check_knowledge`` / ``check_users`` raise
  ``QuotaExceeded`` (code ``quota_exceeded``, the metric, its limit and the use) *before* the
  work costs anything; ``check_api_rate`` raises ``RateLimited`` with the seconds to wait.
- ``meter(...)`` records one unit of work exactly once per idempotency key
  (``INSERT … ON CONFLICT DO NOTHING`` on a unique key, so concurrent workers and redelivered
  tasks count it once) and warns the tenant's admins once per period when a monthly metric
  passes 80 %.
- ``usage_summary(tenant)``: the month's use against the limits, per day, blueprint and model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta

from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from agentops.models import Membership, Role, TenantLimits, UsageRecord

log = logging.getLogger(__name__)
RUNS, TOKENS = "runs", "tokens"
_clock = time.time  # the API rate window's clock (tests move it)
MONTHLY = {RUNS: "runs_per_month", TOKENS: "tokens_per_month"}
WARN_AT = 80  # per cent


@dataclass(frozen=True)
class Limits:
    runs_per_month: int | None
    tokens_per_month: int | None
    api_requests_per_minute: int | None
    knowledge_documents: int | None
    knowledge_chunks: int | None
    users: int | None
    retention_days: int | None
    blueprints: tuple[str, ...] | None  # None: every blueprint


TIER_LIMITS: dict[str, Limits] = {
    "free": Limits(100, 200_000, 60, 50, 5_000, 5, 30, ("service_desk",)),
    "starter": Limits(1_000, 2_000_000, 300, 500, 50_000, 25, 90, None),
    "professional": Limits(10_000, 20_000_000, 1_200, 5_000, 500_000, 250, 365, None),
    "enterprise": Limits(None, None, None, None, None, None, 730, None),
}


# Resources other apps own are counted by them: ``register_counter("knowledge_documents", fn)``
# with ``fn(tenant) -> int`` (agentops sits below them and imports none of them).
_COUNTERS: dict[str, Callable] = {}


def register_counter(name: str, fn: Callable) -> None:
    _COUNTERS[name] = fn


def count(tenant, name: str) -> int:
    fn = _COUNTERS.get(name)
    return int(fn(tenant)) if fn else 0


class QuotaExceeded(ValidationError):
    """A monthly quota or a resource limit is reached: the work is refused.

    A ValidationError (non-field), so every console form and view that shows a service's
    refusal shows this one as a message; the API answers it 403 with ``quota_exceeded``.
    """

    error_code = "quota_exceeded"

    def __init__(self, metric: str, limit: int | None, used: int, message: str = ""):
        self.metric, self.limit, self.used = metric, limit, used
        self.text = message or f"The {metric.replace('_', ' ')} limit ({limit}) is reached."
        super().__init__({NON_FIELD_ERRORS: [ValidationError(self.text, code=self.error_code)]})

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict:
        return {"error": self.error_code, "message": self.text, "metric": self.metric,
                "limit": self.limit, "used": self.used}  # fmt: skip


class RateLimited(Exception):
    """Too many API requests this minute (API: 429 with Retry-After)."""

    def __init__(self, limit: int, retry_after: int):
        self.limit, self.retry_after = limit, retry_after
        super().__init__(f"More than {limit} API requests a minute; retry in {retry_after} s.")


LIMITS_TTL = 60  # seconds an override may take to reach every process (limits_set forgets it)


def _limits_key(tenant_id) -> str:
    # Named by database too: test sessions (and staging) may share one Redis and reuse ids.
    return f"quota:limits:{connection.settings_dict['NAME']}:{tenant_id}"


def limits_for(tenant) -> Limits:
    """The tier's limits with the tenant's overrides; cached briefly in Redis (every API
    request asks), keyed with the tier so a tier change applies at once."""
    try:
        cached = cache.get(_limits_key(tenant.pk))
    except Exception:  # the cache only saves a query
        cached = None
    if isinstance(cached, dict) and cached.get("tier") == tenant.tier:
        return Limits(**cached["limits"])
    limits = _compute_limits(tenant)
    try:
        cache.set(
            _limits_key(tenant.pk), {"tier": tenant.tier, "limits": asdict(limits)}, LIMITS_TTL
        )
    except Exception:
        log.warning("Could not cache the tenant's limits", exc_info=True)
    return limits


def forget_limits(tenant_id) -> None:
    def forget():
        try:
            cache.delete(_limits_key(tenant_id))
        except Exception:
            log.warning("Could not forget the tenant's cached limits", exc_info=True)

    forget()
    transaction.on_commit(forget)


def _compute_limits(tenant) -> Limits:
    base = TIER_LIMITS.get(tenant.tier, TIER_LIMITS["free"])
    override = TenantLimits.objects.for_tenant(tenant).first()
    if override is None:
        return base
    values = asdict(base)
    for f in fields(Limits):
        value = getattr(override, f.name)
        if value is not None:
            values[f.name] = tuple(value) if f.name == "blueprints" else value
    return Limits(**values)


def period_start(now: datetime | None = None) -> datetime:
    """The first instant of the (UTC) month: monthly quotas reset then."""
    now = now or timezone.now()
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def used(tenant, metric: str, *, since: datetime | None = None) -> int:
    total = (
        UsageRecord.objects.for_tenant(tenant)
        .filter(metric=metric, occurred_at__gte=since or period_start())
        .aggregate(total=Sum("quantity"))["total"]
    )
    return int(total or 0)


def _serialise(tenant, name: str) -> None:
    """Inside a transaction, one check-then-act per tenant and limit at a time."""
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [tenant.pk, name])


def _check_monthly(tenant, metric: str, limits: Limits) -> None:
    limit = getattr(limits, MONTHLY[metric])
    if limit is None:
        return
    _serialise(tenant, metric)
    spent = used(tenant, metric)
    if spent >= limit:
        label = {"runs": "agent runs", "tokens": "model tokens"}[metric]
        raise QuotaExceeded(
            MONTHLY[metric], limit, spent, f"This month's {label} ({limit:,}) are used up."
        )


def check_run(tenant, *, blueprint: str | None = None) -> None:
    """Before a run starts: the blueprint enabled, runs and tokens left this month."""
    limits = limits_for(tenant)
    if blueprint and limits.blueprints is not None and blueprint not in limits.blueprints:
        raise QuotaExceeded(
            "blueprints", None, 0, f"The {blueprint} agent is not enabled for this tenant's tier."
        )
    _check_monthly(tenant, TOKENS, limits)
    _check_monthly(tenant, RUNS, limits)


def check_tokens(tenant) -> None:
    """Before a model call: tokens left this month."""
    _check_monthly(tenant, TOKENS, limits_for(tenant))


def check_knowledge(tenant, *, documents: int = 1) -> None:
    """Before a knowledge upload or ingest: room for the documents and for more passages."""
    limits = limits_for(tenant)
    if limits.knowledge_documents is not None and documents:
        _serialise(tenant, "knowledge_documents")
        have = count(tenant, "knowledge_documents")
        if have + documents > limits.knowledge_documents:
            raise QuotaExceeded(
                "knowledge_documents", limits.knowledge_documents, have,
                f"The knowledge base holds its limit of {limits.knowledge_documents:,} documents.",
            )  # fmt: skip
    if limits.knowledge_chunks is not None:
        chunks = count(tenant, "knowledge_chunks")
        if chunks >= limits.knowledge_chunks:
            raise QuotaExceeded(
                "knowledge_chunks", limits.knowledge_chunks, chunks,
                f"The knowledge base holds its limit of {limits.knowledge_chunks:,} passages.",
            )  # fmt: skip


def check_users(tenant, *, adding: int = 1) -> None:
    """Before a new member joins the tenant."""
    limit = limits_for(tenant).users
    if limit is None:
        return
    _serialise(tenant, "users")
    have = Membership.objects.filter(tenant=tenant).count()
    if have + adding > limit:
        raise QuotaExceeded("users", limit, have, f"This tenant has its limit of {limit} users.")


def check_api_rate(tenant, *, now: float | None = None) -> None:
    """One API request: a fixed one-minute window per tenant, counted in Redis (shared by
    every web process). Redis down: the request goes through (the limit protects, it is not
    a gate of correctness)."""
    limit = limits_for(tenant).api_requests_per_minute
    if limit is None:
        return
    now = _clock() if now is None else now
    window = int(now // 60)
    key = f"quota:api:{connection.settings_dict['NAME']}:{tenant.pk}:{window}"
    try:
        cache.add(key, 0, timeout=120)
        count = cache.incr(key)
    except Exception:
        log.warning("API rate counter unavailable", exc_info=True)
        return
    if count > limit:
        raise RateLimited(limit, max(1, int((window + 1) * 60 - now)))


def blueprint_enabled(tenant, blueprint: str) -> bool:
    allowed = limits_for(tenant).blueprints
    return allowed is None or blueprint in allowed


def retention_days(tenant) -> int | None:
    return limits_for(tenant).retention_days


# --------------------------------------------------------------------------- metering


def meter(**usage) -> bool:
    """Record a quantity of a metric once per key; True if this call recorded it. The keyword
    arguments are ``meter_statement``'s (tenant, metric, quantity, key, blueprint, model, at)."""
    statement = meter_statement(**usage)
    if statement is None:
        return False
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        recorded = cursor.fetchone() is not None
    if recorded:
        metered(usage["tenant"], usage["metric"])
    return recorded


def meter_statement(
    *,
    tenant,
    metric: str,
    quantity: int,
    key: str,
    blueprint: str = "",
    model: str = "",
    at: datetime | None = None,
) -> tuple[str, list] | None:
    """The INSERT that meters once per key (``RETURNING id`` when it recorded), for a caller
    that sends it together with its own writes; None when there is nothing to meter. After a
    recording insert, call ``metered``."""
    if quantity <= 0:
        return None
    return (
        "INSERT INTO agentops_usagerecord "
        "(tenant_id, metric, quantity, key, blueprint, model, occurred_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, metric, key) DO NOTHING RETURNING id",
        [tenant.pk, metric, quantity, key[:120], blueprint[:100], model[:100],
         at or timezone.now()],
    )  # fmt: skip


def metered(tenant, metric: str) -> None:
    """What follows a recorded unit: the 80 % warning of a monthly quota."""
    if metric in MONTHLY:
        _maybe_warn(tenant, metric)


def _maybe_warn(tenant, metric: str) -> None:
    """Past 80 % of a monthly quota: the tenant's admins hear it once per period."""
    from agentops.notifications import notify

    limit = getattr(limits_for(tenant), MONTHLY[metric])
    if not limit:
        return
    spent = used(tenant, metric)
    if spent * 100 < limit * WARN_AT:
        return
    period = period_start().date()
    with connection.cursor() as cursor:  # the row claims the warning: one per period
        cursor.execute(
            "INSERT INTO agentops_quotawarning (tenant_id, metric, period, threshold, created_at) "
            "VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (tenant_id, metric, period, threshold) DO NOTHING RETURNING id",
            [tenant.pk, metric, period, WARN_AT, timezone.now()],
        )
        if cursor.fetchone() is None:
            return
    label = {"runs": "agent runs", "tokens": "model tokens"}[metric]
    admins = Membership.objects.filter(tenant=tenant, role=Role.ADMIN).select_related("user")
    for membership in admins:
        notify(
            tenant=tenant,
            user=membership.user,
            verb="quota.warning",
            title=f"{WARN_AT} % of this month's {label} used",
            body=f"{spent:,} of {limit:,} {label} used since {period:%d %B}. At the limit, "
            "new work is refused until next month or a higher tier.",
            link="/usage/",
        )


# --------------------------------------------------------------------------- reading


def usage_summary(tenant, *, now: datetime | None = None) -> dict:
    """The month so far: use against each limit, and runs/tokens per day, blueprint, model."""
    start = period_start(now)
    limits = limits_for(tenant)
    records = UsageRecord.objects.for_tenant(tenant).filter(occurred_at__gte=start)
    by_day: dict[date, dict[str, int]] = {}
    rows = records.annotate(day=TruncDate("occurred_at", tzinfo=UTC))
    for row in rows.values("day", "metric").annotate(total=Sum("quantity")).order_by("day"):
        by_day.setdefault(row["day"], {RUNS: 0, TOKENS: 0})[row["metric"]] = row["total"]

    def grouped(field: str) -> list[dict]:
        out: dict[str, dict[str, int]] = {}
        for row in records.values(field, "metric").annotate(total=Sum("quantity")):
            out.setdefault(row[field] or "—", {RUNS: 0, TOKENS: 0})[row["metric"]] = row["total"]
        return [{"name": k, **v} for k, v in sorted(out.items())]

    current = {
        "runs_per_month": used(tenant, RUNS, since=start),
        "tokens_per_month": used(tenant, TOKENS, since=start),
        "knowledge_documents": count(tenant, "knowledge_documents"),
        "knowledge_chunks": count(tenant, "knowledge_chunks"),
        "users": Membership.objects.filter(tenant=tenant).aggregate(n=Count("pk"))["n"],
    }
    days = (period_end(start) - start).days
    return {
        "tier": tenant.tier,
        "period_start": start,
        "period_end": period_end(start),
        "limits": {**asdict(limits), "blueprints": list(limits.blueprints or []) or None},
        "usage": current,
        "per_day": [
            {"day": day, **by_day.get(day, {RUNS: 0, TOKENS: 0})}
            for day in (start.date() + timedelta(days=i) for i in range(days))
        ],
        "per_blueprint": grouped("blueprint"),
        "per_model": grouped("model"),
    }


def period_end(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


@transaction.atomic
def limits_set(*, tenant, actor, **values) -> TenantLimits:
    """An admin overrides limits of one tenant (None: back to the tier's)."""
    from agentops import audit

    unknown = set(values) - {f.name for f in fields(Limits)}
    if unknown:
        raise ValueError(f"Unknown limits: {', '.join(sorted(unknown))}")
    row, _ = TenantLimits.objects.for_tenant(tenant).get_or_create(tenant=tenant)
    for name, value in values.items():
        setattr(row, name, list(value) if name == "blueprints" and value is not None else value)
    row.save()
    forget_limits(tenant.pk)
    audit.record(
        tenant=tenant, actor=actor, action="tenant.limits_changed", target_type="tenant",
        target_id=tenant.pk, target_repr=tenant.slug, changes={k: str(v) for k, v in values.items()},
    )  # fmt: skip
    return row


# --------------------------------------------------------------------------- engine hooks


def meter_run(run) -> bool:
    """One started run (agents.engine.start_run, after the Run row is created)."""
    return meter(
        tenant=run.tenant, metric=RUNS, quantity=1, key=f"run:{run.pk}",
        blueprint=run.agent_name, model=run.model or "",
    )  # fmt: skip


def meter_step(run, step) -> bool:
    """One recorded step's model tokens."""
    return meter(**step_usage(run, step))


def step_usage(run, step) -> dict:
    """The usage a recorded step meters (agents.engine sends it with the step's writes)."""
    tokens = int(step.tokens_prompt or 0) + int(step.tokens_completion or 0)
    return dict(
        tenant=run.tenant, metric=TOKENS, quantity=tokens, key=f"step:{step.pk}",
        blueprint=run.agent_name, model=run.model or "",
    )  # fmt: skip
