"""audit.batched(): several events of one transaction appended together, chained like any."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def test_a_batch_costs_one_round_trip_for_all_its_events(personas):
    with CaptureQueriesContext(connection) as ctx, audit.batched():
        for i in range(5):
            audit.record(
                tenant=personas.tenant,
                actor=personas.agent,
                action="x",
                target_type="t",
                target_id=i,
                changes={"n": {"from": 1.0, "to": 'Zoë ✓ \\ "q"'}},
            )
    audit_queries = [q for q in ctx.captured_queries if "audit" in q["sql"]]
    assert len(audit_queries) == 1
    events = _events(personas.tenant)
    assert len(events) == 5
    # The database hashed them exactly as Python checks them: the chain verifies.
    assert audit.verify_chain(personas.tenant).ok
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 5))


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


# jsonb cannot hold NUL (the perimeter refuses it at the door) nor lone surrogates.
_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    _text,
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@given(changes=st.dictionaries(_text, _json, max_size=3), label=_text)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_whatever_an_event_holds_the_database_hashes_it_as_python_verifies_it(
    personas, changes, label
):
    """The chain is hashed in the database from Python's canonical pieces: any content
    (unicode, escapes, floats, nesting) must give the hash that verification recomputes."""
    event = audit.record(
        tenant=personas.tenant,
        actor=None,
        action="prop",
        target_type="t",
        target_id=label[:20],
        target_repr=label,
        changes=changes,
        metadata={"m": changes},
    )
    stored = AuditEvent.objects.for_tenant(personas.tenant).get(pk=event.pk)
    assert compute_hash(stored) == stored.hash == event.hash


def test_a_statement_rides_with_the_next_append_or_goes_alone(personas):
    """audit.sent_with: the change and the event recording it in one round trip; alone when
    nothing is recorded; never when the block raises first."""
    tenant = personas.tenant
    note = "UPDATE agentops_tenant SET name = %s WHERE id = %s"
    with CaptureQueriesContext(connection) as queries, audit.sent_with(note, ["Ridden", tenant.pk]):
        audit.record(tenant=tenant, actor=None, action="rode", target_type="t", target_id=1)
    assert len(queries) == 1 and "agentops_audit_append" in queries[0]["sql"]
    tenant.refresh_from_db()
    assert tenant.name == "Ridden" and _events(tenant)[-1].action == "rode"
    with CaptureQueriesContext(connection) as queries, audit.sent_with(note, ["Alone", tenant.pk]):
        pass
    assert len(queries) == 1
    tenant.refresh_from_db()
    assert tenant.name == "Alone"
    with pytest.raises(RuntimeError), audit.sent_with(note, ["Never", tenant.pk]):
        raise RuntimeError("before any append")
    tenant.refresh_from_db()
    assert tenant.name == "Alone"
    assert verify_chain(tenant).ok


def test_a_statement_rides_with_the_batch_end_or_is_sent_early(personas):
    """audit.at_batch_end: sent in the batch's last round trip with its events, its result read
    back; alone at the end when the batch has no event; at once on send_now."""
    tenant = personas.tenant
    note = "UPDATE agentops_tenant SET name = %s WHERE id = %s RETURNING name"
    seen: list = []
    assert audit.at_batch_end(note, ["x", tenant.pk]) is None  # no batch: the caller sends
    with CaptureQueriesContext(connection) as queries, audit.batched():
        audit.record(tenant=tenant, actor=None, action="end", target_type="t", target_id=1)
        audit.at_batch_end(note, ["At the end", tenant.pk], lambda c: seen.append(c.fetchone()))
        assert seen == []
    sent = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(sent) == 1 and "agentops_tenant" in sent[0] and seen == [("At the end",)]
    assert verify_chain(tenant).ok
    with CaptureQueriesContext(connection) as queries, audit.batched():
        early = audit.at_batch_end(note, ["Early", tenant.pk])
        early.send_now()
        tenant.refresh_from_db()
        assert tenant.name == "Early"
        audit.at_batch_end(note, ["Alone", tenant.pk])
    tenant.refresh_from_db()
    assert tenant.name == "Alone"
