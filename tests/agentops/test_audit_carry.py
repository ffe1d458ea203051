"""audit.carrying / audit.carry: a change and its event held for the next append of their
tenant, so a record nothing reads before then costs no transaction of its own."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agentops import audit
from agentops.audit import verify_chain
from agentops.models import AuditEvent, Tenant


def _rename(tenant, name):
    return ("UPDATE agentops_tenant SET name = %s WHERE id = %s", [name, tenant.pk])


def _event(tenant, action):
    return {"tenant": tenant, "actor": None, "action": action, "target_type": "t", "target_id": 1}


def _actions(tenant):
    events = AuditEvent.objects.for_tenant(tenant).filter(target_type="t").order_by("seq")
    return list(events.values_list("action", flat=True))


def _name(tenant):
    return Tenant.objects.get(pk=tenant.pk).name


def test_outside_a_carrying_block_nothing_is_held(personas):
    assert audit.carry(*_rename(personas.tenant, "x"), **_event(personas.tenant, "c")) is False
    assert _actions(personas.tenant) == [] and _name(personas.tenant) != "x"


def test_a_carried_record_rides_with_the_next_append_before_its_events(personas):
    with audit.carrying():
        assert audit.carry(*_rename(personas.tenant, "carried"), **_event(personas.tenant, "c"))
        assert _actions(personas.tenant) == [] and _name(personas.tenant) != "carried"
        assert audit.carried_pending()
        with CaptureQueriesContext(connection) as queries:
            audit.record(**_event(personas.tenant, "next"))
        assert not audit.carried_pending()
        # One round trip: the carried change, then the append of both events.
        assert len(queries.captured_queries) == 1
        sent = queries.captured_queries[0]["sql"]
        assert sent.index("UPDATE agentops_tenant") < sent.index("agentops_audit_append")
    assert _name(personas.tenant) == "carried"
    assert _actions(personas.tenant) == ["c", "next"]  # chained in the order they happened
    assert verify_chain(personas.tenant).ok


def test_what_no_append_took_is_written_when_the_block_ends(personas):
    with audit.carrying():
        audit.carry(*_rename(personas.tenant, "late"), **_event(personas.tenant, "c1"))
        audit.carry("SELECT 1", [], **_event(personas.tenant, "c2"))
        # Another tenant's append does not take them.
        audit.record(**_event(personas.other_tenant, "other"))
        assert audit.carried_pending() and _actions(personas.tenant) == []
    assert _actions(personas.tenant) == ["c1", "c2"] and _name(personas.tenant) == "late"
    assert _actions(personas.other_tenant) == ["other"]
    assert verify_chain(personas.tenant).ok and verify_chain(personas.other_tenant).ok


def test_the_block_writes_what_it_holds_even_when_it_raises(personas):
    with pytest.raises(RuntimeError), audit.carrying():
        audit.carry(*_rename(personas.tenant, "kept"), **_event(personas.tenant, "c"))
        raise RuntimeError("the step failed")
    assert _actions(personas.tenant) == ["c"] and _name(personas.tenant) == "kept"


def test_send_carried_writes_them_now(personas):
    with audit.carrying():
        audit.carry(*_rename(personas.tenant, "now"), **_event(personas.tenant, "c"))
        audit.send_carried()
        assert not audit.carried_pending()
        assert _actions(personas.tenant) == ["c"] and _name(personas.tenant) == "now"
    assert _actions(personas.tenant) == ["c"]  # not twice


def test_a_batch_with_no_events_still_takes_the_carried_records(personas):
    with audit.carrying():
        audit.carry(*_rename(personas.tenant, "batched"), **_event(personas.tenant, "c"))
        with CaptureQueriesContext(connection) as queries, audit.batched():
            audit.flush("SELECT %s::int", [7], on_result=lambda cursor: None)
        assert not audit.carried_pending()
        appends = [q for q in queries.captured_queries if "agentops_audit_append" in q["sql"]]
        assert len(appends) == 1 and "SELECT 7::int" in appends[0]["sql"]  # one round trip
    assert _actions(personas.tenant) == ["c"] and _name(personas.tenant) == "batched"
