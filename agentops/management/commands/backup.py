"""A base backup of the embedded PostgreSQL, with a manifest for the restore drill.

    manage.py backup [--to DIR]

Default DIR: var/backups/<UTC time>. See agentops.backup and the README ("Backups and the
restore drill").
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from agentops import backup, localservices


class Command(BaseCommand):
    help = "Take a base backup of the database cluster (pg_basebackup) with a manifest."

    def add_arguments(self, parser):
        parser.add_argument("--to", metavar="DIR", help="An empty or new directory.")

    def handle(self, *args, to: str | None = None, **options):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = Path(to) if to else localservices.VAR_DIR / "backups" / stamp
        try:
            manifest = backup.backup(target)
        except (FileExistsError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        rows = sum(manifest["counts"].values())
        self.stdout.write(
            self.style.SUCCESS(
                f"Base backup in {target}: {len(manifest['counts'])} tables, {rows} rows, "
                f"{len(manifest['audit_heads'])} audit chains, "
                f"{len(manifest['vectors'])} vector probes."
            )
        )
