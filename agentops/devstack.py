"""The developer launcher behind `make run` and `make test`.

    python -m agentops.devstack run     services, migrate, demo data, worker, beat, gunicorn
    python -m agentops.devstack test    services, lint, the whole test suite
    python -m agentops.devstack bench   services, the benchmarks in tests/bench

Embedded PostgreSQL / Redis are started only when DATABASE_URL / REDIS_URL are unset, and
whatever this launcher started it stops again on exit (Ctrl-C included). Data stays in var/.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from agentops import localservices
from agentops.env import env_bool, env_int

PY = sys.executable
ROOT = str(localservices.BASE_DIR)


def _say(text: str) -> None:
    print(f"\033[1;34m==>\033[0m {text}", flush=True)


def _run(args: list[str], **kwargs) -> int:
    return subprocess.call(args, cwd=ROOT, **kwargs)


def _services() -> dict[str, bool]:
    try:
        started = localservices.ensure_all()
    except localservices.LocalServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    where_pg = (
        "DATABASE_URL"
        if not localservices.uses_local_postgres()
        else f"embedded, {localservices.PG_DATA}"
    )
    where_redis = (
        "REDIS_URL"
        if not localservices.uses_local_redis()
        else f"embedded, {localservices.REDIS_SOCKET}"
    )
    _say(f"PostgreSQL + pgvector: {where_pg}")
    _say(f"Redis: {where_redis}")
    return started


def _terminate_on_sigterm() -> None:
    """SIGTERM (a process manager, `kill`) stops everything like Ctrl-C does."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run() -> int:
    _terminate_on_sigterm()
    port = os.environ.get("PORT", "8000")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "agentops.settings", "PYTHONUNBUFFERED": "1"}
    # A person trying the demo must never see Django's technical error pages: DEBUG is off
    # unless asked for (`DEBUG=1 make run` for development).
    env.setdefault("DEBUG", "0")
    started = _services()
    # Prometheus multiprocess files of earlier runs would be counted again: start clean.
    prom_dir = localservices.VAR_DIR / "prometheus"
    shutil.rmtree(prom_dir, ignore_errors=True)
    prom_dir.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prom_dir)
    children: list[subprocess.Popen] = []
    try:
        _say("Migrating the database")
        if _run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], env=env):
            return 1
        # The int8 embedding model, built once per machine (about 15 s), before the worker
        # indexes the demo knowledge base with it.
        if _run([PY, "manage.py", "prepare_embeddings"], env=env):
            return 1
        # The offline model's classifiers (incidents/nlu), trained in seconds when missing.
        if _run([PY, "manage.py", "train_nlu"], env=env):
            return 1
        if _run([PY, "manage.py", "seed_demo"], env=env):
            return 1
        (localservices.VAR_DIR / "celery").mkdir(parents=True, exist_ok=True)
        _say("Starting the Celery workers, Celery beat and the web server")
        celery = [PY, "-m", "celery", "-A", "agentops"]
        # Agent steps on two pool processes; knowledge work (indexing, learning from resolved
        # tickets) on a worker of its own, so a large import never queues ahead of agent steps
        # (CELERY_TASK_ROUTES in agentops/settings.py).
        # The knowledge worker runs at a lower CPU priority (nice 10): on a small machine the
        # OS gives agent steps the cores first, and indexing takes what is left.
        for hostname, queue, concurrency, niceness in (
            ("worker@%h", os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery"), "2", 0),
            ("knowledge@%h", os.environ.get("CELERY_KNOWLEDGE_QUEUE", "knowledge"), "1", 10),
        ):
            worker = [*celery, "worker", "--loglevel", "INFO", "--concurrency", concurrency]
            worker += ["--hostname", hostname, "--queues", queue]
            children.append(
                subprocess.Popen(
                    worker, cwd=ROOT, env=env, preexec_fn=(lambda n=niceness: os.nice(n))
                )
            )
        children.append(
            subprocess.Popen(
                [
                    *celery,
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(localservices.VAR_DIR / "celery" / "beat-schedule"),
                ],
                cwd=ROOT,
                env=env,
            )
        )
        children.append(subprocess.Popen(web_command(port), cwd=ROOT, env=env))
        password = os.environ.get("DEMO_PASSWORD", "agentops-demo")
        time.sleep(1.5)
        print(
            "\n"
            f"  AgentOps console:  http://127.0.0.1:{port}/\n"
            f"  Health:            http://127.0.0.1:{port}/healthz\n"
            f"  Metrics:           http://127.0.0.1:{port}/metrics\n"
            f"  Admin:             http://127.0.0.1:{port}/admin/\n"
            f"  API (OpenAPI):     http://127.0.0.1:{port}/api/v1/docs\n\n"
            f"  Demo logins (password: {password}):\n"
            "    acme:   admin (tenant admin, Django admin, also in globex), agent, reviewer,\n"
            "            requester, auditor\n"
            "    globex: globex-admin, globex-agent, globex-requester\n\n"
            "  Ctrl-C stops everything this command started.\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [
            c.args[2] if len(c.args) > 2 else c.args for c in children if c.poll() not in (None, 0)
        ]
        if failed:
            print(f"error: a process stopped unexpectedly: {failed}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        _stop_children(children)
        localservices.stop_started(started)


def web_command(port: str, *, host: str = "127.0.0.1") -> list[str]:
    """The web server of `make run`: gunicorn (a real pre-fork WSGI server; its Server header
    names no Python version), static files through whitenoise inside the app. WEB_CONCURRENCY
    worker processes (default 2) of 4 threads each; with DEBUG=1 it reloads on code changes."""
    command = [PY, "-m", "gunicorn", "agentops.wsgi:application", "--bind", f"{host}:{port}"]
    command += ["--workers", os.environ.get("WEB_CONCURRENCY", "2"), "--threads", "4"]
    command += ["--timeout", "60", "--graceful-timeout", "10", "--access-logfile", "-"]
    if env_bool("DEBUG", False):
        command.append("--reload")
    return command


def _stop_children(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def lint() -> int:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "agentops.settings"}
    steps = [
        ("ruff check", [PY, "-m", "ruff", "check", "."]),
        ("ruff format --check", [PY, "-m", "ruff", "format", "--check", "."]),
        ("manage.py check", [PY, "manage.py", "check", "--fail-level", "WARNING"]),
        ("makemigrations --check", [PY, "manage.py", "makemigrations", "--check", "--dry-run"]),
    ]
    for name, args in steps:
        _say(name)
        if _run(args, env=env):
            print(f"error: {name} failed", file=sys.stderr)
            return 1
    return 0


def _prepare_embeddings() -> int:
    """Build the int8 MiniLM model if missing (once per machine, about 15 s): the tests about
    meaning (tests/knowledge/test_semantic.py) and the benchmarks use the real model. The dev
    settings name the same model directory (var/models) as the test settings."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "agentops.settings"}
    env.pop("KNOWLEDGE_EMBEDDING_BACKEND", None)
    return _run([PY, "manage.py", "prepare_embeddings"], env=env)


def test(pytest_args: list[str]) -> int:
    started = _services()
    try:
        if lint():
            return 1
        _say("pytest")
        # Importing the agentops package (for localservices) set DJANGO_SETTINGS_MODULE to the
        # dev settings in this process; pytest must use the test settings from pyproject.toml.
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        if _prepare_embeddings():
            return 1
        # The offline model's classifiers: built once, shared by every test process.
        if _run([PY, "manage.py", "train_nlu"], env=env):
            return 1
        worst = 0
        for phase in _pytest_phases(pytest_args, _test_processes()):
            code = _run([PY, "-m", "pytest", "--durations=15", *phase], env=env)
            if code != NO_TESTS_COLLECTED:  # a phase the arguments left empty
                worst = worst or code
        return worst
    finally:
        localservices.stop_started(started)


NO_TESTS_COLLECTED = 5  # pytest's exit code


def _test_processes() -> int:
    """How many pytest processes share the suite: AGENTOPS_TEST_PROCESSES, else one per core,
    at most four (each starts Celery workers, web servers and a Chromium of its own)."""
    return env_int("AGENTOPS_TEST_PROCESSES", min(os.cpu_count() or 1, 4), minimum=1)


def _own_scheduling(pytest_args: list[str]) -> bool:
    """The arguments choose processes (-n) or markers (-m) themselves: run them as given."""
    for arg in pytest_args:
        if arg in ("-n", "-m", "--numprocesses", "--dist") or arg.startswith(
            ("--numprocesses=", "--dist=")
        ):
            return True
        if arg.startswith(("-n", "-m")) and not arg.startswith("--"):
            return True
    return False


def _pytest_phases(pytest_args: list[str], processes: int) -> list[list[str]]:
    """The suite in parallel (pytest-xdist, a test at a time to whichever process is free),
    then the tests marked ``exclusive`` alone: they restart the shared Redis, kill workers on
    timers or measure latency, which other tests running beside them would disturb."""
    if processes <= 1 or _own_scheduling(pytest_args):
        return [list(pytest_args)]
    return [
        ["-n", str(processes), "--dist", "worksteal", "-m", "not exclusive", *pytest_args],
        ["-m", "exclusive", *pytest_args],
    ]


def bench(pytest_args: list[str]) -> int:
    started = _services()
    try:
        _bench_pg_statements(os.environ.get("AGENTOPS_BENCH_PG_STATEMENTS", ""))
        if _prepare_embeddings():
            return 1
        env = {**os.environ, "AGENTOPS_BENCH": "1", "DJANGO_SETTINGS_MODULE": "tests.settings"}
        return _run([PY, "-m", "pytest", "tests/bench", "-s", *pytest_args], env=env)
    finally:
        localservices.stop_started(started)


def _bench_pg_statements(value: str) -> None:
    """``AGENTOPS_BENCH_PG_STATEMENTS=1``: the embedded PostgreSQL loads pg_stat_statements
    and counts plpgsql functions (a restart, once), for tests/bench/pgstats.py; ``=off``: back
    to the defaults (a restart); unset or 0: the server stays as it is."""
    if not value or value == "0" or not localservices.uses_local_postgres():
        return
    on = value != "off"
    if localservices.configure_postgres(localservices.PG_STATEMENTS_SETTINGS, on=on):
        _say(
            f"PostgreSQL statement statistics {'on' if on else 'off'} (server restarted if needed)"
        )


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "run"
    rest = argv[2:]
    if command == "run":
        return run()
    if command == "test":
        return test(rest)
    if command == "lint":
        started = _services()
        try:
            return lint()
        finally:
            localservices.stop_started(started)
    if command == "bench":
        return bench(rest)
    print("usage: python -m agentops.devstack [run|test|lint|bench] [pytest args]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
