from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from agentops.models import Tenant
from incidents.incident_scenarios import NAMES, generate_incident


class Command(BaseCommand):
    help = (
        "Write a fault scenario (logs, metrics, traces, deploys) into a tenant's sandbox and "
        "open the incident as monitoring would; incident response starts on it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--scenario", required=True, help=f"one of: {', '.join(NAMES)}")
        parser.add_argument("--tenant", help="tenant slug (default: the only tenant)")
        parser.add_argument(
            "--ineffective",
            action="store_true",
            help="the usual remediation will not help (the incident must be escalated)",
        )
        parser.add_argument("--no-agent", action="store_true", help="do not start the agent")

    def handle(self, *args, scenario, tenant, ineffective, no_agent, **options):
        if scenario not in NAMES:
            raise CommandError(f"Unknown scenario {scenario!r}. Choose one of: {', '.join(NAMES)}.")
        if tenant:
            tenant_obj = Tenant.objects.filter(slug=tenant).first()
            if tenant_obj is None:
                raise CommandError(f"No tenant with slug {tenant!r}.")
        else:
            tenants = list(Tenant.objects.all()[:2])
            if len(tenants) != 1:
                raise CommandError("Say which tenant with --tenant SLUG.")
            tenant_obj = tenants[0]
        try:
            ticket = generate_incident(
                tenant=tenant_obj,
                actor=None,
                scenario=scenario,
                ineffective=ineffective,
                start_agent=not no_agent,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"{ticket.number} opened for {scenario} in {tenant_obj.slug}.")
        )
