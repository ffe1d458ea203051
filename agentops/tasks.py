"""Periodic tasks of the core app."""

from __future__ import annotations

from celery import shared_task

from agentops.audit_witness import write_checkpoints


@shared_task(name="agentops.tasks.audit_checkpoint")
def audit_checkpoint() -> int:
    """Beat: a signed checkpoint of every tenant's audit chain head whose head moved."""
    return write_checkpoints()
