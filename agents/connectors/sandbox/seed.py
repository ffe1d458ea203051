"""Fill a tenant's sandbox with a realistic directory, devices, logs and metrics (idempotent).

``seed_sandbox(tenant, people)`` creates a directory account for each given person plus a
dozen colleagues, one or two managed devices each, and six hours of logs and metrics for
checkout, payments and auth, with an error spike on payments in the last half hour.

The given people get known problems, in order, so a demo can rely on them:

====  ==========================================================================
 #    state
====  ==========================================================================
 0    account locked (5 failed sign-ins); laptop on an outdated VPN profile, VPN timing out
 1    no MFA; laptop whose network adapter is flapping
 2    laptop on an outdated VPN profile, VPN timing out; a healthy desktop too
 3    healthy
====  ==========================================================================

and then the cycle repeats. Colleagues get random but reproducible problems: every value
is drawn from ``random.Random(f"{rng_seed}:{email}")``, so the same seed gives the same
sandbox whatever else exists. Running it again creates nothing new and changes nothing
(accounts and devices the tools changed keep their state).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from agents.connectors.sandbox.models import (
    LATEST_VPN_PROFILE_VERSION,
    AdapterState,
    Device,
    DirectoryUser,
    LogLevel,
    LogLine,
    MetricPoint,
    MfaMethod,
    VpnStatus,
)

SEED_SERVICES = ("checkout", "payments", "auth")
SPIKE_SERVICE = "payments"
SPIKE_MINUTES = 30
HISTORY_HOURS = 6
METRIC_STEP_MINUTES = 2

COLLEAGUES = [
    ("Maya Patel", "Finance"),
    ("Jonas Weber", "Engineering"),
    ("Aisha Khan", "Sales"),
    ("Liam O'Connor", "Marketing"),
    ("Sofia Rossi", "Engineering"),
    ("Kenji Tanaka", "Operations"),
    ("Chloé Martin", "Legal"),
    ("Daniel Nowak", "IT"),
    ("Priya Sharma", "Human Resources"),
    ("Lucas Silva", "Customer Success"),
    ("Emma Johansson", "Finance"),
    ("Omar Haddad", "Engineering"),
    ("Grace Okafor", "Sales"),
    ("Noah Fischer", "IT"),
]
DEPARTMENTS = ["IT", "Finance", "Engineering", "Sales", "Operations"]
# (asset-tag prefix, model, operating system)
LAPTOPS = [
    ("LT", "Dell Latitude 7440", "Windows 11 23H2"),
    ("LT", "Lenovo ThinkPad T14 Gen 4", "Windows 11 23H2"),
    ("LT", "MacBook Pro 14 (M3)", "macOS 14.6"),
    ("LT", "HP EliteBook 840 G10", "Windows 11 22H2"),
]
DESKTOPS = [("DT", "HP EliteDesk 800 G9", "Windows 11 23H2"), ("DT", "Mac mini (M2)", "macOS 14.6")]
BASE_SOFTWARE = ["Microsoft 365", "Chrome", "GlobalProtect VPN"]
EXTRA_SOFTWARE = ["Slack", "Zoom", "1Password", "Visual Studio Code", "Tableau", "Adobe Acrobat"]

# Problems of the given people, cycled in order (see the module docstring).
PERSONA_SCENARIOS = [
    {"locked": True, "mfa": True, "devices": [("laptop", "vpn_timeout")]},
    {"locked": False, "mfa": False, "devices": [("laptop", "flapping")]},
    {"locked": False, "mfa": True, "devices": [("laptop", "vpn_timeout"), ("desktop", "ok")]},
    {"locked": False, "mfa": True, "devices": [("laptop", "ok")]},
]


@dataclass
class SeedReport:
    users: int = 0
    devices: int = 0
    log_lines: int = 0
    metric_points: int = 0


def _colleague_scenario(rng: random.Random) -> dict:
    devices = [("laptop", rng.choices(["ok", "vpn_timeout", "flapping"], [6, 2, 1])[0])]
    if rng.random() < 0.3:
        devices.append(("desktop", "ok"))
    return {"locked": rng.random() < 0.15, "mfa": rng.random() >= 0.25, "devices": devices}


def _email_for(name: str, domain: str) -> str:
    letters = "".join(c for c in name.lower() if c.isalpha() or c == " ")
    first, *rest = letters.split()
    return f"{first}.{rest[-1] if rest else 'user'}@{domain}".replace("é", "e")


class _TagAllocator:
    """Hands out the next free asset-tag number of the tenant (LT-0001, DT-0002 …)."""

    def __init__(self, tenant):
        used = Device.objects.for_tenant(tenant).values_list("asset_tag", flat=True)
        numbers = [int(tag.split("-")[1]) for tag in used if tag.split("-")[-1].isdigit()]
        self.next = max(numbers, default=0) + 1

    def take(self, prefix: str) -> str:
        tag = f"{prefix}-{self.next:04d}"
        self.next += 1
        return tag


def _seed_person(tenant, email, name, department, scenario, rng, tags, report, now) -> None:
    user, created = DirectoryUser.objects.for_tenant(tenant).get_or_create(
        email=email,
        defaults={
            "tenant": tenant,
            "display_name": name,
            "department": department,
            "locked": scenario["locked"],
            "failed_login_attempts": 5 if scenario["locked"] else rng.randint(0, 2),
            "mfa_enabled": scenario["mfa"],
            "mfa_method": rng.choice([MfaMethod.AUTHENTICATOR_APP, MfaMethod.HARDWARE_KEY])
            if scenario["mfa"]
            else MfaMethod.NONE,
            "password_changed_at": now - timedelta(days=rng.randint(3, 150)),
            "is_admin": department == "IT" and rng.random() < 0.5,
            "groups": sorted({"all-staff", "vpn-users", department.lower().replace(" ", "-")}),
        },
    )
    report.users += created
    if Device.objects.for_tenant(tenant).filter(owner_email=user.email).exists():
        return
    for kind, problem in scenario["devices"]:
        prefix, model, os_name = rng.choice(LAPTOPS if kind == "laptop" else DESKTOPS)
        tag = tags.take(prefix)
        outdated = problem == "vpn_timeout"
        Device.objects.create(
            tenant=tenant,
            asset_tag=tag,
            owner_email=user.email,
            hostname=f"{tenant.slug}-{tag.lower()}",
            model=model,
            os=os_name,
            vpn_profile_version=LATEST_VPN_PROFILE_VERSION - rng.randint(1, 3)
            if outdated
            else LATEST_VPN_PROFILE_VERSION,
            vpn_status=VpnStatus.TIMEOUT
            if outdated
            else rng.choice([VpnStatus.CONNECTED, VpnStatus.DISCONNECTED]),
            installed_software=BASE_SOFTWARE + rng.sample(EXTRA_SOFTWARE, rng.randint(1, 3)),
            adapter_state=AdapterState.FLAPPING if problem == "flapping" else AdapterState.UP,
        )
        report.devices += 1


# --------------------------------------------------------------------------- logs / metrics

REQUESTS = {
    "checkout": ["POST /api/cart/items", "GET /api/cart", "POST /api/checkout", "GET /api/orders"],
    "payments": ["POST /v1/charges", "POST /v1/refunds", "GET /v1/charges/{id}"],
    "auth": ["POST /oauth/token", "GET /.well-known/jwks.json", "POST /login"],
}
WARNINGS = {
    "checkout": "slow query on carts table ({ms} ms)",
    "payments": "retrying card-processor call (attempt 2)",
    "auth": "login failed for user: invalid password",
}
ERRORS = {
    "checkout": "inventory service returned 500 for sku lookup",
    "payments": "upstream card-processor timeout after 3000 ms (gateway=eu-1)",
    "auth": "token signing key fetch failed: connection reset",
}
BASE_LATENCY = {"checkout": 120, "payments": 180, "auth": 60}
BASE_RPM = {"checkout": 240.0, "payments": 90.0, "auth": 400.0}


def _seed_logs(tenant, service, rng, now) -> int:
    if LogLine.objects.for_tenant(tenant).filter(service=service).exists():
        return 0
    lines = []
    start = now - timedelta(hours=HISTORY_HOURS)
    at = start
    while at < now:
        spiking = service == SPIKE_SERVICE and at >= now - timedelta(minutes=SPIKE_MINUTES)
        trace_id = f"{rng.getrandbits(64):016x}"
        failing = rng.random() < (0.4 if spiking else 0.01)
        if failing and spiking:
            latency = 3000 + rng.randint(0, 600)  # the card processor's timeout
        else:
            latency = max(5, int(rng.gauss(BASE_LATENCY[service], BASE_LATENCY[service] * 0.25)))
        status = 502 if failing else 200
        lines.append(
            LogLine(
                tenant=tenant,
                service=service,
                level=LogLevel.INFO,
                message=f"{rng.choice(REQUESTS[service])} {status} in {latency} ms",
                trace_id=trace_id,
                latency_ms=latency,
                created_at=at,
            )
        )
        if failing:
            lines.append(
                LogLine(
                    tenant=tenant,
                    service=service,
                    level=LogLevel.ERROR,
                    message=ERRORS[service],
                    trace_id=trace_id,
                    latency_ms=latency,
                    created_at=at + timedelta(milliseconds=latency),
                )
            )
        elif rng.random() < 0.04:
            lines.append(
                LogLine(
                    tenant=tenant,
                    service=service,
                    level=LogLevel.WARNING,
                    message=WARNINGS[service].format(ms=latency),
                    trace_id=trace_id,
                    latency_ms=latency,
                    created_at=at + timedelta(milliseconds=latency),
                )
            )
        # One sampled request every ~90 s; twice as often during the spike.
        at += timedelta(seconds=rng.uniform(30, 60) if spiking else rng.uniform(60, 120))
    LogLine.objects.bulk_create(lines, batch_size=1000)
    return len(lines)


def _seed_metrics(tenant, service, rng, now) -> int:
    if MetricPoint.objects.for_tenant(tenant).filter(service=service).exists():
        return 0
    points = []
    steps = HISTORY_HOURS * 60 // METRIC_STEP_MINUTES
    for step in range(steps + 1):
        at = now - timedelta(minutes=(steps - step) * METRIC_STEP_MINUTES)
        spiking = service == SPIKE_SERVICE and at >= now - timedelta(minutes=SPIKE_MINUTES)
        noise = rng.uniform(0.85, 1.15)
        values = {
            "requests_per_min": round(BASE_RPM[service] * noise * (0.7 if spiking else 1.0), 1),
            "error_rate": round(rng.uniform(0.25, 0.45) if spiking else rng.uniform(0, 0.015), 4),
            "latency_p95_ms": round(
                rng.uniform(2800, 3600) if spiking else BASE_LATENCY[service] * 1.8 * noise, 1
            ),
        }
        points.extend(
            MetricPoint(tenant=tenant, service=service, metric=metric, value=value, at=at)
            for metric, value in values.items()
        )
    MetricPoint.objects.bulk_create(points, batch_size=1000)
    return len(points)


# --------------------------------------------------------------------------- entry point


def seed_sandbox(tenant, people: list[tuple[str, str]], *, rng_seed: int = 1) -> SeedReport:
    """Create the tenant's sandbox state (idempotent); return what was created this time."""
    report = SeedReport()
    now = timezone.now().replace(second=0, microsecond=0)
    given = []
    for email, name in people:
        email = email.strip().lower()
        if email and email not in {e for e, _ in given}:
            given.append((email, name or email.split("@")[0]))
    domain = given[0][0].split("@")[1] if given else f"{tenant.slug}.example"
    with transaction.atomic():
        # 1. Serialise concurrent seeds of the same tenant on the tenant row.
        type(tenant).objects.select_for_update().filter(pk=tenant.pk).first()
        tags = _TagAllocator(tenant)
        # 2. The given people, with the known problems of PERSONA_SCENARIOS.
        for index, (email, name) in enumerate(given):
            rng = random.Random(f"{rng_seed}:{email}")
            scenario = PERSONA_SCENARIOS[index % len(PERSONA_SCENARIOS)]
            department = DEPARTMENTS[index % len(DEPARTMENTS)]
            _seed_person(tenant, email, name, department, scenario, rng, tags, report, now)
        # 3. Colleagues with random, reproducible problems.
        for name, department in COLLEAGUES:
            email = _email_for(name, domain)
            if email in {e for e, _ in given}:
                continue
            rng = random.Random(f"{rng_seed}:{email}")
            scenario = _colleague_scenario(rng)
            _seed_person(tenant, email, name, department, scenario, rng, tags, report, now)
        # 4. Logs and metric series of the monitored services.
        for service in SEED_SERVICES:
            rng = random.Random(f"{rng_seed}:{service}")
            report.log_lines += _seed_logs(tenant, service, rng, now)
            report.metric_points += _seed_metrics(tenant, service, rng, now)
    return report
