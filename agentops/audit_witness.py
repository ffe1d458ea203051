"""Signed checkpoints of each tenant's audit chain head, kept outside the database.

The hash chain (agentops.audit) shows any event that was changed, removed from the middle or
moved, but deleting the newest events leaves a shorter chain that still verifies. So a beat
task (agentops.tasks.audit_checkpoint) writes, for every tenant whose head moved, a checkpoint
``{db, tenant_id, tenant, seq, hash, at}`` signed with HMAC-SHA256 under a key that is not in
the database (AUDIT_CHECKPOINT_KEY, or a key file under var/ made on first use) to a witness
outside the database: an append-only JSON-lines file (AUDIT_WITNESS_FILE) and the log.
``verify_chain`` then compares the chain with the latest valid checkpoint: a chain that ends
before it was truncated; a chain whose event at that seq has another hash was rewritten.

Someone who can rewrite the database but not the witness file, the logs and the key can no
longer cut the tail unseen. Put the witness and the logs on storage the database's operators
cannot rewrite (another host, an append-only bucket) where that matters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    tenant_id: int
    seq: int
    hash: str
    at: str


def _key() -> bytes:
    """The signing key: AUDIT_CHECKPOINT_KEY, else a key file created once (mode 0600)."""
    if settings.AUDIT_CHECKPOINT_KEY:
        return settings.AUDIT_CHECKPOINT_KEY.encode()
    path = Path(settings.AUDIT_CHECKPOINT_KEY_PATH)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _database() -> str:
    """Which database a checkpoint is about (a wiped or other database has its own)."""
    return str(connection.settings_dict["NAME"])


def sign(payload: dict) -> str:
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(_key(), body, hashlib.sha256).hexdigest()


def _heads() -> list[tuple[int, str, int, str]]:
    """(tenant id, slug, seq, hash) of every tenant's newest committed audit event."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT ON (e.tenant_id) e.tenant_id, t.slug, e.seq, e.hash "
            "FROM agentops_auditevent e JOIN agentops_tenant t ON t.id = e.tenant_id "
            "ORDER BY e.tenant_id, e.seq DESC"
        )
        return list(cursor.fetchall())


def read_checkpoints() -> tuple[dict[int, Checkpoint], int]:
    """The latest validly signed checkpoint per tenant of this database, and how many lines
    of the witness carry a signature that does not verify (forged or damaged)."""
    path = Path(settings.AUDIT_WITNESS_FILE)
    latest: dict[int, Checkpoint] = {}
    forged = 0
    if not path.exists():
        return latest, forged
    database = _database()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
                signature = record.pop("sig")
            except (ValueError, KeyError, AttributeError):
                forged += 1
                continue
            if not hmac.compare_digest(str(signature), sign(record)):
                forged += 1
                continue
            if record.get("db") != database:
                continue
            cp = Checkpoint(
                int(record["tenant_id"]), int(record["seq"]), record["hash"], record["at"]
            )
            if cp.tenant_id not in latest or cp.seq >= latest[cp.tenant_id].seq:
                latest[cp.tenant_id] = cp
    return latest, forged


def write_checkpoints() -> int:
    """Append a signed checkpoint for every tenant whose head moved since its last one;
    returns how many were written. Safe to run twice at once (a duplicate line is harmless)."""
    known, _ = read_checkpoints()
    database = _database()
    lines = []
    for tenant_id, slug, seq, head_hash in _heads():
        last = known.get(tenant_id)
        if last is not None and last.seq == seq and last.hash == head_hash:
            continue
        payload = {
            "db": database,
            "tenant_id": tenant_id,
            "tenant": slug,
            "seq": seq,
            "hash": head_hash,
            "at": timezone.now().isoformat(),
        }
        record = {**payload, "sig": sign(payload)}
        lines.append(json.dumps(record, sort_keys=True))
        log.info("audit.checkpoint %s", json.dumps(record, sort_keys=True))
    if lines:
        path = Path(settings.AUDIT_WITNESS_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return len(lines)


def check_head(tenant_id: int, last_seq: int) -> tuple[str, str] | None:
    """(kind, detail) when the chain disagrees with its latest checkpoint, else None."""
    latest, _ = read_checkpoints()
    cp = latest.get(tenant_id)
    if cp is None:
        return None
    if last_seq < cp.seq:
        return (
            "truncated",
            f"the chain ends at #{last_seq}, but a signed checkpoint of {cp.at} saw it reach "
            f"#{cp.seq} (events deleted from the end)",
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT hash FROM agentops_auditevent WHERE tenant_id = %s AND seq = %s",
            [tenant_id, cp.seq],
        )
        row = cursor.fetchone()
    if row is None or row[0] != cp.hash:
        return (
            "rewritten",
            f"event #{cp.seq} does not have the hash a signed checkpoint of {cp.at} saw",
        )
    return None
