"""The knowledge-manager blueprint (issue 13): it finds escalated or reopened tickets the
knowledge base could not answer, drafts an article from each resolution, and a person
publishes it (which indexes it) or rejects it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from agents import engine
from agents.models import RunStatus
from incidents import services
from incidents.models import Status
from knowledge import drafts, retrieval
from knowledge.models import ArticleDraft, DraftStatus, Source

BADGE = "Badge reader at the loading dock rejects every card"
BADGE_FIX = (
    "The reader's controller lost its site code after the power cut. Re-entered site code 41 "
    "in the access-control console and power-cycled the reader; cards work again."
)


def escalate_then_resolve(ticket, capture, note):
    with capture(execute=True):
        services.ticket_transition(ticket=ticket, actor=None, status=Status.ESCALATED)
        return services.ticket_transition(
            ticket=ticket, actor=None, status=Status.RESOLVED, note=note
        )


def run_manager(tenant, actor, goal=""):
    bp = __import__("agents.blueprints", fromlist=["get"]).get("knowledge_manager")
    start = bp.start_input(tenant=tenant, actor=actor, goal=goal, subject_type="", subject_id="")
    run = engine.start_run(tenant=tenant, blueprint="knowledge_manager", actor=actor, **start)
    for _ in range(5):
        if engine.advance(run.pk) not in ("advanced",):
            break
    run.refresh_from_db()
    return run


@pytest.fixture
def gap(personas, make_ticket, django_capture_on_commit_callbacks):
    from knowledge.services import ingest_text

    with django_capture_on_commit_callbacks(execute=True):
        ingest_text(
            tenant=personas.tenant,
            kind="runbook",
            title="VPN timeouts",
            content="# VPN timeouts\n\nPush the current VPN profile.\n",
        )
    ticket = make_ticket(personas.tenant, personas.requester, title=BADGE, description=BADGE)
    return escalate_then_resolve(ticket, django_capture_on_commit_callbacks, BADGE_FIX)


def test_an_escalated_ticket_without_knowledge_becomes_a_draft_and_publishing_indexes_it(
    personas, gap, make_ticket, django_capture_on_commit_callbacks
):
    tenant = personas.tenant
    # Escalated too, but the knowledge base answers it: not a gap.
    vpn = make_ticket(tenant, personas.requester, title="VPN timeouts", description="VPN timeouts")
    escalate_then_resolve(vpn, django_capture_on_commit_callbacks, "Pushed the VPN profile.")
    # Resolved without being escalated or reopened: not a gap either.
    plain = make_ticket(tenant, personas.requester, title="Monitor flickers")
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=plain, actor=None, status=Status.RESOLVED, note="Cable")

    run = run_manager(tenant, personas.agent)
    assert run.status == RunStatus.SUCCEEDED
    draft = ArticleDraft.objects.for_tenant(tenant).get()
    assert draft.ref == gap.number and draft.status == DraftStatus.DRAFT
    assert "site code 41" in draft.content and gap.number in draft.content
    assert draft.provenance == {
        "ticket": gap.number,
        "run": run.run_id,
        "reason": "escalated to a person",
    }
    assert not ArticleDraft.objects.for_tenant(personas.other_tenant).exists()
    # Not in the knowledge base until a person publishes it.
    assert not retrieval.search(tenant, "badge reader site code", kinds=["guide"])

    with django_capture_on_commit_callbacks(execute=True):
        drafts.draft_publish(draft=draft, actor=personas.agent)
    draft.refresh_from_db()
    assert draft.status == DraftStatus.PUBLISHED and draft.reviewed_by == personas.agent
    source = Source.objects.for_tenant(tenant).get(pk=draft.source_id)
    assert source.kind == "guide" and source.provenance["approver"] == personas.agent.username
    hits = retrieval.search(tenant, "badge reader rejects cards site code")
    assert hits and hits[0].source_id == source.pk
    with pytest.raises(ValidationError, match="published"):
        drafts.draft_publish(draft=draft, actor=personas.agent)

    # The gap is filled: the next run drafts nothing, and never the same ticket twice.
    again = run_manager(tenant, personas.agent)
    assert again.status == RunStatus.SUCCEEDED
    assert ArticleDraft.objects.for_tenant(tenant).count() == 1


def test_a_reopened_ticket_is_a_gap_and_a_rejected_draft_is_not_proposed_again(
    personas, make_ticket, django_capture_on_commit_callbacks
):
    tenant = personas.tenant
    ticket = make_ticket(tenant, personas.requester, title=BADGE, description=BADGE)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=None, status=Status.RESOLVED, note="Hm")
        services.ticket_transition(ticket=ticket, actor=None, status=Status.IN_PROGRESS)
        services.ticket_transition(
            ticket=ticket, actor=None, status=Status.RESOLVED, note=BADGE_FIX
        )
    run_manager(tenant, personas.agent)
    draft = ArticleDraft.objects.for_tenant(tenant).get()
    assert draft.provenance["reason"] == "reopened by its requester"
    drafts.draft_reject(draft=draft, actor=personas.agent, reason="one-off")
    run_manager(tenant, personas.agent)
    assert ArticleDraft.objects.for_tenant(tenant).count() == 1
    assert not Source.objects.for_tenant(tenant).filter(origin__startswith="draft:").exists()


def test_the_manager_refuses_a_nonsense_window(personas):
    bp = __import__("agents.blueprints", fromlist=["get"]).get("knowledge_manager")
    for goal in ("forever", "0", "9999", "7; drop table"):
        with pytest.raises(ValidationError):
            bp.start_input(
                tenant=personas.tenant, actor=None, goal=goal, subject_type="", subject_id=""
            )


def test_review_page_lists_edits_and_publishes_for_knowledge_writers_only(
    personas, gap, client_for, django_capture_on_commit_callbacks
):
    run_manager(personas.tenant, personas.agent)
    draft = ArticleDraft.objects.for_tenant(personas.tenant).get()
    listing = reverse("knowledge:draft-list")
    page = reverse("knowledge:draft-detail", args=[draft.pk])
    staff = client_for(personas.agent)
    assert BADGE in staff.get(listing).content.decode()
    assert staff.get(page).status_code == 200
    # A requester may not review; another tenant's staff do not even see it.
    assert client_for(personas.requester).get(page).status_code == 403
    assert client_for(personas.outsider).get(page).status_code == 404
    staff = client_for(personas.agent)  # one test client: signed in as the agent again
    assert staff.get(reverse("knowledge:draft-detail", args=[10**9])).status_code == 404
    bad = staff.post(page, {"action": "publish", "title": "", "content": "x", "kind": "guide"})
    assert bad.status_code == 400
    nul = staff.post(
        page, {"action": "publish", "title": "T", "content": "a\x00b", "kind": "guide"}
    )
    assert nul.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        done = staff.post(
            page,
            {
                "action": "publish",
                "title": "Badge readers",
                "content": draft.content,
                "kind": "runbook",
            },
        )
    assert done.status_code == 302
    draft.refresh_from_db()
    assert draft.status == DraftStatus.PUBLISHED
    assert (
        Source.objects.for_tenant(personas.tenant).get(pk=draft.source_id).title == "Badge readers"
    )
