"""audit.batched(): several events of one transaction appended together, chained like any."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from agentops import audit
from agentops.audit import compute_hash, verify_chain
from agentops.models import AuditEvent


def _events(tenant):
    """This test's events (the personas fixture audits its memberships too)."""
    return list(AuditEvent.objects.for_tenant(tenant).filter(target_type="t").order_by("seq"))


def test_a_batch_is_chained_in_order_and_verifies(personas):
    audit.record(tenant=personas.tenant, actor=None, action="before", target_type="t", target_id=0)
    with audit.batched():
        first = audit.record(
            tenant=personas.tenant, actor=personas.agent, action="one", target_type="t", target_id=1
        )
        audit.record(
            tenant=personas.other_tenant, actor=None, action="other", target_type="t", target_id=9
        )
        audit.record(
            tenant=personas.tenant,
            actor=None,
            action="two",
            target_type="t",
            target_id=2,
            changes={"status": {"from": "new", "to": "triaged"}},
        )
        assert first.pk is None  # appended when the block ends
    events = _events(personas.tenant)
    assert [e.action for e in events] == ["before", "one", "two"]
    assert [e.seq - events[0].seq for e in events] == [0, 1, 2]
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    assert all(e.hash == compute_hash(e) for e in events)
    assert first.pk == events[1].pk
    assert verify_chain(personas.tenant).ok and verify_chain(personas.other_tenant).ok
    assert [e.action for e in _events(personas.other_tenant)] == ["other"]


def test_a_batch_costs_two_round_trips_for_all_its_events(personas):
    with CaptureQueriesContext(connection) as ctx, audit.batched():
        for i in range(5):
            audit.record(
                tenant=personas.tenant, actor=None, action="x", target_type="t", target_id=i
            )
    audit_queries = [q for q in ctx.captured_queries if "agentops_auditevent" in q["sql"]]
    assert len(audit_queries) == 2
    assert len(_events(personas.tenant)) == 5


def test_a_failed_batch_writes_nothing(personas):
    with pytest.raises(RuntimeError), audit.batched():
        audit.record(tenant=personas.tenant, actor=None, action="x", target_type="t", target_id=1)
        raise RuntimeError("the change failed")
    assert _events(personas.tenant) == []
    # and recording works normally afterwards, right after the chain's head
    head = AuditEvent.objects.for_tenant(personas.tenant).order_by("-seq").first()
    audit.record(tenant=personas.tenant, actor=None, action="y", target_type="t", target_id=2)
    assert [e.seq for e in _events(personas.tenant)] == [(head.seq if head else 0) + 1]


def test_nested_batches_join_the_outer_one(personas):
    with audit.batched():
        audit.record(tenant=personas.tenant, actor=None, action="a", target_type="t", target_id=1)
        with audit.batched():
            audit.record(
                tenant=personas.tenant, actor=None, action="b", target_type="t", target_id=2
            )
        assert _events(personas.tenant) == []
    assert [e.action for e in _events(personas.tenant)] == ["a", "b"]


def test_record_outside_a_batch_is_immediate(personas):
    with transaction.atomic():
        event = audit.record(
            tenant=personas.tenant, actor=None, action="now", target_type="t", target_id=1
        )
        assert event.pk is not None and event.seq >= 1
        assert _events(personas.tenant) == [event]
