"""The service-desk pipeline end to end: 500 tickets, the offline model, real Celery workers.

Every scenario gets a tenant of its own (AgentConfig: auto_resolve_on_create, offline model),
a seeded sandbox (directory accounts and devices for 40 requesters) and 500 realistic tickets
(``incidents.testdata.fake_ticket``), two thirds of them the kinds the agent can fix, opened by
the signed-in requester in the portal: locked account, password reset, MFA, VPN, software
install, Wi-Fi/adapter. The rest are the generator's natural mix (incidents, hardware, e-mail,
access requests …) arriving by e-mail, API, console or monitoring. ``ticket_create`` starts
the agent; every step is one task through Redis to a real worker process. The bench waits
until every run has finished (or parked for an approval), then prints and writes to
var/bench/pipeline.json:

- tickets/s: settled runs / wall time from the first enqueue to the last finish
- p50/p95 latency per ticket: run.ended_at - run.created_at (parked runs: when they parked)
- outcome mix, steps per run, and SQL queries per step (counted inside the worker by
  ``tests.bench.querylog``; one JSON line per task in var/bench/pipeline-queries-*.jsonl)

Scenarios (BENCH_PIPELINE_SCENARIOS, comma-separated; default all):

- ``solo-burst``       ONE worker process (``--pool=solo``), all tickets opened at once, ten per
                       transaction: the capacity (tickets/s). Latency here is queueing: FIFO
                       with 500 runs ahead means every run ends near the end.
- ``solo-paced20``     ONE worker, tickets arriving at 20/s: the latency a ticket sees at
                       that load (if the worker is slower, the queue grows).
- ``solo-paced5``      ONE worker at 5 tickets/s, below its capacity: the latency of a ticket
                       that does not queue behind others.
- ``prefork2-burst`` / ``prefork2-paced20`` / ``prefork2-paced30``  the production setting
                       of ``make run``: one worker with the prefork pool and concurrency 2.

The goal (issue 10, a 2-core machine): the worker ``make run`` starts (prefork, two pool
processes) handles at least 40 tickets/s (its burst) with p95 under 1 s while tickets arrive
at 30/s (``prefork2-paced30``); the headline line and var/bench/pipeline.json judge it, and
give the solo worker's figures and the p95 at 20/s beside it. Nothing
here asserts a time; the asserts are about correctness: every run settled, none failed,
every resolved ticket's tool calls verified, no tool call applied twice. The CPU line says
where the machine's time went (the worker, PostgreSQL, this process, everything else: other
jobs on the machine make the numbers worse, and "machine busy" shows how much). PostgreSQL
there is the bench's own server (the embedded one's postmaster and its children), not another
checkout's. ``AGENTOPS_BENCH_PG_STATEMENTS=1`` adds PostgreSQL's own account: statements,
functions, HOT updates, WAL, and its CPU split between the worker's connection and this
process's (tests/bench/pgstats.py). The ceiling line divides the cores by the CPU a ticket
cost (the worker with the learning its run queued, PostgreSQL, opening it): the rate this
machine could sustain at that cost with every core busy and nothing else running, whatever
the scheduling. (A burst's tickets/s may read above it: it stops at the last run's end, while
the learning it queued still drains.) 40 tickets/s on 2 cores needs a ticket in 50 ms of CPU,
all of it included.

    make bench PYTEST_ARGS="-k pipeline"
    BENCH_PIPELINE_TICKETS=100 BENCH_PIPELINE_SCENARIOS=solo-burst make bench PYTEST_ARGS="-k pipeline"
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from agentops.celery import app as celery_app
from tests import celery_worker as worker_module
from tests.bench import pgstats

pytestmark = pytest.mark.worker

N = int(os.environ.get("BENCH_PIPELINE_TICKETS", "500"))
SCENARIOS = (
    "solo-burst",
    "solo-paced20",
    "solo-paced5",
    "prefork2-burst",
    "prefork2-paced20",
    "prefork2-paced30",
)
SELECTED = [
    s.strip() for s in os.environ.get("BENCH_PIPELINE_SCENARIOS", ",".join(SCENARIOS)).split(",")
]
PEOPLE = 40
RESOLVABLE_SHARE = 2 / 3
# Tickets per transaction in the burst scenarios. A transaction that opens tickets holds the
# tenant's audit-chain lock from its first ticket to its commit: with 100 per transaction the
# workers, done with the first batch's first states, waited ~1.3 s for the second batch's
# commit to append their own events (pg_stat_statements: 2.3 s of pg_advisory_xact_lock per
# 200 tickets). Tickets arrive one request at a time in production; 10 keeps the burst fast
# to open without measuring that wait.
BATCH = int(os.environ.get("BENCH_PIPELINE_BATCH", "10"))
TIMEOUT = float(os.environ.get("BENCH_PIPELINE_TIMEOUT", "900"))
QUEUE = "bench-pipeline"
GOAL_RATE = 40.0  # tickets/s, the burst of the worker `make run` starts (issue 10)
GOAL_P95_S = 1.0  # seconds, while tickets arrive at GOAL_ARRIVAL a second
GOAL_ARRIVAL = 30
OUT_DIR = Path(settings.BASE_DIR) / "var" / "bench"
OUT = OUT_DIR / "pipeline.json"
# Software the tenant lets the agent install without approval: the default list plus most of
# the catalogue; Tableau, Salesforce and SAP GUI still wait for a reviewer.
AUTHORIZED_SOFTWARE = [
    "Zoom",
    "Slack",
    "Microsoft Teams",
    "Google Chrome",
    "Visual Studio Code",
    "Power BI Desktop",
    "Adobe Acrobat",
    "Adobe Acrobat Reader",
    "Jira",
    "Confluence",
    "Workday",
    "Figma",
]
# fake_ticket titles of the problems the agent can fix for a signed-in requester.
RESOLVABLE_KINDS = {
    "locked account": "Account locked out",
    "password reset": "Password reset needed",
    "mfa": "Set up MFA",
    "vpn": "Cannot connect to VPN",
    "software install": "Install ",
    "wifi/adapter": "Wi-Fi keeps dropping",
}

_results: dict[str, dict] = {}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def transactional_db(django_db_setup, django_db_blocker):
    """The bench database is autocommit already (tests/bench/conftest.py), and a flush after
    the test would wipe the 100k-ticket data set of the queue bench: no flush. Each scenario
    writes to a tenant of its own; the bench database goes away with the session."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def bench_delivery():
    """Real delivery through Redis, on the bench's own queue (a test run beside it keeps its
    tasks, and its workers never take the bench's)."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_default_queue)
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = QUEUE
    try:
        yield
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = previous


class PreforkWorker(worker_module.CeleryWorker):
    """``CeleryWorker`` with the prefork pool (``make run`` runs ``--concurrency 2``)."""

    def __init__(self, log_path: Path, extra_env: dict[str, str], concurrency: int = 2):
        super().__init__(log_path, extra_env)
        self.concurrency = concurrency

    def start(self) -> None:
        popen = subprocess.Popen

        def prefork_popen(command, *args, **kwargs):
            command = [
                "--pool=prefork"
                if part == "--pool=solo"
                else f"--concurrency={self.concurrency}"
                if part == "--concurrency=1"
                else part
                for part in command
            ]
            return popen(command, *args, **kwargs)

        with mock.patch.object(worker_module.subprocess, "Popen", prefork_popen):
            super().start()


@pytest.fixture
def start_bench_worker(bench_delivery, worker_factory, tmp_path):
    """``start(pool, query_log)``: one worker on the bench settings; stopped after the test."""
    own: list[PreforkWorker] = []

    def start(pool: str, query_log: Path):
        env = {
            "DJANGO_SETTINGS_MODULE": "tests.bench.worker_settings",
            "AGENTOPS_BENCH_QUEUE": QUEUE,
            "AGENTOPS_BENCH_QUERY_LOG": str(query_log),
            # (libpq's application_name: PostgreSQL's CPU split by client, tests.bench.pgstats)
            "PGAPPNAME": f"bench-worker-{pool}",
        }
        if pool == "solo":
            return worker_factory("bench-solo", **env)
        worker = PreforkWorker(tmp_path / f"bench-{pool}.log", env)
        own.append(worker)
        worker.start()
        try:
            worker.wait_ready(celery_app)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        return worker

    try:
        yield start
    finally:
        for worker in own:
            worker.stop()


# --------------------------------------------------------------------------- data


def _make_tenant(scenario: str):
    from django.contrib.auth import get_user_model

    from agentops.models import Role, Tenant
    from agentops.services import membership_set
    from agents.connectors.sandbox.seed import seed_sandbox
    from agents.engine import agent_config
    from incidents.testdata import FIRST, LAST

    slug = f"pipe-{scenario}-{int(time.time())}"
    tenant = Tenant.objects.create(name=f"Pipeline {scenario}", slug=slug, tier="enterprise")
    config = agent_config(tenant)
    config.auto_resolve_on_create = True
    config.llm_backend = "offline"
    config.authorized_software = AUTHORIZED_SOFTWARE
    config.save()

    users = get_user_model().objects
    rng = random.Random(7)
    people, seen = [], set()
    while len(people) < PEOPLE:
        first, last = rng.choice(FIRST), rng.choice(LAST).replace("ü", "ue")
        if (first, last) in seen:
            continue
        seen.add((first, last))
        user = users.create_user(
            username=f"{slug}-{first}.{last}",
            email=f"{first}.{last}@{slug}.example",
            password="pw",
            first_name=first.title(),
            last_name=last.title(),
        )
        membership_set(tenant=tenant, user=user, role=Role.REQUESTER)
        people.append(user)
    staff = users.create_user(username=f"{slug}-desk", email=f"desk@{slug}.example", password="pw")
    membership_set(tenant=tenant, user=staff, role=Role.AGENT)
    seed_sandbox(tenant, [(u.email, u.get_full_name()) for u in people])
    return tenant, people, staff


def _kind_of(data: dict) -> str:
    for kind, prefix in RESOLVABLE_KINDS.items():
        if data["title"].startswith(prefix):
            return kind
    return "other"


def _tickets(tenant, people, staff, n: int, seed: int = 1) -> list[tuple[str, dict]]:
    """(kind, ticket_create kwargs): two thirds resolvable kinds opened by the signed-in
    requester in the portal, the rest fake_ticket's natural mix from other channels."""
    from incidents.testdata import fake_ticket

    rng = random.Random(seed)
    domain = f"{tenant.slug}.example"
    unknown_domain = f"contractors.{domain}"
    out = []
    for _ in range(n):
        data = fake_ticket(rng, domain)
        if rng.random() < RESOLVABLE_SHARE:
            while _kind_of(data) == "other":
                data = fake_ticket(rng, domain)
            person = rng.choice(people)
            data.pop("requester_email")
            data.update(requester=person, actor=person, source="portal")
        else:
            if rng.random() < 0.75:
                data["requester_email"] = rng.choice(people).email
            else:  # someone the directory does not know
                data["requester_email"] = data["requester_email"].replace(domain, unknown_domain)
            data["actor"] = staff if data["source"] == "console" else None
            out.append((f"mix: {_kind_of(data)}", data))
            continue
        out.append((_kind_of(data), data))
    return out


def _create(tenant, data: dict, kind: str = ""):
    from incidents.services import ticket_create

    _make_it_true(tenant, data, kind)
    return ticket_create(tenant=tenant, **data)


def _make_it_true(tenant, data: dict, kind: str) -> None:
    """Put the requester's sandbox in the state their ticket reports (the account is locked,
    the VPN profile is old, the adapter flaps), as it is when a person writes in: the agent
    checks the premise before it acts, so a ticket about a fault that is not there is, rightly,
    not resolved. The same person's second ticket in a burst may still find it fixed."""
    from agents.connectors.sandbox.models import (
        LATEST_VPN_PROFILE_VERSION,
        AdapterState,
        Device,
        DirectoryUser,
    )

    person = data.get("requester")
    if person is None or kind not in RESOLVABLE_KINDS:
        return
    users = DirectoryUser.objects.for_tenant(tenant).filter(email=person.email)
    devices = Device.objects.for_tenant(tenant).filter(owner_email=person.email)
    if kind == "locked account":
        users.update(locked=True, failed_login_attempts=5)
    elif kind == "mfa":
        users.update(mfa_enabled=False)
    elif kind == "vpn":
        devices.update(vpn_profile_version=LATEST_VPN_PROFILE_VERSION - 2)
    elif kind == "wifi/adapter":
        devices.update(adapter_state=AdapterState.FLAPPING)


# --------------------------------------------------------------------------- measuring


def _purge_bench_queue() -> None:
    """Tasks an earlier, interrupted bench left on the bench's queue name runs of another
    database (ids start at 1 in each): a fresh worker took them first, and their lines were
    counted as this scenario's runs. Its knowledge queue too (``worker_settings``): a run's
    learning tasks for tickets of a dropped database each cost the worker a task's CPU."""
    with celery_app.connection_for_write() as conn:
        for queue in (QUEUE, f"{QUEUE}-knowledge"):
            dropped = conn.default_channel.queue_purge(queue)
            if dropped:
                print(f"\n   (dropped {dropped} tasks an earlier bench left on {queue})")


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * pct // 100))  # nearest rank
    return ordered[int(rank) - 1]


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _postmaster_pid() -> int | None:
    """The embedded PostgreSQL server's postmaster (the bench's database); None with
    DATABASE_URL (then every postgres process on the machine counts)."""
    from agentops import localservices

    if not localservices.uses_local_postgres():
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((localservices.PG_DATA / "postmaster.pid").read_text().split()[0])
    return None


def _parent_pid(pid: int) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return 0


def _cpu_snapshot(worker_pid: int) -> dict:
    """CPU seconds so far: the whole machine (busy/total), the worker and its pool children,
    each process of the bench's PostgreSQL server (by pid: the postmaster and its children;
    another server on the machine, e.g. a test run's in another checkout, is not ours), and
    this test process (ticket creation, polling)."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = cpu[3] + cpu[4]
    postmaster = _postmaster_pid()
    postgres = {}
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            pid = int(proc.name)
            if postmaster is None or postmaster in (pid, _parent_pid(pid)):
                postgres[pid] = _proc_cpu(pid)
    worker = [worker_pid, *_children(worker_pid)]
    return {
        "machine_busy": (sum(cpu) - idle) / ticks,
        "machine_total": sum(cpu) / ticks,
        "worker": sum(_proc_cpu(pid) for pid in worker),
        "postgres": postgres,
        "test_process": _proc_cpu(os.getpid()),
    }


def _cpu_per_ticket(before: dict, after: dict, n: int) -> dict:
    """Per ticket, in ms. PostgreSQL: the growth of every backend alive at the end (one that
    exited meanwhile is lost; one started meanwhile counts in full)."""
    delta = {k: after[k] - before[k] for k in before if k != "postgres"}
    delta["postgres"] = sum(
        cpu - before["postgres"].get(pid, 0.0) for pid, cpu in after["postgres"].items()
    )
    ours = delta["worker"] + delta["postgres"] + delta["test_process"]
    return {
        "machine_busy_fraction": round(
            delta["machine_busy"] / max(delta["machine_total"], 1e-9), 3
        ),
        "machine_ms_per_ticket": round(delta["machine_busy"] / n * 1000, 1),
        "worker_ms_per_ticket": round(delta["worker"] / n * 1000, 1),
        "postgres_ms_per_ticket": round(delta["postgres"] / n * 1000, 1),
        "test_process_ms_per_ticket": round(delta["test_process"] / n * 1000, 1),
        "other_ms_per_ticket": round((delta["machine_busy"] - ours) / n * 1000, 1),
        "ours_ms_per_ticket": round(ours / n * 1000, 1),
        # What this machine could do at this cost, every core busy with nothing else:
        # cores / CPU seconds per ticket (the worker, PostgreSQL and opening the tickets).
        "ceiling_tickets_per_s": round((os.cpu_count() or 1) * n / max(ours, 1e-9), 1),
    }


def _wait_settled(tenant, n: int, worker) -> float:
    from agents.models import Run, RunStatus

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        counts = dict(
            Run.objects.for_tenant(tenant)
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        busy = counts.get(RunStatus.QUEUED, 0) + counts.get(RunStatus.RUNNING, 0)
        if sum(counts.values()) >= n and not busy:
            return time.time()
        time.sleep(0.25)
    pytest.fail(
        f"runs not settled after {TIMEOUT:.0f}s: {counts}\nworker log:\n{worker.log()}",
        pytrace=False,
    )


def _wait_drained(worker) -> float:
    """After the runs settled: wait until the worker has also done the work they queued
    (learning from each resolution, indexing it: the knowledge queue), so its CPU counts in
    the ticket's. Tasks waiting on a countdown (the debounced retrain) are not waited for.
    Returns when it was done (epoch seconds)."""
    queues = (QUEUE, f"{QUEUE}-knowledge")
    inspect = celery_app.control.inspect(destination=[worker.nodename], timeout=1.0)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with celery_app.connection_for_write() as conn:
            client = conn.default_channel.client
            waiting = sum(client.llen(queue) for queue in queues)
        if not waiting:
            busy = [
                task
                for answer in (inspect.active() or {}, inspect.reserved() or {})
                for tasks in answer.values()
                for task in tasks
            ]
            if not busy:
                return time.time()
        time.sleep(0.5)
    pytest.fail(f"the worker's queued work not done after {TIMEOUT:.0f}s", pytrace=False)


def _settled_at(run: dict) -> datetime:
    return run["ended_at"] or run["updated_at"]  # parked runs: when they parked


def _read_query_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stats(values: list[float], digits: int = 1) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), digits),
        "p50": round(_percentile(values, 50), digits),
        "p95": round(_percentile(values, 95), digits),
        "max": round(max(values), digits),
    }


def _measure(tenant, kinds: dict[str, str], t0: float, arrivals: float, query_log: Path) -> dict:
    from agents.models import Run, Step

    runs = list(
        Run.objects.for_tenant(tenant).values(
            "pk",
            "status",
            "subject_id",
            "created_at",
            "ended_at",
            "updated_at",
            "step_count",
            "deliveries",
            "error_message",
        )
    )
    first_created = min(r["created_at"] for r in runs).timestamp()
    last_settled = max(_settled_at(r) for r in runs).timestamp()
    wall = last_settled - t0
    latencies = [(_settled_at(r) - r["created_at"]).total_seconds() for r in runs]
    finished_latencies = [
        (r["ended_at"] - r["created_at"]).total_seconds() for r in runs if r["ended_at"]
    ]
    outcomes = Counter(r["status"] for r in runs)
    by_kind: dict[str, Counter] = defaultdict(Counter)
    reasons: dict[str, Counter] = defaultdict(Counter)
    for r in runs:
        kind = kinds[r["subject_id"]]
        by_kind[kind][r["status"]] += 1
        if r["status"] == "escalated":
            reasons[kind][r["error_message"].split(":")[0][:90]] += 1

    # SQL per step: the worker's task lines, matched in order to the run's steps.
    states = {
        (row["run_id"], row["seq"]): row["state"]
        for row in Step.objects.for_tenant(tenant).values("run_id", "seq", "state")
    }
    lines = _read_query_log(query_log)
    per_run: dict[int, list[dict]] = defaultdict(list)
    for line in sorted(lines, key=lambda x: x["at"]):
        if line["task"] == "agents.tasks.advance_run":
            per_run[line["run_id"]].append(line)
    step_queries: list[int] = []
    by_state: dict[str, list[int]] = defaultdict(list)
    by_state_ms: dict[str, list[float]] = defaultdict(list)
    tables: Counter = Counter()
    run_queries, run_worker_ms = [], []
    # The service-desk run the SQL goal is about: triage → diagnose → plan →
    # compliance → resolve, straight through (one task per state, no approval wait, no retry).
    straight_queries: list[int] = []
    straight = ["triage", "diagnose", "plan", "compliance", "resolve"]
    unclaimed = 0
    for run_id, tasks in per_run.items():
        seq = 0
        total_q, total_ms = 0, 0.0
        for task in tasks:
            total_ms += task["wall_ms"]
            if task["result"] == "not-claimed":
                unclaimed += 1
                continue
            seq += 1
            state = states.get((run_id, seq), "?")
            step_queries.append(task["queries"])
            by_state[state].append(task["queries"])
            by_state_ms[state].append(task["wall_ms"])
            tables.update(task["by_table"])
            total_q += task["queries"]
        run_queries.append(total_q)
        run_worker_ms.append(total_ms)
        if [states.get((run_id, n)) for n in range(1, seq + 1)] == straight and seq == len(tasks):
            straight_queries.append(total_q)
    steps_total = sum(r["step_count"] for r in runs)
    return {
        "tickets": len(runs),
        "first_enqueue_to_last_finish_s": round(wall, 2),
        "creation_s": round(arrivals - t0, 2),
        "tickets_per_s": round(len(runs) / wall, 2),
        "latency_s": _stats(latencies, 3),
        "latency_finished_only_s": _stats(finished_latencies, 3),
        "outcomes": dict(outcomes),
        "outcomes_by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "escalation_reasons_by_kind": {k: dict(v) for k, v in sorted(reasons.items())},
        "steps_per_run": {
            **_stats([r["step_count"] for r in runs], 2),
            "histogram": dict(sorted(Counter(r["step_count"] for r in runs).items())),
            "total": steps_total,
        },
        # Worker tasks that claimed each run (a task chains the run's states).
        "deliveries_per_run": _stats([r["deliveries"] for r in runs], 2),
        "sql_per_step": {
            **_stats(step_queries, 1),
            "by_state": {s: _stats(v, 1) for s, v in sorted(by_state.items())},
        },
        "sql_per_run": _stats(run_queries, 1),
        "sql_per_straight_service_desk_run": _stats(straight_queries, 1),
        "worker_ms_per_step_by_state": {s: _stats(v, 1) for s, v in sorted(by_state_ms.items())},
        "worker_ms_per_run": _stats(run_worker_ms, 1),
        "top_statements": dict(tables.most_common(25)),
        "tasks_logged": len(lines),
        # Other tasks the worker ran meanwhile (after-resolution learning, indexing): count
        # and worker CPU ms, so their share of the worker's time shows.
        "tasks_other": {
            name: {
                "n": sum(1 for x in lines if x["task"] == name),
                "cpu_ms": round(sum(x.get("cpu_ms", 0) for x in lines if x["task"] == name)),
            }
            for name in sorted({x["task"] for x in lines} - {"agents.tasks.advance_run"})
        },
        "tasks_eager": sum(1 for line in lines if line["eager"]),
        "tasks_not_claimed": unclaimed,
        "first_created_offset_s": round(first_created - t0, 3),
    }


# --------------------------------------------------------------------------- correctness


def _check(tenant, n: int, query_log: Path) -> None:
    from agents.connectors.sandbox.models import Operation
    from agents.models import FINISHED_RUN_STATUSES, Run, RunStatus, ToolCall
    from agents.tools import registry
    from incidents.models import Status, Ticket

    runs = list(Run.objects.for_tenant(tenant))
    assert len(runs) == n, f"{len(runs)} runs for {n} tickets"
    assert len({r.subject_id for r in runs}) == n, "a ticket got two runs"
    settled = FINISHED_RUN_STATUSES | {RunStatus.WAITING_APPROVAL}
    assert all(r.status in settled for r in runs), Counter(r.status for r in runs)
    failed = [
        (r.subject_id, r.error_type, r.error_message[:200])
        for r in runs
        if r.status in ("failed", "cancelled")
    ]
    assert not failed, failed
    # No step ran twice (no retried step), and no run was delivered more often than it has
    # steps (a worker's task chains a run's states: usually one delivery before a park or the
    # end, more when the chain budget ran out); none ran inline (every task via Redis).
    from agents.models import Step

    assert not Step.objects.for_tenant(tenant).filter(retries__gt=0).exists()
    assert [r.pk for r in runs if not 1 <= r.deliveries <= r.step_count] == []
    lines = _read_query_log(query_log)
    assert lines, "the worker's query log is empty"
    assert not [x for x in lines if x["eager"]], "a task ran eagerly inside the worker"
    # The worker also runs what a resolution starts (learning from it, indexing the past
    # ticket): only the agent's step tasks count here.
    claimed = [
        x for x in lines if x["task"] == "agents.tasks.advance_run" and x["result"] != "not-claimed"
    ]
    assert len(claimed) == sum(r.step_count for r in runs)

    tickets = dict(Ticket.objects.for_tenant(tenant).values_list("number", "status"))
    calls = defaultdict(list)
    for call in ToolCall.objects.for_tenant(tenant):
        calls[call.run_id].append(call)
    # Issue 13: a run may also end by linking its ticket to an incident (a fault others share)
    # or answering it from the knowledge base: the ticket then waits, on hold, with no tool.
    from incidents.models import AgentReply

    waiting = set(
        AgentReply.objects.for_tenant(tenant)
        .filter(kind__in=["incident", "answer"])
        .values_list("ticket__number", flat=True)
    )
    for run in runs:
        expected = {
            RunStatus.SUCCEEDED: Status.ON_HOLD if run.subject_id in waiting else Status.RESOLVED,
            RunStatus.ESCALATED: Status.ESCALATED,
            RunStatus.WAITING_APPROVAL: Status.ON_HOLD,
        }[run.status]
        assert tickets[run.subject_id] == expected, (run.subject_id, run.status)
        if run.status == RunStatus.SUCCEEDED and run.subject_id not in waiting:
            proposed = set(run.state_data.get("proposals", []))
            mine = [c for c in calls[run.pk] if c.pk in proposed]
            assert mine, f"{run.subject_id} resolved without a tool call"
            unverified = [c.tool_name for c in mine if c.status != "success" or not c.verified]
            assert not unverified, (run.subject_id, unverified)

    # Nothing applied twice: one Operation and one ToolCall per idempotency key, and every
    # successful effect (not read-only) recorded exactly once by the connector.
    twice = (
        Operation.objects.for_tenant(tenant)
        .values("idempotency_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert list(twice) == []
    twice = (
        ToolCall.objects.for_tenant(tenant)
        .exclude(idempotency_key="")
        .values("idempotency_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert list(twice) == []
    operations = set(Operation.objects.for_tenant(tenant).values_list("idempotency_key", flat=True))
    effects = {
        c.idempotency_key
        for cs in calls.values()
        for c in cs
        if c.status == "success" and not registry.get(c.tool_name).read_only
    }
    assert effects == operations, effects ^ operations


# --------------------------------------------------------------------------- the bench


def _write() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    # "One worker" two ways: one process (--pool=solo), and one worker with the prefork pool
    # and concurrency 2 (what `make run` starts on this 2-core machine). The goal is judged on
    # each; both are printed.
    headline = {}
    for label in ("solo", "prefork2"):
        if burst := _results.get(f"{label}-burst"):
            headline[f"{label}_tickets_per_s"] = burst["tickets_per_s"]
        if paced := _results.get(f"{label}-paced20"):
            headline[f"{label}_p95_s_at_20_per_s"] = paced["latency_s"]["p95"]
    goal_burst = _results.get("prefork2-burst")
    goal_paced = _results.get(f"prefork2-paced{GOAL_ARRIVAL}")
    if goal_burst:
        headline["prefork2_cpu_ms_per_ticket"] = goal_burst["cpu"]["ours_ms_per_ticket"]
        headline["prefork2_cpu_ceiling_tickets_per_s"] = goal_burst["cpu"]["ceiling_tickets_per_s"]
        headline["goal_cpu_ms_per_ticket"] = round((os.cpu_count() or 1) * 1000 / GOAL_RATE, 1)
    if goal_paced:
        headline[f"prefork2_p95_s_at_{GOAL_ARRIVAL}_per_s"] = goal_paced["latency_s"]["p95"]
    if goal_burst and goal_paced:
        headline["meets_goal"] = (
            goal_burst["tickets_per_s"] >= GOAL_RATE and goal_paced["latency_s"]["p95"] < GOAL_P95_S
        )
    if "solo-paced5" in _results:
        headline["solo_p95_s_at_5_per_s"] = _results["solo-paced5"]["latency_s"]["p95"]
    if headline:
        print(
            f"\n== pipeline goal (prefork 2: >= {GOAL_RATE:g} tickets/s, p95 < {GOAL_P95_S:g} s "
            f"at {GOAL_ARRIVAL}/s arriving): {headline}"
        )
    OUT.write_text(
        json.dumps(
            {
                "when": timezone.now().isoformat(),
                "tickets_per_scenario": N,
                "people": PEOPLE,
                "goal": {
                    "tickets_per_s_at_least": GOAL_RATE,
                    "p95_s_below": GOAL_P95_S,
                    "arriving_per_s": GOAL_ARRIVAL,
                },
                "headline": headline,
                "environment": {
                    "python": platform.python_version(),
                    "postgresql": pg_version,
                    "cpus": os.cpu_count(),
                    "loadavg": [round(x, 2) for x in os.getloadavg()],
                },
                "scenarios": _results,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )


def _machine_speed() -> float:
    """CPU seconds of a fixed pure-Python loop (best of three): this machine's speed right
    now. The same host has measured 1.7 and 3.4 s on one day, so per-ticket CPU figures are
    only comparable between runs whose loop times agree."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.process_time() - start)
    return round(best, 3)


def _print(name: str, r: dict) -> None:
    lat = r["latency_s"]
    sql = r["sql_per_step"]
    print(
        f"\n== pipeline {name}: {r['tickets']} tickets ==  (machine: 5M-add loop "
        f"{r.get('machine_loop_s', 0):.2f} s CPU)"
    )
    print(
        f"   {r['tickets_per_s']:.1f} tickets/s  ({r['first_enqueue_to_last_finish_s']:.1f} s first "
        f"enqueue → last finish; tickets opened in {r['creation_s']:.1f} s)"
    )
    print(
        f"   latency p50 {lat['p50']:.2f} s  p95 {lat['p95']:.2f} s  max {lat['max']:.2f} s"
        f"   worker time per run p50 {r['worker_ms_per_run']['p50']:.0f} ms"
    )
    cpu = r["cpu"]
    print(
        f"   CPU per ticket: worker {cpu['worker_ms_per_ticket']} ms, PostgreSQL "
        f"{cpu['postgres_ms_per_ticket']} ms, ticket creation+polling "
        f"{cpu['test_process_ms_per_ticket']} ms, everything else on the machine "
        f"{cpu['other_ms_per_ticket']} ms; machine busy {cpu['machine_busy_fraction']:.0%}"
    )
    cores = os.cpu_count() or 1
    print(
        f"   CPU ceiling: at {cpu['ours_ms_per_ticket']} ms of CPU per ticket (worker with its "
        f"learning, PostgreSQL, opening) {cores} cores sustain at most "
        f"{cpu['ceiling_tickets_per_s']} tickets/s; the goal's {GOAL_RATE:g} tickets/s allows "
        f"{cores * 1000 / GOAL_RATE:.0f} ms"
    )
    print(
        f"   outcomes {r['outcomes']}; the work they queued (learning, indexing) done "
        f"{r.get('queued_work_done_s_after_runs', 0):.1f} s after the last run (its CPU counted)"
    )
    if r["tasks_other"]:
        other = ", ".join(
            f"{name.rsplit('.', 1)[-1]} {v['n']}x ({v['cpu_ms']} ms CPU)"
            for name, v in r["tasks_other"].items()
        )
        print(f"   other tasks on the worker: {other}")
    steps = r["steps_per_run"]
    print(
        f"   steps/run mean {steps['mean']}  histogram {steps['histogram']}"
        f"  deliveries/run mean {r['deliveries_per_run']['mean']}"
    )
    print(
        f"   SQL/step mean {sql['mean']}  p50 {sql['p50']}  p95 {sql['p95']}  max {sql['max']}"
        f"   SQL/run mean {r['sql_per_run']['mean']}"
    )
    straight = r["sql_per_straight_service_desk_run"]
    print(
        f"   SQL per service-desk run triage→diagnose→plan→compliance→resolve: p50 {straight.get('p50')}"
        f"  max {straight.get('max')}  ({straight['n']} runs; goal ≤ 40)"
    )
    for state, s in sql["by_state"].items():
        ms = r["worker_ms_per_step_by_state"][state]
        print(
            f"     {state:<11} {s['n']:>5} steps  SQL mean {s['mean']:>5}  max {s['max']:>4}"
            f"   worker ms p50 {ms['p50']:>6}  p95 {ms['p95']:>6}"
        )
    for kind, mix in r["outcomes_by_kind"].items():
        print(f"     {kind:<24} {mix}")
        if not kind.startswith("mix"):
            for reason, count in r["escalation_reasons_by_kind"].get(kind, {}).items():
                print(f"         escalated {count}x: {reason}")


def _start_py_spy(pid: int, scenario: str):
    """``AGENTOPS_BENCH_PY_SPY=DIR``: sample the worker (and its pool processes) with py-spy
    while the tickets are worked, into DIR/pipeline-SCENARIO.txt (collapsed stacks, one line per
    stack with its sample count). ``--gil``: only a thread holding the GIL is sampled, so the
    counts are the worker's own CPU. Without it, waits inside psycopg's and redis's C calls
    (the GIL released, the thread not idle to py-spy) counted as CPU: a quarter of the samples,
    all on "send query" and "wait". Unlike cProfile it does not slow the worker down, so the
    shares are the real ones. Needs ``pip install py-spy``."""
    out_dir = os.environ.get("AGENTOPS_BENCH_PY_SPY")
    if not out_dir:
        return None
    out = Path(out_dir) / f"pipeline-{scenario}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    args = ["record", "-p", str(pid), "--subprocesses", "--rate", "250", "--format", "raw", "--gil"]
    spy = subprocess.Popen(
        [py_spy, *args, "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # (attached before the first ticket)
    return spy


def _stop_py_spy(spy) -> None:
    if spy is None:
        return
    import signal

    spy.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        spy.wait(timeout=30)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_bench_pipeline(scenario, start_bench_worker):
    if scenario not in SELECTED:
        pytest.skip(f"not in BENCH_PIPELINE_SCENARIOS ({','.join(SELECTED)})")
    pool, mode = scenario.split("-")
    rate = float(mode.removeprefix("paced")) if mode.startswith("paced") else None
    tenant, people, staff = _make_tenant(scenario)
    tickets = _tickets(tenant, people, staff, N)
    with connection.cursor() as cursor:
        # Statistics, as autovacuum keeps them on a live database: a fresh bench database has
        # none, and the planner then read a tenant's every ticket through a category index to
        # update one row by id (helper "pg", session 20).
        cursor.execute("ANALYZE")
    query_log = OUT_DIR / f"pipeline-queries-{scenario}.jsonl"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    query_log.unlink(missing_ok=True)
    _purge_bench_queue()
    worker = start_bench_worker(pool, query_log)

    kinds: dict[str, str] = {}
    t0 = None
    pg_before = pgstats.start()  # (before the CPU snapshot: its own queries do not count)
    cpu_before = _cpu_snapshot(worker.process.pid)
    spy = _start_py_spy(worker.process.pid, scenario)
    if mode == "burst":
        for start in range(0, len(tickets), BATCH):
            with transaction.atomic():
                for kind, data in tickets[start : start + BATCH]:
                    kinds[_create(tenant, data, kind).number] = kind
                if t0 is None:
                    t0 = time.time()  # the first batch's tasks go out as it commits
    else:
        t0 = time.time()
        for i, (kind, data) in enumerate(tickets):
            delay = t0 + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            kinds[_create(tenant, data, kind).number] = kind
    arrivals = time.time()
    settled = _wait_settled(tenant, len(tickets), worker)
    drained = _wait_drained(worker)  # its learning too: CPU per ticket counts all of it
    cpu_after = _cpu_snapshot(worker.process.pid)
    _stop_py_spy(spy)
    result = _measure(tenant, kinds, t0, arrivals, query_log)
    result["cpu"] = _cpu_per_ticket(cpu_before, cpu_after, len(tickets))
    result["queued_work_done_s_after_runs"] = round(drained - settled, 1)
    result["machine_loop_s"] = _machine_speed()
    result["pool"] = "solo (1 process)" if pool == "solo" else "prefork, concurrency 2"
    result["mode"] = mode if rate is None else f"paced {rate:g}/s"
    result["kinds"] = dict(Counter(kinds.values()))
    _results[scenario] = result
    _print(scenario, result)
    pg = pgstats.report(pg_before, scenario, len(tickets), OUT_DIR, cpu=(cpu_before, cpu_after))
    if pg is not None:
        result["postgres"] = {k: v for k, v in pg.items() if k != "statements"}
    _write()
    print(f"   written: {OUT}")

    _check(tenant, len(tickets), query_log)
