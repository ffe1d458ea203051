from django.db import migrations

# One round trip per append (agentops.audit._append): the tenant's append lock, the chain
# head, the timestamp, the hash of each event and the insert, in the database. The hash is
# the same as ever (sha256 of the event's canonical JSON, agentops.audit.canonical_payload):
# Python sends each event's canonical JSON cut into four pieces around the three values only
# known here (created_at, prev_hash, seq), and this function joins them with those values.
APPEND = """
CREATE OR REPLACE FUNCTION agentops_audit_append(p_tenant bigint, p_events jsonb)
RETURNS TABLE (event_id bigint, event_seq bigint, event_prev text, event_hash text,
               event_at timestamptz) AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    stamped timestamptz;
    stamp text;
    event jsonb;
    payload text;
BEGIN
    -- 0x41554454 ("AUDT"): the audit lock's namespace, as in agentops.audit.
    PERFORM pg_advisory_xact_lock(1096107092, (p_tenant % 2147483647)::integer);
    SELECT a.seq, a.hash INTO head_seq, head_hash FROM agentops_auditevent a
        WHERE a.tenant_id = p_tenant ORDER BY a.seq DESC LIMIT 1;
    IF head_seq IS NULL THEN
        head_seq := 0;
        head_hash := repeat('0', 64);
    END IF;
    -- Stamped after the lock, so created_at never runs backwards along the chain.
    stamped := date_trunc('microseconds', clock_timestamp());
    stamp := to_char(stamped AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00';
    FOR event IN SELECT value FROM jsonb_array_elements(p_events) LOOP
        head_seq := head_seq + 1;
        payload := (event->>'p0') || stamp || (event->>'p1') || head_hash || (event->>'p2')
                   || head_seq::text || (event->>'p3');
        event_prev := head_hash;
        head_hash := encode(sha256(convert_to(payload, 'UTF8')), 'hex');
        INSERT INTO agentops_auditevent (tenant_id, seq, prev_hash, hash, created_at, actor_id,
            actor_label, action, target_type, target_id, target_repr, changes, metadata)
        VALUES (p_tenant, head_seq, event_prev, head_hash, stamped,
            (event->>'actor_id')::bigint, event->>'actor_label', event->>'action',
            event->>'target_type', event->>'target_id', event->>'target_repr',
            event->'changes', event->'metadata')
        RETURNING id INTO event_id;
        event_seq := head_seq;
        event_hash := head_hash;
        event_at := stamped;
        RETURN NEXT;
    END LOOP;
END;
$$ LANGUAGE plpgsql;
"""

DROP = "DROP FUNCTION IF EXISTS agentops_audit_append(bigint, jsonb);"


class Migration(migrations.Migration):
    """The audit append in one round trip (a function that chains and inserts)."""

    dependencies = [("agentops", "0007_merge_0005_api_token_expiry_0006_audit_purge_tenant")]

    operations = [migrations.RunSQL(APPEND, DROP)]
