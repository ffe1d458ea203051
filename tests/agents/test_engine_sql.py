"""agents.engine.sql: the ORM's own statements, sent together; an UPDATE's text compiled once
per shape gives exactly what the ORM's compiler gives, and writes what ``save`` writes."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.db.models import F
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from agents.engine import sql
from agents.engine.runner import RUN_STEP_FIELDS
from agents.models import Run


def compiled(obj, fields):
    query = UpdateQuery(type(obj))
    query.add_update_fields(
        [(type(obj)._meta.get_field(n), None, type(obj)._meta.get_field(n).pre_save(obj, False))
         for n in fields]
    )  # fmt: skip
    query.add_filter("pk", obj.pk)
    text, params = query.get_compiler(connection.alias).as_sql()
    return text, [repr(p) for p in params]


def test_a_cached_update_is_the_compilers_statement_and_writes_the_row(personas):
    from agents import engine

    run = engine.start_run(tenant=personas.tenant, blueprint="service_desk", actor=None)
    sql._UPDATE_TEXT.clear()
    for error, ended in (("", None), ("boom", timezone.now()), ("", None)):
        run.error_message, run.ended_at = error, ended
        run.state_data = {"n": [1, "é", None]}
        run.total_cost_usd = Decimal("0.0125")
        first = sql.update_sql(run, RUN_STEP_FIELDS)
        again = sql.update_sql(run, RUN_STEP_FIELDS)  # from the cache
        assert (again[0], [repr(p) for p in again[1]]) == compiled(run, RUN_STEP_FIELDS)
        assert first[0] == again[0]
        with connection.cursor() as cursor:
            cursor.execute(*again)
        stored = Run.objects.for_tenant(personas.tenant).get(pk=run.pk)
        assert (stored.error_message, stored.ended_at) == (error, ended)
        assert stored.state_data == {"n": [1, "é", None]}
    assert len(sql._UPDATE_TEXT) == 2  # a shape per NULL pattern, not per call
    run.step_count = F("step_count") + 1  # an expression: compiled every time, never cached
    text, _params = sql.update_sql(run, ["step_count"])
    assert '"step_count" + ' in text and len(sql._UPDATE_TEXT) == 2
