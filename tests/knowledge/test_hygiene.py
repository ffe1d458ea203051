"""Knowledge that stays clean (issue 13): only vouched-for resolutions become knowledge, their
text is summarised, search gives one result per document with curated kinds first, and
requesters see answers without scores."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from agents.connectors.base import get_connector
from agents.connectors.sandbox.models import Device
from agents.models import Run, RunStatus, ToolCall
from incidents import learning as ticket_learning
from incidents import services
from incidents.models import Status, Ticket
from knowledge import history, retrieval
from knowledge.models import LabelledExample, Source, SourceKind
from knowledge.summary import SUMMARY_MAX, summarise

VPN_FILLER = "vpn vpn please fix the vpn " * 80_000  # about 2 MB, mentions VPN everywhere


def history_sources(tenant):
    return Source.objects.for_tenant(tenant).filter(kind=SourceKind.HISTORICAL_TICKET)


def agent_run(ticket, *tool_results, status=RunStatus.SUCCEEDED):
    """An agent run of the ticket with verified, successful tool calls returning these results."""
    run = Run.objects.create(
        tenant=ticket.tenant,
        agent_name="service_desk",
        subject_type="ticket",
        subject_id=ticket.number,
        status=status,
    )
    for i, (tool, result) in enumerate(tool_results):
        ToolCall.objects.create(
            tenant=ticket.tenant,
            run=run,
            call_id=f"call-{i}",
            tool_name=tool,
            status=ToolCall.Status.SUCCESS,
            verified=True,
            result_json=result,
        )
    return run


def resolve(ticket, capture, note):
    with capture(execute=True):
        return services.ticket_transition(
            ticket=ticket, actor=None, status=Status.RESOLVED, note=note
        )


# --------------------------------------------------------------------------- summary


def test_summary_caps_filler_and_says_so():
    text = "My VPN times out after 30 seconds. " + VPN_FILLER + "\nIt started on Monday."
    assert len(text) > 2_000_000
    summary = summarise(text)
    assert len(summary) <= SUMMARY_MAX
    assert summary.startswith("My VPN times out after 30 seconds.")
    assert "It started on Monday." in summary  # the filler is dropped, not what follows it
    assert "summarised" in summary and "left out" in summary


def test_summary_keeps_a_short_text_and_drops_repeated_sentences():
    assert summarise("Outlook crashes on start.") == "Outlook crashes on start."
    repeated = "Printer offline. " * 50 + "Second floor."
    summary = summarise(repeated)
    assert summary.count("Printer offline.") == 1 and "Second floor." in summary


# --------------------------------------------------------------------------- what changed


def test_changed_something_reads_the_real_connector_answers(personas):
    tenant = personas.tenant
    endpoint = get_connector("endpoint", tenant)
    directory = get_connector("directory", tenant)
    from agents.connectors.sandbox.models import DirectoryUser

    Device.objects.create(tenant=tenant, asset_tag="LT-1", owner_email="robin@acme.example")
    Device.objects.create(
        tenant=tenant, asset_tag="LT-2", owner_email="robin@acme.example", vpn_profile_version=1
    )
    DirectoryUser.objects.create(tenant=tenant, email="robin@acme.example", display_name="R")
    DirectoryUser.objects.create(
        tenant=tenant, email="bob@acme.example", display_name="B", locked=True
    )
    same = endpoint.push_vpn_config("LT-1", idempotency_key="k1")  # already the latest
    newer = endpoint.push_vpn_config("LT-2", idempotency_key="k2")
    not_locked = directory.unlock_account("robin@acme.example", idempotency_key="k3")
    locked = directory.unlock_account("bob@acme.example", idempotency_key="k4")
    assert ticket_learning.changed_something(same) is False
    assert ticket_learning.changed_something(newer) is True
    assert ticket_learning.changed_something(not_locked) is False
    assert ticket_learning.changed_something(locked) is True
    assert ticket_learning.changed_something({"data": {"changed": False, "x": 1}}) is False
    assert ticket_learning.changed_something({"data": {"already_installed": True}}) is False


# --------------------------------------------------------------------------- the junk ticket


@pytest.mark.usefixtures("personas")
def test_the_junk_ticket_that_changed_nothing_never_becomes_knowledge(
    personas, make_ticket, ingest, client_for, django_capture_on_commit_callbacks
):
    """Regression (issue 13): 2 MB of filler mentioning VPN, "resolved" by pushing the VPN
    profile the laptop already had. It must not become a knowledge source, fill the staff
    search for "vpn timeout", or vote in triage."""
    tenant = personas.tenant
    ingest(
        tenant,
        "VPN timeouts",
        "# VPN timeouts\n\nWhen the VPN times out, check the profile version and push the "
        "current VPN profile. A VPN timeout after sleep needs the adapter reset.\n",
    )
    Device.objects.create(tenant=tenant, asset_tag="LT-9", owner_email=personas.requester.email)
    pushed = get_connector("endpoint", tenant).push_vpn_config("LT-9", idempotency_key="junk")

    junk = make_ticket(tenant, personas.requester, title="vpn timeout vpn timeout", category="")
    # An intake that did not cap the body: the knowledge side must cap it itself.
    Ticket.objects.for_tenant(tenant).filter(pk=junk.pk).update(
        description="VPN timeout. " + VPN_FILLER, category="network"
    )
    junk.refresh_from_db()
    agent_run(junk, ("push_vpn_config", pushed))
    resolve(junk, django_capture_on_commit_callbacks, "Pushed the VPN profile.")

    assert not history_sources(tenant).exists()
    assert not LabelledExample.objects.for_tenant(tenant).filter(ref=junk.number).exists()
    page = client_for(personas.agent).get(reverse("knowledge:search"), {"q": "vpn timeout"})
    html = page.content.decode()
    assert junk.number not in html and "VPN timeouts" in html
    # Three copies of the junk's text would have carried the vote; none vote now.
    assert history.tally_for(tenant, "vpn timeout vpn timeout").qualified == 0

    # The same text, resolved by an action that changed something, is knowledge (summarised).
    real = make_ticket(tenant, personas.requester, title="VPN timeout on my laptop")
    Ticket.objects.for_tenant(tenant).filter(pk=real.pk).update(description=VPN_FILLER)
    real.refresh_from_db()
    Device.objects.create(
        tenant=tenant, asset_tag="LT-8", owner_email=personas.requester.email, vpn_profile_version=1
    )
    fixed = get_connector("endpoint", tenant).push_vpn_config("LT-8", idempotency_key="real")
    agent_run(real, ("push_vpn_config", fixed))
    resolve(real, django_capture_on_commit_callbacks, "Pushed the current VPN profile.")
    source = history_sources(tenant).get()
    content = source.documents.get(is_current=True).content
    assert len(content) < 3 * SUMMARY_MAX and "left out" in content
    assert source.provenance["reason"].startswith("a verified action changed something")
    example = LabelledExample.objects.for_tenant(tenant).get(ref=real.number)
    assert len(example.text) <= SUMMARY_MAX
    # Nothing reached the other tenant.
    assert not LabelledExample.objects.for_tenant(personas.other_tenant).exists()


def test_a_no_change_resolution_becomes_knowledge_once_rated_4(
    personas, make_ticket, django_capture_on_commit_callbacks
):
    tenant = personas.tenant
    ticket = make_ticket(tenant, personas.requester, title="Outlook keeps asking for password")
    agent_run(ticket, ("reset_password", {"data": {"changed": False}}))
    ticket = resolve(ticket, django_capture_on_commit_callbacks, "Told them to re-enter it.")
    assert not history_sources(tenant).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_rate(ticket=ticket, actor=personas.requester, score=4)
    assert history_sources(tenant).get().provenance["reason"] == "the requester rated it 4/5"
    assert LabelledExample.objects.for_tenant(tenant).filter(ref=ticket.number).exists()


def test_a_resolution_by_a_person_is_knowledge(
    personas, make_ticket, django_capture_on_commit_callbacks
):
    ticket = make_ticket(personas.tenant, personas.requester, title="Monitor flickers")
    agent_run(ticket, status=RunStatus.ESCALATED)  # the agent handed over; a person fixed it
    resolve(ticket, django_capture_on_commit_callbacks, "Replaced the DisplayPort cable.")
    assert history_sources(personas.tenant).get().provenance["reason"] == "a person resolved it"


# --------------------------------------------------------------------------- search


def test_search_gives_one_result_per_document_curated_first(personas, ingest):
    tenant = personas.tenant
    sections = "\n\n".join(
        f"## VPN timeout case {i}\n\nThe VPN timeout happened again, case {i}." for i in range(8)
    )
    ingest(
        tenant,
        "REQ0000001: VPN timeout",
        f"# VPN timeout\n\n{sections}\n",
        kind="historical_ticket",
    )
    ingest(
        tenant,
        "VPN timeout runbook",
        "# VPN timeout\n\nWhen the VPN times out, push the current VPN profile.\n",
    )
    ingest(
        tenant,
        "Golden path: VPN timeout",
        "# VPN timeout\n\nThe VPN timed out; pushing the profile fixed it.\n",
        kind="golden_path",
    )
    hits = retrieval.search(tenant, "vpn timeout", k=10)
    assert len(hits) == 3  # the ticket's eight passages are one result, its best
    assert len({h.source_id for h in hits}) == 3
    assert hits[-1].kind == "historical_ticket"
    assert {h.kind for h in hits[:2]} == {"runbook", "golden_path"}
    assert hits[-1].kind_label == "Historical ticket"
    assert retrieval.search(personas.other_tenant, "vpn timeout") == []


def test_requesters_see_no_scores_and_kinds_in_words(personas, ingest, client_for):
    ingest(personas.tenant, "VPN timeouts", "# VPN timeouts\n\nPush the current VPN profile.\n")
    url = reverse("knowledge:search")
    staff = client_for(personas.agent).get(url, {"q": "vpn timeout"}).content.decode()
    assert "kb-scores" in staff and ">Runbook<" in staff
    requester = client_for(personas.requester).get(url, {"q": "vpn timeout"}).content.decode()
    assert "VPN timeouts" in requester and ">Runbook<" in requester
    assert "kb-scores" not in requester and not re.search(r"score \d", requester)
    assert ">runbook<" not in requester
