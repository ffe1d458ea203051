"""Backfill the analytics rollups: ``manage.py rebuild_analytics --tenant acme --days 365``."""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError

from agentops.models import Tenant
from incidents.analytics import rollups


class Command(BaseCommand):
    help = "Recompute the daily analytics rollups of a tenant (or all) for the last N days."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Tenant slug (default: every active tenant).")
        parser.add_argument("--days", type=int, default=90, help="How many days back (90).")

    def handle(self, *args, tenant=None, days=90, **options):
        if days < 1 or days > 3660:
            raise CommandError("--days must be between 1 and 3660.")
        tenants = Tenant.objects.filter(is_active=True)
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No active tenant {tenant!r}.")
        since = rollups.today() - dt.timedelta(days=days - 1)
        for one in tenants:
            began = time.monotonic()
            count = rollups.rebuild(one, since=since)
            self.stdout.write(f"{one.slug}: {count} days in {time.monotonic() - began:.1f} s")
