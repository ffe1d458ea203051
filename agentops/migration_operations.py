"""Migration operations of our own."""

from __future__ import annotations

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations
from django.db.migrations.operations import AddIndex, RemoveIndex
from django.db.migrations.operations.base import Operation


class AddIndexConcurrentlyWhenPossible(AddIndexConcurrently):
    """``CREATE INDEX CONCURRENTLY`` when ``migrate`` runs outside a transaction (the migration
    is ``atomic = False``), as on a live database whose big table keeps taking writes; a plain
    ``CREATE INDEX`` when a caller holds a transaction open around the migration (a test that
    migrates back and forth inside its own), where CONCURRENTLY is not allowed at all."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.in_atomic_block:
            return AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.in_atomic_block:
            return AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


class RemoveIndexConcurrentlyWhenPossible(RemoveIndexConcurrently):
    """``DROP INDEX CONCURRENTLY`` (and ``CREATE INDEX CONCURRENTLY`` backwards) when
    ``migrate`` runs outside a transaction; plain statements inside one (see above)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.in_atomic_block:
            return RemoveIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.in_atomic_block:
            return RemoveIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
        return super().database_backwards(app_label, schema_editor, from_state, to_state)


class DropFieldIndexConcurrentlyWhenPossible(Operation):
    """Drop the index Django made for a foreign key (``db_index``), by its name, and nothing
    else: pair it with the field's ``AlterField(db_index=False)`` in the state only
    (``SeparateDatabaseAndState``). ``AlterField`` on the database would also drop and re-add
    the foreign key constraint, which re-checks every row of the table under a lock that
    blocks writes. CONCURRENTLY when ``migrate`` runs outside a transaction; backwards builds
    the index again."""

    reversible = True

    def __init__(self, table: str, name: str, columns: list[str]):
        self.table, self.name, self.columns = table, name, list(columns)

    def state_forwards(self, app_label, state):
        pass

    def _concurrently(self, schema_editor) -> str:
        return "" if schema_editor.connection.in_atomic_block else " CONCURRENTLY"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        quote = schema_editor.quote_name
        schema_editor.execute(
            f"DROP INDEX{self._concurrently(schema_editor)} IF EXISTS {quote(self.name)}"
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        quote = schema_editor.quote_name
        columns = ", ".join(quote(c) for c in self.columns)
        schema_editor.execute(
            f"CREATE INDEX{self._concurrently(schema_editor)} IF NOT EXISTS "
            f"{quote(self.name)} ON {quote(self.table)} ({columns})"
        )

    def describe(self) -> str:
        return f"Drop index {self.name} on {self.table}"

    @property
    def migration_name_fragment(self) -> str:
        return f"drop_{self.name.lower()}"


def drop_foreign_key_index(
    *, model_name: str, name: str, field, table: str, index: str
) -> migrations.SeparateDatabaseAndState:
    """``field`` (a foreign key ``name`` now with ``db_index=False``) in the state; in the
    database only its index ``index`` on ``table`` goes (the constraint stays as it is)."""
    return migrations.SeparateDatabaseAndState(
        state_operations=[migrations.AlterField(model_name=model_name, name=name, field=field)],
        database_operations=[DropFieldIndexConcurrentlyWhenPossible(table, index, [f"{name}_id"])],
    )
