"""Issue 13 on the real anthropic SDK against the local fake Messages API, and on the real
offline model: the new paths (premise, incident, answer, third party) behave the same.

Only the network edge is fake (tests/agents/fake_anthropic.py); everything else is real.
"""

import pytest

from agentops.models import Role
from agents.connectors.sandbox.models import (
    LATEST_VPN_PROFILE_VERSION,
    Device,
    DirectoryUser,
    Operation,
)
from agents.engine import agent_config
from approvals.models import ApprovalRequest
from incidents.desk_states import changed_something
from incidents.models import AgentReply
from incidents.pipeline import PLAN_SYSTEM, TRIAGE_SYSTEM
from tests.agents.desk_helpers import drive, open_ticket, public_words
from tests.conftest import make_user


@pytest.fixture
def claude(settings, fake_anthropic, personas, redis_names):
    settings.ANTHROPIC_BASE_URL = fake_anthropic.url
    settings.ANTHROPIC_API_KEY = "test-key"
    config = agent_config(personas.tenant)
    config.llm_backend = "anthropic"
    config.llm_model = "claude-haiku-4-5"
    config.save()
    return fake_anthropic


def triage(claude, decision="auto_resolve", category="access"):
    claude.reply_tool_use(
        "submit_triage",
        {
            "category": category,
            "priority": "medium",
            "decision": decision,
            "confidence": 0.9,
            "suggested_path": "as decided",
        },
    )


def test_claude_is_told_the_decision_contract_and_the_premise_rule(claude, personas):
    DirectoryUser.objects.create(
        tenant=personas.tenant,
        email=personas.requester.email,
        display_name="Robin",
        failed_login_attempts=1,
    )
    triage(claude)
    claude.reply_tool_use("unlock_account", {"user_email": personas.requester.email})
    ticket, run = open_ticket(personas, "I'm locked out of my account")
    assert drive(run)[-1] == "escalated"
    first, second = claude.bodies
    enum = first["tools"][0]["input_schema"]["properties"]["decision"]["enum"]
    assert enum == ["auto_resolve", "answer", "redirect", "incident", "human"]
    assert first["system"] == TRIAGE_SYSTEM and second["system"] == PLAN_SYSTEM
    prompt = second["messages"][0]["content"]
    assert (
        "not locked, 1 failed sign-in attempt," in prompt and '<context kind="diagnosis">' in prompt
    )
    assert run.tool_calls.get().status == "skipped"
    ticket.refresh_from_db()
    assert ticket.status == "escalated" and "is not locked" in public_words(ticket)
    assert changed_something(ticket) is False


def test_claude_writes_the_answer_with_citations(
    claude, personas, django_capture_on_commit_callbacks
):
    from knowledge import services

    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_text(
            tenant=personas.tenant,
            kind="guide",
            title="How do I set my out of office reply in Outlook?",
            content="# How do I set my out of office reply in Outlook?\n\nTo set your out of "
            "office reply in Outlook open File, Automatic Replies, and set the dates.",
        )
    triage(claude, decision="answer", category="email")
    claude.reply_text(
        "Open File, then Automatic Replies, and set your dates [1]. Did this solve it?"
    )
    ticket, run = open_ticket(personas, "How do I set my out of office reply in Outlook?")
    assert drive(run)[-1] == "succeeded"
    answer_request = claude.bodies[1]
    assert "<knowledge>" in answer_request["messages"][0]["content"]
    assert "tools" not in answer_request or not answer_request["tools"]
    reply = AgentReply.objects.for_tenant(personas.tenant).get(ticket=ticket)
    assert reply.state == "awaiting" and reply.body.startswith("Open File, then Automatic Replies")
    assert "Sources: [1] How do I set my out of office reply in Outlook?" in reply.body


def test_claude_room_outage_is_an_incident_without_a_plan(claude, personas):
    triage(claude, category="network")
    ticket, run = open_ticket(personas, "No Wi-Fi on the 3rd floor", "Nobody here can connect.")
    assert drive(run)[-1] == "succeeded"
    assert len(claude.bodies) == 1  # never asked for a device fix
    assert AgentReply.objects.for_tenant(personas.tenant).get(ticket=ticket).incident is not None


def test_claude_acting_for_bob_waits_for_a_third_person(claude, personas):
    bob = make_user("bob", personas.tenant, Role.REQUESTER, first_name="Bob", last_name="Baker")
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=bob.email, display_name="B", locked=True
    )
    triage(claude)
    claude.reply_tool_use("unlock_account", {"user_email": bob.email})
    _ticket, run = open_ticket(personas, "Please unlock Bob's account")
    assert drive(run)[-1] == "parked"
    assert (
        "On behalf of: Bob Baker <bob@acme.example>" in claude.bodies[1]["messages"][0]["content"]
    )
    request = ApprovalRequest.objects.for_tenant(personas.tenant).get()
    assert "Bob Baker (bob@acme.example)" in request.reason
    assert Operation.objects.for_tenant(personas.tenant).count() == 0


# --------------------------------------------------------------------------- offline model


def test_offline_room_wide_wifi_outage_resets_no_adapter(personas):
    Device.objects.create(
        tenant=personas.tenant,
        asset_tag="LT-0200",
        owner_email=personas.requester.email,
        hostname="lt-0200",
        adapter_state="flapping",
    )
    ticket, run = open_ticket(
        personas,
        "Wi-Fi keeps dropping in meeting room 2",
        "The wireless network adapter keeps disconnecting for everyone in the meeting room.",
    )
    drive(run)
    assert not run.tool_calls.filter(tool_name="reset_network_adapter").exists()
    assert Device.objects.for_tenant(personas.tenant).get().adapter_state == "flapping"
    ticket.refresh_from_db()
    assert ticket.status != "resolved"


def test_offline_junk_vpn_ticket_is_not_auto_resolved(personas):
    """Regression (issue 13): a junk ticket of filler mentioning VPN was 'resolved' by pushing
    a profile the laptop already had, then became knowledge."""
    Device.objects.create(
        tenant=personas.tenant,
        asset_tag="LT-0201",
        owner_email=personas.requester.email,
        hostname="lt-0201",
        vpn_profile_version=LATEST_VPN_PROFILE_VERSION,
        vpn_status="timeout",
    )
    filler = ("VPN timeout " + "asdf qwer zxcv " * 40 + "\n") * 30
    ticket, run = open_ticket(personas, "vpn timeout", filler[:19000])
    drive(run)
    assert (
        Operation.objects.for_tenant(personas.tenant).filter(operation="push_vpn_config").count()
        == 0
    )
    ticket.refresh_from_db()
    assert ticket.status != "resolved" and ticket.resolved_at is None
    assert changed_something(ticket) is False
