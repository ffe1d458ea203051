"""Issue 13 §3: a ticket on someone else's behalf is recognised and handled per policy — never
silently turned into an action on the requester; on the named person only with the approval
of someone who is neither of them, the approval saying who the beneficiary is.
"""

import pytest

from agentops.models import Role
from agents import engine, policy
from agents.connectors.sandbox.models import DirectoryUser, Operation
from approvals import services as approvals
from approvals.models import ApprovalRequest
from incidents import third_party
from tests.agents.desk_helpers import drive, open_ticket, public_words
from tests.agents.scripted import ScriptedBackend, tool_reply, triage_reply
from tests.conftest import make_user


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    return backend


@pytest.fixture
def bob(personas):
    """Bob works at Acme (and reviews approvals); a different Bob works at Globex."""
    make_user("bobby", personas.other_tenant, Role.REQUESTER, first_name="Bob", last_name="G")
    return make_user("bob", personas.tenant, Role.REVIEWER, first_name="Bob", last_name="Baker")


@pytest.fixture
def both_locked(personas, bob):
    robin = DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin", locked=True
    )
    bobs = DirectoryUser.objects.create(
        tenant=personas.tenant, email=bob.email, display_name="Bob Baker", locked=True
    )
    return robin, bobs


def test_unlocking_bobs_account_never_unlocks_the_requester(personas, model, both_locked):
    """Regression (issue 13): on "please unlock Bob's account" it unlocked the requester."""
    robin, bobs = both_locked
    model.responses += [
        triage_reply(),
        tool_reply(("unlock_account", {"user_email": personas.requester.email})),
    ]
    ticket, run = open_ticket(personas, "Please unlock Bob's account", "He is locked out.")
    assert drive(run)[-1] == "escalated"
    call = run.tool_calls.get()
    assert (call.status, call.policy_verdict) == ("blocked", "block")
    assert "on behalf of Bob Baker (bob@acme.example)" in call.policy_reason
    assert Operation.objects.for_tenant(personas.tenant).count() == 0
    robin.refresh_from_db()
    bobs.refresh_from_db()
    assert robin.locked and bobs.locked
    ticket.refresh_from_db()
    assert ticket.status == "escalated"
    assert "You asked on behalf of Bob Baker" in public_words(ticket)
    assert run.state_data["beneficiary_email"] == "bob@acme.example"


def test_acting_for_bob_needs_a_person_who_is_neither_party(personas, model, both_locked, bob):
    robin, bobs = both_locked
    model.responses += [
        triage_reply(),
        tool_reply(("unlock_account", {"user_email": bob.email})),
    ]
    _ticket, run = open_ticket(personas, "Please unlock Bob's account")
    assert drive(run)[-1] == "parked"
    request = ApprovalRequest.objects.for_tenant(personas.tenant).get()
    # The card says who the beneficiary is and who asked.
    assert "act for Bob Baker (bob@acme.example)" in request.reason
    assert personas.requester.email in request.reason
    with pytest.raises(Exception, match=r"four-eyes"):
        approvals.decide(request=request, actor=bob, approve=True)  # the beneficiary
    with pytest.raises(Exception, match=r"four-eyes|reviewers and admins"):
        approvals.decide(request=request, actor=personas.requester, approve=True)
    approvals.decide(request=request, actor=personas.reviewer, approve=True)
    assert drive(run)[-1] == "succeeded"
    robin.refresh_from_db()
    bobs.refresh_from_db()
    assert bobs.locked is False and robin.locked is True


def test_an_unnamed_colleague_goes_to_a_person_before_anything_runs(personas, model, both_locked):
    model.responses += [triage_reply()]
    ticket, run = open_ticket(personas, "My colleague is locked out", "Can you unlock her?")
    assert drive(run)[-1] == "escalated"
    assert not run.tool_calls.exists() and len(model.requests) == 1
    assert "You asked on behalf of someone else" in public_words(ticket)
    robin, _ = both_locked
    robin.refresh_from_db()
    assert robin.locked


def test_the_offline_model_never_unlocks_the_requester_for_bob(personas, both_locked):
    """The same regression on the real offline model (no script): whatever it proposes."""
    robin, _ = both_locked
    ticket, run = open_ticket(personas, "Please unlock Bob's account", "Bob is locked out.")
    drive(run)
    robin.refresh_from_db()
    assert robin.locked is True
    ticket.refresh_from_db()
    assert ticket.status != "resolved"


# --------------------------------------------------------------------------- recognition


@pytest.mark.parametrize(
    ("text", "who"),
    [
        ("Please unlock Bob's account", "Bob Baker"),
        ("Reset the password for bob@acme.example please", "Bob Baker"),
        ("Can you reset Bob Baker’s password?", "Bob Baker"),
        ("I'm asking on behalf of Bob, he can't sign in", "Bob Baker"),
        ("Mein Kollege kann sich nicht anmelden", "meine kollege"),
        ("Pour ma collègue, son compte est bloqué", "ma collègue"),
        ("Mi compañero no puede entrar en su cuenta", "mi compañero"),
        ("Mijn collega is buitengesloten", "mijn collega"),
        ("A new starter needs a laptop", "a new starter"),
        ("Reset the password of ana@partner.example", "ana@partner.example"),
    ],
)
def test_third_parties_are_recognised(personas, bob, text, who):
    found = third_party.detect(personas.tenant, text, requester_email=personas.requester.email)
    assert found is not None
    assert who.split()[-1] in found.who


@pytest.mark.parametrize(
    "text",
    [
        "I'm locked out of my account",
        "Please unlock my account, I typed the wrong password",
        "Outlook's calendar keeps crashing",
        "Robin's laptop (mine) will not start",  # the requester's own name
        "Thanks, Monday's VPN issue is back",
        "Install Zoom for my meetings",
    ],
)
def test_own_requests_are_not_third_party(personas, bob, text):
    assert (
        third_party.detect(personas.tenant, text, requester_email=personas.requester.email) is None
    )


def test_a_name_from_another_tenant_is_not_looked_up(personas):
    make_user("bobby", personas.other_tenant, Role.REQUESTER, first_name="Bob", last_name="G")
    found = third_party.detect(
        personas.tenant, "Please unlock Bob's account", requester_email=personas.requester.email
    )
    assert found is not None and found.email == ""


def test_the_policy_rule_on_its_own():
    facts = policy.PolicyFacts(
        subject_email="robin@acme.example",
        target_email="robin@acme.example",
        on_behalf_of="Bob",
        beneficiary_email="bob@acme.example",
    )
    assert policy.decide("unlock_account", {}, facts).decision == policy.BLOCK
    for_bob = policy.PolicyFacts(
        subject_email="robin@acme.example",
        target_email="bob@acme.example",
        on_behalf_of="Bob",
        beneficiary_email="bob@acme.example",
    )
    assert policy.decide("unlock_account", {}, for_bob).decision == policy.NEEDS_APPROVAL
    someone_else = policy.PolicyFacts(
        subject_email="robin@acme.example",
        target_email="eve@acme.example",
        on_behalf_of="Bob",
        beneficiary_email="bob@acme.example",
    )
    assert policy.decide("unlock_account", {}, someone_else).decision == policy.BLOCK
    own = policy.PolicyFacts(subject_email="robin@acme.example", target_email="robin@acme.example")
    assert policy.decide("unlock_account", {}, own).decision == policy.ALLOW
