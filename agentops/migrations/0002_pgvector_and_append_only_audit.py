from django.db import migrations
from pgvector.django import VectorExtension

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION agentops_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER agentops_auditevent_append_only
    BEFORE UPDATE OR DELETE ON agentops_auditevent
    FOR EACH ROW EXECUTE FUNCTION agentops_audit_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS agentops_auditevent_append_only ON agentops_auditevent;
DROP FUNCTION IF EXISTS agentops_audit_append_only();
"""


class Migration(migrations.Migration):
    """pgvector for retrieval (the knowledge base) and a database-enforced append-only audit."""

    dependencies = [("agentops", "0001_initial")]

    operations = [
        VectorExtension(),
        migrations.RunSQL(APPEND_ONLY, DROP),
    ]
