"""``manage.py import_knowledge <folder> --tenant SLUG [--kind KIND]``: load a folder of
Markdown, text and HTML files (recursively). Re-running skips unchanged files and re-indexes
changed ones (the relative path is each file's key)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from agentops.models import Tenant
from knowledge.models import SourceKind
from knowledge.services import import_folder


class Command(BaseCommand):
    help = "Import a folder of Markdown / text / HTML files into a tenant's knowledge base."

    def add_arguments(self, parser):
        parser.add_argument("folder")
        parser.add_argument("--tenant", required=True, help="the tenant's slug")
        parser.add_argument(
            "--kind",
            choices=SourceKind.values,
            help="kind of every file (default: from a runbooks/, guides/, policies/ folder, "
            "else runbook)",
        )

    def handle(self, *args, folder, tenant, kind=None, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        try:
            report = import_folder(tenant=found, folder=folder, kind=kind)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        for rel, why in report.refused:
            self.stderr.write(f"refused {rel}: {why}")
        self.stdout.write(
            f"{found.slug}: {len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.refused)} refused. "
            "Indexing runs in the worker."
        )
        if report.refused and not (report.created or report.updated or report.unchanged):
            raise CommandError("Nothing could be imported.")
