"""Issue 13 §1: the service-desk agent diagnoses first, checks each call's premise, and never
calls an action that changed nothing a resolution.

The model is scripted (it proposes exactly what a clumsy model did); tools, connectors, policy,
the sandbox state and the ticket are real. Two tenants; the other tenant's state never leaks in.
"""

import pytest

from agents import engine
from agents.connectors.sandbox.models import (
    LATEST_VPN_PROFILE_VERSION,
    Device,
    DirectoryUser,
    Operation,
)
from agents.models import GuardrailEvent
from incidents.models import AgentReply, Comment
from incidents.services import ticket_create, ticket_start_agent
from tests.agents.scripted import ScriptedBackend, tool_reply, triage_reply


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    return backend


def drive(run, limit=20):
    outcomes = []
    for _ in range(limit):
        outcome = engine.advance(run.pk)
        outcomes.append(outcome)
        if outcome not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return outcomes


def open_ticket(personas, title, description=""):
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title=title,
        description=description,
        start_agent=False,
    )
    return ticket, ticket_start_agent(ticket=ticket, actor=personas.requester)


def public_words(ticket) -> str:
    return "\n".join(
        Comment.objects.for_tenant(ticket.tenant)
        .filter(ticket=ticket, is_internal=False)
        .values_list("body", flat=True)
    )


def test_a_lockout_on_an_account_that_is_not_locked_is_not_resolved(personas, model):
    """Regression (issue 13): 'was not locked; failed attempts reset to 0', marked verified,
    no word to the requester. Now: not run, the requester told what was found, handed over."""
    user = DirectoryUser.objects.create(
        tenant=personas.tenant,
        email=personas.requester.email,
        display_name="Robin",
        locked=False,
        failed_login_attempts=2,
    )
    # The other tenant's same address is locked: its state must not be what we read.
    DirectoryUser.objects.create(
        tenant=personas.other_tenant, email=personas.requester.email, display_name="R", locked=True
    )
    model.responses += [
        triage_reply(),
        tool_reply(("unlock_account", {"user_email": personas.requester.email})),
    ]
    ticket, run = open_ticket(personas, "I'm locked out of my account", "It says locked.")
    assert drive(run)[-1] == "escalated"
    steps = {s.state: s for s in run.steps.all()}
    assert list(steps) == ["triage", "diagnose", "plan", "compliance", "resolve", "escalate"]
    assert "not locked, 2 failed sign-in attempts" in steps["diagnose"].output_summary
    # The plan prompt started from the diagnosis.
    plan_prompt = model.requests[1]["messages"][0]["content"]
    assert "not locked, 2 failed sign-in attempts" in plan_prompt
    call = run.tool_calls.get()
    assert call.status == "skipped" and call.verified is None
    assert Operation.objects.for_tenant(personas.tenant).count() == 0  # the connector never ran
    user.refresh_from_db()
    assert (user.locked, user.failed_login_attempts) == (False, 2)
    assert (
        GuardrailEvent.objects.for_tenant(personas.tenant)
        .filter(run=run, type="premise_false")
        .exists()
    )
    ticket.refresh_from_db()
    assert ticket.status == "escalated" and ticket.resolved_at is None
    words = public_words(ticket)
    assert "is not locked (2 failed sign-in attempts on record)" in words
    assert "resolved" not in words.lower() and "verified" not in words.lower()
    assert (
        AgentReply.objects.for_tenant(personas.tenant)
        .filter(ticket=ticket, kind="escalated")
        .exists()
    )


def test_a_locked_account_is_still_unlocked_and_the_requester_told(personas, model):
    user = DirectoryUser.objects.create(
        tenant=personas.tenant,
        email=personas.requester.email,
        display_name="Robin",
        locked=True,
        failed_login_attempts=5,
    )
    model.responses += [
        triage_reply(),
        tool_reply(("unlock_account", {"user_email": personas.requester.email})),
    ]
    ticket, run = open_ticket(personas, "I'm locked out of my account")
    assert drive(run)[-1] == "succeeded"
    user.refresh_from_db()
    assert user.locked is False
    ticket.refresh_from_db()
    assert ticket.status == "resolved"
    assert "unlocked (5 failed sign-in attempts cleared)" in public_words(ticket)


def test_pushing_a_vpn_profile_the_device_already_has_is_not_a_fix(personas, model):
    """Regression (issue 13): the junk VPN ticket was 'resolved' by pushing a current profile."""
    device = Device.objects.create(
        tenant=personas.tenant,
        asset_tag="LT-0042",
        owner_email=personas.requester.email,
        hostname="lt-0042",
        vpn_profile_version=LATEST_VPN_PROFILE_VERSION,
        vpn_status="connected",
    )
    model.responses += [
        triage_reply(category="network", path="Push the VPN profile"),
        tool_reply(("push_vpn_config", {"device_id": "LT-0042"})),
    ]
    filler = "vpn " + ("lorem ipsum dolor sit amet " * 700)
    ticket, run = open_ticket(personas, "vpn vpn vpn", filler[:19000])
    assert drive(run)[-1] == "escalated"
    call = run.tool_calls.get()
    assert call.status == "skipped"
    assert Operation.objects.for_tenant(personas.tenant).count() == 0
    device.refresh_from_db()
    assert device.vpn_profile_version == LATEST_VPN_PROFILE_VERSION
    ticket.refresh_from_db()
    assert ticket.status == "escalated" and ticket.resolved_at is None
    assert "already current" in public_words(ticket)


def test_an_outdated_vpn_profile_is_pushed_and_counts(personas, model):
    device = Device.objects.create(
        tenant=personas.tenant,
        asset_tag="LT-0043",
        owner_email=personas.requester.email,
        hostname="lt-0043",
        vpn_profile_version=LATEST_VPN_PROFILE_VERSION - 1,
        vpn_status="timeout",
    )
    model.responses += [
        triage_reply(category="network"),
        tool_reply(("push_vpn_config", {"device_id": "LT-0043"})),
    ]
    ticket, run = open_ticket(personas, "VPN times out since this morning")
    assert drive(run)[-1] == "succeeded"
    diagnose = run.steps.get(state="diagnose")
    assert "VPN profile outdated" in diagnose.output_summary
    device.refresh_from_db()
    assert device.vpn_status == "connected"
    ticket.refresh_from_db()
    assert ticket.status == "resolved"


def test_a_diagnostic_alone_is_no_resolution(personas, model):
    Device.objects.create(
        tenant=personas.tenant,
        asset_tag="LT-0044",
        owner_email=personas.requester.email,
        hostname="lt-0044",
        vpn_status="connected",
    )
    model.responses += [
        triage_reply(category="hardware"),
        tool_reply(("run_diagnostic", {"device_id": "LT-0044"})),
    ]
    ticket, run = open_ticket(personas, "My laptop is slow")
    assert drive(run)[-1] == "escalated"
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
    assert "healthy, no findings" in public_words(ticket)


def test_a_call_whose_effect_changes_nothing_is_not_a_fix(personas, model, monkeypatch):
    """The premise held when read, but the connector's change left the state as it was (a
    connector that reports success without doing anything): not a resolution."""
    from agents.connectors.sandbox.connector import SandboxDirectoryConnector

    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="R", locked=True
    )

    def no_op(self, email, *, idempotency_key):
        return {"summary": f"Account {email} unlocked.", "data": {"user_email": email}}

    monkeypatch.setattr(SandboxDirectoryConnector, "unlock_account", no_op)
    monkeypatch.setattr(
        "agents.tools.builtin.UnlockAccount.check", lambda self, ctx, conn, args, result: True
    )
    model.responses += [
        triage_reply(),
        tool_reply(("unlock_account", {"user_email": personas.requester.email})),
    ]
    ticket, run = open_ticket(personas, "I'm locked out")
    assert drive(run)[-1] == "escalated"
    assert (
        GuardrailEvent.objects.for_tenant(personas.tenant)
        .filter(run=run, type="no_effect")
        .exists()
    )
    ticket.refresh_from_db()
    assert ticket.status == "escalated" and "changed nothing" in public_words(ticket)


# --------------------------------------------------------------------------- premises alone


USER = {
    "user_email": "robin@acme.example",
    "locked": False,
    "failed_login_attempts": 0,
    "mfa_enabled": True,
    "mfa_method": "authenticator_app",
    "is_admin": False,
    "groups": ["vpn-users"],
    "disabled": False,
}
DEVICE = {
    "device_id": "LT-0001",
    "vpn_profile_version": 3,
    "latest_vpn_profile_version": 3,
    "vpn_status": "connected",
    "installed_software": ["Zoom"],
    "adapter_state": "up",
}


@pytest.mark.parametrize(
    ("tool", "state", "args", "holds"),
    [
        ("unlock_account", {**USER, "locked": True}, {}, True),
        ("unlock_account", USER, {}, False),
        ("enable_mfa", USER, {"method": "authenticator_app"}, False),
        ("enable_mfa", USER, {"method": "hardware_key"}, True),
        ("disable_mfa", {**USER, "mfa_enabled": False}, {}, False),
        ("grant_admin_access", {**USER, "is_admin": True}, {}, False),
        ("modify_security_group", USER, {"group": "vpn-users", "action": "add"}, False),
        ("modify_security_group", USER, {"group": "vpn-users", "action": "remove"}, True),
        ("delete_user_account", USER, {}, True),
        ("push_vpn_config", DEVICE, {}, False),
        ("push_vpn_config", {**DEVICE, "vpn_profile_version": 2}, {}, True),
        ("install_software", DEVICE, {"software": "Zoom"}, False),
        ("install_software", DEVICE, {"software": "Slack"}, True),
        ("reset_network_adapter", DEVICE, {}, False),
        ("reset_network_adapter", {**DEVICE, "adapter_state": "down"}, {}, True),
        ("unlock_account", {"user_email": "x@acme.example", "missing": True}, {}, False),
    ],
)
def test_each_tools_premise_reads_the_state(tool, state, args, holds):
    from agents.tools import premises

    premise = premises.judge(tool, state, args)
    assert premise is not None and premise.holds is holds and premise.finding


def test_tools_without_a_premise_and_unknown_states():
    from agents.tools import premises, registry

    assert premises.judge("reset_password", USER, {}) is None  # a reset always changes something
    assert premises.changed(None, USER) is None
    assert premises.changed(USER, {**USER, "locked": True}) is True
    export = registry.get("export_user_data")
    assert export.observe(None, {"user_email": "robin@acme.example"}) is None
