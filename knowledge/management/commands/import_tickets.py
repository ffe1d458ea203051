"""manage.py import_tickets FILE.csv --tenant SLUG --text-column ... --label-column ...

Imports labelled past tickets for nearest-neighbour triage (``knowledge.history``): embedded
in batches, upserted in bulk by id (re-importing a file updates its rows). Each category label
becomes one of the tenant's categories (``history.map_labels``: incidents.taxonomy creates
those it does not have), so triage can give tickets the tenant's own labels.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from agentops.models import Tenant
from knowledge import history
from knowledge.embeddings import EmbeddingBackendError, get_embedder
from knowledge.management.commands._ticket_csv import joined, open_rows


class Command(BaseCommand):
    help = "Import labelled past tickets from a CSV file into a tenant's triage history."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file with a header row (UTF-8)")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument(
            "--text-column",
            action="append",
            required=True,
            help="column with the ticket text; repeat it to join several (title, description)",
        )
        parser.add_argument("--label-column", required=True, help="column with the category")
        parser.add_argument("--priority-column", help="column with the priority")
        parser.add_argument("--group-column", help="column with the assignment group")
        parser.add_argument(
            "--id-column", help="column with the ticket id (default: a hash of the text)"
        )
        parser.add_argument("--batch-size", type=int, default=history.EMBED_BATCH)

    def handle(self, *args, file, tenant, text_column, label_column, **options):
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        columns = {
            "text": text_column,
            "label": label_column,
            "priority": options.get("priority_column"),
            "group": options.get("group_column"),
            "id": options.get("id_column"),
        }
        rows = open_rows(file, required=columns)
        try:
            embedder = get_embedder()
        except EmbeddingBackendError as exc:
            raise CommandError(str(exc)) from exc
        started = time.monotonic()
        seen = skipped = 0

        categories: dict[str, str] = {}  # label in the file → the tenant's category value

        def category_of(label: str) -> str:
            label = (label or "").strip()
            if label and label not in categories:
                # The tenant's taxonomy learns the label (once per distinct label).
                categories.update(history.map_labels(tenant_obj, "category", [label]))
            return categories.get(label, label)

        def examples():
            nonlocal seen, skipped
            for row in rows:
                seen += 1
                text = joined(row, text_column)
                if not text:
                    skipped += 1
                    continue
                yield {
                    "ref": (row.get(columns["id"]) or "").strip() if columns["id"] else "",
                    "text": text,
                    "category": category_of(row.get(label_column, "")),
                    "priority": row.get(columns["priority"], "") if columns["priority"] else "",
                    "assignment_group": row.get(columns["group"], "") if columns["group"] else "",
                }

        def progress(written: int) -> None:
            rate = written / max(time.monotonic() - started, 1e-6)
            self.stdout.write(f"  {written} rows imported ({rate:.0f}/s)")

        written = history.index_examples(
            tenant_obj,
            examples(),
            origin="import",
            batch_size=batch_size,
            progress=progress,
            embedder=embedder,
        )
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {written} labelled tickets into {tenant_obj.slug} from {seen} rows "
                f"({skipped} without text skipped) in {elapsed:.1f} s with {embedder.name}."
            )
        )
