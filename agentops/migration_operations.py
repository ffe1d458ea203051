"""Migration operations of our own."""

from __future__ import annotations

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db.migrations.operations import AddIndex


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
