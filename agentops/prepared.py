"""Querysets compiled once per process: the hot reads of a worker's step, without the ORM's
per-call cost.

Django builds and compiles a queryset's SQL on every evaluation. For the reads an agent's step
makes (the ticket, the requester in the directory, the devices, the policy rules …) that is
0.5-0.8 ms of CPU each on our 2-core machines, where the statement itself costs 0.1 ms: the
ORM's query building was the largest single share of a worker's time per ticket.

``@prepared`` takes a function that builds the queryset from scalar arguments (annotated
``int``, ``str`` or ``datetime``). The first call builds it with *sentinel* values, compiles
it, and records where each argument lands among the SQL's parameters; every later call only binds the
values and reads the rows, which become model instances (or ``values``/``values_list`` rows)
through the same compiler state and field converters the ORM itself uses::

    @prepared
    def devices_of(tenant_id: int, email: str):
        return Device.objects.for_tenant(tenant_id).filter(owner_email=email).order_by("id")

    devices_of(tenant_id=ticket.tenant_id, email=ticket.requester_email)  # -> [Device, ...]

It refuses at the first call, loudly, what it cannot replay exactly: an argument that does not
reach the SQL as itself (``__contains`` wraps it in ``%``, a JSON lookup encodes it, an unused
argument), an argument of another type than its annotation, ``None`` (which changes the SQL to
``IS NULL``), and an unscoped query on a tenant-owned model (the same check as the ORM's).
tests/test_prepared.py checks the rows against the ORM's for every shape used.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
import typing
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    ValuesIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.transaction import TransactionManagementError

_SUPPORTED = (int, str, datetime)
_EPOCH = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
# Sentinel integers stay inside a SmallIntegerField's range: Django drops a lookup whose value
# overflows its field. A constant of the query that happens to equal one is caught by compiling
# twice with different sentinels (the plans must agree).
_INT_BASE = 30_000
_counter = itertools.count(1)


class PreparedQueryError(TypeError):
    """The builder's queryset cannot be replayed from its compiled SQL (see the module doc)."""


class _Compiled:
    __slots__ = (
        "compiler",
        "converters",
        "init",
        "kind",
        "locking",
        "model",
        "names",
        "plan",
        "populators",
        "sql",
    )

    def __init__(self, queryset, sentinels: dict[str, Any]):
        queryset._check_scoped() if hasattr(queryset, "_check_scoped") else None
        kind = queryset._iterable_class
        if kind not in (ModelIterable, ValuesListIterable, FlatValuesListIterable, ValuesIterable):
            raise PreparedQueryError(f"{kind.__name__} querysets are not supported")
        if queryset._prefetch_related_lookups or queryset._known_related_objects:
            raise PreparedQueryError("prefetch_related and related managers are not supported")
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        by_value = {(type(v), v): name for name, v in sentinels.items()}
        plan: list[tuple[bool, Any]] = []  # (is_argument, name or constant)
        seen = set()
        for param in params:
            name = by_value.get((type(param), param))
            if name is not None:
                plan.append((True, name))
                seen.add(name)
            else:
                if isinstance(param, str) and "\x1f" in param:
                    raise PreparedQueryError(
                        "an argument reaches the SQL transformed (a lookup such as __contains "
                        f"or a JSON key rewrites it): {param!r}"
                    )
                plan.append((False, param))
        missing = set(sentinels) - seen
        if missing:
            raise PreparedQueryError(
                f"argument(s) {', '.join(sorted(missing))} do not reach the SQL as themselves "
                "(unused, or transformed by a lookup): use the ORM for this query"
            )
        self.compiler, self.kind, self.sql, self.plan = compiler, kind, sql, plan
        self.model = queryset.model
        self.locking = queryset.query.select_for_update
        fields = [s[0] for s in compiler.select[0 : compiler.col_count]]
        self.converters = compiler.get_converters(fields)
        self.init = self.populators = None
        if kind is ModelIterable:
            klass_info = compiler.klass_info
            start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
            self.init = (
                klass_info["model"],
                start,
                end,
                [f[0].target.attname for f in compiler.select[start:end]],
                compiler.annotation_col_map,
            )
            self.populators = get_related_populators(klass_info, compiler.select, queryset.db)
        if kind is ValuesIterable:
            query = queryset.query
            self.names = [*query.extra_select, *query.values_select, *query.annotation_select]
        else:
            self.names = None

    def rows(self, alias: str, values: dict[str, Any]) -> list:
        params = [values[item] if is_arg else item for is_arg, item in self.plan]
        connection = connections[alias]
        if self.locking and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            raw = cursor.fetchall()
        if not raw:
            return []
        rows = self.compiler.apply_converters(raw, self.converters) if self.converters else raw
        if self.kind is FlatValuesListIterable:
            return [row[0] for row in rows]
        if self.kind is ValuesListIterable:
            return [tuple(row) for row in rows]
        if self.kind is ValuesIterable:
            return [dict(zip(self.names, row, strict=True)) for row in rows]
        model, start, end, attnames, annotations = self.init
        found = []
        for row in rows:
            obj = model.from_db(alias, attnames, row[start:end])
            for populator in self.populators:
                populator.populate(row, obj)
            for attr, position in annotations.items():
                setattr(obj, attr, row[position])
            found.append(obj)
        return found


def _other(sentinel):
    if type(sentinel) is int:
        return sentinel + 851
    if type(sentinel) is datetime:
        return sentinel + timedelta(days=851, microseconds=1)
    return sentinel.replace("prepared", "again")


class prepared:
    """See the module docstring."""

    def __init__(self, build: Callable[..., Any]):
        functools.update_wrapper(self, build)
        self.build = build
        self.signature = inspect.signature(build)
        hints = typing.get_type_hints(build)
        self.types: dict[str, type] = {}
        for name in self.signature.parameters:
            kind = hints.get(name)
            if kind not in _SUPPORTED:
                raise PreparedQueryError(
                    f"{build.__qualname__}: argument {name!r} must be annotated int, str or "
                    "datetime"
                )
            self.types[name] = kind
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _sentinels(self) -> dict[str, Any]:
        values = {}
        for name, kind in self.types.items():
            n = next(_counter)
            if kind is int:
                values[name] = _INT_BASE + n % 1_000
            elif kind is datetime:
                values[name] = _EPOCH + timedelta(microseconds=n)
            else:
                values[name] = f"\x1fprepared-{n}\x1f"
        return values

    def _for(self, alias: str) -> _Compiled:
        connection = connections[alias]
        compiled = self._compiled.get(connection)
        if compiled is None:
            sentinels = self._sentinels()
            # Odd distance: a builder that branches on parity or size is caught too.
            again = {k: _other(v) for k, v in sentinels.items()}
            compiled = _Compiled(self.build(**sentinels), sentinels)
            check = _Compiled(self.build(**again), again)
            if (compiled.sql, compiled.plan) != (check.sql, check.plan):
                raise PreparedQueryError(
                    f"{self.build.__qualname__}: the SQL depends on the argument values"
                )
            with self._lock:
                self._compiled[connection] = compiled
        return compiled

    def __call__(self, *args, **kwargs) -> list:
        bound = self.signature.bind(*args, **kwargs).arguments
        for name, value in bound.items():
            kind = self.types[name]
            if type(value) is not kind and not (kind is datetime and isinstance(value, datetime)):
                # (bool is an int, but not one this query takes)
                raise PreparedQueryError(
                    f"{self.build.__qualname__}: {name} must be {kind.__name__}, "
                    f"got {type(value).__name__}"
                )
            if kind is str and "\x1f" in value:
                raise PreparedQueryError(f"{self.build.__qualname__}: {name} holds \\x1f")
        return self._for("default").rows("default", bound)

    def first(self, *args, **kwargs):
        """The first row, or None (the builder orders and slices as ``.first()`` would)."""
        rows = self(*args, **kwargs)
        return rows[0] if rows else None

    def get(self, *args, **kwargs):
        """The one row, as ``QuerySet.get``: DoesNotExist / MultipleObjectsReturned else."""
        rows = self(*args, **kwargs)
        if len(rows) == 1:
            return rows[0]
        model = self._for("default").model
        if not rows:
            raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
        raise model.MultipleObjectsReturned(
            f"get() returned more than one {model._meta.object_name} -- it returned {len(rows)}!"
        )

    def sql(self) -> str:
        """The compiled statement (for tests and EXPLAIN)."""
        return self._for("default").sql
