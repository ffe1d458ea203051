"""§5.6 Model faults from the fake Messages API, through the real SDK, backend and breaker.

429 with retry-after, 529, 500 and a timeout are retried (retry-after honoured, attempts
capped); 413 and a spend-limit 429 are permanent and sent once; each tenant has its own circuit
breaker, so one tenant's outage fails that tenant fast and leaves the other's calls untouched.
A spend-limit 429 in a run is not retried by the engine either: the ticket goes to people.
"""

from __future__ import annotations

import pytest

from agents import engine
from agents.engine import agent_config
from agents.llm.base import LLMRequestError, LLMUnavailable
from agents.resilience import CircuitBreaker
from incidents.models import Ticket
from incidents.services import ticket_create, ticket_start_agent

THRESHOLD = 3
SPEND_LIMIT = "This request would exceed your organization's monthly spend limit."


@pytest.fixture
def claude_tenants(settings, fake_anthropic, personas):
    """Both tenants on Claude (the fake server), small limits; their breakers reset after."""
    settings.ANTHROPIC_BASE_URL = fake_anthropic.url
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_TIMEOUT = 1.0
    settings.LLM_MAX_RETRIES = 3
    settings.LLM_BREAKER_THRESHOLD = THRESHOLD
    settings.LLM_BREAKER_COOLDOWN_SECONDS = 60
    tenants = [personas.tenant, personas.other_tenant]
    for tenant in tenants:
        config = agent_config(tenant)
        config.llm_backend = "anthropic"
        config.llm_model = "claude-haiku-4-5"
        config.save()
    yield fake_anthropic
    for tenant in tenants:
        CircuitBreaker(f"llm:anthropic:tenant-{tenant.pk}").reset()


def ask(tenant):
    backend = engine.backend_for(agent_config(tenant))
    return backend.complete(system="", messages=[{"role": "user", "content": "VPN down?"}])


def test_transient_faults_are_retried_honouring_retry_after(claude_tenants, personas, settings):
    fake = claude_tenants
    settings.LLM_BREAKER_THRESHOLD = 10  # three failures in a row: below this breaker's limit
    fake.rate_limited(retry_after=1).overloaded().server_error(500).reply_text("Restart it.")
    reply = ask(personas.tenant)
    assert reply.text == "Restart it." and reply.attempts == 4 and len(fake.requests) == 4
    assert reply.retry_wait_ms >= 1000  # it waited the second the server asked for


def test_a_timeout_is_retried_and_attempts_are_capped(claude_tenants, personas, settings):
    fake = claude_tenants
    settings.LLM_BREAKER_THRESHOLD = 10  # this test is about the cap, not the breaker
    fake.slow(3).overloaded().overloaded().overloaded().overloaded()
    with pytest.raises(LLMUnavailable):
        ask(personas.tenant)
    assert len(fake.requests) == 1 + settings.LLM_MAX_RETRIES  # the timeout, then 3 retries


@pytest.mark.parametrize(
    "fault",
    [
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
        (429, "rate_limit_error", SPEND_LIMIT),
    ],
    ids=["413", "spend-limit-429"],
)
def test_permanent_faults_are_sent_once_and_spare_the_breaker(claude_tenants, personas, fault):
    fake = claude_tenants
    status, kind, message = fault
    fake.error(status, kind, message, headers={"retry-after": "1"})
    with pytest.raises(LLMRequestError):
        ask(personas.tenant)
    assert len(fake.requests) == 1  # never retried, retry-after notwithstanding
    breaker = CircuitBreaker(f"llm:anthropic:tenant-{personas.tenant.pk}")
    assert breaker.state().failures == 0


def test_one_tenants_outage_opens_only_its_own_breaker(claude_tenants, personas, settings):
    fake = claude_tenants
    settings.LLM_MAX_RETRIES = 0
    for _ in range(THRESHOLD):
        fake.overloaded()
    for _ in range(THRESHOLD):
        with pytest.raises(LLMUnavailable):
            ask(personas.tenant)
    sent = len(fake.requests)
    with pytest.raises(LLMUnavailable, match="circuit open"):
        ask(personas.tenant)
    assert len(fake.requests) == sent  # failed fast: no request reached the API
    fake.reply_text("Globex is fine.")
    assert ask(personas.other_tenant).text == "Globex is fine."  # its breaker is closed
    assert len(fake.requests) == sent + 1
    own = CircuitBreaker(f"llm:anthropic:tenant-{personas.tenant.pk}").state()
    other = CircuitBreaker(f"llm:anthropic:tenant-{personas.other_tenant.pk}").state()
    assert (own.state, other.state) == ("open", "closed")


def test_a_spend_limit_in_a_run_is_not_retried_and_the_ticket_goes_to_people(
    claude_tenants, personas
):
    fake = claude_tenants
    fake.error(429, "rate_limit_error", SPEND_LIMIT, headers={"retry-after": "1"})
    ticket = ticket_create(
        tenant=personas.tenant, actor=personas.requester, title="VPN times out", start_agent=False
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    outcomes = [engine.advance(run.pk) for _ in range(3)]
    run.refresh_from_db()
    assert "model-retry" not in outcomes and len(fake.requests) == 1
    assert not run.is_active
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=ticket.pk).status == "escalated"


def test_the_console_shows_a_tenant_only_its_own_breaker(claude_tenants, personas, client):
    for tenant in (personas.tenant, personas.other_tenant):
        CircuitBreaker(f"llm:anthropic:tenant-{tenant.pk}").record_failure(f"{tenant.slug} down")
    client.force_login(personas.admin)
    page = client.get("/runs/").content.decode()
    assert "acme down" in page and "globex down" not in page
