"""The service-desk pipeline on the real anthropic SDK, against the local fake Messages API.

Only the network edge is fake: the engine, the backend, the SDK, its HTTP client, the rate
limits and the breaker are the real ones.
"""

import pytest

from agents import engine
from agents.connectors.sandbox.models import DirectoryUser
from agents.engine import agent_config
from agents.models import GuardrailEvent
from incidents.services import ticket_create, ticket_start_agent


@pytest.fixture
def claude(settings, fake_anthropic, personas, redis_names):
    settings.ANTHROPIC_BASE_URL = fake_anthropic.url
    settings.ANTHROPIC_API_KEY = "test-key"
    config = agent_config(personas.tenant)
    config.llm_backend = "anthropic"
    config.llm_model = "claude-haiku-4-5"
    config.save()
    return fake_anthropic


def drive(run):
    outcomes = []
    for _ in range(20):
        outcome = engine.advance(run.pk)
        outcomes.append(outcome)
        if outcome not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return outcomes


def test_locked_account_resolved_through_the_sdk(claude, personas):
    user = DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin", locked=True
    )
    claude.reply_tool_use(
        "submit_triage",
        {
            "category": "access",
            "priority": "medium",
            "decision": "auto_resolve",
            "confidence": 0.92,
            "suggested_path": "Unlock the account",
        },
    )
    claude.reply_tool_use("unlock_account", {"user_email": personas.requester.email})
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="I'm locked out of my account",
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    assert drive(run)[-1] == "succeeded"
    user.refresh_from_db()
    assert user.locked is False
    assert run.model == "claude-haiku-4-5" and run.tokens_prompt == 240 and run.total_cost_usd > 0
    first, second = claude.bodies
    assert first["tool_choice"] == {"type": "tool", "name": "submit_triage"}
    assert first["model"] == "claude-haiku-4-5"
    assert {t["name"] for t in second["tools"]} >= {
        "unlock_account",
        "reset_password",
        "grant_admin_access",
    }
    assert "Requester: robin@acme.example" in second["messages"][0]["content"]


def test_overloaded_model_retries_then_escalates_with_the_reason(claude, personas, settings):
    settings.LLM_MAX_RETRIES = 0  # each engine attempt is one API call
    for _ in range(3):
        claude.overloaded()
    ticket = ticket_create(
        tenant=personas.tenant, actor=personas.requester, title="VPN times out", start_agent=False
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    assert drive(run)[-1] == "escalated"
    assert len(claude.bodies) == 3
    assert (
        GuardrailEvent.objects.for_tenant(personas.tenant)
        .filter(run=run, type="llm_unavailable")
        .count()
        == 3
    )
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
    assert "unavailable" in ticket.comments.filter(is_internal=True).last().body


def test_a_bad_request_fails_fast_and_the_ticket_is_kept(claude, personas):
    claude.bad_request("tools.0.input_schema: invalid")
    ticket = ticket_create(
        tenant=personas.tenant, actor=personas.requester, title="VPN times out", start_agent=False
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    assert drive(run)[-1] == "failed"
    assert len(claude.bodies) == 1  # no retry on an error that will not heal
    assert run.error_type == "LLMRequestError"
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
