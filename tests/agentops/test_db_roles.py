"""The application's database role owns nothing and may only SELECT and INSERT the audit
trail, so the tricks that get past the append-only trigger as an owner or superuser
(TRUNCATE, session_replication_role = replica, ALTER TABLE … DISABLE TRIGGER) are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from agentops import localservices

TAMPERING = [
    "TRUNCATE agentops_auditevent",
    "SET session_replication_role = replica",
    "ALTER TABLE agentops_auditevent DISABLE TRIGGER ALL",
    "DELETE FROM agentops_auditevent",
    "UPDATE agentops_auditevent SET action = 'x'",
    "DROP TABLE agentops_auditevent",
]


@pytest.fixture
def as_app(db):
    """A connection to this test database as the application's role."""
    s = connection.settings_dict
    assert settings.DATABASE_APP_USER and s["USER"] != settings.DATABASE_APP_USER
    conn = psycopg.connect(
        host=s["HOST"] or None,
        port=s["PORT"] or None,
        dbname=s["NAME"],
        user=settings.DATABASE_APP_USER,
        autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()


@pytest.mark.parametrize("sql", TAMPERING)
def test_the_app_role_cannot_get_past_the_append_only_audit_trail(as_app, sql):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_app.execute(sql)


def test_the_app_role_reads_and_appends_the_audit_trail_and_works_the_other_tables(as_app):
    privileges = as_app.execute(
        "SELECT has_table_privilege(current_user, 'agentops_auditevent', 'SELECT'), "
        "has_table_privilege(current_user, 'agentops_auditevent', 'INSERT'), "
        "has_table_privilege(current_user, 'incidents_ticket', 'UPDATE'), "
        "has_table_privilege(current_user, 'incidents_ticket', 'DELETE')"
    ).fetchone()
    assert privileges == (True, True, True, True)
    as_app.execute("SELECT count(*) FROM agentops_auditevent").fetchone()


def test_the_app_role_owns_nothing_and_is_no_superuser(as_app):
    superuser, owned = as_app.execute(
        "SELECT r.rolsuper, (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) "
        "FROM pg_roles r WHERE r.rolname = current_user"
    ).fetchone()
    assert superuser is False
    assert owned == 0


def _connecting_user(**env_extra) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    env.pop("AGENTOPS_DB_ROLE", None)
    env |= {"DJANGO_SETTINGS_MODULE": "agentops.settings", **env_extra}
    code = "from django.conf import settings; print(settings.DATABASES['default']['USER'])"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_app_connects_as_its_role_and_migrations_as_the_owner():
    assert _connecting_user() == localservices.APP_ROLE
    assert _connecting_user(AGENTOPS_DB_ROLE="owner") == localservices.PG_USER


@pytest.fixture
def scratch_database(db):
    """An empty database of its own, made and dropped by the owner."""
    name = f"scratch_roles_{os.getpid()}"
    owner = localservices.local_database_url("postgres")
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_manage_py_migrate_runs_as_the_owner_and_grants_the_app_role(scratch_database):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "AGENTOPS_DB"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "agentops.settings",
        "DATABASE_URL": localservices.local_database_url(
            scratch_database, user=localservices.APP_ROLE
        ),
        "DATABASE_MIGRATION_URL": localservices.local_database_url(scratch_database),
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    app = localservices.local_database_url(scratch_database, user=localservices.APP_ROLE)
    with psycopg.connect(app, autocommit=True) as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'incidents_ticket'"
        ).fetchone()[0]
        assert owner == localservices.PG_USER
        conn.execute("SELECT count(*) FROM incidents_ticket")  # granted after the migration
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE agentops_auditevent")
