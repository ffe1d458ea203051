"""Requester notifications: a status change, a public reply, a request to confirm reach the
requester in the console (the bell) and by e-mail, several changes in one burst as one e-mail;
never their own actions or internal notes; a per-user preference (console only) in their
profile, per workspace."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from agentops.models import Notification
from incidents import services
from incidents.models import Status
from incidents.portal import notify
from incidents.portal.models import EmailChoice, RequesterUpdate


@pytest.fixture
def ticket(personas, make_ticket):
    return make_ticket(personas.tenant, personas.requester, title="VPN drops every hour")


def bell(personas, user=None):
    return list(
        Notification.objects.for_tenant(personas.tenant)
        .filter(user=user or personas.requester)
        .order_by("id")
    )


def test_a_burst_of_changes_is_one_email_and_each_rings_the_bell(
    personas, ticket, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=None, status=Status.TRIAGED)
        services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.IN_PROGRESS)
        services.ticket_comment(ticket=ticket, actor=personas.agent, body="Try the new profile.")
        notify.on_confirmation_needed(ticket=ticket, text="Updating the profile fixes it [1].")
    titles = [n.title for n in bell(personas)]
    assert titles == [
        f"{ticket.number} is now: Received: it is in the right hands",
        f"{ticket.number} is now: Being worked on",
        f"New reply on {ticket.number}",
        f"{ticket.number}: did this solve it?",
    ]
    [message] = mail.outbox
    assert message.to == [personas.requester.email]
    assert message.subject == f"[AgentOps] 4 updates on {ticket.number}: VPN drops every hour"
    body = message.body
    for words in (
        "Being worked on",
        "Try the new profile.",
        "did this solve it",
        f"/tickets/{ticket.number}/",
    ):
        assert words.lower() in body.lower(), words
    assert "/portal/notifications/" in body  # where to change it
    assert (
        not RequesterUpdate.objects.for_tenant(personas.tenant)
        .filter(emailed_at__isnull=True)
        .exists()
    )


def test_own_actions_and_internal_notes_are_no_news(
    personas, ticket, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_comment(ticket=ticket, actor=personas.requester, body="Any news?")
        services.ticket_comment(
            ticket=ticket, actor=personas.agent, body="Check FW", is_internal=True
        )
        services.ticket_transition(ticket=ticket, actor=personas.requester, status=Status.CANCELLED)
    assert bell(personas) == [] and mail.outbox == []


def test_console_only_preference_keeps_the_bell_and_stops_email(
    personas, ticket, django_capture_on_commit_callbacks
):
    notify.preference_set(tenant=personas.tenant, user=personas.requester, email=EmailChoice.OFF)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=None, status=Status.TRIAGED)
    assert len(bell(personas)) == 1 and mail.outbox == []


def test_the_next_burst_is_a_new_email(personas, ticket, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=None, status=Status.TRIAGED)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(
            ticket=ticket, actor=personas.agent, status=Status.RESOLVED, note="Profile updated."
        )
    assert len(mail.outbox) == 2
    assert (
        mail.outbox[1].subject == f"[AgentOps] {ticket.number} is now: Resolved: tell us how we did"
    )
    assert "Profile updated." in mail.outbox[1].body


def test_requests_without_an_account_are_not_an_error(
    personas, make_ticket, django_capture_on_commit_callbacks
):
    ticket = make_ticket(personas.tenant, None, requester_email="visitor@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.TRIAGED)
    assert mail.outbox == []


def test_preference_page_is_per_user_and_workspace(personas, client_for):
    client = client_for(personas.requester)
    page = client.get("/portal/notifications/")
    assert page.status_code == 200 and "Only in the console" in page.content.decode()
    assert client.post("/portal/notifications/", {"email": "sometimes"}).status_code == 400
    assert client.post("/portal/notifications/", {}).status_code == 400
    response = client.post("/portal/notifications/", {"email": "off"})
    assert response.status_code == 302
    assert notify.preference_for(personas.tenant, personas.requester) == EmailChoice.OFF
    assert notify.preference_for(personas.tenant, personas.requester2) == EmailChoice.GROUPED
    assert notify.preference_for(personas.other_tenant, personas.requester) == EmailChoice.GROUPED
    checked = client.get("/portal/notifications/").content.decode()
    assert re.search(r'<input[^>]*value="off"[^>]*checked', checked)
    assert not re.search(r'<input[^>]*value="grouped"[^>]*checked', checked)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(personas.requester)
    assert strict.post("/portal/notifications/", {"email": "grouped"}).status_code == 403
    assert Client().get("/portal/notifications/").status_code == 302  # sign in first


def test_a_reply_that_asks_for_confirmation_is_said_once_by_email(
    personas, ticket, django_capture_on_commit_callbacks
):
    answer = "Open Settings, then VPN, and choose profile 3 [1]."
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_comment(ticket=ticket, actor=None, body=answer, author_label="Service desk")
        notify.on_confirmation_needed(ticket=ticket, text=answer)
    [message] = mail.outbox
    assert message.body.count("choose profile 3") == 1
    assert "Did this solve it?" in message.body
    assert message.subject == f"[AgentOps] {ticket.number}: did this solve it?"


def test_an_update_is_stored_in_one_statement_and_only_for_a_member(
    personas, ticket, django_assert_num_queries
):
    """The bell, the e-mail line and the burst check are one round trip (an agent's step
    tells the requester several things); someone who left the workspace gets nothing."""
    from agentops.models import Membership

    ticket.status = Status.TRIAGED
    with django_assert_num_queries(1):
        notify.on_status_changed(ticket=ticket, old="new", new="triaged", actor=None)
    assert len(bell(personas)) == 1
    assert RequesterUpdate.objects.for_tenant(personas.tenant).filter(ticket=ticket).count() == 1
    Membership.objects.filter(tenant=personas.tenant, user=personas.requester).delete()
    notify.on_status_changed(ticket=ticket, old="triaged", new="in_progress", actor=None)
    assert len(bell(personas)) == 1


def test_a_grouped_change_rings_the_bell_once_with_the_status_first(
    personas, ticket, django_capture_on_commit_callbacks
):
    """The agent resolves a ticket and says how: one notification and one e-mail line, the
    status change's headline, then the words; a block that raises tells nothing."""
    services.ticket_transition(ticket=ticket, actor=None, status=Status.TRIAGED)
    before = len(bell(personas))
    ticket.status = Status.RESOLVED
    ticket.resolution_notes = "Unlocked the account."
    with django_capture_on_commit_callbacks(execute=True), notify.grouped():
        services.ticket_comment(
            ticket=ticket, actor=None, body="We unlocked it.", author_label="Agent"
        )
        with notify.grouped():  # nested: joins the outer block
            notify.on_status_changed(
                ticket=ticket, old=Status.TRIAGED, new=Status.RESOLVED, actor=None
            )
        assert len(bell(personas)) == before  # held until the block ends
    new = bell(personas)[before:]
    assert [n.title for n in new] == [f"{ticket.number} is now: Resolved: tell us how we did"]
    body = new[0].body
    assert body.index("is now: Resolved") < body.index("Agent wrote:\nWe unlocked it.")
    lines = RequesterUpdate.objects.for_tenant(personas.tenant).filter(kind="status")
    assert lines.filter(text=body).count() == 1
    with pytest.raises(RuntimeError), notify.grouped():
        services.ticket_comment(ticket=ticket, actor=None, body="Lost?", author_label="Agent")
        raise RuntimeError("the step failed")
    assert len(bell(personas)) == before + 1


def _age_updates(personas, by):
    from django.utils import timezone

    RequesterUpdate.objects.for_tenant(personas.tenant).update(created_at=timezone.now() - by)


def test_a_digest_whose_task_was_lost_is_sent_by_the_beat(
    personas, ticket, monkeypatch, django_capture_on_commit_callbacks
):
    """The broker is down when a burst's first update commits: the change stands (no error
    for the step or request that made it), the later updates of the burst ride along as
    usual, and the beat sends the one e-mail once the digest is overdue; then nothing more."""
    from datetime import timedelta

    from django.conf import settings

    from incidents.portal import tasks

    def broker_down(*args):
        raise ConnectionError("Error 111 connecting to the broker")

    monkeypatch.setattr(notify, "_schedule", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_transition(ticket=ticket, actor=None, status=Status.TRIAGED)
        services.ticket_comment(ticket=ticket, actor=personas.agent, body="Try the new profile.")
    ticket.refresh_from_db()
    assert ticket.status == Status.TRIAGED and mail.outbox == []
    unsent = RequesterUpdate.objects.for_tenant(personas.tenant).filter(emailed_at__isnull=True)
    assert unsent.count() == 2

    assert tasks.send_overdue_digests() == 0  # not overdue yet: its task may still come
    _age_updates(
        personas, timedelta(seconds=settings.REQUESTER_DIGEST_SECONDS) + tasks.DIGEST_GRACE
    )
    assert tasks.send_overdue_digests() == 1
    [message] = mail.outbox
    assert message.to == [personas.requester.email]
    assert message.subject == f"[AgentOps] 2 updates on {ticket.number}: VPN drops every hour"
    assert not unsent.exists()
    assert tasks.send_overdue_digests() == 0 and len(mail.outbox) == 1
    beat = settings.CELERY_BEAT_SCHEDULE["requester-digests-overdue"]
    assert beat["task"] == tasks.send_overdue_digests.name


def test_the_beat_leaves_requesters_who_can_no_longer_get_mail(
    personas, ticket, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from incidents.portal import tasks

    monkeypatch.setattr(notify, "_schedule", lambda *args: None)  # the task never came
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_comment(ticket=ticket, actor=personas.agent, body="Try the new profile.")
    _age_updates(personas, timedelta(days=1))
    requester = personas.requester
    requester.is_active = False
    requester.save(update_fields=["is_active"])
    assert tasks.send_overdue_digests() == 0
    requester.is_active, requester.email = True, ""
    requester.save(update_fields=["is_active", "email"])
    assert tasks.send_overdue_digests() == 0
    assert mail.outbox == []
