from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from agentops.models import Tenant
from agentops.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user in a tenant and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", default="api", help="a label for the token")

    def handle(self, *args, username, tenant, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        try:
            _, raw = api_token_create(tenant=tenant_obj, user=user, name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(raw)
