"""Shared fixtures: two tenants, a persona per role, and ticket factories.

The suite runs on the real PostgreSQL (pgvector) and Redis named by the settings: the
embedded servers under var/, started here if needed, or DATABASE_URL / REDIS_URL.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from agentops import localservices
from tests.celery_worker import celery_worker, worker_factory  # noqa: F401  (shared fixtures)

# Benchmarks run only through `make bench` (they take minutes and load 100k rows).
collect_ignore = [] if os.environ.get("AGENTOPS_BENCH") else ["bench"]


def pytest_configure(config):
    localservices.ensure_all()


# Whole directories of tests that must run alone (`make test` runs them after the parallel
# part): the reliability suite restarts the shared Redis, kills workers on timers and measures
# one tenant's latency under another's flood.
EXCLUSIVE_DIRS = ("reliability",)


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    exclusive = tuple(os.path.join(here, d) + os.sep for d in EXCLUSIVE_DIRS)
    for item in items:
        if str(item.path).startswith(exclusive):
            item.add_marker(pytest.mark.exclusive)


def pytest_unconfigure(config):
    import shutil

    prom_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if prom_dir.startswith("/tmp/agentops-prometheus-"):
        shutil.rmtree(prom_dir, ignore_errors=True)
    witness = os.environ.get("AGENTOPS_TEST_WITNESS", "")
    if witness.startswith("/tmp/agentops-witness-") and os.path.exists(witness):
        os.remove(witness)


# --------------------------------------------------------------------------- database roles
# pytest-django creates and migrates the test database as the owner (tests/settings.py connects
# as DATABASE_MIGRATION_URL's user; the migration grants the application's role its privileges,
# agentops.db_roles). The tests then run as the application's role, as `make run` does: every
# connection (this process's, its threads', the Celery workers' and web servers' it starts,
# which take the URL from tests.celery_worker.worker_database_url) starts with
# ``-c role=<app role>``, so each privilege check is the app role's and a missing grant fails
# here rather than in production. The login stays the owner's only so the harness can do what
# the app role may not: flush the tables after a transactional test, drop the database, and let
# a test tamper the way an attacker with the owner's rights would (``owner_rights``).


def _role_option(role: str) -> str:
    return f"-c role={role}"


def _app_role_for_tests(*, on: bool) -> None:
    """Start (or stop) every new connection of the test database as the application's role."""
    from django.conf import settings
    from django.db import connections

    role = settings.DATABASE_APP_USER
    for alias in connections:
        connection = connections[alias]
        if not role or role == connection.settings_dict["USER"]:
            continue  # one role for everything (a managed database set up that way)
        for options in {
            id(o): o
            for o in (connection.settings_dict["OPTIONS"], settings.DATABASES[alias]["OPTIONS"])
        }.values():
            kept = options.get("options", "").replace(_role_option(role), "").strip()
            options["options"] = f"{kept} {_role_option(role)}".strip() if on else kept
            if not options["options"]:
                del options["options"]
        connection.close()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's database setup (as the owner), then the tests as the app's role."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    flush = DatabaseOperations.execute_sql_flush

    def flush_as_owner(self, sql_list):
        # TransactionTestCase empties every table after a test with TRUNCATE, which the app
        # role may not do (the audit trail least of all): the harness does it as the owner.
        with self.connection.cursor() as cursor:
            cursor.execute("SET ROLE NONE")
        try:
            flush(self, sql_list)
        finally:
            with self.connection.cursor() as cursor:
                cursor.execute("RESET ROLE")

    with django_db_blocker.unblock():
        _app_role_for_tests(on=True)
    DatabaseOperations.execute_sql_flush = flush_as_owner
    try:
        yield
    finally:
        DatabaseOperations.execute_sql_flush = flush
        with django_db_blocker.unblock():
            _app_role_for_tests(on=False)  # pytest-django drops the database as the owner


@contextmanager
def owner_rights():
    """The owner's rights on this test's connection for the block (a savepoint: they end with
    it, also when it raises), for tests that tamper the way an attacker with them would."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET ROLE NONE")
        yield cursor
        cursor.execute("RESET ROLE")


@dataclass
class Personas:
    tenant: object
    other_tenant: object
    admin: object
    agent: object
    agent2: object
    reviewer: object
    requester: object
    requester2: object
    auditor: object
    outsider: object  # an agent of the other tenant


def make_user(username: str, tenant, role: str, **extra):
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


@pytest.fixture
def personas(db) -> Personas:
    from agentops.models import Role, Tenant

    acme = Tenant.objects.create(name="Acme Corp", slug="acme", tier=Tenant.Tier.ENTERPRISE)
    globex = Tenant.objects.create(name="Globex", slug="globex", tier=Tenant.Tier.STARTER)
    return Personas(
        tenant=acme,
        other_tenant=globex,
        admin=make_user("ada", acme, Role.ADMIN),
        agent=make_user("alex", acme, Role.AGENT),
        agent2=make_user("andy", acme, Role.AGENT),
        reviewer=make_user("riley", acme, Role.REVIEWER),
        requester=make_user("robin", acme, Role.REQUESTER),
        requester2=make_user("rosa", acme, Role.REQUESTER),
        auditor=make_user("audra", acme, Role.AUDITOR),
        outsider=make_user("gus", globex, Role.AGENT),
    )


@pytest.fixture
def make_ticket():
    """Open a ticket through the service (numbered, audited), defaulting to sensible values."""
    from incidents.services import ticket_create

    def factory(tenant, actor=None, **fields):
        fields.setdefault("title", "Cannot connect to VPN")
        fields.setdefault("description", "Getting timeout errors when connecting from home.")
        if actor is not None:
            fields.setdefault("requester", actor)
        else:
            fields.setdefault("requester_email", "someone@example.com")
        return ticket_create(tenant=tenant, actor=actor, **fields)

    return factory


@pytest.fixture
def client_for(client):
    """``client_for(user)`` → the test client, logged in as that user."""

    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def real_delivery():
    """Tasks go through the broker to a real worker (tests about delivery), not inline."""
    from agentops.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous
