"""Knowledge console: gates (404 other tenant, 403 requester writes), forms, polling, search."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from knowledge.models import Document, Source

RUNBOOK = (
    "# Printer offline\n\n## Fix\n\nRun run_diagnostic on the printer, then restart the spooler."
)


@pytest.fixture
def acme_doc(personas, ingest):
    return ingest(personas.tenant, "Printer runbook", RUNBOOK)


@pytest.fixture
def globex_doc(personas, ingest):
    return ingest(personas.other_tenant, "Globex printer runbook", RUNBOOK)


def test_list_shows_own_tenants_sources_only(personas, client_for, acme_doc, globex_doc):
    response = client_for(personas.agent).get(reverse("knowledge:source-list"))
    assert response.status_code == 200
    assert b"Printer runbook" in response.content and b"Globex printer" not in response.content
    assert b"indexed" in response.content and b"every 2s" not in response.content


def test_list_polls_while_indexing_and_stops_with_286(personas, client_for, acme_doc):
    Document.objects.for_tenant(personas.tenant).update(status="indexing", chunks_embedded=0)
    client = client_for(personas.agent)
    page = client.get(reverse("knowledge:source-list"))
    assert b'hx-trigger="every 2s"' in page.content and b"<progress" in page.content
    partial = client.get(reverse("knowledge:source-list"), headers={"HX-Request": "true"})
    assert partial.status_code == 200 and b"every 2s" in partial.content
    Document.objects.for_tenant(personas.tenant).update(status="ready")
    done = client.get(reverse("knowledge:source-list"), headers={"HX-Request": "true"})
    assert done.status_code == 286 and b"every 2s" not in done.content
    detail = client.get(
        reverse("knowledge:source-detail", args=[acme_doc.source_id]),
        headers={"HX-Request": "true"},
    )
    assert detail.status_code == 286 and b"indexed" in detail.content


def test_other_tenants_source_is_404(personas, client_for, globex_doc):
    client = client_for(personas.agent)
    for name in ("knowledge:source-detail", "knowledge:source-edit"):
        assert client.get(reverse(name, args=[globex_doc.source_id])).status_code == 404
    response = client.post(
        reverse("knowledge:source-edit", args=[globex_doc.source_id]),
        {"title": "x", "kind": "runbook", "content_type": "markdown", "content": "hijack"},
    )
    assert response.status_code == 404
    assert Document.objects.for_tenant(personas.other_tenant).count() == 1


def test_requester_may_read_and_search_but_not_write(personas, client_for, acme_doc):
    client = client_for(personas.requester)
    assert (
        client.get(reverse("knowledge:source-detail", args=[acme_doc.source_id])).status_code == 200
    )
    found = client.get(reverse("knowledge:search"), {"q": "printer spooler"})
    assert found.status_code == 200 and b"Printer runbook" in found.content
    assert client.get(reverse("knowledge:source-create")).status_code == 403
    assert (
        client.post(
            reverse("knowledge:source-create"),
            {"title": "Mine", "kind": "runbook", "content_type": "markdown", "content": "# A\n\nb"},
        ).status_code
        == 403
    )
    edit = reverse("knowledge:source-edit", args=[acme_doc.source_id])
    assert client.get(edit).status_code == 403
    assert (
        client.post(
            edit, {"title": "x", "kind": "runbook", "content_type": "markdown", "content": "y"}
        ).status_code
        == 403
    )
    assert Source.objects.for_tenant(personas.tenant).count() == 1


def test_requester_does_not_see_past_tickets(personas, client_for, ingest):
    past = ingest(
        personas.tenant, "REQ0000001 printer", "Printer jammed for Bob.", kind="historical_ticket"
    )
    client = client_for(personas.requester)
    assert client.get(reverse("knowledge:source-detail", args=[past.source_id])).status_code == 404
    assert (
        b"REQ0000001"
        not in client.get(reverse("knowledge:search"), {"q": "printer jammed"}).content
    )
    assert (
        b"REQ0000001"
        in client_for(personas.agent)
        .get(reverse("knowledge:search"), {"q": "printer jammed"})
        .content
    )


def test_agent_pastes_a_runbook_and_it_is_indexed(
    personas, client_for, django_capture_on_commit_callbacks
):
    client = client_for(personas.agent)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("knowledge:source-create"),
            {
                "title": "Wi-Fi drops",
                "kind": "guide",
                "content_type": "markdown",
                "content": "# Wi-Fi\n\n## Drops\n\nRun reset_network_adapter on the laptop.",
            },
        )
    source = Source.objects.for_tenant(personas.tenant).get()
    assert response.status_code == 302 and response.url == reverse(
        "knowledge:source-detail", args=[source.pk]
    )
    page = client.get(response.url)
    assert b"indexed" in page.content and b'id="drops"' in page.content
    hits = client.get(reverse("knowledge:search"), {"q": "reset_network_adapter"})
    assert b"<mark>" in hits.content and b"Wi-Fi drops" in hits.content


def test_edit_reindexes_and_unchanged_text_says_so(
    personas, client_for, acme_doc, django_capture_on_commit_callbacks
):
    client = client_for(personas.agent)
    url = reverse("knowledge:source-edit", args=[acme_doc.source_id])
    assert RUNBOOK.encode() in client.get(url).content.replace(b"&#x27;", b"'")
    data = {
        "title": "Printer runbook",
        "kind": "runbook",
        "content_type": "markdown",
        "content": RUNBOOK,
    }
    response = client.post(url, data, follow=True)
    assert b"nothing to re-index" in response.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {**data, "content": RUNBOOK + "\n\n## Toner\n\nReplace the toner."}, follow=True
        )
    assert b"version 2" in response.content
    current = Document.objects.for_tenant(personas.tenant).get(is_current=True)
    assert current.version == 2 and current.status == "ready"


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("empty.md", b""), b"empty"),
        (SimpleUploadedFile("logo.png.md", b"\x89PNG\r\n\x1a\n\x00\x00"), b"binary"),
        (SimpleUploadedFile("big.txt", b"word " * 210_000), b"too large"),
        (SimpleUploadedFile("runbook.pdf", b"%PDF-1.4"), b"Unsupported file type"),
    ],
)
def test_bad_uploads_show_a_message_and_store_nothing(personas, client_for, upload, message):
    response = client_for(personas.agent).post(
        reverse("knowledge:source-create"),
        {
            "title": "",
            "kind": "runbook",
            "content_type": "markdown",
            "content": "",
            "upload": upload,
        },
    )
    assert response.status_code == 400 and message in response.content
    assert b"Nothing was saved" in response.content
    assert not Source.objects.for_tenant(personas.tenant).exists()


def test_upload_uses_the_file_name_as_title(personas, client_for):
    upload = SimpleUploadedFile("vpn_setup.html", b"<h1>VPN</h1><p>Install the client.</p>")
    response = client_for(personas.agent).post(
        reverse("knowledge:source-create"),
        {"title": "", "kind": "guide", "content_type": "markdown", "upload": upload},
    )
    assert response.status_code == 302
    doc = Document.objects.for_tenant(personas.tenant).select_related("source").get()
    assert doc.source.title == "vpn setup" and doc.content_type == "html"


def test_search_page_empty_and_stopword_queries(personas, client_for, acme_doc):
    client = client_for(personas.agent)
    assert client.get(reverse("knowledge:search")).status_code == 200
    response = client.get(reverse("knowledge:search"), {"q": "the of and"})
    assert response.status_code == 200 and b"Nothing matched" in response.content
    partial = client.get(
        reverse("knowledge:search"), {"q": "spooler"}, headers={"HX-Request": "true"}
    )
    assert (
        partial.status_code == 200
        and b"<html" not in partial.content
        and b"Printer runbook" in partial.content
    )


def test_missing_backend_is_a_message_not_a_500(personas, client_for, acme_doc, settings):
    settings.KNOWLEDGE_EMBEDDING_BACKEND = "nonexistent"
    client = client_for(personas.agent)
    for url in (reverse("knowledge:source-list"), reverse("knowledge:search") + "?q=printer"):
        response = client.get(url)
        assert (
            response.status_code == 200
            and b"Unknown KNOWLEDGE_EMBEDDING_BACKEND" in response.content
        )
    from knowledge.apps import check_embedding_backend

    errors = check_embedding_backend()
    assert errors and errors[0].id == "knowledge.E001"


def test_system_check_passes_with_the_configured_backend():
    from knowledge.apps import check_embedding_backend

    assert check_embedding_backend() == []


def test_list_query_count_is_pinned(personas, client_for, ingest, django_assert_max_num_queries):
    for i in range(5):
        ingest(personas.tenant, f"Runbook {i}", f"# R{i}\n\nText {i}.")
    client = client_for(personas.agent)
    client.get(reverse("knowledge:source-list"))
    with django_assert_max_num_queries(12):
        client.get(reverse("knowledge:source-list"), headers={"HX-Request": "true"})


# --------------------------------------------------------------------------- suggestions


def test_new_ticket_suggests_articles_the_requester_may_read(
    personas, client_for, acme_doc, globex_doc, ingest
):
    ingest(
        personas.tenant, "REQ0000009 printer", "Printer offline for Bob.", kind="historical_ticket"
    )
    client = client_for(personas.requester)
    form = client.get(reverse("incidents:ticket-create"))
    assert b'hx-get="/knowledge/suggest/"' in form.content  # the form asks while typing

    response = client.get(
        reverse("knowledge:suggest"), {"title": "Printer offline", "description": "since Monday"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Printer runbook" in body and f"/knowledge/{acme_doc.source_id}/" in body
    assert "<mark>" in body  # the matching words are highlighted
    assert "Globex" not in body  # another tenant's twin article
    assert "REQ0000009" not in body  # other people's past tickets are for staff
    assert (
        "REQ0000009"
        in client_for(personas.agent)
        .get(reverse("knowledge:suggest"), {"title": "Printer offline"})
        .content.decode()
    )


@pytest.mark.parametrize(
    "params", [{}, {"title": "hi"}, {"title": "the and of"}, {"title": "zzqx"}]
)
def test_no_suggestion_is_an_empty_answer(personas, client_for, acme_doc, params):
    response = client_for(personas.requester).get(reverse("knowledge:suggest"), params)
    assert response.status_code == 200 and response.content.strip() == b""


def test_suggestions_escape_titles_and_need_a_member(personas, client_for, ingest):
    from django.test import Client

    ingest(personas.tenant, "<script>alert(1)</script> VPN", "# VPN\n\nVPN <b>drops</b> at noon.")
    body = (
        client_for(personas.requester)
        .get(reverse("knowledge:suggest"), {"title": "VPN drops"})
        .content.decode()
    )
    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body
    assert "<b>drops" not in body
    # Someone of the other tenant asks in their own tenant: nothing of this one.
    outsider = client_for(personas.outsider).get(reverse("knowledge:suggest"), {"title": "VPN"})
    assert outsider.status_code == 200 and b"VPN" not in outsider.content
    anonymous = Client().get(reverse("knowledge:suggest"), {"title": "VPN"})
    assert anonymous.status_code == 302  # to the login page


def test_a_missing_backend_suggests_nothing(personas, client_for, acme_doc, settings):
    settings.KNOWLEDGE_EMBEDDING_BACKEND = "nope"
    response = client_for(personas.requester).get(
        reverse("knowledge:suggest"), {"title": "Printer offline"}
    )
    assert response.status_code == 200 and response.content.strip() == b""
