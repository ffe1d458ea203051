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
