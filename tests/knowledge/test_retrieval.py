"""Hybrid retrieval: tenant isolation on every path, fusion, highlighting, empty queries."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from knowledge import retrieval
from knowledge.embeddings import get_embedder
from knowledge.models import Chunk

VPN = """# VPN

## Timeouts

Connections from home time out after 30 seconds when the client profile is stale.
Run push_vpn_config for the requester's laptop, then ask them to reconnect.

## Certificates

An expired machine certificate makes the handshake fail with error 809.
"""
PRINTER = """# Printers

## Paper jams

Open tray two, remove the jammed sheet, and run a test page from the print queue.
"""


@pytest.fixture
def corpus(personas, ingest):
    acme = ingest(personas.tenant, "VPN runbook", VPN)
    ingest(personas.tenant, "Printer guide", PRINTER, kind="guide")
    # A near-duplicate in the other tenant: same words, one marker word of its own.
    globex = ingest(personas.other_tenant, "VPN runbook", VPN.replace("stale", "stale globexonly"))
    return acme, globex


def _foreign(tenant, chunk_ids):
    return (
        Chunk.objects.unscoped("test: which tenant owns the hits")
        .filter(pk__in=chunk_ids)
        .exclude(tenant=tenant)
    )


@pytest.mark.parametrize(
    "query",
    ["VPN timeout from home", "globexonly", "error 809 certificate", "paper jam", "stale profile"],
)
def test_search_never_returns_another_tenants_chunks(personas, corpus, query):
    for tenant in (personas.tenant, personas.other_tenant):
        hits = retrieval.search(tenant, query, k=20)
        assert not _foreign(tenant, [h.chunk_id for h in hits]).exists()
        assert all("globexonly" not in h.text for h in hits) or tenant == personas.other_tenant


def test_every_arm_filters_by_tenant(personas, corpus):
    _acme, _globex = corpus
    globex_ids = list(Chunk.objects.for_tenant(personas.other_tenant).values_list("pk", flat=True))
    vector = retrieval.vector_literal(get_embedder().embed_one("VPN timeout globexonly"))
    lexemes = retrieval.query_lexemes("VPN timeout globexonly")
    with transaction.atomic(), connection.cursor() as cursor:
        by_vector = retrieval.vector_arm(cursor, personas.tenant.pk, vector, 100)
        by_text = retrieval.text_arm(
            cursor, personas.tenant.pk, "VPN timeout globexonly", lexemes, 100
        )
        exact = retrieval.exact_vector_search(cursor, personas.tenant.pk, vector, 100)
    ids = [r[0] for r in by_vector] + [r[0] for r in by_text] + exact
    assert ids and not _foreign(personas.tenant, ids).exists()
    # Asking for foreign ids by id returns nothing either.
    assert retrieval._candidate_rows(personas.tenant.pk, globex_ids, vector) == []
    assert retrieval._snippets(personas.tenant.pk, globex_ids, "'vpn'") == {}


def test_hits_carry_citation_scores_and_highlighted_snippets(personas, corpus):
    hits = retrieval.search(personas.tenant, "certificate handshake error 809")
    top = hits[0]
    assert top.source_title == "VPN runbook" and top.heading_path == "VPN > Certificates"
    assert top.url.endswith(f"/knowledge/{top.source_id}/#certificates")
    assert "<mark>certificate</mark>" in top.snippet.lower()
    assert top.scores.text > 0 and top.scores.fused > 0
    assert [h.scores.final for h in hits] == sorted((h.scores.final for h in hits), reverse=True)
    assert top.citation()["url"] == top.url


def test_kinds_and_excluded_sources_filter(personas, corpus):
    acme, _ = corpus
    hits = retrieval.search(personas.tenant, "paper jam VPN", kinds=["guide"])
    assert hits and {h.kind for h in hits} == {"guide"}
    hits = retrieval.search(personas.tenant, "VPN timeout", exclude_source_ids=[acme.source_id])
    assert acme.source_id not in {h.source_id for h in hits}


@pytest.mark.parametrize("query", ["the and of", "?!#%&*", "   ", "", "to be or not to be"])
def test_stop_words_or_symbols_give_an_empty_result(personas, corpus, query):
    assert retrieval.search(personas.tenant, query) == []


def test_snippet_escapes_the_document(personas, ingest):
    ingest(
        personas.tenant,
        "Hostile",
        "# Note\n\n<script>alert(1)</script> reset the router \x02boom\x03 <b>now</b>",
        content_type="text",
    )
    hit = retrieval.search(personas.tenant, "reset router")[0]
    # ts_headline drops markup tokens; whatever remains is escaped, and only <mark> is ours.
    html = str(hit.snippet).replace("<mark>", "").replace("</mark>", "")
    assert "<" not in html and ">" not in html and "\x02" not in html
    assert "alert(1)" in html and "boom" in html
    assert "<mark>reset</mark>" in hit.snippet


def test_golden_paths_are_preferred(personas, ingest):
    text = "# Locked account\n\nUnlock the account with unlock_account, then confirm sign-in."
    ingest(personas.tenant, "Lockout runbook", text)
    ingest(personas.tenant, "Lockout (approved resolution)", text, kind="golden_path")
    hits = retrieval.search(personas.tenant, "account locked unlock")
    assert hits[0].kind == "golden_path"


def test_text_arm_prefers_all_words_and_fills_with_any(personas, corpus):
    lexemes = retrieval.query_lexemes("certificate handshake printer")
    with transaction.atomic(), connection.cursor() as cursor:
        strict = retrieval.text_arm(
            cursor, personas.tenant.pk, '"machine certificate"', lexemes, 10
        )
        filled = retrieval.text_arm(
            cursor, personas.tenant.pk, "certificate handshake printer", lexemes, 10
        )
        excluded = retrieval.text_arm(
            cursor, personas.tenant.pk, "handshake -certificate", lexemes, 10
        )
    texts = dict(Chunk.objects.for_tenant(personas.tenant).values_list("pk", "text"))
    assert len(strict) == 1 and "handshake" in texts[strict[0][0]]
    # No chunk has all three words: chunks with any of them fill the list.
    assert {"handshake" in texts[i] or "jam" in texts[i] for i, _ in filled} == {True}
    assert len(filled) >= 2
    assert excluded == []


def test_vectors_of_another_model_are_not_compared_until_re_embedded(personas, corpus):
    """After the embedding model changed, chunks not yet re-embedded live in another vector
    space: the vector arm leaves them out, their words still find them."""
    acme, _globex = corpus
    stale = Chunk.objects.for_tenant(personas.tenant).filter(source=acme.source)
    stale_ids = set(stale.values_list("pk", flat=True))
    stale.update(embedding_model="old-model")
    embedder = get_embedder()
    vector = retrieval.vector_literal(embedder.embed_one("VPN timeout from home"))
    with transaction.atomic(), connection.cursor() as cursor:
        same_model = {
            r[0]
            for r in retrieval.vector_arm(
                cursor, personas.tenant.pk, vector, 100, model=embedder.name
            )
        }
        any_model = {r[0] for r in retrieval.vector_arm(cursor, personas.tenant.pk, vector, 100)}
    assert stale_ids <= any_model
    assert same_model and not (same_model & stale_ids)
    hits = retrieval.search(personas.tenant, "VPN timeout from home", k=20)
    assert any(h.chunk_id in stale_ids for h in hits), "the full-text arm still finds them"
