"""agentops.prepared: a queryset compiled once replays exactly what the ORM returns, in one
statement, and refuses at once what it could not replay."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from agentops.prepared import PreparedQueryError, prepared
from agentops.tenancy import UnscopedQueryError
from incidents.models import Ticket


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


@prepared
def tickets_of(tenant_id: int, email: str):
    return Ticket.objects.for_tenant(tenant_id).filter(requester_email=email).order_by("created_at")


@pytest.fixture
def tickets(personas, make_ticket):
    mine = [
        make_ticket(personas.tenant, requester_email="kim@acme.test", title=f"VPN {i}")
        for i in range(3)
    ]
    make_ticket(personas.tenant, requester_email="lee@acme.test")
    make_ticket(personas.other_tenant, requester_email="kim@acme.test")
    for ticket in mine:
        Ticket.objects.for_tenant(personas.tenant).filter(pk=ticket.pk).update(
            affected_services=["vpn", "auth"]
        )
    return mine


def test_model_rows_equal_the_orms_field_for_field_in_one_statement(personas, tickets):
    orm = list(
        Ticket.objects.for_tenant(personas.tenant)
        .filter(requester_email="kim@acme.test")
        .order_by("created_at")
    )
    with CaptureQueriesContext(connection) as queries:
        rows = tickets_of(personas.tenant.pk, "kim@acme.test")
    assert len(queries) == 1
    assert [_fields(r) for r in rows] == [_fields(o) for o in orm]
    assert len(rows) == 3 and rows[0].affected_services == ["vpn", "auth"]  # converters ran
    assert rows[0].created_at.tzinfo is not None
    assert not rows[0]._state.adding and rows[0]._state.db == "default"  # saveable as loaded
    rows[0].title = "renamed"
    rows[0].save(update_fields=["title"])
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=rows[0].pk).title == "renamed"


def test_the_arguments_are_bound_per_call_tenant_included(personas, tickets):
    assert len(tickets_of(personas.tenant.pk, "kim@acme.test")) == 3
    assert len(tickets_of(personas.tenant.pk, "lee@acme.test")) == 1
    assert len(tickets_of(personas.other_tenant.pk, "kim@acme.test")) == 1
    assert tickets_of(tenant_id=personas.other_tenant.pk, email="nobody@x.test") == []
    # Text that looks like SQL is a value like any other (bound, never spliced).
    assert tickets_of(personas.tenant.pk, "x' OR '1'='1") == []


def test_get_is_the_querysets_get(personas, tickets):
    assert tickets_of.get(personas.other_tenant.pk, "kim@acme.test").tenant_id == (
        personas.other_tenant.pk
    )
    with pytest.raises(Ticket.DoesNotExist):
        tickets_of.get(personas.other_tenant.pk, "lee@acme.test")
    with pytest.raises(Ticket.MultipleObjectsReturned):
        tickets_of.get(personas.tenant.pk, "kim@acme.test")


def test_select_related_values_values_list_and_annotations(personas, tickets):
    @prepared
    def with_tenant(tenant_id: int, number: str):
        return Ticket.objects.for_tenant(tenant_id).select_related("tenant").filter(number=number)

    (row,) = with_tenant(personas.tenant.pk, tickets[0].number)
    with CaptureQueriesContext(connection) as queries:
        assert row.tenant.name == "Acme Corp"  # joined, no second query
    assert len(queries) == 0

    @prepared
    def numbers(tenant_id: int, email: str):
        return (
            Ticket.objects.for_tenant(tenant_id)
            .filter(requester_email=email)
            .order_by("number")
            .values_list("number", flat=True)
        )

    assert numbers(personas.tenant.pk, "kim@acme.test") == sorted(t.number for t in tickets)

    @prepared
    def pairs(tenant_id: int, email: str):
        return (
            Ticket.objects.for_tenant(tenant_id)
            .filter(requester_email=email)
            .order_by("number")
            .values_list("number", "affected_services")
        )

    assert pairs(personas.tenant.pk, "kim@acme.test")[0] == (
        min(t.number for t in tickets),
        ["vpn", "auth"],
    )

    @prepared
    def dicts(tenant_id: int, email: str):
        return (
            Ticket.objects.for_tenant(tenant_id)
            .filter(requester_email=email)
            .order_by("number")
            .values("number", "status")[:1]
        )

    assert dicts(personas.tenant.pk, "kim@acme.test") == [
        {"number": min(t.number for t in tickets), "status": "new"}
    ]

    @prepared
    def labelled(tenant_id: int, email: str):
        return (
            Ticket.objects.for_tenant(tenant_id)
            .filter(requester_email=email)
            .annotate(label=Concat(F("number"), Value(": "), F("title")))
            .order_by("number")
        )

    first = labelled.first(personas.tenant.pk, "kim@acme.test")
    assert first.label == f"{first.number}: {first.title}"
    assert labelled.first(personas.tenant.pk, "none@acme.test") is None


def test_datetimes_and_row_locks(personas, tickets):
    @prepared
    def since(tenant_id: int, after: datetime):
        return Ticket.objects.for_tenant(tenant_id).filter(created_at__gte=after).order_by("pk")

    middle = tickets[1].created_at
    assert [t.pk for t in since(personas.tenant.pk, middle)] == [
        t.pk
        for t in Ticket.objects.for_tenant(personas.tenant)
        .filter(created_at__gte=middle)
        .order_by("pk")
    ]

    @prepared
    def locked(tenant_id: int, number: str):
        return Ticket.objects.for_tenant(tenant_id).select_for_update().filter(number=number)

    with transaction.atomic():
        assert locked.get(personas.tenant.pk, tickets[0].number).pk == tickets[0].pk
        assert "FOR UPDATE" in locked.sql()


@pytest.mark.django_db(transaction=True)
def test_a_row_lock_outside_a_transaction_is_refused_as_the_orm_refuses_it(personas, tickets):
    @prepared
    def locked(tenant_id: int, number: str):
        return Ticket.objects.for_tenant(tenant_id).select_for_update().filter(number=number)

    with transaction.atomic():
        locked(personas.tenant.pk, tickets[0].number)  # compiled inside a transaction
    with pytest.raises(TransactionManagementError):
        locked(personas.tenant.pk, tickets[0].number)


def test_what_cannot_be_replayed_is_refused_at_the_first_call(personas, tickets):
    @prepared
    def containing(tenant_id: int, text: str):
        return Ticket.objects.for_tenant(tenant_id).filter(title__contains=text)

    with pytest.raises(PreparedQueryError, match="transformed"):
        containing(personas.tenant.pk, "VPN")

    @prepared
    def unused(tenant_id: int, text: str):
        return Ticket.objects.for_tenant(tenant_id)

    with pytest.raises(PreparedQueryError, match="text"):
        unused(personas.tenant.pk, "VPN")

    @prepared
    def branching(tenant_id: int, email: str):
        qs = Ticket.objects.for_tenant(tenant_id)
        return qs.filter(requester_email=email) if tenant_id % 2 else qs.filter(title=email)

    with pytest.raises(PreparedQueryError, match="depends on the argument values"):
        branching(personas.tenant.pk, "kim@acme.test")

    @prepared
    def unscoped(email: str):
        return Ticket.objects.filter(requester_email=email)

    with pytest.raises(UnscopedQueryError):
        unscoped("kim@acme.test")

    with pytest.raises(PreparedQueryError, match="must be int"):
        tickets_of(str(personas.tenant.pk), "kim@acme.test")
    with pytest.raises(PreparedQueryError, match="must be str"):
        tickets_of(personas.tenant.pk, None)
    with pytest.raises(PreparedQueryError, match="must be int"):
        tickets_of(True, "kim@acme.test")

    with pytest.raises(PreparedQueryError, match="annotated int, str or datetime"):

        @prepared
        def untyped(tenant_id):
            return Ticket.objects.for_tenant(tenant_id)
