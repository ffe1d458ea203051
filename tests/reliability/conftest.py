"""Shared parts of the reliability suite: tenants whose agent runs on every ticket, requesters
with locked accounts (the offline model resolves "I'm locked out" with unlock_account), a
supervisor that keeps N real Celery workers alive the way systemd or Kubernetes would, and
polling helpers that assert outcomes, never timings."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agents.connectors.sandbox.models import DirectoryUser
from agents.engine import agent_config
from agents.models import FINISHED_RUN_STATUSES, Run
from tests.agents.conftest import fake_anthropic  # noqa: F401  (shared fixture)
from tests.conftest import make_user

pytestmark = pytest.mark.worker

# A dead worker's run is handed on once its lease expires: short leases keep the suite short.
LEASE = 3


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.3, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")


def agent_on_every_ticket(tenant) -> None:
    config = agent_config(tenant)
    config.auto_resolve_on_create = True
    config.llm_backend = "offline"
    config.save()


def locked_requesters(tenant, count: int, prefix: str = "req") -> list:
    """``count`` requesters of ``tenant``, each with a locked account in the sandbox directory."""
    from agentops.models import Role

    users = []
    for i in range(count):
        user = make_user(f"{prefix}{i}-{tenant.slug}", tenant, Role.REQUESTER)
        DirectoryUser.objects.create(
            tenant=tenant, email=user.email, display_name=user.username, locked=True
        )
        users.append(user)
    return users


def open_locked_out_ticket(tenant, requester):
    from incidents.services import ticket_create

    return ticket_create(
        tenant=tenant,
        actor=requester,
        title="I'm locked out of my account",
        description="It says my account is locked after I typed an old password.",
        source="portal",
    )


def runs_of(tenant, tickets) -> list[Run]:
    numbers = [t.number for t in tickets]
    return list(Run.objects.for_tenant(tenant).filter(subject_id__in=numbers))


def unfinished(tenant_tickets: dict) -> int:
    """How many of the tickets' runs are not finished (a ticket without a run counts)."""
    left = 0
    for tenant, tickets in tenant_tickets.items():
        runs = runs_of(tenant, tickets)
        left += len(tickets) - sum(r.status in FINISHED_RUN_STATUSES for r in runs)
    return left


@dataclass
class Supervisor:
    """Keeps ``size`` workers running; ``kill_one`` SIGKILLs a random one (its whole group)."""

    start: object  # tests.celery_worker.worker_factory's start
    size: int
    env: dict = field(default_factory=dict)
    workers: list = field(default_factory=list)
    kills: int = 0
    started: int = 0
    mark_dir: Path | None = None  # AGENTOPS_FAULT_MARK_DIR of the workers, when they have one

    def fill(self, *, wait: bool = True) -> None:
        """Start workers until ``size`` are alive; ``wait=False`` does not wait for them to
        answer a ping (a chaos loop keeps its pace while a replacement boots)."""
        self.workers = [w for w in self.workers if w.process.poll() is None]
        while len(self.workers) < self.size:
            self.started += 1
            self.workers.append(self.start(f"w{self.started}", wait=wait, **self.env))

    def kill_one(self) -> None:
        alive = [w for w in self.workers if w.process.poll() is None]
        if alive:
            self.kill(random.choice(alive))

    def kill(self, victim) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=10)
        self.kills += 1
        if self.mark_dir is not None:  # a killed worker's pause marks stay behind: clear them
            for mark in self.mark_dir.glob(f"{victim.process.pid}.*"):
                mark.unlink(missing_ok=True)

    def in_fault_pause(self) -> list:
        """The live workers inside a fault point's pause right now: ``fault_point`` marks it
        with ``<pid>.<name>`` in ``mark_dir`` (given to the workers as
        ``AGENTOPS_FAULT_MARK_DIR``)."""
        pids = {int(mark.name.split(".", 1)[0]) for mark in self.mark_dir.iterdir()}
        return [w for w in self.workers if w.process.pid in pids and w.process.poll() is None]

    def logs(self) -> str:
        return "\n---\n".join(w.log(20) for w in self.workers)


def reconnect() -> None:
    """This process's pooled broker connections died with the server: drop them (a worker
    reconnects by itself)."""
    from kombu import pools

    from agentops.celery import app
    from agents.resilience import redis_client

    pools.reset()  # close every pooled connection and forget the pools
    app._after_fork()  # what Celery does in a forked child: fresh pools on next use
    redis_client().connection_pool.disconnect()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_web(log_path, **env_extra) -> tuple:
    """`make run`'s web server (gunicorn, WEB_CONCURRENCY processes of 4 threads) on the test
    database and broker, started but not yet waited for; returns (process, base URL). The
    caller waits (``wait_web``) and stops it (``stop_process``)."""
    import subprocess

    from agentops import devstack
    from tests.celery_worker import worker_database_url

    port = str(free_port())
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": worker_database_url(),
        "REDIS_DB": os.environ.get("REDIS_DB", "1"),
        "AGENTOPS_TEST_EAGER": "0",
        "DEBUG": "0",
        **env_extra,
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            devstack.web_command(port),
            cwd=devstack.ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.log_path = log_path
    return proc, f"http://127.0.0.1:{port}"


def wait_web(proc, base: str) -> None:
    """Until the web server answers /healthz (a 503 while a worker check fails is up too)."""
    import urllib.error
    import urllib.request

    def up():
        assert proc.poll() is None, Path(proc.log_path).read_text()[-2000:]
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    wait_for(up, timeout=60, interval=0.1, what="gunicorn to answer")


def start_web(log_path, **env_extra) -> tuple:
    """``spawn_web`` and ``wait_web``: a web server that answers; returns (process, base URL)."""
    proc, base = spawn_web(log_path, **env_extra)
    wait_web(proc, base)
    return proc, base


def stop_process(proc) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except Exception:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
