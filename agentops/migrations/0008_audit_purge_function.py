from django.db import migrations

# The application's role may not DELETE audit events at all (agentops.db_roles), so deleting a
# tenant for good (agentops.lifecycle.tenant_purge) goes through this one function, which runs
# with its owner's rights: it removes every audit event of one tenant (the whole chain, never
# a part of it, so no tail can be cut this way) and nothing else. The trigger's purge setting
# (0006) is set inside it, for its transaction only. EXECUTE is the owner's alone until the
# owner grants it to the application's role after each migrate (agentops.db_roles).
FUNCTION = """
CREATE OR REPLACE FUNCTION agentops_audit_purge_tenant(purged_tenant bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM set_config('agentops.purge_tenant', purged_tenant::text, true);
    DELETE FROM agentops_auditevent WHERE tenant_id = purged_tenant;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('agentops.purge_tenant', '', true);
    RETURN n;
END;
$$;
REVOKE ALL ON FUNCTION agentops_audit_purge_tenant(bigint) FROM PUBLIC;
"""

DROP = "DROP FUNCTION IF EXISTS agentops_audit_purge_tenant(bigint);"


class Migration(migrations.Migration):
    """Deleting a tenant for good works for the application's role (no DELETE on the audit)."""

    dependencies = [("agentops", "0007_merge_0005_api_token_expiry_0006_audit_purge_tenant")]

    operations = [migrations.RunSQL(FUNCTION, DROP)]
