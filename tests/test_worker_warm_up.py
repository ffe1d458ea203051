"""A worker loads the offline triage model and the URL patterns when it starts
(agentops.celery.warm_up, on Celery's worker_init), not in its first ticket's step."""

from __future__ import annotations

import logging

from django.urls import clear_url_caches, get_resolver

from agentops.celery import on_worker_init, warm_up
from incidents.nlu import model


def test_warm_up_loads_the_triage_model_and_the_url_patterns():
    model.get_model.cache_clear()
    clear_url_caches()
    assert not get_resolver()._populated
    assert model.get_model.cache_info().currsize == 0
    warm_up()
    assert model.get_model.cache_info().currsize == 1
    assert get_resolver()._populated


WARM_PROBE = """
import json, sys
import django
django.setup()
from django.core.validators import EmailValidator
from django.utils.functional import empty
from agentops.celery import WARM_MODULES, warm_up
from agents.connectors.base import CONNECTOR_BACKENDS
modules = sorted({*WARM_MODULES, *(p.rsplit(".", 1)[0] for p in CONNECTOR_BACKENDS.values())})
before = [m for m in modules if m in sys.modules], EmailValidator.domain_regex._wrapped is not empty
warm_up()
after = [m for m in modules if m in sys.modules], EmailValidator.domain_regex._wrapped is not empty
print(json.dumps({"modules": modules, "before": before, "after": after}))
"""


def test_warm_up_loads_what_steps_import_and_compile_on_first_use():
    """In a fresh process, as a worker starts: the modules a step imports inside functions,
    the connector backends and Django's lazily compiled e-mail patterns are not loaded after
    Django's setup, and are after the warm-up (before the worker forks its pool processes)."""
    import json
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-c", WARM_PROBE],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    (loaded, compiled), modules = probe["before"], probe["modules"]
    assert set(loaded) < set(modules) and not compiled, probe  # the first ticket paid these
    assert probe["after"] == [modules, True], probe


def test_a_failed_warm_up_is_logged_and_the_worker_starts(monkeypatch, caplog):
    def broken():
        raise OSError("var/models unreadable")

    monkeypatch.setattr(model, "get_model", broken)
    with caplog.at_level(logging.WARNING, logger="agentops.celery"):
        warm_up()  # no exception: the first ticket pays the load instead
    assert "worker warm-up failed" in caplog.text


def test_the_worker_init_signal_warms_up_only_where_the_setting_says(settings, monkeypatch):
    calls = []
    monkeypatch.setattr("agentops.celery.warm_up", lambda: calls.append(1))
    settings.WORKER_WARM_UP = False
    on_worker_init()
    assert calls == []
    settings.WORKER_WARM_UP = True
    on_worker_init()
    assert calls == [1]
