"""The Triage step asks the tenant's past tickets first: when they agree, their labels win
over the model's and the timeline says which tickets voted; when history is thin, the model
decides as before."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents import engine
from agents.models import Step
from incidents import services
from knowledge import history
from tests.agents.scripted import ScriptedBackend, tool_reply, triage_reply

VPN = [
    "VPN disconnects every few minutes when working from home",
    "VPN keeps disconnecting when working from home on wifi",
    "Cannot stay connected to the VPN from home, it disconnects",
    "VPN connection drops every few minutes from my home office",
]


@pytest.fixture
def model(monkeypatch):
    backend = ScriptedBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    return backend


def triage(personas, title):
    ticket = services.ticket_create(
        tenant=personas.tenant,
        actor=personas.requester,
        title=title,
        description="",
        start_agent=False,
    )
    run = services.ticket_start_agent(ticket=ticket, actor=personas.requester)
    assert engine.advance(run.pk) == "advanced"
    ticket.refresh_from_db()
    step = Step.objects.for_tenant(personas.tenant).get(run=run, state="triage")
    return ticket, run, step


def test_confident_history_labels_the_ticket_and_the_timeline_shows_why(
    personas, model, client_for
):
    network = services.queue_create(tenant=personas.tenant, actor=None, name="Network")
    history.index_examples(
        personas.tenant,
        [
            {
                "ref": f"REQ900000{i}",
                "text": text,
                "category": "network",
                "priority": "low",
                "assignment_group": "Network",
            }
            for i, text in enumerate(VPN)
        ],
    )
    model.responses += [triage_reply(category="access", priority="medium"), tool_reply()]
    ticket, run, step = triage(personas, "My VPN disconnects every few minutes from home")

    assert (ticket.category, ticket.priority, ticket.queue_id) == ("network", "low", network.pk)
    assert step.detail["triage"]["labels_from"] == "history"
    vote = step.detail["vote"]
    assert vote["confident"] and vote["labels"]["category"]["value"] == "network"
    assert vote["labels"]["category"]["confidence"] >= history.MIN_AGREEMENT
    assert {n["ref"] for n in vote["neighbours"]} <= {f"REQ900000{i}" for i in range(4)}
    assert "Labels from past tickets" in step.output_summary
    assert "REQ9000000" in step.output_summary
    # The model was still asked (the decision and path are its call).
    assert model.requests[0]["tool_choice"] == "submit_triage"
    html = client_for(personas.agent).get(reverse("agents:run-detail", args=[run.run_id]))
    assert "REQ9000000" in html.content.decode()


def test_thin_history_leaves_triage_to_the_model(personas, model):
    history.index_examples(
        personas.tenant, [{"ref": "REQ9000001", "text": VPN[0], "category": "network"}]
    )
    model.responses += [triage_reply(category="access", priority="medium"), tool_reply()]
    ticket, _run, step = triage(personas, "My VPN disconnects every few minutes from home")
    assert (ticket.category, ticket.priority) == ("access", "medium")
    assert "vote" not in step.detail
    assert "Labels from past tickets" not in step.output_summary


def test_another_tenants_history_never_labels_a_ticket(personas, model):
    history.index_examples(
        personas.other_tenant,
        [{"ref": f"G{i}", "text": t, "category": "network"} for i, t in enumerate(VPN)],
    )
    model.responses += [triage_reply(category="access"), tool_reply()]
    ticket, _run, step = triage(personas, VPN[0])
    assert ticket.category == "access" and "vote" not in step.detail
