"""The offline model drives the real service-desk pipeline over the sandbox: no key, no network.

Triage, plan, compliance and resolution all run for real (engine, policy, tools, sandbox
connectors); only the model is the offline one, chosen the way a tenant without a key gets it.
"""

import pytest
from django.contrib.auth import get_user_model

from agents import engine
from agents.connectors.sandbox.seed import seed_sandbox
from agents.llm import get_backend
from agents.llm.config import LLMConfig
from agents.llm.offline import OfflineBackend
from agents.models import ToolCall
from incidents.services import ticket_create, ticket_start_agent


@pytest.fixture
def offline(monkeypatch, settings):
    settings.ANTHROPIC_API_KEY = ""
    backend = get_backend(LLMConfig.from_settings())
    assert isinstance(backend, OfflineBackend)
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)


def drive(run, limit=20):
    outcome = ""
    for _ in range(limit):
        outcome = engine.advance(run.pk)
        if outcome not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return outcome


# The sandbox seed gives the listed people known problems: #0 locked account and an outdated
# VPN profile, #1 no MFA and a flapping network adapter, #3 healthy.
CASES = [
    (
        0,
        "Cannot connect to VPN from home office",
        "Timeout errors when connecting.",
        ["push_vpn_config"],
    ),
    (0, "Account locked out", "Cannot login, account locked.", ["unlock_account"]),
    (3, "Password reset needed", "My password expired. Please reset it.", ["reset_password"]),
    (1, "Set up MFA on my new phone", "Please re-enrol MFA on my new phone.", ["enable_mfa"]),
    (3, "Install Zoom on my laptop", "I need Zoom for the team calls.", ["install_software"]),
    (
        1,
        "Wi-Fi keeps dropping",
        "The wireless adapter disconnects every few minutes.",
        ["run_diagnostic", "reset_network_adapter"],
    ),
]


def _open(personas, person: int, title: str, description: str):
    people = [
        (personas.requester.email, "Robin"),
        (personas.requester2.email, "Rosa"),
        ("colleague@acme.example", "Colleague"),
        (personas.agent.email, "Alex"),
    ]
    seed_sandbox(personas.tenant, people)
    actor = get_user_model().objects.get(email=people[person][0])
    ticket = ticket_create(
        tenant=personas.tenant, actor=actor, title=title, description=description, start_agent=False
    )
    return ticket, ticket_start_agent(ticket=ticket, actor=actor)


@pytest.mark.parametrize(
    ("person", "title", "description", "tools"), CASES, ids=lambda v: str(v)[:20]
)
def test_seed_ticket_is_resolved_and_verified(personas, offline, person, title, description, tools):
    ticket, run = _open(personas, person, title, description)
    assert drive(run) == "succeeded"
    ticket.refresh_from_db()
    assert ticket.status == "resolved"
    calls = ToolCall.objects.for_tenant(personas.tenant).filter(run=run).order_by("id")
    assert [c.tool_name for c in calls] == tools
    assert all(c.status == ToolCall.Status.SUCCESS and c.verified for c in calls)


def test_admin_rights_request_waits_for_a_reviewer(personas, offline):
    ticket, run = _open(
        personas, 3, "Need admin rights on my workstation", "Please grant me local admin rights."
    )
    drive(run)
    ticket.refresh_from_db()
    assert (run.status, ticket.status) == ("waiting_approval", "on_hold")
    [call] = ToolCall.objects.for_tenant(personas.tenant).filter(run=run)
    assert call.tool_name == "grant_admin_access"


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "rejected"])
def test_a_decision_before_the_run_parks_is_not_lost(personas, offline, monkeypatch, approve):
    """A reviewer decides between the request's commit and the step's end (when the handler
    still sees a running run): the run must resume, not park forever."""
    from approvals.services import decide

    original = engine.StepContext.request_approval

    def request_and_decide_at_once(self, call, **kwargs):
        request = original(self, call, **kwargs)
        decide(
            request=request,
            actor=personas.reviewer,
            approve=approve,
            comment="" if approve else "No local admin rights.",
        )
        return request

    monkeypatch.setattr(engine.StepContext, "request_approval", request_and_decide_at_once)
    ticket, run = _open(
        personas, 3, "Need admin rights on my workstation", "Please grant me local admin rights."
    )
    drive(run)
    ticket.refresh_from_db()
    [call] = ToolCall.objects.for_tenant(personas.tenant).filter(run=run)
    if approve:
        assert (run.status, ticket.status) == ("succeeded", "resolved")
        assert call.status == ToolCall.Status.SUCCESS
    else:
        assert (run.status, ticket.status) == ("escalated", "escalated")
        assert call.status == ToolCall.Status.REJECTED
