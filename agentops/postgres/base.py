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
"""

from __future__ import annotations

from django.db.backends.postgresql import base

PREPARED_MAX = 500


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's wrapper; ``OPTIONS["prepared_max"]`` (default ``PREPARED_MAX``) is applied to
    every new connection. The cursor class follows Django's own choice:
    ``ServerBindingCursor`` when ``server_side_binding`` is on, the client-side ``Cursor``
    otherwise."""

    def get_connection_params(self):
        params = super().get_connection_params()
        params.pop("prepared_max", None)  # ours, not libpq's (applied in get_new_connection)
        return params

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        connection.prepared_max = self.settings_dict["OPTIONS"].get("prepared_max", PREPARED_MAX)
        return connection
