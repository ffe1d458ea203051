"""The audit event of a tool call is durable before the connector acts (issue 11 §3): steps
commit without waiting for the WAL flush, but the intent to act is committed on its own, with
synchronous commit, before the effect happens."""

from __future__ import annotations

import pytest
from django.db import connections

from agents import engine
from agents.connectors.sandbox import connector as sandbox
from agents.connectors.sandbox.models import DirectoryUser
from agents.models import ToolCall
from agents.tasks import asynchronous_commit
from incidents.services import ticket_create, ticket_start_agent
from tests.agents.scripted import ScriptedBackend, tool_reply, triage_reply


def committed_intents(call_id: str) -> list[tuple]:
    """What another connection sees: only what was committed."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT action, metadata->>'idempotency_key' FROM agentops_auditevent "
                "WHERE target_id = %s ORDER BY id",
                [call_id],
            )
            return cursor.fetchall()
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_the_intent_is_committed_before_the_connector_acts(personas, monkeypatch):
    DirectoryUser.objects.create(
        tenant=personas.tenant, email=personas.requester.email, display_name="Robin", locked=True
    )
    model = ScriptedBackend(
        triage_reply(), tool_reply(("unlock_account", {"user_email": personas.requester.email}))
    )
    monkeypatch.setattr(engine, "backend_for", lambda config: model)
    seen: list[list[tuple]] = []
    original = sandbox.SandboxDirectoryConnector.unlock_account

    def unlock_and_look(self, email, *, idempotency_key):
        call = ToolCall.objects.for_tenant(personas.tenant).get(idempotency_key=idempotency_key)
        seen.append(committed_intents(call.call_id))
        return original(self, email, idempotency_key=idempotency_key)

    monkeypatch.setattr(sandbox.SandboxDirectoryConnector, "unlock_account", unlock_and_look)
    ticket = ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title="Locked out",
        description="My account is locked.",
        start_agent=False,
    )
    run = ticket_start_agent(ticket=ticket, actor=personas.requester)
    with asynchronous_commit():  # as a worker runs a step
        for _ in range(10):
            if engine.advance(run.pk) != "advanced":
                break
    run.refresh_from_db()
    assert run.status == "succeeded"
    [before_acting] = seen
    actions = [action for action, _ in before_acting]
    # Committed (another connection sees it) before the effect; the outcome comes after.
    assert actions[-1] == "tool.executing" and "tool.executed" not in actions
    assert before_acting[-1][1].startswith(run.run_id)
