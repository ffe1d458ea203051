"""§5.9 The restore drill: a base backup of the embedded PostgreSQL (``manage.py backup``)
restored to a scratch server (``manage.py restore``) matches the backup — row counts of every
table, every tenant's audit chain recomputed from the restored rows, and vector queries.

Two tenants with tickets (audited) and knowledge chunks (embedded). A ticket opened after the
backup is not in the restore (it is the backup's state that comes back). The negative control:
an audit event deleted on the restored server (as its owner could) is reported by the check.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agentops import backup
from knowledge.models import Chunk
from tests.reliability.conftest import locked_requesters, open_locked_out_ticket


@pytest.fixture
def scratch():
    """A directory the server's own user can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="agentops-drill-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fill(tenant) -> None:
    from knowledge import services

    for requester in locked_requesters(tenant, 3, prefix="drill"):
        open_locked_out_ticket(tenant, requester)
    for title, text in [
        ("VPN timeouts", "Reconnect the VPN client and renew the certificate when it times out."),
        ("Printer queue", "Clear the print spooler, then restart the printer service."),
        ("Locked account", "Unlock the directory account after verifying the person's identity."),
    ]:
        services.ingest_text(tenant=tenant, kind="runbook", title=title, content=text * 20)


def test_a_base_backup_restores_to_a_scratch_server_and_matches(
    transactional_db, personas, scratch, capsys
):
    for tenant in (personas.tenant, personas.other_tenant):
        fill(tenant)
    assert Chunk.objects.unscoped("test").exclude(embedding=None).count() >= 6

    call_command("backup", to=str(scratch / "backup"))
    manifest = json.loads((scratch / "backup" / backup.MANIFEST).read_text())
    assert manifest["counts"]["incidents_ticket"] == 6
    assert len(manifest["audit_heads"]) == 2 and manifest["vectors"]
    # After the backup: not part of what comes back.
    [late] = locked_requesters(personas.tenant, 1, prefix="late")
    open_locked_out_ticket(personas.tenant, late)

    call_command("restore", str(scratch / "backup"), to=str(scratch / "pgdata"))
    assert "match the backup" in capsys.readouterr().out

    # Negative control: tamper with a restored copy; the check names what broke.
    server = backup.restore(scratch / "backup", scratch / "tampered")
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # past the trigger
            conn.execute(
                "DELETE FROM agentops_auditevent WHERE id = "
                "(SELECT min(id) FROM agentops_auditevent)"
            )
        problems = backup.check(manifest, server.url())
    finally:
        server.stop()
    assert any("rows of agentops_auditevent" in p for p in problems), problems
    assert any("audit chain of tenant" in p and "deleted" in p for p in problems), problems


def test_restore_refuses_a_directory_that_is_not_empty(transactional_db, scratch):
    (scratch / "backup").mkdir()
    (scratch / "backup" / backup.MANIFEST).write_text(json.dumps({"database": "x"}))
    (scratch / "pgdata").mkdir()
    (scratch / "pgdata" / "PG_VERSION").write_text("18")
    with pytest.raises(CommandError, match="not empty"):
        call_command("restore", str(scratch / "backup"), to=str(scratch / "pgdata"))
