"""agents.engine.sql: the ORM's own statements, sent together; an UPDATE's text compiled once
per shape gives exactly what the ORM's compiler gives, and writes what ``save`` writes."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.db.models import F
from django.db.models.sql import InsertQuery, UpdateQuery
from django.utils import timezone

from agents.engine import sql
from agents.engine.runner import RUN_STEP_FIELDS
from agents.models import Run, Step


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


def compiled_insert(obj):
    model = type(obj)
    fields = [
        f
        for f in model._meta.local_concrete_fields
        if not f.generated and f is not model._meta.auto_field
    ]
    query = InsertQuery(model)
    query.insert_values(fields, [obj])
    ((text, params),) = query.get_compiler(connection.alias).as_sql()
    return text, [repr(p) for p in params]


def test_a_cached_insert_is_the_compilers_statement_and_writes_the_row(personas):
    from agents import engine

    run = engine.start_run(tenant=personas.tenant, blueprint="service_desk", actor=None)
    sql._INSERT_TEXT.clear()
    made = []
    for seq, (name, summary) in enumerate((("triage", "x"), ("plan", ""), ("resolve", "é")), 10):
        step = Step(tenant=run.tenant, run=run, seq=seq, name=name, status="running")
        step.output_summary = summary
        text, params = sql.insert_sql(step)
        assert Step in sql._INSERT_TEXT  # (cached from the first call on)
        assert (text, [repr(p) for p in params]) == compiled_insert(step)
        with connection.cursor() as cursor:
            cursor.execute(text + ' RETURNING "id"', params)
            made.append((cursor.fetchone()[0], name, summary))
    stored = {
        s.pk: (s.name, s.output_summary)
        for s in Step.objects.for_tenant(run.tenant).filter(run=run)
    }
    assert all(stored[pk] == (name, summary) for pk, name, summary in made)
    assert len(sql._INSERT_TEXT) == 1


def test_a_joined_row_reads_back_as_the_orms_instances(personas):
    from agents import engine

    run = engine.start_run(tenant=personas.tenant, blueprint="service_desk", actor=None)
    run.state_data = {"k": ["v", 2]}
    run.total_cost_usd = Decimal("0.5")
    run.save(update_fields=["state_data", "total_cost_usd"])
    with connection.cursor() as cursor:
        for _ in range(2):  # the second read uses the cached readers
            cursor.execute(
                f"SELECT {sql.columns(Run, 'r')}, {sql.columns(Step, 's')} FROM agents_run r "  # noqa: S608
                "LEFT JOIN agents_step s ON s.run_id = r.id AND s.name = %s WHERE r.id = %s",
                ["no such step", run.pk],
            )
            got_run, got_step = sql.instances(cursor.fetchone(), Run, Step)
            orm = Run.objects.for_tenant(run.tenant).get(pk=run.pk)
            assert got_step is None
            assert {f.attname: getattr(got_run, f.attname) for f in Run._meta.concrete_fields} == {
                f.attname: getattr(orm, f.attname) for f in Run._meta.concrete_fields
            }
            assert got_run.state_data == {"k": ["v", 2]}
            assert got_run.total_cost_usd == Decimal("0.5")
            assert not got_run._state.adding
