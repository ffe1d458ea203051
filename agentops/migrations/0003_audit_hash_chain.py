"""Hash-chain the audit trail: per-tenant ``seq``, ``prev_hash`` and ``hash`` on AuditEvent.

Existing events are chained in the order they happened (created_at, then id), per tenant.
The append-only trigger is switched off for the backfill only, inside this migration's
transaction, and switched back on before it commits.
"""

from django.db import migrations, models

TRIGGER = "agentops_auditevent_append_only"
BATCH = 2000


def chain_existing_events(apps, schema_editor):
    from agentops.audit import GENESIS_HASH, compute_hash

    AuditEvent = apps.get_model("agentops", "AuditEvent")
    db = schema_editor.connection.alias
    schema_editor.execute(f"ALTER TABLE agentops_auditevent DISABLE TRIGGER {TRIGGER}")
    tenant_ids = (
        AuditEvent.objects.using(db).order_by().values_list("tenant_id", flat=True).distinct()
    )
    for tenant_id in list(tenant_ids):
        events = (
            AuditEvent.objects.using(db)
            .filter(tenant_id=tenant_id)
            .order_by("created_at", "id")
            .iterator(chunk_size=BATCH)
        )
        prev_hash, pending = GENESIS_HASH, []
        for seq, event in enumerate(events, start=1):
            event.seq, event.prev_hash = seq, prev_hash
            event.hash = prev_hash = compute_hash(event)
            pending.append(event)
            if len(pending) >= BATCH:
                AuditEvent.objects.using(db).bulk_update(pending, ["seq", "prev_hash", "hash"])
                pending = []
        if pending:
            AuditEvent.objects.using(db).bulk_update(pending, ["seq", "prev_hash", "hash"])
    schema_editor.execute(f"ALTER TABLE agentops_auditevent ENABLE TRIGGER {TRIGGER}")


class Migration(migrations.Migration):
    dependencies = [("agentops", "0002_pgvector_and_append_only_audit")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(
                null=True, help_text="Position in the tenant's chain, from 1."
            ),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(default="", max_length=64, help_text="The hash of event seq-1."),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(
                default="",
                max_length=64,
                help_text="sha256 of the canonical event + prev_hash.",
            ),
            preserve_default=False,
        ),
        migrations.RunPython(chain_existing_events, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(
                help_text="Position in the tenant's chain, from 1."
            ),
        ),
        migrations.AddConstraint(
            model_name="auditevent",
            constraint=models.UniqueConstraint(
                fields=("tenant", "seq"), name="audit_unique_tenant_seq"
            ),
        ),
    ]
