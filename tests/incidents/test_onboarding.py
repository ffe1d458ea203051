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


# ------------------------------------------------------------ the hiring manager's view

NEW_STARTER = {
    "name": "New Bie",
    "start_date": "2027-01-04",
    "role": "Analyst, Sales",
    "email": STARTER,
    "software": "Slack",
    "groups": "vpn-users",
}


def portal_html(client) -> str:
    from django.urls import reverse

    return client.get(reverse("portal:home")).content.decode()


def test_a_hiring_manager_who_is_not_staff_follows_the_checklist_and_no_one_else_does(
    personas, starter, client_for
):
    from django.urls import reverse

    from agentops.models import Role
    from agents.models import Run
    from incidents.models import Ticket
    from tests.conftest import make_user

    manager = personas.requester  # a requester: not staff, cannot start agents by hand
    client = client_for(manager)
    response = client.post(reverse("portal:request", args=["new-starter"]), NEW_STARTER)
    assert response.status_code == 302
    ticket = Ticket.objects.for_tenant(personas.tenant).get(requester=manager)
    run = Run.objects.for_tenant(personas.tenant).get(agent_name="onboarding")
    assert run.input["ticket"] == ticket.number and run.subject_id == STARTER
    assert run.started_by == manager and not run.started_by_staff
    assert not Run.objects.for_tenant(personas.tenant).exclude(pk=run.pk).exists()

    assert drive(run) == "parked"  # the group waits for a reviewer
    html = portal_html(client)
    assert "Onboarding checklist" in html and "4 of 5 done" in html
    for item in ("Directory account", "MFA enrolled", "VPN profile on their computer"):
        assert f'<span>{item}</span>: <span class="muted">Done</span>' in html
    assert '<span>Slack installed</span>: <span class="muted">Done</span>' in html
    assert (
        '<span>Member of vpn-users</span>: <span class="muted">Waiting for approval</span>' in html
    )
    # Nothing internal: no tool names or arguments, no run page, no policy reasons.
    for internal in ("modify_security_group", "enable_mfa", "LT-0777", "/agents/runs/", "policy"):
        assert internal not in html

    # Another requester sees neither the request nor its checklist.
    other = make_user("quinn", personas.tenant, Role.REQUESTER)
    other_client = client_for(other)
    assert "Onboarding checklist" not in portal_html(other_client)
    detail = reverse("incidents:ticket-detail", args=[ticket.number])
    assert other_client.get(detail).status_code == 404

    request = ApprovalRequest.objects.for_tenant(personas.tenant).get(status="pending")
    decide(request=request, actor=personas.reviewer, approve=True)
    assert drive(run) == "succeeded"
    html = portal_html(client_for(manager))
    assert "5 of 5 done · Finished" in html
    assert '<span>Member of vpn-users</span>: <span class="muted">Done</span>' in html


def test_the_new_starter_form_without_an_address_starts_no_onboarding(personas, client_for):
    from django.urls import reverse

    from agents.models import Run

    data = {k: v for k, v in NEW_STARTER.items() if k not in ("email", "software", "groups")}
    client = client_for(personas.requester)
    assert client.post(reverse("portal:request", args=["new-starter"]), data).status_code == 302
    assert not Run.objects.for_tenant(personas.tenant).filter(agent_name="onboarding").exists()
    bad = {**NEW_STARTER, "software": "Slack; rm -rf"}
    response = client.post(reverse("portal:request", args=["new-starter"]), bad)
    assert response.status_code == 400
