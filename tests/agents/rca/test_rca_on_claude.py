"""With a key, Claude writes the narrative (fake Messages API); the evidence still decides."""

from __future__ import annotations

import pytest

from agents.engine import agent_config
from agents.models import GuardrailEvent, Run
from agents.rca import services
from tests.agents.rca.test_rca_api import drive
from tests.agents.telemetry.payloads import seed_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def claude(settings, fake_anthropic, personas, redis_names):
    settings.ANTHROPIC_BASE_URL = fake_anthropic.url
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.LLM_MAX_RETRIES = 0
    config = agent_config(personas.tenant)
    config.llm_backend = "anthropic"
    config.llm_model = "claude-haiku-4-5"
    config.save()
    return fake_anthropic


def analyse(personas, ingest):
    target = ingest(personas.tenant, seed_run())
    rca, _ = services.rca_start(target=target, actor=personas.agent)
    drive(rca.run_id, personas.tenant)
    rca = Run.objects.for_tenant(personas.tenant).get(pk=rca.pk)
    guards = list(GuardrailEvent.objects.for_tenant(personas.tenant).filter(run=rca))
    return rca, rca.result["report"], guards


def narrative(category, ids, summary="The order API now requires customer_id."):
    return {
        "category": category,
        "summary": summary,
        "hypotheses": [
            {
                "title": "Order API contract changed",
                "description": "v2.0 of order_lookup_api requires customer_id; the agent never sends it.",
                "evidence_ids": ids,
                "confidence": "high",
            }
        ],
    }


def test_claude_writes_the_narrative_citing_index_ids(claude, personas, ingest):
    claude.reply_tool_use(
        "write_rca_report",
        narrative("tool_schema_mismatch", ["ev_tool_call-001", "ev_guard_guard-001"]),
    )
    rca, report, guards = analyse(personas, ingest)
    assert rca.status == "succeeded" and report["narrative"] == "model"
    assert report["summary"] == "The order API now requires customer_id."
    assert report["hypotheses"][0]["title"] == "Order API contract changed"
    assert report["category"] == "tool_schema_mismatch" and guards == []
    sent = claude.bodies[0]
    assert sent["tool_choice"] == {"type": "tool", "name": "write_rca_report"}
    assert "ev_tool_call-001" in sent["messages"][0]["content"]
    assert rca.tokens_prompt > 0


@pytest.mark.parametrize(
    "answer, reason",
    [
        (narrative("rate_limited", ["ev_tool_call-001"]), "not supported by the evidence"),
        (
            narrative("tool_schema_mismatch", ["ev_tool_call-001", "ev_made_up"]),
            "unknown evidence ids",
        ),
    ],
)
def test_a_category_the_evidence_does_not_support_or_an_invented_id_is_refused(
    claude, personas, ingest, answer, reason
):
    claude.reply_tool_use("write_rca_report", answer)
    _rca, report, guards = analyse(personas, ingest)
    assert report["category"] == "tool_schema_mismatch" and report["narrative"] == "deterministic"
    assert report["hypotheses"][0]["title"] == "Tool schema mismatch"
    assert all(ev != "ev_made_up" for h in report["hypotheses"] for ev in h["evidence_ids"])
    assert [g.type for g in guards] == ["rca_citation"] and reason in guards[0].message


def test_model_outage_leaves_the_deterministic_report(claude, personas, ingest):
    for _ in range(3):
        claude.overloaded()
    rca, report, _ = analyse(personas, ingest)
    assert rca.status == "succeeded" and report["narrative"] == "deterministic"
    assert report["category"] == "tool_schema_mismatch"
