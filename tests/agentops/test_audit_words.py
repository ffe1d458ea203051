"""Audit events in words: no raw codes, dicts, None or True on the history and audit pages,
and a requester's history without internals."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from agentops.audit_words import change_words, describe, value_words
from agentops.models import AuditEvent
from incidents import services
from incidents.models import Status

RAW = re.compile(r"ticket\.\w+|\{'|'from'|\bNone\b|\bTrue\b|\bFalse\b|in_progress")


class _Event:
    def __init__(self, action, changes, actor_label="alex", target_type="ticket", target_id=""):
        self.action, self.changes, self.actor_label = action, changes, actor_label
        self.target_type, self.target_id = target_type, target_id


def test_values_and_changes_read_as_words(db):
    assert value_words(None) == "none" and value_words(True) == "yes" and value_words(False) == "no"
    assert value_words("in_progress", "status") == "In progress"
    assert value_words(0.8500) == "0.85" and value_words(["vpn", "mail"]) == "vpn, mail"
    assert change_words("status", {"from": "triaged", "to": "escalated"}) == (
        "status from Triaged to Escalated"
    )
    assert change_words("queue", {"from": None, "to": "Network"}) == "queue set to Network"
    assert change_words("assignee", {"from": "alex", "to": None}) == "assignee cleared (was alex)"
    said = describe(_Event("ticket.status_changed", {"status": {"from": "new", "to": "resolved"}}))
    assert said.sentence == "changed the status from New to Resolved" and said.changes == []
    # An action nobody described still reads as words.
    assert describe(_Event("widget.was_frobbed", {})).sentence == "widget: was frobbed"
    assert describe(_Event("x.y", {}, actor_label="system")).actor == "AgentOps"


@pytest.fixture
def lived(personas, make_ticket):
    ticket = make_ticket(personas.tenant, personas.requester, title="Laptop will not boot")
    services.ticket_assign(ticket=ticket, actor=personas.agent, assignee=personas.agent)
    services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.IN_PROGRESS)
    services.ticket_transition(
        ticket=ticket, actor=personas.agent, status=Status.RESOLVED, note="Replaced the disk."
    )
    return ticket


def _history(client, ticket) -> str:
    html = client.get(reverse("incidents:ticket-detail", args=[ticket.number])).content.decode()
    return html[html.index('id="history"') : html.index("</ol>", html.index('id="history"'))]


def test_staff_history_is_sentences(personas, client_for, lived):
    history = _history(client_for(personas.agent), lived)
    assert "changed the status from In progress to Resolved" in history
    assert "alex" in history and "changed the assignee" in history
    assert not RAW.search(history), RAW.search(history)


def test_requester_history_has_no_internals(personas, client_for, lived):
    history = _history(client_for(personas.requester), lived)
    assert "You</strong> opened the ticket" in history
    assert "The service desk</strong> changed the status from In progress to Resolved" in history
    assert "assignee" not in history and "alex" not in history
    assert not RAW.search(history)


def test_audit_page_is_sentences_with_links(personas, client_for, lived):
    html = client_for(personas.auditor).get(reverse("audit:list")).content.decode()
    table = html[html.index('<table class="table audit">') : html.index("</table>")]
    assert "Changed the status from New to In progress" in table
    assert f'href="/tickets/{lived.number}/"' in table
    assert not RAW.search(table.replace('title="ticket.', 'title="')), RAW.search(table)
    assert AuditEvent.objects.for_tenant(personas.tenant).filter(action="ticket.created").exists()
