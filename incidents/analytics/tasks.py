"""Beat: keep the analytics rollups of every active tenant up to date."""

from __future__ import annotations

import logging

from celery import shared_task

from agentops.models import Tenant
from incidents.analytics import rollups

log = logging.getLogger(__name__)


@shared_task(name="incidents.analytics.tasks.refresh_rollups")
def refresh_rollups(days: int = 2) -> int:
    """Recompute today and yesterday for each active tenant (safe to run twice)."""
    done = 0
    for tenant in Tenant.objects.filter(is_active=True):
        try:
            rollups.refresh_recent(tenant, days=days)
            done += 1
        except Exception:  # one tenant's failure must not stop the others' figures
            log.exception("Could not refresh the analytics of tenant %s", tenant.slug)
    return done
