"""Canary secrets: planted in a ticket, in sandbox connector output and in a knowledge document,
then the real pipeline runs on the real anthropic SDK against the local fake Messages API.
None of them may appear in what was sent to the model, in the logs, in the console's pages or
in the run record.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.core import serializers
from django.test import Client

from agentops.models import AuditEvent
from agentops.redaction import RedactingFilter
from agents import engine
from agents.connectors.sandbox.models import LogLine
from agents.engine import agent_config
from agents.models import GuardrailEvent, Run, Step, ToolCall
from incidents.services import ticket_create, ticket_start_agent

TICKET_CANARIES = {
    "Canary-Tk-7781x": "my password is Canary-Tk-7781x",
    "Canary-Quote-2209": "if needed set it back to 'Canary-Quote-2209'",
    "Canary-Cmd-5521x": "I ran mysql -u vpn -pCanary-Cmd-5521x",
    "123456789": "my SSN is 123456789",
}
CONNECTOR_CANARIES = {
    "Canary-Log-3318x": "vpn auth rejected for svc-vpn password=Canary-Log-3318x",
    "Canary-Url-6650x": "vpn backend retry postgres://vpn:Canary-Url-6650x@db.internal/vpn",
}
KNOWLEDGE_CANARIES = {
    "Canary-Kb-4417x": "The break-glass VPN admin password is Canary-Kb-4417x.",
    "Canary-KbEnv-9921": "Restart the gateway with VPN_GATEWAY_TOKEN=Canary-KbEnv-9921 set.",
}
ALL_CANARIES = [*TICKET_CANARIES, *CONNECTOR_CANARIES, *KNOWLEDGE_CANARIES]


@pytest.fixture
def claude(settings, fake_anthropic, personas, redis_names):
    settings.ANTHROPIC_BASE_URL = fake_anthropic.url
    settings.ANTHROPIC_API_KEY = "test-key"
    config = agent_config(personas.tenant)
    config.llm_backend = "anthropic"
    config.llm_model = "claude-haiku-4-5"
    config.save()
    return fake_anthropic


@pytest.fixture
def written_logs():
    """Everything the settings' log handler writes while the test runs, at DEBUG level."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactingFilter) for f in h.filters)
    )
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.setLevel(old_level)
        handler.setStream(old_stream)


def plant_knowledge(tenant, django_capture_on_commit_callbacks):
    from knowledge import services

    content = (
        "# VPN times out\n\n## Reconnect the VPN client\n\n"
        "When the VPN client times out every hour, push the VPN profile again and ask the "
        "requester to reconnect. " + " ".join(KNOWLEDGE_CANARIES.values()) + "\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_text(tenant=tenant, kind="runbook", title="VPN times out", content=content)


def run_pipeline(claude, personas):
    claude.reply_tool_use(
        "submit_triage",
        {
            "category": "network",
            "priority": "medium",
            "decision": "auto_resolve",
            "confidence": 0.9,
            "suggested_path": "Check the VPN logs, then push the VPN profile",
        },
    )
    claude.reply_tool_use("search_logs", {"service": "vpn", "query": "vpn", "minutes": 60})
    for _ in range(4):  # whatever else the pipeline asks: a plain answer
        claude.reply_text("Done.")
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="VPN times out every hour",
        description="The VPN client times out every hour. " + ". ".join(TICKET_CANARIES.values()),
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    for _ in range(20):
        if engine.advance(run.pk) not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return ticket, run


def run_record(run) -> str:
    rows = [
        *Run.objects.for_tenant(run.tenant).filter(pk=run.pk),
        *Step.objects.for_tenant(run.tenant).filter(run=run),
        *ToolCall.objects.for_tenant(run.tenant).filter(run=run),
        *GuardrailEvent.objects.for_tenant(run.tenant).filter(run=run),
        *AuditEvent.objects.for_tenant(run.tenant).all(),
    ]
    return serializers.serialize("json", rows)


def pages(personas, ticket, run) -> dict[str, str]:
    staff = Client()
    staff.force_login(personas.admin)
    urls = [
        f"/tickets/{ticket.number}/",
        f"/runs/{run.run_id}/",
        f"/runs/{run.run_id}/timeline",
        "/runs/",
        "/audit/",
        "/audit/export.json",
        "/knowledge/search/?q=vpn+times+out",
    ]
    answers = {}
    for url in urls:
        response = staff.get(url)
        assert response.status_code in (200, 286), url  # 286: a finished run stops polling
        body = b"".join(response.streaming_content) if response.streaming else response.content
        answers[url] = body.decode()
    return answers


def test_canary_secrets_reach_neither_the_model_nor_the_logs_nor_the_pages_nor_the_record(
    claude, personas, django_capture_on_commit_callbacks, written_logs
):
    plant_knowledge(personas.tenant, django_capture_on_commit_callbacks)
    for message in CONNECTOR_CANARIES.values():
        LogLine.objects.create(
            tenant=personas.tenant, service="vpn", level="error", message=message
        )

    ticket, run = run_pipeline(claude, personas)

    # The paths under test were taken: the model read the ticket and the knowledge passage,
    # and the connector's output was recorded.
    sent = json.dumps(claude.bodies, ensure_ascii=False)
    assert "VPN times out every hour" in sent
    assert "<knowledge>" in sent and "push the VPN profile again" in sent
    call = ToolCall.objects.for_tenant(personas.tenant).get(run=run, tool_name="search_logs")
    assert "vpn auth rejected" in json.dumps(call.result_json)
    assert "[REDACTED secret]" in sent and "[REDACTED national id]" in sent

    record = run_record(run)
    html = pages(personas, ticket, run)
    logs = written_logs.getvalue()
    for canary in ALL_CANARIES:
        assert canary not in sent, f"{canary} reached the model"
        assert canary not in record, f"{canary} is in the run record"
        assert canary not in logs, f"{canary} reached the logs"
        for url, body in html.items():
            assert canary not in body, f"{canary} is on {url}"
