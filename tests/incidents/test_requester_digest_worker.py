"""Requester e-mails through the real broker and a real worker: a burst of changes within the
digest window arrives as ONE e-mail carrying them all; the next burst is the next e-mail."""

from __future__ import annotations

import time
from pathlib import Path

from incidents import services
from incidents.models import Status

# Django's file backend ends each message with a line of 79 dashes.
_END = "-" * 79 + "\n"


def messages_in(directory: Path) -> list[str]:
    """The messages written so far, complete ones only: the worker's backend creates the file
    before it writes the message, and a read in between saw an empty file (a flaky CI run)."""
    texts = [p.read_text() for p in sorted(directory.glob("*.log"))]
    return [text for text in texts if text.endswith(_END)]


def wait_for(directory: Path, count: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = messages_in(directory)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    return messages_in(directory)


def test_a_burst_is_one_email_from_the_worker(
    worker_factory, real_delivery, personas, settings, tmp_path
):
    outbox = tmp_path / "mail"
    outbox.mkdir()
    worker_factory(AGENTOPS_TEST_EMAIL_DIR=str(outbox))
    settings.REQUESTER_DIGEST_SECONDS = 3
    ticket = services.ticket_create(
        tenant=personas.tenant, actor=personas.requester, title="Printer jams on floor 2"
    )
    started = time.monotonic()
    services.ticket_transition(ticket=ticket, actor=None, status=Status.TRIAGED)
    services.ticket_transition(ticket=ticket, actor=personas.agent, status=Status.IN_PROGRESS)
    services.ticket_comment(ticket=ticket, actor=personas.agent, body="Replacing the roller.")
    [first] = wait_for(outbox, 1)
    assert time.monotonic() - started >= 2.5  # it waited for the burst to end
    assert "3 updates on" in first and "Replacing the roller." in first
    assert "Being worked on" in first and personas.requester.email in first
    time.sleep(2)
    assert len(messages_in(outbox)) == 1  # the burst's other changes sent nothing more

    services.ticket_transition(
        ticket=ticket, actor=personas.agent, status=Status.RESOLVED, note="Roller replaced."
    )
    found = wait_for(outbox, 2)
    assert len(found) == 2 and "Roller replaced." in found[1] and "Replacing" not in found[1]
