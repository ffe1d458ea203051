"""Delivery through a real broker to a real Celery worker process (no eager shortcut)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agentops.celery import app as celery_app
from agentops.models import AuditEvent
from incidents import tasks
from incidents.models import Ticket, TicketSLA
from incidents.services import ticket_create

pytestmark = pytest.mark.worker


@pytest.fixture
def real_delivery():
    """Send tasks through the broker for this test (tests/settings.py makes them eager)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


def test_worker_flags_an_overdue_ticket(celery_worker, real_delivery, personas):
    tenant = personas.tenant
    overdue = ticket_create(tenant=tenant, actor=personas.requester, title="Disk full on FS01")
    on_time = ticket_create(tenant=tenant, actor=personas.requester, title="New mouse, please")
    past = timezone.now() - timedelta(minutes=5)
    Ticket.objects.for_tenant(tenant).filter(pk=overdue.pk).update(sla_due=past)
    # The ticket's SLA clock (incidents.sla) is what the beat reads; Ticket.sla_due mirrors it.
    TicketSLA.objects.for_tenant(tenant).filter(ticket=overdue).update(due_at=past, warn_at=past)

    result = tasks.mark_sla_breaches.delay()
    flagged = result.get(timeout=30)

    # It went through the broker to the worker process, not inline.
    assert result.state == "SUCCESS"
    assert flagged == 1
    rows = dict(Ticket.objects.for_tenant(tenant).values_list("number", "sla_breached"))
    assert rows == {overdue.number: True, on_time.number: False}
    events = AuditEvent.objects.for_tenant(tenant).filter(action="ticket.sla_breached")
    assert list(events.values_list("target_type", "target_id", "actor_id")) == [
        ("ticket", overdue.number, None)
    ]

    # Idempotent: the next beat tick finds nothing new.
    assert tasks.mark_sla_breaches.delay().get(timeout=30) == 0
    assert events.count() == 1


def test_knowledge_work_has_a_queue_of_its_own():
    """Indexing and learning (seconds of model time each) never queue ahead of agent steps:
    they are routed to the knowledge queue, which `make run` gives a worker of its own."""
    from django.conf import settings

    from agentops.celery import app

    def queue_of(task_name):
        route = app.amqp.router.route({}, task_name)
        return route["queue"].name

    assert settings.CELERY_KNOWLEDGE_QUEUE != settings.CELERY_TASK_DEFAULT_QUEUE
    for name in (
        "knowledge.tasks.index_document",
        "incidents.tasks.learn_from_resolution",
        "incidents.tasks.learn_from_rating",
    ):
        assert queue_of(name) == settings.CELERY_KNOWLEDGE_QUEUE, name
    for name in ("agents.tasks.advance_run", "approvals.tasks.check_approval_slas"):
        assert queue_of(name) == settings.CELERY_TASK_DEFAULT_QUEUE, name


def test_a_worker_indexes_a_pasted_runbook_through_the_knowledge_queue(
    celery_worker, real_delivery, personas
):
    """The knowledge queue is really consumed: the document pasted here is indexed by the
    worker process (it consumes both queues, as `make run`'s two workers do together)."""
    import time

    from knowledge.models import Chunk, Document, IndexStatus
    from knowledge.services import ingest_text

    document = ingest_text(
        tenant=personas.tenant,
        kind="runbook",
        title="Printer runbook",
        content="# Printer offline\n\nRestart the spooler, then print a test page.",
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.status != IndexStatus.PENDING and document.status != IndexStatus.INDEXING:
            break
        time.sleep(0.2)
    assert document.status == IndexStatus.READY, document.error
    assert Chunk.objects.for_tenant(personas.tenant).filter(document=document).exists()
    assert Document.objects.for_tenant(personas.tenant).count() == 1
