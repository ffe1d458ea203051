"""The sentiment monitor blueprint: a requester's frustrated words (in their language) or a
ticket reopened again and again flag the ticket for a person, with the evidence, and propose a
priority raise that only a person's approval applies; calm words, staff words and internal
notes start nothing."""

from __future__ import annotations

import pytest

from agents.models import Run
from approvals import services as approvals
from approvals.models import ApprovalRequest
from incidents import services
from incidents.blueprints import sentiment
from incidents.blueprints.sentiment_monitor import NAME
from incidents.models import Comment, Priority, Status, Ticket

FRUSTRATED = [
    ("en", "This is the third time I ask. Still not working and nobody answers!!", "third time"),
    ("de", "Es funktioniert immer noch nicht. Wie oft noch? Unzumutbar.", "immer noch nicht"),
    ("fr", "Ça ne marche toujours pas, c'est inadmissible.", "ne marche toujours pas"),
    ("es", "Sigue sin funcionar, estoy harto de esperar.", "sigue sin funcionar"),
    ("it", "Ancora non funziona, è inaccettabile.", "ancora non funziona"),
    ("pt", "Ainda não funciona, isto é inaceitável.", "ainda nao funciona"),
    ("nl", "Werkt nog steeds niet, echt belachelijk.", "werkt nog steeds niet"),
]
CALM = [
    "Thanks, it works again!",
    "Danke, es funktioniert wieder.",
    "Merci, ça marche maintenant.",
    "Gracias, ya funciona de nuevo.",
    "Grazie, adesso funziona.",
    "Obrigado, agora funciona.",
    "Bedankt, het werkt weer.",
]


@pytest.fixture
def ticket(personas, make_ticket, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ticket = make_ticket(personas.tenant, personas.requester, title="VPN drops every hour")
        services.ticket_comment(ticket=ticket, actor=personas.agent, body="We are looking.")
    return ticket


def comment(ticket, user, body, capture, **extra):
    with capture(execute=True):
        services.ticket_comment(ticket=ticket, actor=user, body=body, **extra)


def monitor_runs(ticket):
    return list(
        Run.objects.for_tenant(ticket.tenant)
        .filter(agent_name=NAME, subject_id=ticket.number)
        .order_by("id")
    )


def pending(ticket):
    return ApprovalRequest.objects.for_tenant(ticket.tenant).filter(
        status=ApprovalRequest.Status.PENDING
    )


@pytest.mark.parametrize("lang,text,phrase", FRUSTRATED, ids=[f[0] for f in FRUSTRATED])
def test_frustrated_words_flag_the_ticket_and_a_person_accepts_the_raise(
    personas, ticket, django_capture_on_commit_callbacks, lang, text, phrase
):
    comment(ticket, personas.requester, text, django_capture_on_commit_callbacks)
    [run] = monitor_runs(ticket)
    assert run.status == "waiting_approval"
    [request] = pending(ticket)
    assert request.arguments["priority"] == Priority.HIGH
    found = {(p["lang"], p["phrase"]) for p in request.evidence["phrases"]}
    assert (lang, phrase) in found
    note = Comment.objects.for_tenant(personas.tenant).filter(ticket=ticket, is_internal=True)
    assert note.filter(body__startswith="Sentiment monitor:").exists()
    # Still medium until a person says yes.
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=ticket.pk).priority == Priority.MEDIUM

    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(request=request, actor=personas.reviewer, approve=True)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=ticket.pk).priority == Priority.HIGH


@pytest.mark.parametrize("text", CALM)
def test_calm_words_start_nothing(personas, ticket, django_capture_on_commit_callbacks, text):
    comment(ticket, personas.requester, text, django_capture_on_commit_callbacks)
    assert monitor_runs(ticket) == [] and not pending(ticket).exists()


def test_staff_words_and_internal_notes_start_nothing(
    personas, ticket, django_capture_on_commit_callbacks
):
    angry = "Still not working, unacceptable, how many times!!"
    comment(ticket, personas.agent, angry, django_capture_on_commit_callbacks)
    comment(ticket, personas.agent, angry, django_capture_on_commit_callbacks, is_internal=True)
    assert monitor_runs(ticket) == []


def test_a_ticket_reopened_twice_is_flagged_with_the_count(
    personas, ticket, django_capture_on_commit_callbacks
):
    def move(*statuses):
        for status in statuses:
            with django_capture_on_commit_callbacks(execute=True):
                services.ticket_transition(
                    ticket=ticket, actor=personas.agent, status=status, note="Profile updated."
                )

    move(Status.TRIAGED, Status.IN_PROGRESS, Status.RESOLVED, Status.IN_PROGRESS)
    [first] = monitor_runs(ticket)
    assert first.status == "succeeded" and not pending(ticket).exists()  # once is no pattern
    move(Status.RESOLVED, Status.IN_PROGRESS)
    assert len(monitor_runs(ticket)) == 2
    [request] = pending(ticket)
    assert request.evidence["reopen_count"] == 2 and request.evidence["phrases"] == []


def test_a_person_may_keep_the_priority(personas, ticket, django_capture_on_commit_callbacks):
    comment(
        ticket,
        personas.requester,
        "Still broken. This is ridiculous.",
        django_capture_on_commit_callbacks,
    )
    [request] = pending(ticket)
    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(request=request, actor=personas.reviewer, approve=False, comment="no")
    [run] = monitor_runs(ticket)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert Ticket.objects.for_tenant(personas.tenant).get(pk=ticket.pk).priority == Priority.MEDIUM


def test_one_monitor_at_a_time_per_ticket(personas, ticket, django_capture_on_commit_callbacks):
    comment(
        ticket,
        personas.requester,
        "Still not working, unacceptable.",
        django_capture_on_commit_callbacks,
    )
    comment(
        ticket, personas.requester, "Hello?? Nobody answers!!", django_capture_on_commit_callbacks
    )
    assert len(monitor_runs(ticket)) == 1 and pending(ticket).count() == 1


def test_the_detector_ignores_case_and_accents_and_quotes_the_words():
    found = sentiment.assess(["ÇA NE MARCHE TOUJOURS PAS, INADMISSIBLE"])
    assert {p["phrase"] for p in found.phrases} == {"ne marche toujours pas", "inadmissible"}
    assert "MARCHE TOUJOURS PAS" in found.phrases[0]["quote"]
    assert len(found.shouting) >= 2 and found.flagged
    # A phrase inside a word is no phrase ("harto" in "chartoom").
    assert sentiment.assess(["The chartoom dashboard"]).phrases == []
    assert not sentiment.assess(["still not working"]).flagged  # one phrase alone: no pattern
    assert sentiment.assess(["still not working"], reopen_count=1).flagged
