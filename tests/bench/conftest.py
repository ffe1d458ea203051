"""Benchmark fixtures: one 1M-ticket tenant, loaded once per `make bench` session.

The data is committed (not rolled back per test) into a database of the bench's own, so a
bench run never collides with a test run on the same server; it is dropped when the session
ends. ``make bench PYTEST_ARGS=--reuse-db`` keeps it instead (test_agentops_bench) and the
next run skips the load; ``--reuse-db --create-db`` loads it afresh.

BENCH_TICKETS overrides the size (default 1,000,000; e.g. 100000 for the earlier figures, or
a few thousand for a smoke run of the bench itself). The big tenant is written with COPY
(tests/bench/copyload.py): about 1M tickets and 2M comments in minutes, not an hour.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pytest

BENCH_TICKETS = int(os.environ.get("BENCH_TICKETS", "1000000"))
OTHER_TENANT_TICKETS = 2_000
COMMENTS_PER_TICKET = 2


@dataclass
class BenchData:
    tenant: object
    other_tenant: object
    agent: object
    agent2: object
    requester: object
    outsider: object
    api_token: str  # raw bearer secret of the agent
    detail_number: str  # a ticket with comments and some history
    ticket_count: int
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, django_db_keepdb):
    """A database of the bench's own: test_<pid>_bench, dropped at the end like any test
    database; with --reuse-db the fixed test_<name>_bench, kept with its tickets."""
    from django.conf import settings

    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        if django_db_keepdb:
            test["NAME"] = f"test_{db['NAME']}_bench"
        else:
            test["NAME"] = (test.get("NAME") or f"test_{db['NAME']}") + "_bench"


@pytest.fixture(scope="session")
def django_db_setup(
    django_test_environment,
    django_db_blocker,
    django_db_keepdb,
    django_db_createdb,
    django_db_modify_db_settings,
):
    """Create the bench database whatever the tests are marked (they use no test transaction).

    ``--reuse-db`` keeps it (and its tickets) for the next run; migrations still apply.
    ``--reuse-db --create-db`` loads afresh and keeps it.
    """
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=0,
            interactive=False,
            aliases={"default"},
            keepdb=django_db_keepdb and not django_db_createdb,
            # No serialized copy of the data (that is for TransactionTestCase rollback
            # emulation, which the bench does not use): with --reuse-db it would read
            # every ticket and comment into memory first.
            serialized_aliases=set(),
        )
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            teardown_databases(config, verbosity=0)


@pytest.fixture(autouse=True)
def _bench_db_access(django_db_blocker):
    """Bench tests run like production requests: autocommit, no per-test transaction."""
    with django_db_blocker.unblock():
        yield


def _make_user(username: str, tenant, role: str, **extra):
    from django.contrib.auth import get_user_model

    from agentops.services import membership_set

    user = get_user_model().objects.create_user(
        username=username,
        email=f"{username}@{tenant.slug}.example",
        password="pw-" + username,
        **extra,
    )
    membership_set(tenant=tenant, user=user, role=role)
    return user


def _assign_some(tenant, agents, requester) -> None:
    """Half the tickets assigned to one of two agents; 200 opened by the requester persona."""
    from django.db import connection

    from incidents.models import Ticket

    table = Ticket._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET assignee_id = (ARRAY[%s, %s]::bigint[])[1 + id %% 2] "  # noqa: S608
            "WHERE tenant_id = %s AND id %% 4 < 2",
            [agents[0].pk, agents[1].pk, tenant.pk],
        )
        cursor.execute(
            f"UPDATE {table} SET requester_id = %s, requester_email = %s "  # noqa: S608
            "WHERE tenant_id = %s AND id %% 500 = 0",
            [requester.pk, requester.email, tenant.pk],
        )


def _analyze() -> None:
    from django.db import connection

    from agentops.models import AuditEvent, Membership
    from incidents.models import Comment, Ticket

    tables = [m._meta.db_table for m in (Ticket, Comment, AuditEvent, Membership)]
    with connection.cursor() as cursor:
        # VACUUM (outside a transaction) also sets the visibility map: index-only scans.
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")


def _load(timings: dict[str, float]):
    """Tenants, personas, tickets with comments, one ticket with history; then VACUUM."""
    from agentops.models import Role, Tenant
    from incidents import services
    from incidents.models import Status, Ticket
    from incidents.testdata import bulk_generate
    from tests.bench.copyload import copy_generate

    acme = Tenant.objects.create(name="Acme Corp", slug="acme", tier=Tenant.Tier.ENTERPRISE)
    globex = Tenant.objects.create(name="Globex", slug="globex", tier=Tenant.Tier.STARTER)
    agent = _make_user("alex", acme, Role.AGENT, first_name="Alex", last_name="Agent")
    agent2 = _make_user("andy", acme, Role.AGENT)
    _make_user("ada", acme, Role.ADMIN)
    requester = _make_user("robin", acme, Role.REQUESTER)
    _make_user("gus", globex, Role.AGENT)

    t = time.perf_counter()
    steps = copy_generate(
        tenant=acme,
        count=BENCH_TICKETS,
        comments_per_ticket=COMMENTS_PER_TICKET,
        before_indexes=lambda: _assign_some(acme, [agent, agent2], requester),
    )
    timings["bulk_generate"] = time.perf_counter() - t
    timings.update(steps)
    bulk_generate(
        tenant=globex, count=OTHER_TENANT_TICKETS, comments_per_ticket=1, seed=2, batch_size=2000
    )
    # A rare word: five tickets of last year mention Kubernetes (searching it must not walk
    # the whole queue to find them).
    rare = Ticket.objects.for_tenant(acme).order_by("created_at").values_list("pk", flat=True)
    Ticket.objects.for_tenant(acme).filter(pk__in=list(rare[10:15])).update(
        title="Kubernetes node NotReady after the upgrade"
    )

    # One ticket with a real history (through the services) for the detail page.
    ticket = (
        Ticket.objects.for_tenant(acme)
        .filter(status=Status.NEW, title__icontains="vpn")
        .order_by("-created_at")
        .first()
    )
    ticket = services.ticket_assign(ticket=ticket, actor=agent, assignee=agent)
    services.ticket_comment(ticket=ticket, actor=agent, body="Looking into it now.")
    services.ticket_comment(
        ticket=ticket, actor=agent, body="Concentrator logs requested.", is_internal=True
    )
    services.ticket_transition(ticket=ticket, actor=agent, status=Status.IN_PROGRESS)

    t = time.perf_counter()
    _analyze()
    timings["vacuum_analyze"] = time.perf_counter() - t


@pytest.fixture(scope="session")
def bench_data(django_db_setup, django_db_blocker) -> BenchData:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from agentops.models import Tenant
    from agentops.services import api_token_create
    from incidents.models import Comment, Status, Ticket

    timings: dict[str, float] = {}
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
        if not name.endswith("_bench"):
            pytest.exit(f"refusing to load benchmark data into {name!r}", returncode=3)
        start = time.perf_counter()
        acme = Tenant.objects.filter(slug="acme").first()
        if acme is None:
            _load(timings)
        elif Ticket.objects.for_tenant(acme).count() != BENCH_TICKETS:
            pytest.exit(f"{name} holds another data set: run with --create-db", returncode=3)
        else:
            timings["reused_db"] = 1.0  # --reuse-db: the data of an earlier run
            _analyze()
        timings["load_total"] = time.perf_counter() - start

        users = {u.username: u for u in get_user_model().objects.all()}
        acme = Tenant.objects.get(slug="acme")
        globex = Tenant.objects.get(slug="globex")
        agent = users["alex"]
        ticket = (
            Ticket.objects.for_tenant(acme)
            .filter(status=Status.IN_PROGRESS, assignee=agent, title__icontains="vpn")
            .order_by("-updated_at")
            .first()
        )
        _, raw_token = api_token_create(tenant=acme, user=agent, name="bench")
        count = Ticket.objects.for_tenant(acme).count()
        with connection.cursor() as cursor:  # what the data set costs on disk
            cursor.execute("SELECT pg_database_size(current_database())")
            timings["disk_bytes"] = float(cursor.fetchone()[0])
            for model in (Ticket, Comment):
                table = model._meta.db_table
                cursor.execute(
                    "SELECT pg_total_relation_size(%s), pg_indexes_size(%s)", [table, table]
                )
                total, indexes = cursor.fetchone()
                timings[f"disk_{table}_bytes"] = float(total)
                timings[f"disk_{table}_index_bytes"] = float(indexes)
    print(
        f"\n[bench] {count:,} tickets (+{OTHER_TENANT_TICKETS:,} in a second tenant) ready in "
        f"{timings['load_total']:.1f} s"
        + (
            f" (COPY load {timings['bulk_generate']:.1f} s: tickets "
            f"{timings['copy_tickets']:.1f}, comments {timings['comments']:.1f}, indexes "
            f"{timings['create_indexes']:.1f}; VACUUM ANALYZE {timings['vacuum_analyze']:.1f} s)"
            if "bulk_generate" in timings
            else " (reused database)"
        ),
        flush=True,
    )
    print(
        f"[bench] database on disk: {timings['disk_bytes'] / 2**30:.2f} GiB (tickets "
        f"{timings[f'disk_{Ticket._meta.db_table}_bytes'] / 2**30:.2f} GiB, of which indexes "
        f"{timings[f'disk_{Ticket._meta.db_table}_index_bytes'] / 2**30:.2f} GiB; comments "
        f"{timings[f'disk_{Comment._meta.db_table}_bytes'] / 2**30:.2f} GiB)",
        flush=True,
    )
    return BenchData(
        tenant=acme,
        other_tenant=globex,
        agent=agent,
        agent2=users["andy"],
        requester=users["robin"],
        outsider=users["gus"],
        api_token=raw_token,
        detail_number=ticket.number,
        ticket_count=count,
        timings=timings,
    )
