from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from agentops.models import Tenant
from agentops.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a user in a tenant and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--name", default="api", help="a label for the token")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="the token expires after N days"
        )

    def handle(self, *args, username, tenant, name, expires_days=None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        try:
            expires_at = None
            if expires_days is not None:
                if expires_days < 1:
                    raise CommandError("--expires-days must be 1 or more.")
                expires_at = timezone.now() + timedelta(days=expires_days)
            _, raw = api_token_create(
                tenant=tenant_obj, user=user, name=name, expires_at=expires_at
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(raw)
