"""The test suite itself runs as the application's database role, not as the owner
(tests/conftest.py): a grant the application lacks fails here, not first in production."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from tests.celery_worker import worker_database_url
from tests.conftest import owner_rights


def _current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


def _refused(sql: str) -> DatabaseError:
    with pytest.raises(DatabaseError) as exc, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    return exc.value


@pytest.mark.django_db
def test_a_normal_test_may_not_truncate_the_audit_trail():
    assert _current_user() == settings.DATABASE_APP_USER
    for sql in (
        "TRUNCATE agentops_auditevent",
        "ALTER TABLE agentops_auditevent DISABLE TRIGGER ALL",
        "SET session_replication_role = replica",
    ):
        error = _refused(sql)
        assert isinstance(error.__cause__, psycopg.errors.InsufficientPrivilege), sql


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_and_other_threads_run_as_the_app_role_too():
    seen = []

    def in_thread():
        try:
            seen.append(_current_user())
        finally:
            connection.close()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert [_current_user(), *seen] == [settings.DATABASE_APP_USER] * 2


@pytest.mark.django_db
def test_workers_and_web_servers_the_tests_start_get_the_app_role():
    """They connect with tests.celery_worker.worker_database_url()."""
    with psycopg.connect(worker_database_url(), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == settings.DATABASE_APP_USER
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE agentops_auditevent")


@pytest.mark.django_db
def test_owner_rights_end_with_their_block_even_when_it_fails():
    with owner_rights() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] != settings.DATABASE_APP_USER
    assert _current_user() == settings.DATABASE_APP_USER
    with pytest.raises(DatabaseError), owner_rights() as cursor:
        cursor.execute("SELECT no_such_column FROM agentops_auditevent")
    assert _current_user() == settings.DATABASE_APP_USER
