"""Celery tasks of the knowledge base: index one document, re-embed stale chunks.

``index_document`` is idempotent on redelivery: it claims the document with one conditional
UPDATE (pending, or indexing under an expired claim), so two deliveries never index it twice at
once, and a document that is already ready is left alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from knowledge import services
from knowledge.chunking import chunk_document
from knowledge.models import Chunk, Document, IndexStatus

log = logging.getLogger(__name__)

# A claim older than this is taken over by the next delivery (its worker died).
INDEX_LEASE = timedelta(minutes=15)
# A version pending longer than this lost its index task (see ``reembed_stale``). Longer than
# a knowledge queue's backlog normally lasts: an early re-enqueue only costs a claim that finds
# nothing to do.
PENDING_GRACE = timedelta(minutes=15)


def _claim(document_id: int) -> Document | None:
    now = timezone.now()
    claimed = (
        Document.objects.unscoped("a task claims its document by id")
        .filter(pk=document_id, is_current=True)
        .filter(
            Q(status=IndexStatus.PENDING)
            | Q(status=IndexStatus.INDEXING, index_started_at__lt=now - INDEX_LEASE)
        )
        .update(status=IndexStatus.INDEXING, index_started_at=now, error="", chunks_embedded=0)
    )
    if not claimed:
        return None
    return (
        Document.objects.unscoped("claimed above")
        .select_related("source", "tenant")
        .get(pk=document_id)
    )


def _advance(document: Document, *, total: int, embedded: int, last: bool, model: str) -> bool:
    """Inside a batch's transaction, first: move the document's progress (and mark it ready
    after its last batch), only while it is still current and ours to index; its row stays
    locked to the commit, so an edit that supersedes it waits for the batch. False: it was
    superseded or taken from us (the batch must not be stored)."""
    fields: dict = {"chunks_total": total, "chunks_embedded": F("chunks_embedded") + embedded}
    if last:
        fields |= {
            "status": IndexStatus.READY,
            "embedding_model": model,
            "indexed_at": timezone.now(),
            "error": "",
        }
    return bool(
        Document.objects.for_tenant(document.tenant)
        .filter(pk=document.pk, is_current=True, status=IndexStatus.INDEXING)
        .update(**fields)
    )


def _fail(document: Document, message: str) -> None:
    Document.objects.for_tenant(document.tenant).filter(
        pk=document.pk, status=IndexStatus.INDEXING
    ).update(status=IndexStatus.FAILED, error=message[:4000])


def index_document_now(document_id: int) -> str:
    """Chunk, store and embed one document; returns what happened (for logs and tests).

    1. Claim the document (or return "skipped": someone else has it, or it is done).
    2. Chunk its content.
    3. Embed in batches; each batch is one transaction: the document's progress moves
       (``chunks_embedded`` of ``chunks_total``, for the console's progress bar) while it is
       still current, else nothing is stored ("superseded"); the first batch removes the
       chunks of an earlier attempt (a retry starts clean); the chunks go in with their
       vectors (inserted once with the vector, not bare and updated later: each row and its
       index entries are written once); the last batch marks it ready with the model's name.
       A document of one batch (a resolved ticket, most pages) is one transaction.
    4. Or mark it failed with the error.
    """
    from knowledge.embeddings import get_embedder

    document = _claim(document_id)
    if document is None:
        return "skipped"
    tenant = document.tenant
    try:
        embedder = get_embedder()
        # Passages fit the model's reading length (MiniLM: 256 word pieces).
        limits = {}
        if hasattr(embedder, "count_pieces"):
            limits = {"count_pieces": embedder.count_pieces, "max_pieces": embedder.max_tokens}
        drafts = chunk_document(document.content, document.content_type, **limits)
        batch = max(1, getattr(settings, "KNOWLEDGE_INDEX_BATCH", 32))
        parts = [drafts[i : i + batch] for i in range(0, len(drafts), batch)] or [[]]
        if len(parts) > 1:  # the progress bar knows the whole while the first batch embeds
            Document.objects.for_tenant(tenant).filter(
                pk=document.pk, status=IndexStatus.INDEXING
            ).update(chunks_total=len(drafts))
        for number, part in enumerate(parts):
            vectors = embedder.embed([d.embedding_text for d in part]) if part else []
            with transaction.atomic():
                last = number == len(parts) - 1
                if not _advance(
                    document, total=len(drafts), embedded=len(part), last=last, model=embedder.name
                ):
                    transaction.set_rollback(True)
                    return "superseded"  # an edit replaced it; the new version indexes itself
                if number == 0:  # an earlier attempt's chunks go: a retry starts clean
                    Chunk.objects.for_tenant(tenant).filter(document=document).delete()
                Chunk.objects.bulk_create(
                    [
                        Chunk(
                            tenant=tenant,
                            document=document,
                            source=document.source,
                            kind=document.source.kind,
                            seq=d.seq,
                            heading_path=d.heading_path,
                            anchor=d.anchor,
                            text=d.text,
                            token_count=d.word_count,
                            embedding=vector,
                            embedding_model=embedder.name,
                        )
                        for d, vector in zip(part, vectors, strict=True)
                    ]
                )
        return "indexed"
    except Exception as exc:
        log.exception("indexing document %s failed", document_id)
        _fail(document, f"{type(exc).__name__}: {exc}")
        return "failed"


@shared_task(
    name="knowledge.tasks.index_document",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def index_document(document_id: int) -> str:
    return index_document_now(int(document_id))


@shared_task(name="knowledge.tasks.reembed_stale")
def reembed_stale() -> int:
    """Beat: re-embed what another model embedded, and enqueue again the documents whose index
    task died or was lost: a claim that expired (its worker died mid-document), and a version
    pending for longer than PENDING_GRACE (the broker was down when it was committed, or the
    message was lost). A duplicate delivery is harmless: the claim lets one task index it."""
    now = timezone.now()
    lost = (
        Document.objects.unscoped("maintenance: find documents whose index task died or was lost")
        .filter(is_current=True)
        .alias(waiting_since=Coalesce("index_started_at", "created_at"))
        .filter(
            Q(status=IndexStatus.INDEXING, index_started_at__lt=now - INDEX_LEASE)
            | Q(status=IndexStatus.PENDING, waiting_since__lt=now - PENDING_GRACE)
        )
    )
    found = list(lost.values_list("pk", "status")[:1000])
    pending = [pk for pk, status in found if status == IndexStatus.PENDING]
    if pending:  # re-queued now: the next beat gives them another PENDING_GRACE
        Document.objects.unscoped("maintenance: the lost documents found above").filter(
            pk__in=pending, status=IndexStatus.PENDING
        ).update(index_started_at=now)
    for document_id, _status in found:
        index_document.delay(document_id)
    if found:
        log.info("re-enqueued %d documents whose index task died or was lost", len(found))
    return services.reembed_stale() + len(found)


@shared_task(
    name="knowledge.tasks.retrain_triage_model",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
)
def retrain_triage_model(tenant_id: int) -> str:
    """Retrain the tenant's linear triage model (queued, debounced, by history changes)."""
    from knowledge.triage_model import retrain_now

    return retrain_now(int(tenant_id))
