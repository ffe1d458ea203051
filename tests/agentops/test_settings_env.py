"""The settings helpers are loud about nonsense."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from agentops.env import env_bool, env_int, env_list, env_secret


def test_env_bool(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG") is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG")
    monkeypatch.delenv("X_FLAG")
    assert env_bool("X_FLAG", True) is True


def test_env_int(monkeypatch):
    monkeypatch.setenv("X_NUM", "42")
    assert env_int("X_NUM", 1) == 42
    monkeypatch.setenv("X_NUM", "forty")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("X_NUM", 1)
    monkeypatch.setenv("X_NUM", "-3")
    with pytest.raises(ImproperlyConfigured, match="minimum"):
        env_int("X_NUM", 1, minimum=0)


def test_env_list(monkeypatch):
    monkeypatch.setenv("X_LIST", "a, b,,c ")
    assert env_list("X_LIST", []) == ["a", "b", "c"]


def test_env_secret_from_file(monkeypatch, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret_file))
    assert env_secret("X_SECRET") == "s3cret"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="X_SECRET_FILE"):
        env_secret("X_SECRET")


def test_production_refuses_debug_and_default_secret():
    """Importing the settings with AGENTOPS_ENV=production and no secret fails loudly."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    env["AGENTOPS_ENV"] = "production"
    result = subprocess.run(
        [sys.executable, "-c", "import agentops.settings"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "Production refuses to start" in result.stderr
    env.update(SECRET_KEY="x" * 50, DEBUG="0", ALLOWED_HOSTS="example.com")
    result = subprocess.run(
        [sys.executable, "-c", "import agentops.settings"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_knowledge_queue_must_sort_after_the_agent_queue():
    """A worker consuming both queues takes them in sorted order (queue_order_strategy
    "sorted"): agent steps must come first, so a knowledge queue sorting first is refused."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] == "sorted"
    assert settings.CELERY_TASK_DEFAULT_QUEUE < settings.CELERY_KNOWLEDGE_QUEUE
    env = {**os.environ, "CELERY_KNOWLEDGE_QUEUE": "a-knowledge", "DJANGO_SETTINGS_MODULE": ""}
    result = subprocess.run(
        [sys.executable, "-c", "import agentops.settings"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "must sort after CELERY_TASK_DEFAULT_QUEUE" in result.stderr
