"""Shared fixtures: two tenants, a persona per role, and ticket factories.

The suite runs on the real PostgreSQL (pgvector) and Redis named by the settings: the
embedded servers under var/, started here if needed, or DATABASE_URL / REDIS_URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from agentops import localservices
from tests.celery_worker import celery_worker, worker_factory  # noqa: F401  (shared fixtures)

# Benchmarks run only through `make bench` (they take minutes and load 100k rows).
collect_ignore = [] if os.environ.get("AGENTOPS_BENCH") else ["bench"]


def pytest_configure(config):
    localservices.ensure_all()


def pytest_unconfigure(config):
    import shutil

    prom_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if prom_dir.startswith("/tmp/agentops-prometheus-"):
        shutil.rmtree(prom_dir, ignore_errors=True)
    witness = os.environ.get("AGENTOPS_TEST_WITNESS", "")
    if witness.startswith("/tmp/agentops-witness-") and os.path.exists(witness):
        os.remove(witness)


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
