"""Several SQL statements in one round trip, each of them preparable: ``Statements``.

Sending ``"SET LOCAL …; UPDATE …"`` as one string saved round trips while parameters were
bound client-side. With server-side binding (``agentops.postgres.base``) PostgreSQL refuses
it ("cannot insert multiple commands into a prepared statement"), and such a string could
never be prepared anyway. ``Statements`` keeps the one round trip by sending its statements
as one psycopg pipeline: each goes as its own extended-protocol message (prepared by psycopg
once it is hot), one Sync at the end, and each statement's rows come back on its own cursor::

    rows = Statements(
        ("SELECT set_config('hnsw.ef_search', %s, true)", ["200"]),
        ("SELECT id FROM knowledge_chunk WHERE tenant_id = %s ORDER BY … LIMIT %s", [t, n]),
    ).fetchall()  # the last statement's rows

An error stops the statements after it. Inside a transaction that transaction is then
aborted, as after any failed statement (``transaction.atomic`` rolls it back on the way out);
in autocommit the statements before the error are rolled back too (they shared the
pipeline's implicit transaction). The Django exception raised says which statement failed.

Django's query log (``CaptureQueriesContext``, DEBUG) and ``execute_wrapper``s see one query
per round trip: the statements joined by ``"; "``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, Error, connections

logger = logging.getLogger("django.db.backends")

Params = Sequence[Any] | Mapping[str, Any] | None


class Statements:
    """A sequence of ``(sql, params)``, sent together in one round trip by ``execute``."""

    __slots__ = ("_items",)

    def __init__(self, *statements: tuple[str, Params]):
        self._items: list[tuple[str, Params]] = []
        for sql, params in statements:
            self.add(sql, params)

    def add(self, sql: str, params: Params = None) -> Statements:
        """Append one statement (one command: no ``;`` between two); returns self."""
        self._items.append((sql, params))
        return self

    def extend(self, other: Iterable[tuple[str, Params]]) -> Statements:
        for sql, params in other:
            self.add(sql, params)
        return self

    def __iter__(self) -> Iterator[tuple[str, Params]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> tuple[str, Params]:
        return self._items[index]

    def __repr__(self) -> str:
        return f"Statements({', '.join(repr(sql[:60]) for sql, _ in self._items)})"

    @property
    def sql(self) -> str:
        """The statements' text joined by ``"; "`` (what the query log shows)."""
        return "; ".join(sql for sql, _params in self._items)

    # ------------------------------------------------------------------------ sending

    def execute(self, *, using: str = DEFAULT_DB_ALIAS) -> list:
        """Send every statement in one round trip; return one psycopg cursor per statement,
        in order, each holding its own statement's rows (``fetchone``/``fetchall``)."""
        if not self._items:
            return []
        connection = connections[using]
        connection.ensure_connection()
        connection.validate_thread_sharing()
        connection.validate_no_broken_transaction()
        cursors = [connection.create_cursor() for _ in self._items]
        context = {"connection": connection, "cursor": cursors[-1]}
        executor = functools.partial(self._send, cursors)
        for wrapper in reversed(connection.execute_wrappers):
            executor = _bind(wrapper, executor)
        logged = connection.queries_logged
        start = time.monotonic()
        try:
            with connection.wrap_database_errors:
                executor(self.sql, tuple(p for _sql, p in self._items), False, context)
        except Error as exc:
            failed = next((i for i, c in enumerate(cursors) if c.pgresult is None), None)
            if failed is not None and len(self._items) > 1:
                exc.add_note(
                    f"In statement {failed + 1} of {len(self._items)} sent together: "
                    f"{self._items[failed][0][:300]}"
                )
            raise
        finally:
            if logged:
                self._log(connection, cursors, time.monotonic() - start)
        return cursors

    def fetchall(self, which: int = -1, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
        """``execute``, then the rows of statement ``which`` (the last by default)."""
        return self.execute(using=using)[which].fetchall()

    def fetchone(self, which: int = -1, *, using: str = DEFAULT_DB_ALIAS) -> tuple | None:
        """``execute``, then the first row of statement ``which`` (the last by default)."""
        return self.execute(using=using)[which].fetchone()

    def _send(self, cursors: list, sql, params, many, context) -> None:
        """The executor ``execute_wrapper``s wrap: one statement as it is, several as one
        pipeline (one Sync, so one round trip)."""
        if len(self._items) == 1:
            cursors[0].execute(*self._items[0])
            return
        with context["connection"].connection.pipeline():
            for cursor, (statement, statement_params) in zip(cursors, self._items, strict=True):
                cursor.execute(statement, statement_params)

    def _log(self, connection, cursors, duration: float) -> None:
        texts = []
        for cursor, (sql, params) in zip(cursors, self._items, strict=True):
            try:
                texts.append(connection.ops.last_executed_query(cursor, sql, params) or sql)
            except Exception:
                texts.append(sql)
        text = "; ".join(texts)
        connection.queries_log.append({"sql": text, "time": f"{duration:.3f}"})
        logger.debug("(%.3f) %s; args=%s; alias=%s", duration, text, None, connection.alias)


def _bind(wrapper, executor):
    return lambda sql, params, many, context: wrapper(executor, sql, params, many, context)
