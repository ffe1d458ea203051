import django.db.models.deletion
from django.db import migrations, models

from agentops.migration_operations import (
    RemoveIndexConcurrentlyWhenPossible,
    drop_foreign_key_index,
)


class Migration(migrations.Migration):
    """A step is indexed by (run, seq) alone. ``step_run_updated_idx`` (run, updated_at) made
    every update of a step (about two per step: finished, then its tool calls' progress)
    write a new entry in all five indexes, never HOT; the timeline's "changed since" reads a
    run's few steps through (run, seq) just as well. The run-only index duplicates (run, seq)'s
    leading column. Dropping indexes rewrites nothing."""

    # CONCURRENTLY (outside a transaction): a big step table keeps taking writes.
    atomic = False

    dependencies = [("agents", "0004_merge_20261202_0551")]

    operations = [
        RemoveIndexConcurrentlyWhenPossible(model_name="step", name="step_run_updated_idx"),
        drop_foreign_key_index(
            model_name="step",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="steps",
                to="agents.run",
            ),
            table="agents_step",
            index="agents_step_run_id_6ab23279",
        ),
    ]
