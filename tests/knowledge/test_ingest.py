"""Ingestion: versions, checksum skip, re-index on edit, bad input stores nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from agentops.models import AuditEvent
from knowledge import services
from knowledge.models import Chunk, Document, IndexStatus, Source

VPN = """# VPN

## Timeouts

Connections from home time out after 30 seconds when the client profile is stale.

### Fix

1. Run push_vpn_config for the requester's laptop.
2. Ask the requester to reconnect.
"""


def test_ingest_indexes_chunks_with_headings_and_embeddings(personas, ingest):
    doc = ingest(personas.tenant, "VPN runbook", VPN, actor=personas.agent)
    assert doc.status == IndexStatus.READY and doc.version == 1 and doc.is_current
    chunks = list(Chunk.objects.for_tenant(personas.tenant).filter(document=doc))
    assert doc.chunks_total == doc.chunks_embedded == len(chunks) == 2
    assert [c.heading_path for c in chunks] == ["VPN > Timeouts", "VPN > Timeouts > Fix"]
    assert chunks[1].anchor == "fix" and chunks[1].kind == "runbook"
    assert all(c.embedding is not None and c.embedding_model == "hashing-v1" for c in chunks)
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="knowledge.source_created", target_id=str(doc.source_id))
        .exists()
    )


def test_unchanged_checksum_is_skipped_and_an_edit_reindexes(
    personas, ingest, django_capture_on_commit_callbacks
):
    first = ingest(personas.tenant, "VPN runbook", VPN, external_key="vpn.md")
    old_ids = set(Chunk.objects.for_tenant(personas.tenant).values_list("pk", flat=True))
    with django_capture_on_commit_callbacks() as callbacks:
        again = services.ingest_text(
            tenant=personas.tenant,
            kind="runbook",
            title="VPN runbook",
            content=VPN,
            external_key="vpn.md",
        )
    assert again.pk == first.pk and callbacks == []  # nothing enqueued
    assert set(Chunk.objects.for_tenant(personas.tenant).values_list("pk", flat=True)) == old_ids

    edited = ingest(
        personas.tenant,
        "VPN runbook",
        VPN + "\n## Split tunnel\n\nDisable split tunnelling.\n",
        external_key="vpn.md",
    )
    assert edited.pk != first.pk and edited.version == 2 and edited.source_id == first.source_id
    first.refresh_from_db()
    assert not first.is_current
    chunks = Chunk.objects.for_tenant(personas.tenant)
    assert set(chunks.values_list("document_id", flat=True)) == {edited.pk}
    assert "Split tunnel" in " ".join(chunks.values_list("heading_path", flat=True))
    assert Source.objects.for_tenant(personas.tenant).count() == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("abc\x00def", "binary"),
        ("word " * 250_000, "too large"),
    ],
)
def test_bad_content_is_refused_and_nothing_stored(personas, content, message):
    with pytest.raises(ValidationError) as err:
        services.ingest_text(tenant=personas.tenant, kind="runbook", title="T", content=content)
    assert message in str(err.value)
    assert not Source.objects.for_tenant(personas.tenant).exists()
    assert not Document.objects.for_tenant(personas.tenant).exists()


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "empty.md", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "runbook.md", "binary"),
        (b"\xff\xfe\xfa broken", "runbook.txt", "UTF-8"),
        (b"x" * 1_000_001, "big.txt", "too large"),
        (b"# Fine", "runbook.pdf", "Unsupported file type"),
        (b"# Fine", "noext", "Unsupported file type"),
    ],
)
def test_bad_uploads_are_refused(data, filename, message):
    with pytest.raises(ValidationError) as err:
        services.decode_upload(data, filename=filename)
    assert message in str(err.value)


def test_upload_types():
    assert services.decode_upload(b"# A\n\nb", filename="a.MD") == ("# A\n\nb", "markdown")
    assert services.decode_upload(b"<h1>A</h1>", filename="a.htm")[1] == "html"
    assert services.decode_upload(b"\xef\xbb\xbfplain", filename="a.txt") == ("plain", "text")


def test_source_of_another_tenant_is_refused(personas, ingest):
    doc = ingest(personas.other_tenant, "Globex VPN", VPN)
    with pytest.raises(ValidationError):
        services.ingest_text(
            tenant=personas.tenant, kind="runbook", title="x", content="hello", source=doc.source
        )


def test_redelivered_index_task_does_nothing(personas, ingest):
    from knowledge.tasks import index_document_now

    doc = ingest(personas.tenant, "VPN runbook", VPN)
    ids = set(Chunk.objects.for_tenant(personas.tenant).values_list("pk", flat=True))
    assert index_document_now(doc.pk) == "skipped"
    assert set(Chunk.objects.for_tenant(personas.tenant).values_list("pk", flat=True)) == ids


def test_reembed_stale_reindexes_chunks_of_another_model(
    personas, ingest, django_capture_on_commit_callbacks
):
    doc = ingest(personas.tenant, "VPN runbook", VPN)
    Chunk.objects.for_tenant(personas.tenant).update(embedding_model="old-model")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reembed_stale(personas.tenant) == 1
    assert set(
        Chunk.objects.for_tenant(personas.tenant).values_list("embedding_model", flat=True)
    ) == {"hashing-v1"}
    doc.refresh_from_db()
    assert doc.status == IndexStatus.READY
    assert services.reembed_stale(personas.tenant) == 0


def test_a_failing_index_marks_the_document_failed_and_an_unchanged_ingest_retries(
    personas, ingest, monkeypatch
):
    from knowledge import embeddings

    def broken():
        raise embeddings.EmbeddingBackendError("model files missing")

    monkeypatch.setattr(embeddings, "get_embedder", broken)
    doc = ingest(personas.tenant, "VPN runbook", VPN, external_key="vpn.md")
    assert doc.status == IndexStatus.FAILED and "model files missing" in doc.error
    monkeypatch.undo()
    assert services.reembed_stale(personas.tenant) == 0  # failed waits for a retry, no loop
    again = ingest(personas.tenant, "VPN runbook", VPN, external_key="vpn.md")
    assert again.pk == doc.pk and again.status == IndexStatus.READY and again.chunks_embedded == 2


def _pending(tenant, content=VPN):
    """A document stored and waiting for its index task (the on-commit enqueue not run)."""
    doc = services.ingest_text(tenant=tenant, kind="runbook", title="VPN runbook", content=content)
    assert doc.status == IndexStatus.PENDING
    return doc


class _WatchedEmbedder:
    """The real embedder, calling ``before(batch_number)`` before it embeds each batch."""

    def __init__(self, real, before):
        self.real, self.before, self.calls = real, before, 0
        self.name = real.name

    def embed(self, texts):
        self.calls += 1
        self.before(self.calls)
        return self.real.embed(texts)


def _watch(monkeypatch, before):
    from knowledge import embeddings

    watched = _WatchedEmbedder(embeddings.get_embedder(), before)
    monkeypatch.setattr(embeddings, "get_embedder", lambda: watched)
    return watched


def test_indexing_in_batches_shows_progress_then_ready(personas, settings, monkeypatch):
    from knowledge.tasks import index_document_now

    settings.KNOWLEDGE_INDEX_BATCH = 1
    doc = _pending(personas.tenant)
    seen = []

    def before(batch):
        row = Document.objects.for_tenant(personas.tenant).get(pk=doc.pk)
        seen.append((batch, row.status, row.chunks_embedded, row.chunks_total))

    _watch(monkeypatch, before)
    assert index_document_now(doc.pk) == "indexed"
    # The console's progress bar knows the whole from the start and moves with each batch.
    assert seen == [(1, IndexStatus.INDEXING, 0, 2), (2, IndexStatus.INDEXING, 1, 2)]
    doc.refresh_from_db()
    assert (doc.status, doc.chunks_embedded, doc.chunks_total) == (IndexStatus.READY, 2, 2)
    assert doc.embedding_model == "hashing-v1" and doc.indexed_at is not None
    assert Chunk.objects.for_tenant(personas.tenant).filter(document=doc).count() == 2


def test_an_edit_while_indexing_supersedes_it_and_the_rest_is_not_stored(
    personas, settings, monkeypatch
):
    from knowledge.tasks import index_document_now

    settings.KNOWLEDGE_INDEX_BATCH = 1
    doc = _pending(personas.tenant)

    def before(batch):
        if batch == 2:  # an edit made a new version current between the two batches
            Document.objects.for_tenant(personas.tenant).filter(pk=doc.pk).update(is_current=False)

    _watch(monkeypatch, before)
    assert index_document_now(doc.pk) == "superseded"
    doc.refresh_from_db()
    assert doc.status == IndexStatus.INDEXING and doc.chunks_embedded == 1  # never marked ready
    assert Chunk.objects.for_tenant(personas.tenant).filter(document=doc).count() == 1


def test_a_document_of_one_batch_is_indexed_in_one_transaction(personas):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from knowledge.tasks import index_document_now

    doc = _pending(personas.tenant)
    with CaptureQueriesContext(connection) as ctx:
        assert index_document_now(doc.pk) == "indexed"
    verbs = [q["sql"].split()[0] for q in ctx.captured_queries]
    # The claim and its read, then one transaction (a savepoint inside the test's own):
    # progress and ready, the earlier attempt's chunks removed, the chunks inserted.
    assert verbs == ["UPDATE", "SELECT", "SAVEPOINT", "UPDATE", "DELETE", "INSERT", "RELEASE"]
    doc.refresh_from_db()
    assert (doc.status, doc.chunks_embedded, doc.chunks_total) == (IndexStatus.READY, 2, 2)


def test_a_keyed_source_is_read_once_under_its_lock(personas, ingest):
    """The external key's source decides both the quota check and what gets a new version: it
    is read once, locked, whether it exists yet or not."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def source_reads(content):
        with CaptureQueriesContext(connection) as ctx:
            services.ingest_text(
                tenant=personas.tenant,
                kind="runbook",
                title="VPN runbook",
                content=content,
                external_key="vpn.md",
            )
        return [
            q["sql"]
            for q in ctx.captured_queries
            if q["sql"].startswith("SELECT") and 'FROM "knowledge_source"' in q["sql"]
        ]

    new = source_reads(VPN)
    assert len(new) == 1 and new[0].endswith("FOR UPDATE")
    edited = source_reads(VPN + "\n## More\n\nText.\n")
    assert len(edited) == 1 and edited[0].endswith("FOR UPDATE")
    assert Source.objects.for_tenant(personas.tenant).filter(external_key="vpn.md").count() == 1
    assert (
        Document.objects.for_tenant(personas.tenant).filter(source__external_key="vpn.md").count()
        == 2
    )


def test_the_beat_queues_again_a_version_whose_index_task_was_lost(personas, monkeypatch):
    """A broker outage when a version was committed: the enqueue after commit only logged, the
    version stayed pending. The beat finds it once PENDING_GRACE has passed, queues it again
    (and not again before another grace), and it gets indexed."""
    from datetime import timedelta

    from django.utils import timezone

    from knowledge import tasks

    queued = []
    monkeypatch.setattr(tasks.index_document, "delay", queued.append)
    lost = _pending(personas.tenant)
    fresh = _pending(personas.other_tenant)  # its task is probably still in the queue
    Document.objects.unscoped("test").filter(pk=lost.pk).update(
        created_at=timezone.now() - tasks.PENDING_GRACE - timedelta(minutes=1)
    )

    tasks.reembed_stale()
    assert queued == [lost.pk]
    lost.refresh_from_db()
    assert lost.status == IndexStatus.PENDING
    assert timezone.now() - lost.index_started_at < timedelta(minutes=1)  # re-queued now
    tasks.reembed_stale()
    assert queued == [lost.pk]  # not again before another grace

    assert tasks.index_document_now(lost.pk) == "indexed"
    lost.refresh_from_db()
    assert lost.status == IndexStatus.READY and lost.chunks_total == 2
    fresh.refresh_from_db()
    assert fresh.status == IndexStatus.PENDING


def test_the_beat_queues_again_a_document_whose_worker_died_mid_index(personas, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from knowledge import tasks

    queued = []
    monkeypatch.setattr(tasks.index_document, "delay", queued.append)
    dead, alive = _pending(personas.tenant), _pending(personas.other_tenant)
    long_ago = timezone.now() - tasks.INDEX_LEASE - timedelta(minutes=1)
    Document.objects.unscoped("test").filter(pk=dead.pk).update(
        status=IndexStatus.INDEXING, index_started_at=long_ago
    )
    Document.objects.unscoped("test").filter(pk=alive.pk).update(
        status=IndexStatus.INDEXING, index_started_at=timezone.now()
    )
    tasks.reembed_stale()
    assert queued == [dead.pk]
    assert tasks.index_document_now(dead.pk) == "indexed"  # the expired claim is taken over
    assert tasks.index_document_now(alive.pk) == "skipped"  # a live claim is not


def test_a_version_queued_again_counts_its_grace_from_then(
    personas, ingest, monkeypatch, django_capture_on_commit_callbacks
):
    """An admin's re-index of an old version queues it again: the beat does not take it for
    lost because the version itself is old."""
    from datetime import timedelta

    from django.utils import timezone

    from knowledge import tasks

    doc = ingest(personas.tenant, "VPN runbook", VPN)
    Document.objects.unscoped("test").filter(pk=doc.pk).update(
        created_at=timezone.now() - timedelta(days=30)
    )
    doc.refresh_from_db()
    queued = []
    monkeypatch.setattr(tasks.index_document, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        services.reindex_document(document=doc)
    assert queued == [doc.pk]
    tasks.reembed_stale()
    assert queued == [doc.pk]  # queued a moment ago: not lost
