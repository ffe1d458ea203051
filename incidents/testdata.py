"""A generator of realistic IT tickets and incidents (seed 001's test-data generator).

``generate_tickets`` opens tickets through the services (numbered, SLA'd, audited) and is
what the demo uses. ``bulk_generate`` writes many rows at once for benchmarks and load
tests; it reserves a block of numbers and leaves the search vector to the database trigger.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from agentops.services import sequence_next
from incidents.models import KIND_PREFIX, Comment, Kind, Priority, Severity, Source, Status, Ticket
from incidents.services import NUMBER_DIGITS, sla_due_for


@dataclass(frozen=True)
class Template:
    kind: str
    category: str
    priority: str
    title: str
    description: str
    services: tuple[str, ...] = ()
    severity: str = ""
    detected_by: str = ""


# Each title/description may use {app}, {device}, {site}, {n}, {service}, {printer}.
TEMPLATES: list[Template] = [
    Template(
        Kind.REQUEST,
        "network",
        "medium",
        "Cannot connect to VPN from home office",
        "Getting timeout errors when connecting to the corporate VPN since this morning. "
        "Tried restarting the client and my router. Error: 'The connection attempt timed out'.",
        ("VPN",),
    ),
    Template(
        Kind.REQUEST,
        "access",
        "high",
        "Account locked out after password attempts",
        "I'm locked out of my account after entering an old password on my phone. "
        "I need access for a customer call at {n}:00.",
    ),
    Template(
        Kind.REQUEST,
        "access",
        "medium",
        "Password reset needed",
        "My password expired while I was on leave and the self-service reset does not send the code. "
        "Please reset it.",
        ("SSO",),
    ),
    Template(
        Kind.REQUEST,
        "security",
        "medium",
        "Set up MFA on my new phone",
        "I replaced my phone and the authenticator app no longer has my account. "
        "Please re-enrol MFA so I can sign in to {app}.",
        ("SSO",),
    ),
    Template(
        Kind.REQUEST,
        "software",
        "low",
        "Install {app} on my laptop",
        "I need {app} for the quarterly reporting work. My laptop is {device}. "
        "My manager approved it in the team channel.",
    ),
    Template(
        Kind.REQUEST,
        "network",
        "medium",
        "Wi-Fi keeps dropping on {device}",
        "The wireless adapter disconnects every few minutes at the {site} office. Other people "
        "around me are fine. Already forgot and re-joined the network.",
    ),
    Template(
        Kind.REQUEST,
        "hardware",
        "low",
        "Laptop battery drains in an hour",
        "My {device} battery goes from 100% to 10% in about an hour, even with only e-mail open. "
        "Battery report attached.",
    ),
    Template(
        Kind.REQUEST,
        "hardware",
        "medium",
        "Printer {printer} shows paper jam but is empty",
        "The printer on floor {n} reports a paper jam in tray 2. There is no paper stuck. "
        "Twelve people use it.",
    ),
    Template(
        Kind.REQUEST,
        "email",
        "medium",
        "Shared mailbox not showing in Outlook",
        "I was added to the support@ shared mailbox yesterday but it does not appear in Outlook "
        "on desktop or web.",
        ("Exchange Online",),
    ),
    Template(
        Kind.REQUEST,
        "email",
        "high",
        "Cannot send e-mail: mailbox full",
        "Outlook says my mailbox is full and I cannot send. I archived last year's mail already.",
        ("Exchange Online",),
    ),
    Template(
        Kind.REQUEST,
        "access",
        "medium",
        "Access to the {app} finance workspace",
        "Joining the FP&A team next week and need read access to the {app} finance workspace. "
        "Approver: my manager.",
    ),
    Template(
        Kind.REQUEST,
        "access",
        "high",
        "Need admin rights on my workstation",
        "Please grant me local admin rights so I can install developer tools myself.",
    ),
    Template(
        Kind.REQUEST,
        "software",
        "medium",
        "{app} crashes on start after update",
        "Since last night's update {app} closes immediately after the splash screen. "
        "Reinstalling did not help.",
    ),
    Template(
        Kind.REQUEST,
        "hardware",
        "low",
        "Request a second monitor",
        "I would like a second 27-inch monitor for the {site} desk I use on Tuesdays.",
    ),
    Template(
        Kind.REQUEST,
        "other",
        "low",
        "New starter onboarding: laptop and accounts",
        "New team member starts on Monday at {site}. Needs a laptop, e-mail, SSO and VPN access.",
    ),
    Template(
        Kind.INCIDENT,
        "infrastructure",
        "critical",
        "{service} API returning 5xx errors",
        "Error rate on {service} rose from 0.1% to 18% at {n}:05 UTC. p95 latency above 4 s. "
        "Customers report failed checkouts.",
        ("{service}", "API-Gateway"),
        Severity.SEV1,
        "monitoring-system",
    ),
    Template(
        Kind.INCIDENT,
        "infrastructure",
        "high",
        "Database connection pool exhausted on {service}",
        "Application logs show 'remaining connection slots are reserved'. Requests queue up and "
        "time out after 30 s.",
        ("{service}", "PostgreSQL"),
        Severity.SEV2,
        "monitoring-system",
    ),
    Template(
        Kind.INCIDENT,
        "infrastructure",
        "high",
        "Function timeout in {service} worker",
        "Function timing out after 30 seconds since the last deployment. Queue depth growing.",
        ("{service}", "Lambda"),
        Severity.SEV2,
        "cloudwatch-alarm",
    ),
    Template(
        Kind.INCIDENT,
        "network",
        "high",
        "VPN concentrator at {site} unreachable",
        "Remote staff in the {site} region cannot establish VPN tunnels. Health check failing "
        "since {n}:40.",
        ("VPN",),
        Severity.SEV2,
        "network-monitoring",
    ),
    Template(
        Kind.INCIDENT,
        "application",
        "medium",
        "Slow page loads in {app}",
        "Users report {app} pages take 10+ seconds to load. CPU on the app tier is at 95%.",
        ("{app}",),
        Severity.SEV3,
        "synthetic-check",
    ),
    Template(
        Kind.INCIDENT,
        "security",
        "critical",
        "Suspicious sign-ins from unfamiliar country",
        "Identity protection flagged 40 sign-in attempts for three accounts from an unfamiliar "
        "location within ten minutes.",
        ("SSO",),
        Severity.SEV1,
        "identity-protection",
    ),
    Template(
        Kind.INCIDENT,
        "infrastructure",
        "medium",
        "Disk usage above 90% on {service} nodes",
        "Two of three nodes crossed 90% disk usage. Log rotation job failed last night.",
        ("{service}",),
        Severity.SEV3,
        "prometheus-alertmanager",
    ),
    Template(
        Kind.INCIDENT,
        "email",
        "high",
        "Outbound e-mail delayed for all users",
        "Outbound messages are queued for 20+ minutes. The mail relay reports TLS handshake "
        "failures to the upstream provider.",
        ("Exchange Online", "Mail relay"),
        Severity.SEV2,
        "mail-monitoring",
    ),
    Template(
        Kind.INCIDENT,
        "application",
        "low",
        "Nightly report job failed",
        "The nightly {app} export failed with 'permission denied' on the output bucket.",
        ("{app}",),
        Severity.SEV4,
        "scheduler",
    ),
]

APPS = [
    "Tableau",
    "Power BI",
    "Salesforce",
    "Slack",
    "Zoom",
    "Visual Studio Code",
    "Adobe Acrobat",
    "SAP GUI",
    "Jira",
    "Confluence",
    "Workday",
    "Figma",
]
# People name their laptop, not its asset tag; the agent finds the tag in endpoint management.
DEVICES = ["ThinkPad T14", "MacBook Pro 14", "Dell Latitude 7440", "Surface Laptop 5"]
SITES = ["Berlin", "Austin", "London", "Singapore", "Toronto", "Madrid"]
SERVICES = ["checkout", "payments", "orders", "search", "auth", "inventory", "notifications"]
PRINTERS = ["PRN-2F-EAST", "PRN-3F-WEST", "PRN-LOBBY", "PRN-5F-FIN"]
FIRST = [
    "alex",
    "sam",
    "jordan",
    "taylor",
    "morgan",
    "casey",
    "riley",
    "jamie",
    "avery",
    "quinn",
    "drew",
    "robin",
    "kai",
    "noa",
    "lee",
    "mika",
]
LAST = [
    "smith",
    "garcia",
    "müller",
    "chen",
    "patel",
    "kowalski",
    "okafor",
    "rossi",
    "nguyen",
    "johansson",
    "silva",
    "kim",
]
REPLIES = [
    "Thanks, I'm looking into this now.",
    "Could you send a screenshot of the error message?",
    "I've reproduced the problem and am applying the runbook fix.",
    "The change has been pushed; please try again and let us know.",
    "Confirmed working on my side now, thank you!",
    "Escalating to the network team for the concentrator logs.",
]


def _fill(text: str, rng: random.Random, picks: dict[str, str]) -> str:
    return text.format(**picks)


def _picks(rng: random.Random) -> dict[str, str]:
    n = rng.randint(1, 9999)
    return {
        "app": rng.choice(APPS),
        "device": rng.choice(DEVICES).format(n=n),
        "site": rng.choice(SITES),
        "service": rng.choice(SERVICES),
        "printer": rng.choice(PRINTERS),
        "n": str(rng.randint(7, 18)),
    }


def fake_ticket(rng: random.Random, domain: str) -> dict:
    """One realistic ticket as keyword arguments for incidents.services.ticket_create."""
    template = rng.choice(TEMPLATES)
    picks = _picks(rng)
    person = f"{rng.choice(FIRST)}.{rng.choice(LAST)}"
    data = {
        "kind": template.kind,
        "title": _fill(template.title, rng, picks),
        "description": _fill(template.description, rng, picks),
        "category": template.category,
        "priority": template.priority,
        "severity": template.severity,
        "affected_services": [_fill(s, rng, picks) for s in template.services],
        "detected_by": template.detected_by,
        "requester_email": f"{person}@{domain}".replace("ü", "ue"),
        "source": Source.MONITORING
        if template.detected_by
        else rng.choice([Source.PORTAL, Source.CONSOLE, Source.EMAIL, Source.CHAT, Source.API]),
    }
    return data


def generate_tickets(
    *,
    start_agent: bool | None = None,
    tenant,
    actor,
    count: int,
    seed: int = 1,
    domain: str | None = None,
    requesters=(),
    assignees=(),
) -> list[Ticket]:
    """Open ``count`` tickets through the services (numbered, SLA'd, audited)."""
    from incidents import services

    rng = random.Random(seed)
    domain = domain or f"{tenant.slug}.example"
    tickets = []
    for _ in range(count):
        data = fake_ticket(rng, domain)
        requester = None
        if requesters and rng.random() < 0.3:
            requester = rng.choice(list(requesters))
            data["requester_email"] = requester.email
        ticket = services.ticket_create(
            tenant=tenant, actor=actor, requester=requester, start_agent=start_agent, **data
        )
        if assignees and rng.random() < 0.5:
            ticket = services.ticket_assign(
                ticket=ticket, actor=actor, assignee=rng.choice(list(assignees))
            )
        tickets.append(ticket)
    return tickets


def bulk_generate(
    *,
    tenant,
    count: int,
    comments_per_ticket: int = 2,
    seed: int = 1,
    batch_size: int = 5000,
    spread_days: int = 365,
) -> int:
    """Write ``count`` tickets (and comments) in bulk; for benchmarks and load tests only."""
    rng = random.Random(seed)
    domain = f"{tenant.slug}.example"
    statuses = [
        Status.NEW,
        Status.TRIAGED,
        Status.IN_PROGRESS,
        Status.ON_HOLD,
        Status.RESOLVED,
        Status.RESOLVED,
        Status.CLOSED,
        Status.CLOSED,
        Status.CLOSED,
    ]
    now = timezone.now()
    written = 0
    while written < count:
        n = min(batch_size, count - written)
        rows = []
        kinds = [fake_ticket(rng, domain) for _ in range(n)]
        by_kind: dict[str, int] = {}
        for data in kinds:
            by_kind[data["kind"]] = by_kind.get(data["kind"], 0) + 1
        # Reserve a block of numbers per kind: the counter ends at the last number used.
        next_number = {}
        for kind, k in by_kind.items():
            last = sequence_next(tenant=tenant, name=f"ticket:{kind}", step=k)
            next_number[kind] = last - k + 1
        for data in kinds:
            created = now - timedelta(minutes=rng.randint(0, spread_days * 24 * 60))
            status = rng.choice(statuses)
            seq = next_number[data["kind"]]
            next_number[data["kind"]] += 1
            rows.append(
                Ticket(
                    tenant=tenant,
                    number=f"{KIND_PREFIX[data['kind']]}{seq:0{NUMBER_DIGITS}d}",
                    created_at=created,
                    updated_at=created,
                    status=status,
                    sla_due=sla_due_for(
                        tenant=tenant, priority=data["priority"] or Priority.MEDIUM, start=created
                    ),
                    resolved_at=created + timedelta(hours=rng.randint(1, 72))
                    if status in (Status.RESOLVED, Status.CLOSED)
                    else None,
                    resolution_notes="Resolved following the runbook."
                    if status in (Status.RESOLVED, Status.CLOSED)
                    else "",
                    **data,
                )
            )
        Ticket.objects.bulk_create(rows, batch_size=1000)
        comments = []
        for ticket in rows:
            for i in range(comments_per_ticket):
                comments.append(
                    Comment(
                        tenant=tenant,
                        ticket=ticket,
                        author_label="service-desk",
                        body=rng.choice(REPLIES),
                        is_internal=(i % 3 == 2),
                        created_at=ticket.created_at + timedelta(minutes=10 * (i + 1)),
                    )
                )
        Comment.objects.bulk_create(comments, batch_size=2000)
        written += n
    return written
