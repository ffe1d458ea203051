"""Django's PostgreSQL backend, with psycopg's prepared-statement cache sized for our workers.

With ``OPTIONS = {"server_side_binding": True, "prepare_threshold": 5}`` (settings,
``DB_SERVER_SIDE_BINDING``) the parameters travel apart from the SQL text, so the text of a
hot statement is the same on every call and psycopg prepares it on the connection after its
fifth execution: PostgreSQL then skips parsing and planning it (half of its CPU in a worker's
connection went there). psycopg keeps at most ``prepared_max`` statements per connection
(least recently used go first, 100 by default); a worker's step has more distinct hot
statements than that, hence ``PREPARED_MAX``.

Server-side binding refuses several statements in one string ("cannot insert multiple
commands into a prepared statement"): send those as ``agentops.postgres.statements.Statements``.

``before_commit(func, item)`` is the other half of Django's ``on_commit``: work that belongs
inside the transaction but should come last, just before COMMIT. The audit trail uses it: a
tenant's chain is locked from the append until the commit, so the append waits for the end.
"""

from __future__ import annotations

from django.db.backends.postgresql import base
from django.db.transaction import TransactionManagementError

PREPARED_MAX = 500


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's wrapper; ``OPTIONS["prepared_max"]`` (default ``PREPARED_MAX``) is applied to
    every new connection. The cursor class follows Django's own choice:
    ``ServerBindingCursor`` when ``server_side_binding`` is on, the client-side ``Cursor``
    otherwise."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # (savepoint ids when registered, func, item): see before_commit.
        self.run_before_commit: list[tuple[frozenset, object, object]] = []

    def before_commit(self, func, item) -> None:
        """Run ``func(items)`` inside the open transaction just before it commits, once per
        ``func``, with every ``item`` registered for it, in order. Like ``on_commit``, an item
        registered inside a savepoint that is rolled back is dropped, and a rollback drops
        them all. An error in ``func`` rolls the transaction back and is raised from the
        commit (from ``atomic``'s exit)."""
        if not self.in_atomic_block:
            raise TransactionManagementError("before_commit() needs an open transaction.")
        self.run_before_commit.append((frozenset(self.savepoint_ids), func, item))

    def commit(self):
        try:
            while self.run_before_commit:  # (a func may register more)
                hooks, self.run_before_commit = self.run_before_commit, []
                grouped: dict = {}
                for _sids, func, item in hooks:
                    grouped.setdefault(func, []).append(item)
                for func, items in grouped.items():
                    func(items)
        except Exception:
            self.rollback()  # (atomic's own rollback after a DatabaseError is then a no-op)
            raise
        super().commit()

    def rollback(self):
        self.run_before_commit = []
        super().rollback()

    def savepoint_rollback(self, sid):
        super().savepoint_rollback(sid)
        self.run_before_commit = [h for h in self.run_before_commit if sid not in h[0]]

    def close(self):
        self.run_before_commit = []
        super().close()

    def get_connection_params(self):
        params = super().get_connection_params()
        params.pop("prepared_max", None)  # ours, not libpq's (applied in get_new_connection)
        return params

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        connection.prepared_max = self.settings_dict["OPTIONS"].get("prepared_max", PREPARED_MAX)
        return connection
