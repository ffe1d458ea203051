"""Real Celery worker processes for the tests that are about delivery (and /healthz).

``celery_worker`` starts ``celery -A agentops worker --pool=solo`` against the pytest-django
test database and the tests' Redis db, waits until it answers a ping, and always stops it again
(SIGTERM, then SIGKILL of its whole process group). It needs ``transactional_db``: rows a test
writes must be committed for the worker's own connection to see them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# DATABASES OPTIONS that Django or psycopg take and libpq does not (agentops.settings).
NOT_LIBPQ_OPTIONS = frozenset(
    {
        "server_side_binding",
        "prepare_threshold",
        "prepared_max",
        "isolation_level",
        "assume_role",
        "pool",
        "cursor_factory",
        "context",
    }
)


def worker_database_url() -> str:
    """DATABASE_URL for the database pytest-django created (the worker must use the same)."""
    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    query = {"host": s["HOST"]} if s.get("HOST") else {}
    if s.get("PORT"):
        query["port"] = str(s["PORT"])
    for key, value in (s.get("OPTIONS") or {}).items():
        # Django's and psycopg's own options are not libpq's (libpq refuses a URL with one);
        # the worker's settings derive them again from the environment.
        if key not in NOT_LIBPQ_OPTIONS and isinstance(value, str | int):
            query[key] = str(value)
    # quote_via=quote: libpq reads "+" literally, so a space (``options=-c role=…``) is %20.
    return f"postgresql://{auth}@/{quote(s['NAME'], safe='')}?{urlencode(query, quote_via=quote)}"


class CeleryWorker:
    def __init__(self, log_path: Path, extra_env: dict[str, str] | None = None):
        self.extra_env = extra_env or {}
        self.nodename = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": worker_database_url(),
            # The broker db this test process uses (tests/settings.py defaults it to 1).
            "REDIS_DB": os.environ.get("REDIS_DB", "1"),
            "PYTHONUNBUFFERED": "1",
            "AGENTOPS_TEST_EAGER": "0",  # the worker's own follow-up tasks go through the broker
            **self.extra_env,
        }
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "agentops",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-l",
            "warning",
            "-n",
            self.nodename,
            # Start fast: no waiting for other nodes' replies, no events nobody listens to.
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
        # If this pytest process dies hard, the kernel sends the worker SIGKILL.
        if shutil.which("setpriv"):
            command = ["setpriv", "--pdeathsig", "KILL", "--", *command]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() can signal all of it
            )

    def log(self, tail: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no worker log)"
        return "\n".join(lines[-tail:]) or "(the worker logged nothing)"

    def wait_ready(self, app, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"The Celery worker exited with {self.process.returncode} before it "
                    f"answered a ping. Its log:\n{self.log()}"
                )
            if app.control.ping(destination=[self.nodename], timeout=0.5):
                return
        raise RuntimeError(
            f"The Celery worker did not answer a ping within {timeout:.0f}s. Its log:\n{self.log()}"
        )

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)  # the group id is the worker's pid (new session)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        if process.poll() is None:  # pragma: no cover - a process SIGKILL did not stop
            raise RuntimeError(f"Could not stop the Celery worker (pid {process.pid}).")


def start_worker(
    log_path: Path, extra_env: dict[str, str] | None = None, *, wait: bool = True
) -> CeleryWorker:
    """Start a worker; with ``wait`` (the default) return once it answers a ping."""
    from agentops.celery import app

    worker = CeleryWorker(log_path, extra_env)
    worker.start()
    if not wait:
        return worker
    try:
        worker.wait_ready(app)
    except RuntimeError as exc:
        worker.stop()
        pytest.fail(str(exc), pytrace=False)
    return worker


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """A running Celery worker on the test database and broker; stopped after the test."""
    from agentops.celery import app

    app.control.purge()  # stale tasks of earlier runs must not run against this test
    worker = None
    try:
        worker = start_worker(tmp_path / "celery-worker.log")
        yield worker
    finally:
        if worker is not None:
            worker.stop()


@pytest.fixture
def worker_factory(transactional_db, tmp_path):
    """Start (and always stop) workers with extra environment, e.g. fault injection."""
    from agentops.celery import app

    app.control.purge()
    workers: list[CeleryWorker] = []

    def start(name: str = "worker", *, wait: bool = True, **extra_env: str) -> CeleryWorker:
        worker = start_worker(tmp_path / f"{name}-{len(workers)}.log", extra_env, wait=wait)
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()
