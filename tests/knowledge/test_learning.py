"""The learning loop: resolved tickets become history, approved or well-rated resolutions
become golden paths, and repeated successful resolutions become playbook suggestions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents import engine
from agents.connectors.sandbox.models import DirectoryUser
from approvals import services as approvals
from approvals.models import ApprovalRequest
from incidents import services
from incidents.models import Status
from knowledge import history, learning
from knowledge.models import LabelledExample, Source, SourceKind
from tests.agents.scripted import ScriptedBackend, tool_reply, triage_reply

LOCKED = [
    "I am locked out of my account after too many password attempts",
    "Locked out of my account after entering the wrong password too many times",
    "My account is locked out after too many password attempts this morning",
    "Account locked out: too many wrong password attempts, cannot sign in",
]


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    return backend


def drive(run, limit=20):
    outcome = None
    for _ in range(limit):
        outcome = engine.advance(run.pk)
        if outcome not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return outcome


def golden(tenant):
    return Source.objects.for_tenant(tenant).filter(kind=SourceKind.GOLDEN_PATH)


def resolve(ticket, actor, capture, note="Unlocked the account in the directory."):
    with capture(execute=True):
        return services.ticket_transition(
            ticket=ticket, actor=actor, status=Status.RESOLVED, note=note
        )


def test_an_approved_resolution_becomes_a_golden_path(
    personas, model, django_capture_on_commit_callbacks
):
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin"
    )
    model.responses += [
        triage_reply(priority="high"),
        tool_reply(
            (
                "grant_admin_access",
                {"user_email": personas.requester.email, "reason": "Install dev tools"},
            )
        ),
    ]
    ticket = services.ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="Need admin rights on my workstation",
        description="To install the SDK for the new project.",
        start_agent=False,
    )
    run = services.ticket_start_agent(ticket=ticket, actor=personas.requester)
    assert drive(run) == "parked"
    request = ApprovalRequest.objects.for_tenant(personas.tenant).get()
    approvals.decide(request=request, actor=personas.reviewer, approve=True, comment="ok")
    with django_capture_on_commit_callbacks(execute=True):
        assert drive(run) == "succeeded"
    ticket.refresh_from_db()
    assert ticket.status == "resolved"

    source = golden(personas.tenant).get()
    assert source.external_key == f"golden:{ticket.number}"
    assert source.provenance["ticket"] == ticket.number
    assert source.provenance["run"] == run.run_id
    assert source.provenance["approver"] == personas.reviewer.username
    assert source.provenance["tools"] == ["grant_admin_access"]
    document = source.documents.get(is_current=True)
    assert "grant_admin_access" in document.content and "riley" in document.content
    # The resolved ticket is history too: a labelled example and a historical-ticket source.
    example = LabelledExample.objects.for_tenant(personas.tenant).get(ref=ticket.number)
    assert (example.category, example.priority, example.resolution_path) == (
        "access",
        "high",
        "grant_admin_access",
    )
    assert (
        Source.objects.for_tenant(personas.tenant)
        .filter(kind=SourceKind.HISTORICAL_TICKET, external_key=f"ticket:{ticket.number}")
        .exists()
    )
    # Nothing of it reaches the other tenant.
    assert not Source.objects.for_tenant(personas.other_tenant).exists()


def test_a_resolution_without_approval_is_history_but_not_golden(
    personas, make_ticket, django_capture_on_commit_callbacks
):
    ticket = make_ticket(personas.tenant, personas.requester)
    resolve(ticket, personas.agent, django_capture_on_commit_callbacks)
    assert LabelledExample.objects.for_tenant(personas.tenant).filter(ref=ticket.number).exists()
    assert not golden(personas.tenant).exists()


def test_csat_5_makes_a_golden_path(personas, make_ticket, django_capture_on_commit_callbacks):
    ticket = make_ticket(personas.tenant, personas.requester)
    ticket = resolve(ticket, personas.agent, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_rate(
            ticket=ticket, actor=personas.requester, score=5, comment="Fixed in minutes"
        )
    source = golden(personas.tenant).get()
    assert source.provenance["csat"] == 5
    assert source.provenance["ticket"] == ticket.number
    assert source.provenance["csat_comment"] == "Fixed in minutes"
    assert "approver" not in source.provenance  # nobody approved anything here
    assert "Unlocked the account" in source.documents.get(is_current=True).content


def test_csat_2_makes_no_golden_path_and_marks_the_example(
    personas, make_ticket, django_capture_on_commit_callbacks
):
    ticket = make_ticket(personas.tenant, personas.requester)
    ticket = resolve(ticket, personas.agent, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_rate(ticket=ticket, actor=personas.requester, score=2)
    assert not golden(personas.tenant).exists()
    example = LabelledExample.objects.for_tenant(personas.tenant).get(ref=ticket.number)
    assert example.resolved_ok is False  # not a way to repeat


def test_provenance_partial_shows_where_a_golden_path_came_from(personas, client_for):
    from django.template.loader import render_to_string

    source = Source(
        tenant=personas.tenant,
        kind=SourceKind.GOLDEN_PATH,
        title="Golden path: VPN",
        provenance={
            "ticket": "REQ0000042",
            "run": "run-abc",
            "approver": "riley",
            "csat": 5,
            "tools": ["push_vpn_config"],
            "reason": "a reviewer approved the resolution",
        },
    )
    html = render_to_string("knowledge/_provenance.html", {"source": source})
    assert "REQ0000042" in html and "riley" in html and "5/5" in html
    assert "push_vpn_config" in html and reverse("agents:run-detail", args=["run-abc"]) in html


def path_rows(texts, path, prefix):
    return [
        {"ref": f"{prefix}{i}", "text": t, "category": "access", "resolution_path": path}
        for i, t in enumerate(texts)
    ]


def test_playbook_is_suggested_at_three_same_path_resolutions(personas):
    tenant = personas.tenant
    path = learning.join_path(["unlock_account", "reset_password"])
    history.index_examples(tenant, path_rows(LOCKED[:2], path, "A"))
    assert learning.suggest_playbook(tenant, LOCKED[3]) is None  # two are not a pattern
    history.index_examples(tenant, path_rows(LOCKED[2:3], path, "B"))
    playbook = learning.suggest_playbook(tenant, LOCKED[3])
    assert playbook is not None
    assert playbook.steps == ["unlock_account", "reset_password"]
    assert playbook.support == 3
    assert {n.ref for n in playbook.evidence} == {"A0", "A1", "B0"}


def test_unsuccessful_or_other_tenant_resolutions_are_no_evidence(personas):
    acme, globex = personas.tenant, personas.other_tenant
    path = "unlock_account"
    history.index_examples(globex, path_rows(LOCKED[:3], path, "G"))
    history.index_examples(acme, path_rows(LOCKED[:3], path, "A"))
    history.set_resolved_ok(acme, "A0", False)
    assert learning.suggest_playbook(acme, LOCKED[3]) is None
    assert learning.suggest_playbook(globex, LOCKED[3]) is not None


def test_ticket_page_shows_similar_tickets_and_the_playbook_to_staff_only(
    personas, make_ticket, client_for
):
    tenant = personas.tenant
    # Three past tickets of robin, one of rosa, resolved the same way.
    past = [make_ticket(tenant, personas.requester, title=t, description="") for t in LOCKED[:3]]
    rosas = make_ticket(tenant, personas.requester2, title=LOCKED[3], description="")
    history.index_examples(
        tenant,
        [
            {
                "ref": t.number,
                "text": t.title,
                "category": "access",
                "resolution_path": "unlock_account",
            }
            for t in [*past, rosas]
        ],
    )
    current = make_ticket(
        tenant, personas.requester, title="Locked out of my account after too many attempts"
    )
    url = reverse("incidents:ticket-similar", args=[current.number])

    page = client_for(personas.agent).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Suggested playbook" in html and "unlock_account" in html
    assert all(t.number in html for t in [*past, rosas])
    assert current.number not in html  # never itself

    robin = client_for(personas.requester).get(url).content.decode()
    assert all(t.number in robin for t in past)
    assert rosas.number not in robin  # another requester's ticket stays hidden
    assert "Suggested playbook" not in robin  # agent tools are for staff

    assert client_for(personas.requester2).get(url).status_code == 404  # not rosa's ticket
    assert client_for(personas.outsider).get(url).status_code in (403, 404)


def test_a_lowered_rating_retires_the_golden_path_and_a_new_5_brings_it_back(
    personas, make_ticket, django_capture_on_commit_callbacks
):
    from knowledge import retrieval
    from knowledge.models import Chunk

    ticket = make_ticket(personas.tenant, personas.requester, title="Locked out after MFA reset")
    ticket = resolve(ticket, personas.agent, django_capture_on_commit_callbacks)

    def rate(score):
        with django_capture_on_commit_callbacks(execute=True):
            services.ticket_rate(ticket=ticket, actor=personas.requester, score=score)
        return golden(personas.tenant).get()

    def found():
        hits = retrieval.search(personas.tenant, "Unlocked the account in the directory", k=10)
        return [h.source_title for h in hits if h.source_title.startswith("Golden path")]

    source = rate(5)
    assert source.is_active and found()
    source = rate(3)  # nobody else vouched for it: retired
    assert not source.is_active
    assert source.provenance["retired"] == "the requester rated it 3/5"
    assert not Chunk.objects.for_tenant(personas.tenant).filter(source=source).exists()
    assert found() == []
    assert source.documents.count() == 1  # its versions stay for the record
    source = rate(5)  # vouched for again: back, indexed again
    assert source.is_active and "retired" not in source.provenance
    assert Chunk.objects.for_tenant(personas.tenant).filter(source=source).exists()
    assert found()


def test_an_approved_golden_path_survives_a_3_but_not_a_1(personas, monkeypatch):
    from incidents import learning as ticket_learning

    ticket = services.ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="Admin rights for the SDK",
        description="To install the SDK.",
        start_agent=False,
    )
    learning.promote_golden_path(
        tenant=personas.tenant,
        ref=ticket.number,
        title=ticket.title,
        problem="SDK install needs admin rights",
        resolution="Granted temporary admin access.",
        provenance={"ticket": ticket.number, "approver": "riley"},
    )
    approved = ticket_learning.AgentResolution(run=None, tools=[], approval=object())
    monkeypatch.setattr(ticket_learning, "agent_resolution", lambda t: approved)
    ticket.csat_score = 3
    ticket_learning.learn_from_rating(ticket)
    assert golden(personas.tenant).get().is_active  # the reviewer's approval still stands
    ticket.csat_score = 1
    ticket_learning.learn_from_rating(ticket)
    assert not golden(personas.tenant).get().is_active  # the requester says it did not work


def test_the_learning_task_reads_its_ticket_with_tenant_and_queue_in_one_statement(
    personas, django_assert_num_queries
):
    from incidents import tasks as incident_tasks
    from incidents.models import Queue

    queue = Queue.objects.create(tenant=personas.tenant, name="Identity")
    ticket = services.ticket_create(
        tenant=personas.tenant, actor=personas.agent, title="Locked out"
    )
    type(ticket).objects.for_tenant(personas.tenant).filter(pk=ticket.pk).update(queue=queue)
    with django_assert_num_queries(1):
        loaded = incident_tasks._ticket(personas.tenant.pk, ticket.number)
        assert loaded.pk == ticket.pk
        assert (loaded.tenant.slug, loaded.queue.name) == (personas.tenant.slug, "Identity")
    # Another tenant's id, or a number that is not there: nothing.
    assert incident_tasks._ticket(personas.other_tenant.pk, ticket.number) is None
    assert incident_tasks._ticket(personas.tenant.pk, "INC99999999") is None


def test_a_resolved_ticket_is_indexed_by_its_learning_task_itself(
    personas, make_ticket, monkeypatch, django_capture_on_commit_callbacks
):
    """The past ticket's text is chunked and embedded in the learning task, not in a task of
    its own: no index task is queued, and the passage is searchable when the task ends."""
    from knowledge import tasks as knowledge_tasks
    from knowledge.models import Chunk, IndexStatus

    queued = []
    monkeypatch.setattr(knowledge_tasks.index_document, "delay", queued.append)
    ticket = make_ticket(personas.tenant, personas.requester)
    resolve(ticket, personas.agent, django_capture_on_commit_callbacks)
    source = Source.objects.for_tenant(personas.tenant).get(
        kind=SourceKind.HISTORICAL_TICKET, external_key=f"ticket:{ticket.number}"
    )
    document = source.documents.get(is_current=True)
    assert document.status == IndexStatus.READY and document.chunks_total >= 1
    assert Chunk.objects.for_tenant(personas.tenant).filter(document=document).exists()
    assert queued == []
