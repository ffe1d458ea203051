"""Four-eyes that holds (issue 11 §1): each bypass found by trying it as an attacker would, as
a regression test, and a property test over generated arguments, parties and edits."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentops.models import AuditEvent, Tenant
from agents.approval_hooks import beneficiaries, validate_tool_arguments
from agents.connectors.sandbox.models import DirectoryUser, Operation
from agents.models import PolicyRule, ToolCall
from approvals.models import ApprovalRequest
from approvals.services import decide, party_conflict
from incidents.services import ticket_create, ticket_start_agent
from tests.agents.scripted import tool_reply, triage_reply
from tests.approvals.conftest import drive


def directory(personas, *people):
    for user in people:
        DirectoryUser.objects.for_tenant(personas.tenant).get_or_create(
            tenant=personas.tenant, email=user.email, defaults={"display_name": user.username}
        )


def test_an_edit_that_retargets_a_privileged_action_is_refused(personas, parked):
    _ticket, run, approval = parked
    directory(personas, personas.agent)
    edited = {"user_email": personas.agent.email, "reason": "Needs developer tools"}
    with pytest.raises(ValidationError) as exc:
        decide(request=approval, actor=personas.reviewer, approve=True, edited_arguments=edited)
    assert "cannot change whom the action is for" in str(exc.value)
    approval.refresh_from_db()
    assert approval.status == "pending"
    drive(run)
    assert not Operation.objects.for_tenant(personas.tenant).exists()
    assert (
        not DirectoryUser.objects.for_tenant(personas.tenant)
        .get(email=personas.agent.email)
        .is_admin
    )


def test_an_approved_action_meets_the_whole_policy_again(personas, parked):
    """A tenant blocks the action while it waits: the approval alone does not run it."""
    _ticket, run, approval = parked
    edited = {"user_email": personas.requester.email, "reason": "Only for the build tools"}
    PolicyRule.objects.create(
        tenant=personas.tenant, action="grant_admin_access", verdict="block", reason="Frozen."
    )
    decide(request=approval, actor=personas.reviewer, approve=True, edited_arguments=edited)
    drive(run)
    assert run.status == "escalated"
    call = ToolCall.objects.for_tenant(personas.tenant).get(run=run)
    assert call.status == "blocked" and call.args_json == edited
    assert not Operation.objects.for_tenant(personas.tenant).exists()


def test_the_beneficiary_may_not_approve_even_when_someone_else_started_the_run(personas, model):
    """A reviewer opens a ticket asking admin rights for themselves; an agent restarts the
    run. The reviewer is the requester and the beneficiary: refused, and the refusal audited."""
    directory(personas, personas.reviewer)
    args = {"user_email": personas.reviewer.email, "reason": "I need admin for the migration"}
    model.responses += [triage_reply(), tool_reply(("grant_admin_access", args))]
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.reviewer,
        title="Admin rights for me",
        description="Please make me an administrator.",
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.agent)  # another staff member
    drive(run)
    approval = ApprovalRequest.objects.for_tenant(personas.tenant).get(status="pending")
    roles = {(p["role"], p["email"]) for p in approval.parties}
    assert ("starter", personas.agent.email) in roles
    assert ("beneficiary", personas.reviewer.email) in roles
    with pytest.raises(PermissionDenied, match="four-eyes"):
        decide(request=approval, actor=personas.reviewer, approve=True)
    refusal = AuditEvent.objects.for_tenant(personas.tenant).get(action="approval.refused")
    assert (
        refusal.actor_id == personas.reviewer.pk and "second person" in refusal.metadata["reason"]
    )
    with pytest.raises(PermissionDenied):  # the starter neither
        decide(request=approval, actor=personas.agent, approve=True)
    decide(request=approval, actor=personas.admin, approve=True)  # a second person
    drive(run)
    assert run.status == "succeeded"


def test_a_staff_started_run_still_acts_only_for_the_requester(personas, model):
    """A ticket opened with a staff token names a third party in its text: nothing runs on
    them without a second person, and each approval says whom it is for (issue 13: acting on
    the person a ticket names waits for someone who is neither party; before, the self-service
    unlock was blocked outright)."""
    bob = personas.requester2
    directory(personas, personas.requester, bob)
    model.responses += [
        triage_reply(),
        tool_reply(
            ("unlock_account", {"user_email": bob.email}),
            ("grant_admin_access", {"user_email": bob.email, "reason": "Bob needs it too"}),
        ),
    ]
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.agent,
        requester=personas.requester,
        title="Unlock Bob and make him admin",
        description=f"Please unlock {bob.email} and make him an administrator.",
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.agent)
    assert run.started_by_staff
    drive(run)
    calls = {c.tool_name: c for c in ToolCall.objects.for_tenant(personas.tenant).filter(run=run)}
    for call in calls.values():
        assert call.policy_verdict == "needs_approval"
        assert f"({bob.email}), who did not ask for it" in call.policy_reason
        assert personas.requester.email in call.policy_reason
    assert not Operation.objects.for_tenant(personas.tenant).exists()
    assert run.status == "waiting_approval"


# --------------------------------------------------------------------------- property test

EMAILS = ["robin@acme.test", "riley@acme.test", "alex@acme.test", "bob@acme.test", "x@y.org"]


class Actor:
    def __init__(self, pk: int, email: str):
        self.pk, self.email = pk, email


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requester=st.sampled_from(EMAILS),
    target=st.sampled_from(EMAILS),
    starter=st.integers(min_value=1, max_value=5),
    actor_id=st.integers(min_value=1, max_value=5),
    actor_email=st.sampled_from(EMAILS),
    edit_target=st.one_of(st.none(), st.sampled_from(EMAILS)),
    reason=st.text(min_size=10, max_size=40).filter(lambda t: "@" not in t),
)
def test_no_approval_ever_benefits_its_approver_or_retargets_without_a_second_person(
    requester, target, starter, actor_id, actor_email, edit_target, reason
):
    """Whatever the arguments, parties and edits: if the checks decide() makes let an
    approval through, the approver is none of the parties and the edited action is for the
    same people as the one requested."""
    args = {"user_email": target, "reason": "Needs it for the build"}
    parties = [
        {"role": "starter", "user_id": starter, "email": f"user{starter}@staff.test"},
        {"role": "requester", "user_id": None, "email": requester},
        *[
            {"role": "beneficiary", "user_id": None, "email": e}
            for e in sorted(beneficiaries(None, "grant_admin_access", args))
        ],
    ]
    request = ApprovalRequest(
        tenant=Tenant(name="Acme", slug="acme"),
        action="grant_admin_access",
        arguments=args,
        parties=parties,
        requested_by_id=starter,
    )
    actor = Actor(actor_id, actor_email)
    edited = None if edit_target is None else {"user_email": edit_target, "reason": reason}
    refused = party_conflict(request, actor) is not None
    problems = validate_tool_arguments(request, edited) if edited is not None else []
    if not refused and not problems:
        assert actor_id != starter and actor_email not in {requester, target}
        final = edited or args
        assert final["user_email"] == target  # the same person, whatever else changed
