"""Chat fixtures: a small knowledge base in both tenants, and Claude on the fake Messages API."""

from __future__ import annotations

import pytest

from tests.agents.conftest import fake_anthropic, redis_names  # noqa: F401  (shared fixtures)


@pytest.fixture
def kb(personas, django_capture_on_commit_callbacks):
    from knowledge import services as kb_services

    def add(tenant, title, content, kind="runbook"):
        with django_capture_on_commit_callbacks(execute=True):
            return kb_services.ingest_text(tenant=tenant, kind=kind, title=title, content=content)

    add(
        personas.tenant,
        "VPN troubleshooting",
        "# VPN keeps disconnecting\n\nUpdate the VPN profile to version 3 and restart the client.",
    )
    add(
        personas.tenant,
        "Past ticket: VPN of the finance laptop",
        "# VPN\n\nFinance laptop VPN disconnecting fixed by replacing the secret key XYZ.",
        kind="historical_ticket",
    )
    add(personas.other_tenant, "Globex VPN secrets", "# VPN\n\nGlobex VPN disconnecting fix.")
    return add


@pytest.fixture
def claude(settings, fake_anthropic, personas, redis_names):  # noqa: F811
    from agents.engine import agent_config

    settings.ANTHROPIC_BASE_URL = fake_anthropic.url
    settings.ANTHROPIC_API_KEY = "test-key"
    config = agent_config(personas.tenant)
    config.llm_backend = "anthropic"
    config.llm_model = "claude-haiku-4-5"
    config.save()
    return fake_anthropic
