"""A page made of many reads shows one moment (agentops.snapshot).

The race this guards against was seen in a browser test: the reviewer approved, the page
loaded while the worker finished the run, and it showed the run "Succeeded" beside the ticket
still "On hold". The finished run's timeline stops polling, so the page never put it right.
"""

import re
import threading

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory
from django.urls import reverse

from agentops.snapshot import snapshot_view
from agents import selectors
from agents.models import Run
from incidents.models import Status, Ticket
from incidents.services import ticket_create, ticket_start_agent


def _finish_elsewhere(tenant, ticket_pk: int, run_pk: int) -> None:
    """What the worker's last step commits: the ticket resolved, then the run succeeded."""

    def work():
        try:
            with transaction.atomic():
                Ticket.objects.for_tenant(tenant).filter(pk=ticket_pk).update(
                    status=Status.RESOLVED
                )
            with transaction.atomic():
                Run.objects.for_tenant(tenant).filter(pk=run_pk).update(
                    status="succeeded", state="done"
                )
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


@pytest.mark.django_db(transaction=True)
def test_the_ticket_page_never_shows_a_finished_run_beside_the_ticket_before_it(
    personas, client_for, monkeypatch
):
    ticket = ticket_create(
        tenant=personas.tenant, actor=personas.requester, title="VPN drops", start_agent=False
    )
    ticket_start_agent(ticket=ticket, actor=personas.requester)
    Ticket.objects.for_tenant(personas.tenant).filter(pk=ticket.pk).update(status=Status.ON_HOLD)
    run = Run.objects.for_tenant(personas.tenant).get(subject_id=ticket.number)
    Run.objects.for_tenant(personas.tenant).filter(pk=run.pk).update(status="waiting_approval")

    original = selectors.latest_run_for
    finished = []

    def latest_run_for(*args, **kwargs):
        # The page has read its ticket (on hold); the worker commits its finish now.
        if not finished:
            finished.append(True)
            _finish_elsewhere(personas.tenant, ticket.pk, run.pk)
        return original(*args, **kwargs)

    monkeypatch.setattr(selectors, "latest_run_for", latest_run_for)
    client = client_for(personas.agent)
    html = client.get(reverse("incidents:ticket-detail", args=[ticket.number])).content.decode()
    assert finished
    # The moment before the worker's commits, whole: the run still waits, so the timeline
    # keeps polling (and its poll will reload the page when it sees the run finished).
    assert _shown(html) == ("On hold", "Waiting for approval")
    assert 'hx-trigger="every 2s"' in html
    # The next load shows the moment after, whole.
    after = client.get(reverse("incidents:ticket-detail", args=[ticket.number])).content.decode()
    assert _shown(after) == ("Resolved", "Succeeded")
    assert 'hx-trigger="every 2s"' not in after


def _shown(html: str) -> tuple[str, str]:
    """(the ticket's status in the sidebar, the run's status in its head)."""
    ticket = re.search(r'<dt>Status</dt><dd><span class="status [^"]*">([^<]*)<', html)
    run = re.search(r'class="run-head"[^>]*>\s*<div>\s*<span class="badge [^"]*">([^<]*)<', html)
    return ticket.group(1), run.group(1)


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_view_that_writes_is_refused(personas):
    @snapshot_view
    def view(request):
        personas.tenant.save(update_fields=["name"])

    with pytest.raises(DatabaseError, match="read-only transaction"):
        view(RequestFactory().get("/"))


def test_inside_a_transaction_the_outer_one_stands(personas):
    """Inside an atomic block (a test's, a caller's) the view runs in it, unchanged."""

    @snapshot_view
    def view(request):
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            return cursor.fetchone()[0]

    assert view(RequestFactory().get("/")) == "read committed"
