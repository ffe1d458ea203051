"""`make test` in parallel: how the launcher splits the suite, and what each process owns."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agentops.devstack import _pytest_phases, _test_processes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_suite_runs_in_parallel_then_the_exclusive_tests_alone():
    parallel, alone = _pytest_phases(["-k", "queue"], 2)
    assert parallel[:6] == ["-n", "2", "--dist", "worksteal", "-m", "not exclusive"]
    assert alone == ["-m", "exclusive", "-k", "queue"]
    assert parallel[-2:] == ["-k", "queue"]


def test_own_processes_or_markers_and_one_core_run_as_given():
    for args in (["-n", "0"], ["-n3"], ["--numprocesses=2"], ["-m", "worker"], ["-mbrowser"]):
        assert _pytest_phases(args, 2) == [args]
    assert _pytest_phases(["tests/x.py"], 1) == [["tests/x.py"]]
    # "-p no:cacheprovider" and long options are not mistaken for -n or -m
    assert len(_pytest_phases(["-p", "no:cacheprovider", "--maxfail=1"], 2)) == 2


def test_processes_default_to_the_cores_capped_and_can_be_set(monkeypatch):
    monkeypatch.delenv("AGENTOPS_TEST_PROCESSES", raising=False)
    assert _test_processes() == min(os.cpu_count() or 1, 4)
    monkeypatch.setenv("AGENTOPS_TEST_PROCESSES", "1")
    assert _test_processes() == 1


def _settings_env(extra: dict[str, str]) -> dict[str, str]:
    """What tests.settings leaves in os.environ when imported with ``extra`` inherited."""
    code = (
        "import json, os, tests.settings as s; "
        "print(json.dumps({k: os.environ.get(k) for k in "
        "('REDIS_DB', 'AGENTOPS_TEST_QUEUE', 'AGENTOPS_TEST_WITNESS', "
        "'PROMETHEUS_MULTIPROC_DIR', 'AGENTOPS_TEST_XDIST')}))"
    )
    # Not this process's own marks: under `pytest -n` it is a parallel worker itself.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_XDIST", "AGENTOPS_TEST_XDIST"))
    }
    env.update(extra)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_each_parallel_process_takes_its_own_queue_redis_db_and_files():
    controller = {
        "REDIS_DB": "1",
        "AGENTOPS_TEST_QUEUE": "test-111",
        "AGENTOPS_TEST_WITNESS": "/tmp/agentops-witness-111.jsonl",
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/agentops-prometheus-111",
    }
    gw0 = _settings_env({**controller, "PYTEST_XDIST_WORKER": "gw0"})
    gw1 = _settings_env({**controller, "PYTEST_XDIST_WORKER": "gw1"})
    assert (gw0["REDIS_DB"], gw1["REDIS_DB"]) == ("2", "3")
    for key in ("AGENTOPS_TEST_QUEUE", "AGENTOPS_TEST_WITNESS", "PROMETHEUS_MULTIPROC_DIR"):
        assert len({controller[key], gw0[key], gw1[key]}) == 3, key
    # A Celery worker started by gw1 inherits gw1's environment and keeps it.
    child = _settings_env({**gw1, "PYTEST_XDIST_WORKER": "gw1"})
    assert child == gw1
