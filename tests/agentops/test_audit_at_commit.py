"""A transaction's audit events are appended just before it commits.

A tenant's chain is locked (an advisory lock) from the append until the commit. Appended when
recorded, an event kept the chain locked for the rest of its transaction: a ticket opened with
its agent's run held it ~13 ms, while every worker of the tenant waited to record its own.
These tests run on real transactions (``transaction=True``): inside a test case's transaction,
which never commits, events are appended when recorded.
"""

from __future__ import annotations

import threading

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from agentops import audit
from agentops.audit import verify_chain
from agentops.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _record(tenant, action: str, **extra):
    return audit.record(
        tenant=tenant, actor=None, action=action, target_type="t", target_id=action, **extra
    )


def _actions(tenant) -> list[str]:
    events = AuditEvent.objects.for_tenant(tenant).filter(target_type="t").order_by("seq")
    return list(events.values_list("action", flat=True))


def _holds_audit_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND classid = %s)",
            [audit.AUDIT_LOCK_NAMESPACE],
        )
        return cursor.fetchone()[0]


def test_events_are_appended_at_commit_in_order_and_verify(personas):
    with transaction.atomic():
        first = _record(personas.tenant, "one")
        _record(personas.tenant, "two", changes={"status": {"from": "new", "to": "open"}})
        assert first.pk is None and first.seq is None  # not yet
        assert not _holds_audit_lock()  # the chain is free for the rest of the transaction
        assert _actions(personas.tenant) == []
    assert first.pk is not None and first.seq >= 1
    assert _actions(personas.tenant) == ["one", "two"]
    assert verify_chain(personas.tenant).ok


def test_one_append_per_tenant_at_commit(personas):
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        for action in ("a1", "a2", "a3"):
            _record(personas.tenant, action)
        _record(personas.other_tenant, "b1")
    appends = [q["sql"] for q in queries.captured_queries if "agentops_audit_append" in q["sql"]]
    assert len(appends) == 2
    assert _actions(personas.tenant) == ["a1", "a2", "a3"]
    assert _actions(personas.other_tenant) == ["b1"]
    assert verify_chain(personas.tenant).ok and verify_chain(personas.other_tenant).ok


def test_a_rolled_back_savepoint_takes_its_events_with_it(personas):
    with transaction.atomic():
        _record(personas.tenant, "kept")
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            _record(personas.tenant, "undone")
            raise ZeroDivisionError
        _record(personas.tenant, "kept-too")
    assert _actions(personas.tenant) == ["kept", "kept-too"]
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        _record(personas.tenant, "rolled-back")
        raise ZeroDivisionError
    assert _actions(personas.tenant) == ["kept", "kept-too"]
    assert verify_chain(personas.tenant).ok


def test_a_failed_append_rolls_back_the_change_it_records(personas, monkeypatch):
    from agentops.models import Tenant

    def refuse(events):
        raise DataError("append refused")

    monkeypatch.setattr(audit, "_append", refuse)
    name = personas.tenant.name
    with pytest.raises(DataError, match="append refused"), transaction.atomic():
        Tenant.objects.filter(pk=personas.tenant.pk).update(name="renamed")
        _record(personas.tenant, "renamed")
    assert Tenant.objects.get(pk=personas.tenant.pk).name == name


def test_a_long_transaction_does_not_hold_up_the_tenants_other_writers(personas):
    """While one transaction that recorded an event is still at work, another writer of the
    same tenant appends and commits (before, it waited for the first one's commit)."""
    recorded, other_done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def other_writer():
        try:
            assert recorded.wait(10)
            _record(personas.tenant, "other")  # autocommit: its own transaction
            other_done.set()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=other_writer)
    thread.start()
    with transaction.atomic():
        _record(personas.tenant, "long")
        recorded.set()
        finished_meanwhile = other_done.wait(10)  # still inside the transaction
    thread.join(10)
    assert not failures, failures
    assert finished_meanwhile
    assert _actions(personas.tenant) == ["other", "long"]  # chained in commit order
    assert verify_chain(personas.tenant).ok


def test_inside_sent_with_the_event_goes_with_its_statement_at_once(personas):
    with transaction.atomic():
        with audit.sent_with("SELECT %s::int", [1]):
            event = _record(personas.tenant, "with-rider")
        assert event.pk is not None  # appended with the statement, not deferred
    assert _actions(personas.tenant) == ["with-rider"]
