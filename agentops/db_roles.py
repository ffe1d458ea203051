"""The application's database role: privileges granted by the owner after every migrate.

The application connects as a role that owns nothing (settings DATABASE_URL; embedded:
``agentops_app``) and migrations run as the owner (DATABASE_MIGRATION_URL). After each
``migrate`` the owner grants that role what the application needs — SELECT, INSERT, UPDATE,
DELETE on every table, the sequences — except on the audit trail, where it may only SELECT and
INSERT. Not owning the table, it cannot DISABLE TRIGGER; not a superuser, it cannot set
``session_replication_role``; without the privilege, it cannot TRUNCATE. So the append-only
trigger holds against the application itself. Deleting a tenant for good removes that
tenant's whole chain through one owner's function (``PURGE_FUNCTION``, migration 0008), the
only way the role can delete audit events.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)

AUDIT_TABLE = "agentops_auditevent"
PURGE_FUNCTION = "agentops_audit_purge_tenant(bigint)"


def grant_app_role(sender=None, using: str = "default", **kwargs) -> bool:
    """post_migrate (agentops): grant the application's role its privileges. Returns False
    when there is nothing to grant (no separate role, or it does not exist)."""
    role = settings.DATABASE_APP_USER
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (current,) = cursor.fetchone()
        if not role or role == current:
            return False  # one role for everything (a managed database set up that way)
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            log.warning("database role %r does not exist: create it (README)", role)
            return False
        quoted = connection.ops.quote_name(role)
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        cursor.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}"
        )
        cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        cursor.execute(
            f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {AUDIT_TABLE} FROM {quoted}"
        )
        cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [PURGE_FUNCTION])
        if cursor.fetchone()[0]:  # absent while migrating back past 0008
            cursor.execute(f"GRANT EXECUTE ON FUNCTION {PURGE_FUNCTION} TO {quoted}")
    return True
