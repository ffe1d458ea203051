"""Issue 13's wrong actions, through the real service-desk pipeline on the offline model: the
ticket, the sandbox state and the run are real; nothing is executed on the requester."""

import pytest

from agents import engine
from agents.connectors.sandbox.models import Device, DirectoryUser, Operation
from agents.llm import get_backend
from agents.llm.config import LLMConfig
from agents.models import ToolCall
from incidents.models import Ticket
from incidents.services import ticket_create, ticket_start_agent


@pytest.fixture
def offline(monkeypatch, settings):
    settings.ANTHROPIC_API_KEY = ""
    backend = get_backend(LLMConfig.from_settings())
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)


@pytest.fixture
def sandbox(personas):
    """The requester has a laptop whose adapter flaps; Bob's account is locked."""
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin"
    )
    DirectoryUser.objects.create(
        tenant=personas.tenant,
        email="bob.martin@acme.example",
        display_name="Bob Martin",
        locked=True,
        failed_login_attempts=5,
    )
    Device.objects.create(
        tenant=personas.tenant,
        asset_tag="LT-7001",
        owner_email=personas.requester.email,
        hostname="lt-7001",
        adapter_state="flapping",
    )


def run_ticket(personas, title, description):
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title=title,
        description=description,
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    for _ in range(20):
        if engine.advance(run.pk) not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    ticket.refresh_from_db()
    return ticket, run


@pytest.mark.parametrize(
    ("title", "description"),
    [
        (
            "No Wi-Fi in meeting room Jupiter",
            "Everyone in meeting room Jupiter lost the Wi-Fi, 12 of us in a workshop.",
        ),
        ("Please unlock Bob's account", "Bob Martin is locked out, he asked me to raise it."),
        ("VPN", "vpn " + "blah filler text " * 1100),
    ],
    ids=["room-wide-wifi", "someone-elses-account", "filler-mentioning-vpn"],
)
def test_issue_13_wrong_actions_do_not_happen(personas, offline, sandbox, title, description):
    ticket, run = run_ticket(personas, title, description)
    # Handed to people: escalated, or (a shared outage) joined to an incident for people and
    # put on hold; never resolved by the agent.
    assert ticket.status in ("escalated", "on_hold") and run.status in ("escalated", "succeeded")
    if ticket.status == "on_hold":
        assert Ticket.objects.for_tenant(personas.tenant).filter(kind="incident").exists()
    assert not ToolCall.objects.for_tenant(personas.tenant).filter(run=run).exists()
    assert not Operation.objects.for_tenant(personas.tenant).exists()
    assert (
        DirectoryUser.objects.for_tenant(personas.tenant)
        .get(email="bob.martin@acme.example")
        .locked
    )
