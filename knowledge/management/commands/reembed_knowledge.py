"""``manage.py reembed_knowledge [--tenant SLUG]``: re-index documents whose chunks another
embedding model wrote (run after changing KNOWLEDGE_EMBEDDING_BACKEND; beat does it too)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from agentops.models import Tenant
from knowledge.services import reembed_stale


class Command(BaseCommand):
    help = "Re-embed knowledge chunks written by another embedding model."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="only this tenant (slug)")

    def handle(self, *args, tenant=None, **options):
        found = None
        if tenant:
            found = Tenant.objects.filter(slug=tenant).first()
            if found is None:
                raise CommandError(f"No tenant with slug {tenant!r}.")
        count = reembed_stale(found)
        self.stdout.write(f"{count} document(s) enqueued for re-embedding.")
