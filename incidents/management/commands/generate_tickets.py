from django.core.management.base import BaseCommand, CommandError

from agentops.models import Tenant
from incidents.testdata import bulk_generate, generate_tickets


class Command(BaseCommand):
    help = "Generate realistic IT tickets and incidents for a tenant (demo, testing, load)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--count", type=int, default=50)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--bulk",
            action="store_true",
            help="write rows in bulk (fast, for load tests): no per-ticket audit events",
        )
        parser.add_argument(
            "--comments", type=int, default=2, help="comments per ticket (bulk mode)"
        )

    def handle(self, *args, tenant, count, seed, bulk, comments, **options):
        if count < 1:
            raise CommandError("--count must be at least 1")
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        if bulk:
            n = bulk_generate(
                tenant=tenant_obj, count=count, comments_per_ticket=comments, seed=seed
            )
        else:
            n = len(generate_tickets(tenant=tenant_obj, actor=None, count=count, seed=seed))
        self.stdout.write(self.style.SUCCESS(f"{n} tickets generated for {tenant_obj.slug}."))
