from django.db import migrations

# The audit table stays append-only, with one exception: deleting a tenant for good
# (agentops.lifecycle.tenant_purge) sets, for its own transaction only,
# SET LOCAL agentops.purge_tenant = <tenant id>, and only that tenant's rows may then go.
PURGEABLE = """
CREATE OR REPLACE FUNCTION agentops_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('agentops.purge_tenant', true) = OLD.tenant_id::text THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

STRICT = """
CREATE OR REPLACE FUNCTION agentops_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    """Let a tenant's deletion for good remove its audit events, and nothing else."""

    dependencies = [("agentops", "0005_tenant_limits_usage")]

    operations = [migrations.RunSQL(PURGEABLE, STRICT)]
