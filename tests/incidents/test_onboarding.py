"""The onboarding blueprint (issue 13): a new starter's checklist as one run, with approvals
where the policy (and this blueprint) needs them, its progress on the run's timeline."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from agents import engine, services
from agents.connectors.sandbox.models import Device, DirectoryUser, Operation
from agents.models import Step, ToolCall
from approvals.models import ApprovalRequest
from approvals.services import decide
from incidents.blueprints.onboarding import parse_checklist

STARTER = "newbie@acme.test"


def drive(run, limit=80):
    outcome = ""
    for _ in range(limit):
        outcome = engine.advance(run.pk)
        if outcome not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return outcome


def membership(user, tenant):
    from agentops.models import Membership

    return Membership.objects.select_related("tenant", "user").get(user=user, tenant=tenant)


def start(personas, goal, subject_id=STARTER):
    return services.start_blueprint(
        membership=membership(personas.agent, personas.tenant),
        blueprint="onboarding",
        goal=goal,
        subject_id=subject_id,
    )


@pytest.fixture
def starter(personas):
    user = DirectoryUser.objects.create(tenant=personas.tenant, email=STARTER, display_name="New")
    device = Device.objects.create(
        tenant=personas.tenant, asset_tag="LT-0777", owner_email=STARTER, vpn_profile_version=1
    )
    return user, device


def test_the_checklist_runs_in_order_and_groups_wait_for_a_reviewer(personas, starter):
    user, device = starter
    run = start(personas, "software: Slack; groups: vpn-users")
    assert drive(run) == "parked"
    calls = ToolCall.objects.for_tenant(personas.tenant).filter(run=run).order_by("id")
    assert [c.tool_name for c in calls] == [
        "enable_mfa",
        "push_vpn_config",
        "install_software",
        "modify_security_group",
    ]
    user.refresh_from_db()
    device.refresh_from_db()
    assert user.mfa_enabled and device.vpn_profile_version > 1
    assert "Slack" in device.installed_software
    assert "vpn-users" not in (user.groups or [])  # waits for a person
    [request] = ApprovalRequest.objects.for_tenant(personas.tenant).filter(status="pending")
    assert request.action == "modify_security_group"

    decide(request=request, actor=personas.reviewer, approve=True)
    assert drive(run) == "succeeded"
    user.refresh_from_db()
    assert "vpn-users" in user.groups
    summary = run.result["summary"]
    assert "enable_mfa" in summary and "install_software LT-0777, Slack: done" in summary
    assert "modify_security_group add, vpn-users: done" in summary
    # The progress is the run's timeline: a step per checklist item, in order.
    executed = Step.objects.for_tenant(personas.tenant).filter(run=run, state="execute_tool")
    assert executed.count() >= 4
    assert not Operation.objects.for_tenant(personas.other_tenant).exists()


def test_a_starter_without_an_account_changes_nothing(personas):
    run = start(personas, "software: Slack", subject_id="nobody@acme.test")
    assert drive(run) == "succeeded"
    assert "no directory account" in run.result["summary"]
    assert not ToolCall.objects.for_tenant(personas.tenant).filter(run=run).exists()
    assert not Operation.objects.for_tenant(personas.tenant).exists()


def test_the_checklist_is_validated():
    assert parse_checklist("software: Slack, Zoom; groups: vpn-users") == {
        "software": ["Slack", "Zoom"],
        "groups": ["vpn-users"],
    }
    assert parse_checklist("") == {"software": [], "groups": []}
    for bad in ("please install everything", "software: rm -rf /", "groups: a;b:c", "x: y"):
        with pytest.raises(ValidationError):
            parse_checklist(bad)


def test_only_an_email_is_a_starter(personas):
    with pytest.raises(ValidationError):
        start(personas, "", subject_id="not an address")
