"""Tenant scoping is structural: unscoped queries on tenant-owned tables refuse to run."""

import pytest

from agentops.models import AuditEvent, Sequence
from agentops.services import sequence_next
from agentops.tenancy import UnscopedQueryError
from incidents.models import Comment, Ticket


@pytest.mark.django_db
@pytest.mark.parametrize(
    "evaluate",
    [
        lambda qs: list(qs),
        lambda qs: qs.count(),
        lambda qs: qs.exists(),
        lambda qs: qs.first(),
        lambda qs: qs.get(pk=1),
        lambda qs: qs.update(title="x"),
        lambda qs: qs.delete(),
        lambda qs: list(qs.iterator()),
        lambda qs: qs.aggregate(n=__import__("django.db.models").db.models.Count("id")),
    ],
    ids=["list", "count", "exists", "first", "get", "update", "delete", "iterator", "aggregate"],
)
def test_unscoped_ticket_queries_refuse_to_run(evaluate):
    with pytest.raises(UnscopedQueryError):
        evaluate(Ticket.objects.filter(status="new"))


def test_for_tenant_returns_only_that_tenants_rows(personas, make_ticket):
    mine = make_ticket(personas.tenant, personas.requester)
    theirs = make_ticket(personas.other_tenant, personas.outsider)
    assert mine.number == theirs.number == "REQ0000001"  # numbering is per tenant
    assert list(Ticket.objects.for_tenant(personas.tenant)) == [mine]
    assert list(Ticket.objects.for_tenant(personas.other_tenant)) == [theirs]


def test_for_tenant_none_is_refused(db):
    with pytest.raises(UnscopedQueryError):
        Ticket.objects.for_tenant(None)


def test_related_manager_is_scoped_through_its_parent(personas, make_ticket):
    from incidents.services import ticket_comment

    ticket = make_ticket(personas.tenant, personas.requester)
    ticket_comment(ticket=ticket, actor=personas.agent, body="On it")
    assert [c.body for c in ticket.comments.all()] == ["On it"]
    with pytest.raises(UnscopedQueryError):
        list(Comment.objects.all())


def test_unscoped_needs_a_reason(db):
    with pytest.raises(ValueError):
        Ticket.objects.unscoped("")
    assert Ticket.objects.unscoped("test: cross-tenant count").count() == 0


def test_sequence_is_per_tenant_and_reserves_blocks(personas):
    assert sequence_next(tenant=personas.tenant, name="x") == 1
    assert sequence_next(tenant=personas.tenant, name="x") == 2
    assert sequence_next(tenant=personas.other_tenant, name="x") == 1
    assert sequence_next(tenant=personas.tenant, name="x", step=10) == 12
    assert Sequence.objects.for_tenant(personas.tenant).get(name="x").value == 12


@pytest.mark.django_db(transaction=True)
def test_ticket_numbers_are_unique_under_concurrency(personas):
    """Eight threads opening tickets at once get eight distinct, gapless numbers."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from incidents.services import ticket_create

    def open_one(i):
        try:
            return ticket_create(
                tenant=personas.tenant,
                actor=personas.agent,
                title=f"t{i}",
                requester_email="a@b.example",
            ).number
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(open_one, range(8)))
    assert sorted(numbers) == [f"REQ{n:07d}" for n in range(1, 9)]


def test_audit_rows_cannot_be_changed_or_deleted_even_in_sql(personas, make_ticket):
    from django.db import DatabaseError

    from tests.conftest import owner_rights

    make_ticket(personas.tenant, personas.requester)
    event = AuditEvent.objects.for_tenant(personas.tenant).get(action="ticket.created")
    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()
    for sql in (
        "UPDATE agentops_auditevent SET action = 'forged' WHERE id = %s",
        "DELETE FROM agentops_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            owner_rights() as cursor,  # the app role is refused earlier; the owner by the trigger
        ):
            cursor.execute(sql, [event.pk])
    event.refresh_from_db()
    assert event.action == "ticket.created"
