"""Writes the engine sends together: several of the ORM's own UPDATEs in one statement.

A step's record, its usage, its run's checkpoint and the next step it opens; a tool call's
new state and the touch that tells the live timeline its step changed. Each part is the ``UPDATE … WHERE pk`` that
``Model.save(update_fields=…)`` would send (same field preparation); put in one statement as
data-modifying CTEs they cost one round trip instead of one each, and commit or fail together.
"""

from __future__ import annotations

from django.db import connection
from django.db.models.sql import InsertQuery, UpdateQuery


def update_sql(obj, fields: list[str]) -> tuple[str, list]:
    """The ORM's own ``UPDATE … WHERE pk`` for ``obj``'s ``fields`` (as ``save`` sends it)."""
    model = type(obj)
    values = []
    for name in fields:
        field = model._meta.get_field(name)
        values.append((field, None, field.pre_save(obj, False)))
    query = UpdateQuery(model)
    query.add_update_fields(values)
    query.add_filter("pk", obj.pk)
    sql, params = query.get_compiler(connection.alias).as_sql()
    return sql, list(params)


def execute_together(
    first: tuple[str, list], *rest: tuple[str, list], returning: str = ""
) -> tuple | None:
    """Run ``rest`` as CTEs in front of ``first`` (the main statement); one round trip.

    ``returning`` (optional) is added to the main statement as ``RETURNING …``; the CTEs are
    named ``part_1`` … in order, so it may count their rows.
    """
    sql, params = together(first, *rest, returning=returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if returning else None


def together(
    first: tuple[str, list], *rest: tuple[str, list], returning: str = ""
) -> tuple[str, list]:
    """The statement ``execute_together`` sends, and its parameters."""
    ctes = [f"part_{i} AS ({sql})" for i, (sql, _params) in enumerate(rest, start=1)]
    params: list = [p for _sql, part_params in rest for p in part_params]
    sql = (f"WITH {', '.join(ctes)} " if ctes else "") + first[0]
    if returning:
        sql += f" RETURNING {returning}"
    return sql, params + list(first[1])


def insert_sql(obj) -> tuple[str, list]:
    """The ORM's own ``INSERT`` of ``obj`` (as ``save`` sends it), without ``RETURNING``."""
    model = type(obj)
    fields = [
        f
        for f in model._meta.local_concrete_fields
        if not f.generated and f is not model._meta.auto_field
    ]
    query = InsertQuery(model)
    query.insert_values(fields, [obj])
    ((sql, params),) = query.get_compiler(connection.alias).as_sql()
    return sql, list(params)


def columns(model, alias: str) -> str:
    """``alias."col", …`` for every concrete field of ``model``, in field order (what
    ``instances`` reads back)."""
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


def instances(row, *models) -> list:
    """Split one joined row (``columns`` of each model in turn) into model instances, with
    the backend's and the fields' converters applied as the ORM would; None for a LEFT JOIN
    that found nothing."""
    found, at = [], 0
    for model in models:
        fields = model._meta.concrete_fields
        values = []
        for field, value in zip(fields, row[at : at + len(fields)], strict=True):
            converters = connection.ops.get_db_converters(field) + field.get_db_converters(
                connection
            )
            for converter in converters:
                value = converter(value, field, connection)
            values.append(value)
        at += len(fields)
        if values[0] is None:  # the primary key: no row joined
            found.append(None)
            continue
        found.append(model.from_db(connection.alias, [f.attname for f in fields], values))
    return found
