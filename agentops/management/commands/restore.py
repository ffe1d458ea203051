"""Restore a base backup to a scratch server and check it (the restore drill).

    manage.py restore BACKUP_DIR --to PGDATA [--keep]

Copies the backup into PGDATA (new or empty), starts PostgreSQL on it with a socket of its own,
and compares it with the backup's manifest: row counts per table, every tenant's audit chain
(recomputed from the restored rows) and vector queries. Exit status 0 when everything matches.
With --keep the server keeps running (its URL is printed): point DATABASE_URL at it, or stop
the live server and move PGDATA into var/pg, to make the restore the real thing.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from agentops import backup


class Command(BaseCommand):
    help = "Restore a base backup to a scratch server and check counts, audit chains, vectors."

    def add_arguments(self, parser):
        parser.add_argument("backup_dir", metavar="BACKUP_DIR")
        parser.add_argument("--to", metavar="PGDATA", required=True)
        parser.add_argument("--keep", action="store_true", help="Leave the server running.")

    def handle(self, *args, backup_dir: str, to: str, keep: bool = False, **options):
        source = Path(backup_dir)
        try:
            manifest = json.loads((source / backup.MANIFEST).read_text())
            server = backup.restore(source, Path(to))
        except (FileNotFoundError, FileExistsError, ValueError, OSError) as exc:
            raise CommandError(f"Cannot restore {source}: {exc}") from exc
        try:
            problems = backup.check(manifest, server.url())
        finally:
            if not keep:
                server.stop()
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"The restore does not match the backup ({len(problems)}).")
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored to {to}: {len(manifest['counts'])} tables' row counts, "
                f"{len(manifest['audit_heads'])} audit chains and "
                f"{len(manifest['vectors'])} vector queries match the backup."
            )
        )
        if keep:
            self.stdout.write(f"The restored server is running: {server.url()}")
