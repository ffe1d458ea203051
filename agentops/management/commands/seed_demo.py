"""Load the demo: two tenants, their people, and a few dozen realistic tickets. Idempotent."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from agentops.models import Role, Tenant
from agentops.services import membership_set

DEMO_USERS = [
    # username, first, last, tenant slug, role, superuser
    ("admin", "Ada", "Admin", "acme", Role.ADMIN, True),
    ("agent", "Alex", "Agent", "acme", Role.AGENT, False),
    ("reviewer", "Riley", "Reviewer", "acme", Role.REVIEWER, False),
    ("requester", "Robin", "Requester", "acme", Role.REQUESTER, False),
    ("auditor", "Audra", "Auditor", "acme", Role.AUDITOR, False),
    ("globex-admin", "Gina", "Admin", "globex", Role.ADMIN, False),
    ("globex-agent", "Gus", "Agent", "globex", Role.AGENT, False),
    ("globex-requester", "Greta", "Requester", "globex", Role.REQUESTER, False),
]


# Each demo tenant's queues: name, slug, description, the categories triage routes there.
DEMO_QUEUES = [
    (
        "Service Desk",
        "service-desk",
        "First line: software, e-mail and business applications; anything else.",
        ["software", "email", "application", "other"],
    ),
    (
        "Identity & Access",
        "identity-access",
        "Accounts, passwords, MFA, access rights and security reports.",
        ["access", "security"],
    ),
    (
        "Network",
        "network",
        "VPN, Wi-Fi, connectivity and the infrastructure behind them.",
        ["network", "infrastructure"],
    ),
    (
        "Workplace & Hardware",
        "workplace-hardware",
        "Laptops, phones, printers and peripherals.",
        ["hardware"],
    ),
]


def seed_escalation_policy(tenant) -> None:
    """A sensible default chain: a breached request goes to the least-loaded available
    reviewer; an hour later to the admins, at a higher priority (admin: Escalation policies)."""
    from approvals.models import EscalationPolicy, EscalationRule

    policy, created = EscalationPolicy.objects.for_tenant(tenant).get_or_create(
        tenant=tenant, defaults={"name": "Default"}
    )
    if not created:
        return
    Target = EscalationRule.Target
    for order, (after, target, raise_priority) in enumerate(
        [(0, Target.LEAST_LOADED, False), (60, Target.ADMINS, True)]
    ):
        EscalationRule.objects.create(
            tenant=tenant,
            policy=policy,
            order=order,
            action_pattern="*",
            after_minutes=after,
            target=target,
            raise_priority=raise_priority,
        )


def seed_queues(tenant, tickets, actor=None) -> None:
    """The tenant's demo queues, and each demo ticket routed to the queue of its category."""
    from incidents import services
    from incidents.models import Queue

    by_category = {}
    for name, slug, description, categories in DEMO_QUEUES:
        queue = Queue.objects.for_tenant(tenant).filter(slug=slug).first()
        if queue is None:
            queue = services.queue_create(
                tenant=tenant,
                actor=actor,
                name=name,
                slug=slug,
                description=description,
                categories=categories,
            )
        by_category.update(dict.fromkeys(queue.categories, queue))
    for ticket in tickets:
        queue = by_category.get(ticket.category) or by_category.get("other")
        if ticket.queue_id is None and queue is not None:
            services.ticket_set_queue(ticket=ticket, actor=actor, queue=queue)


class Command(BaseCommand):
    help = "Load demo tenants (acme, globex), users and tickets on first run; a no-op afterwards."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="load even if demo data exists")

    def handle(self, *args, force=False, **options):
        if Tenant.objects.filter(slug="acme").exists() and not force:
            self.stdout.write("Demo data already present; nothing to do.")
            return
        with transaction.atomic():
            self._load()
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))

    def _load(self):
        from agents.connectors.sandbox.seed import seed_sandbox
        from agents.engine import agent_config
        from incidents import services
        from incidents.testdata import generate_tickets

        acme, _ = Tenant.objects.get_or_create(
            slug="acme", defaults={"name": "Acme Corp", "tier": Tenant.Tier.ENTERPRISE}
        )
        globex, _ = Tenant.objects.get_or_create(
            slug="globex", defaults={"name": "Globex Industries", "tier": Tenant.Tier.PROFESSIONAL}
        )
        tenants = {"acme": acme, "globex": globex}
        User = get_user_model()
        users = {}
        for username, first, last, slug, role, superuser in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@{slug}.example",
                },
            )
            if created or not user.has_usable_password():
                user.set_password(settings.DEMO_PASSWORD)
            user.is_staff = user.is_superuser = superuser
            user.save()
            membership_set(tenant=tenants[slug], user=user, role=role)
            users[username] = user
        # The admin also works in globex, so the tenant switcher has something to switch.
        membership_set(tenant=globex, user=users["admin"], role=Role.ADMIN)

        acme_tickets = generate_tickets(
            tenant=acme,
            actor=users["agent"],
            count=36,
            seed=7,
            requesters=[users["requester"]],
            assignees=[users["agent"], users["admin"]],
            start_agent=False,
        )
        globex_tickets = generate_tickets(
            tenant=globex,
            actor=users["globex-agent"],
            count=14,
            seed=11,
            requesters=[users["globex-requester"]],
            assignees=[users["globex-agent"]],
            start_agent=False,
        )
        seed_queues(acme, acme_tickets)
        seed_queues(globex, globex_tickets)
        for tenant in (acme, globex):
            seed_escalation_policy(tenant)
        # The demo knowledge base (runbooks, guides, the compliance policy) for each tenant,
        # indexed by the worker after commit, so the agents' Resolution steps cite it.
        from knowledge.services import DEMO_KB_DIR, import_folder

        for tenant in (acme, globex):
            import_folder(tenant=tenant, folder=DEMO_KB_DIR, actor=None)
        # The sandbox connector's directory and devices: every demo person and every
        # requester of a demo ticket exists there, with realistic problems (the requesters
        # come first, so `requester` starts locked out with a VPN that times out).
        for tenant, tickets, first in (
            (acme, acme_tickets, [users["requester"], users["agent"], users["reviewer"]]),
            (globex, globex_tickets, [users["globex-requester"], users["globex-agent"]]),
        ):
            people = [(u.email, u.get_full_name() or u.username) for u in first]
            for t in tickets:
                if t.requester_email not in {p[0] for p in people}:
                    people.append((t.requester_email, t.requester_email.split("@")[0]))
            seed_sandbox(tenant, people, rng_seed=3)
            config = agent_config(tenant)
            config.auto_resolve_on_create = True
            config.save(update_fields=["auto_resolve_on_create"])
        # Let the agents work the open demo tickets (the worker picks them up after commit).
        for tickets in (acme_tickets[:24], globex_tickets[:8]):
            for ticket in tickets:
                services.ticket_start_agent(ticket=ticket, actor=None)
        # A little history on a few tickets, so the ticket page shows a conversation.
        for tenant, agent in ((acme, users["agent"]), (globex, users["globex-agent"])):
            from incidents.models import Ticket

            for i, ticket in enumerate(Ticket.objects.for_tenant(tenant).order_by("-id")[:6]):
                services.ticket_comment(ticket=ticket, actor=agent, body="Looking into this now.")
                if i % 2 == 0:
                    services.ticket_transition(ticket=ticket, actor=agent, status="in_progress")
                if i == 4:
                    services.ticket_transition(
                        ticket=ticket,
                        actor=agent,
                        status="resolved",
                        note="Followed the runbook; the requester confirmed it works.",
                    )
