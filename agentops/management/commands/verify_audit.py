"""Recompute every tenant's audit hash chain and report whether it still holds.

    manage.py verify_audit [--tenant SLUG]

Exit status 0 when every chain verifies; otherwise non-zero, naming for each broken tenant
the first event where the chain fails and why: ``deleted`` (a gap in seq), ``reordered``
(prev_hash is not the previous event's hash) or ``modified`` (the event's hash no longer
matches its content).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agentops.audit import verify_chain
from agentops.models import Tenant


class Command(BaseCommand):
    help = "Verify the hash chain of the audit trail, per tenant."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SLUG", help="Only this tenant (default: all).")

    def handle(self, *args, tenant: str | None = None, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {tenant!r}.")
        broken = []
        total = 0
        for t in tenants:
            report = verify_chain(t)
            if report.ok:
                total += report.count
                self.stdout.write(f"{t.slug}: OK, {report.count} event(s)")
            else:
                broken.append(t.slug)
                self.stderr.write(f"{t.slug}: BROKEN at {report.broken}")
        if broken:
            raise CommandError(f"Audit chain broken for: {', '.join(broken)}")
        self.stdout.write(self.style.SUCCESS(f"Audit chain OK: {total} event(s) verified."))
