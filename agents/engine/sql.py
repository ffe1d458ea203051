"""Writes the engine sends together: several of the ORM's own UPDATEs in one statement.

A step's record, its usage, its run's checkpoint and the next step it opens; a tool call's
new state and the touch that tells the live timeline its step changed. Each part is the
``UPDATE … WHERE pk`` that ``Model.save(update_fields=…)`` would send (same field
preparation); put in one statement as data-modifying CTEs they cost one round trip instead of
one each, and commit or fail together.
"""

from __future__ import annotations

from django.db import connection
from django.db.models.sql import InsertQuery, UpdateQuery

# The compiled text of each plain UPDATE shape: (model, fields, which values are NULL) → SQL.
_UPDATE_TEXT: dict[tuple, str] = {}
# The compiled INSERT of each model, the fields it writes, and each model's row readers.
_INSERT_TEXT: dict[type, str] = {}
_INSERT_FIELDS: dict[type, list] = {}
_READERS: dict[type, tuple] = {}


def update_sql(obj, fields: list[str]) -> tuple[str, list]:
    """The ORM's own ``UPDATE … WHERE pk`` for ``obj``'s ``fields`` (as ``save`` sends it).

    The ORM compiles the same text for every row of a shape (model, fields, which values are
    NULL), and compiling was a tenth of a worker's CPU per run: the text is compiled once per
    shape and only the values are prepared per call, as the compiler prepares them
    (``get_db_prep_save``). Values that are expressions or model instances, and fields with
    a placeholder of their own, go through the compiler every time."""
    model = type(obj)
    meta = model._meta
    prepared: list = []
    plain = True
    for name in fields:
        field = meta.get_field(name)
        value = field.pre_save(obj, False)
        if (
            hasattr(value, "resolve_expression")
            or hasattr(value, "prepare_database_save")
            or hasattr(field, "get_placeholder")
        ):
            plain = False
            break
        prepared.append(field.get_db_prep_save(value, connection=connection))
    if plain:
        key = (model, tuple(fields), tuple(value is None for value in prepared))
        text = _UPDATE_TEXT.get(key)
        if text is not None:
            pk = meta.pk.get_db_prep_value(obj.pk, connection=connection, prepared=False)
            return text, [value for value in prepared if value is not None] + [pk]
    values = [
        (meta.get_field(name), None, meta.get_field(name).pre_save(obj, False)) for name in fields
    ]
    query = UpdateQuery(model)
    query.add_update_fields(values)
    query.add_filter("pk", obj.pk)
    sql, params = query.get_compiler(connection.alias).as_sql()
    if plain:
        _UPDATE_TEXT[key] = sql
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
    """The ORM's own ``INSERT`` of ``obj`` (as ``save`` sends it), without ``RETURNING``.

    As with ``update_sql``, the text is compiled once per model and only the values are
    prepared per call, the compiler's way (``pre_save(add=True)``, ``get_db_prep_save``); a
    value that is an expression or a model instance, or a field with a placeholder of its
    own, goes through the compiler every time."""
    model = type(obj)
    fields = _INSERT_FIELDS.get(model)
    if fields is None:
        fields = _INSERT_FIELDS[model] = [
            f
            for f in model._meta.local_concrete_fields
            if not f.generated and f is not model._meta.auto_field
        ]
    prepared: list | None = []
    if any(hasattr(f, "get_placeholder") for f in fields):
        prepared = None
    else:
        for field in fields:
            value = field.pre_save(obj, True)
            if hasattr(value, "resolve_expression") or hasattr(value, "prepare_database_save"):
                prepared = None
                break
            prepared.append(field.get_db_prep_save(value, connection=connection))
    text = _INSERT_TEXT.get(model)
    if text is not None and prepared is not None:
        return text, prepared
    query = InsertQuery(model)
    query.insert_values(fields, [obj])
    ((sql, params),) = query.get_compiler(connection.alias).as_sql()
    if prepared is not None:
        _INSERT_TEXT[model] = sql
    return sql, list(params)


def insert(obj):
    """Insert ``obj`` as ``save`` would (``insert_sql``), set its primary key; returns it."""
    statement, params = insert_sql(obj)
    pk = obj._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(f'{statement} RETURNING "{pk.column}"', params)
        obj.pk = cursor.fetchone()[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


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
        attnames, converters = _readers(model)
        width = len(attnames)
        values = list(row[at : at + width])
        if len(values) != width:
            raise ValueError(f"{model.__name__}: {len(values)} columns for {width} fields")
        at += width
        if values[0] is None:  # the primary key: no row joined
            found.append(None)
            continue
        for index, field, chain in converters:
            value = values[index]
            for converter in chain:
                value = converter(value, field, connection)
            values[index] = value
        found.append(model.from_db(connection.alias, attnames, values))
    return found


def _readers(model) -> tuple[list[str], list[tuple[int, object, list]]]:
    """A model's attnames in column order and, for the fields that have any, the backend's
    and the field's converters (what the compiler looks up for every row; fixed per model)."""
    readers = _READERS.get(model)
    if readers is None:
        fields = model._meta.concrete_fields
        converters = []
        for index, field in enumerate(fields):
            chain = connection.ops.get_db_converters(field) + field.get_db_converters(connection)
            if chain:
                converters.append((index, field, chain))
        readers = _READERS[model] = ([f.attname for f in fields], converters)
    return readers
