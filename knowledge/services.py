"""Writing knowledge: sources, their document versions, and (re)indexing.

``ingest_text`` is the one way text enters the knowledge base (console paste and upload,
``import_knowledge``, past tickets, golden paths). It validates, skips content whose checksum is
unchanged, adds a document version otherwise, and enqueues ``knowledge.tasks.index_document``
after commit; the task chunks and embeds. Everything is audited through ``agentops.audit``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from agentops import audit, quotas
from knowledge.chunking import chunk_document
from knowledge.models import (
    CONTENT_MAX,
    Chunk,
    ContentType,
    Document,
    IndexStatus,
    Source,
    SourceKind,
)

log = logging.getLogger(__name__)

# One document's text, in UTF-8 bytes. Runbooks are a few kB; 1 MB is a book.
MAX_CONTENT_BYTES = 1_000_000
TITLE_MAX = 300
UPLOAD_TYPES = {
    ".md": ContentType.MARKDOWN,
    ".markdown": ContentType.MARKDOWN,
    ".txt": ContentType.TEXT,
    ".html": ContentType.HTML,
    ".htm": ContentType.HTML,
}


def checksum_of(content: str, content_type: str = ContentType.MARKDOWN) -> str:
    """sha256 of the content (and its type: the same bytes read as HTML index differently)."""
    return hashlib.sha256(f"{content_type}\n{content}".encode()).hexdigest()


# --------------------------------------------------------------------------- validation


def content_type_for_filename(filename: str) -> str:
    ext = os.path.splitext(filename or "")[1].lower()
    try:
        return UPLOAD_TYPES[ext]
    except KeyError:
        allowed = ", ".join(sorted(UPLOAD_TYPES))
        raise ValidationError(
            f"Unsupported file type {ext or '(no extension)'!r} for {filename!r}: "
            f"upload Markdown, plain text or HTML ({allowed}).",
            code="unsupported",
        ) from None


def decode_upload(data: bytes, *, filename: str) -> tuple[str, str]:
    """An uploaded file's text and content type, or a ValidationError saying what is wrong."""
    content_type = content_type_for_filename(filename)
    if not data or not data.strip():
        raise ValidationError(f"{filename} is empty.", code="empty")
    if len(data) > MAX_CONTENT_BYTES:
        raise ValidationError(
            f"{filename} is too large ({len(data) // 1024:,} KB; the limit is "
            f"{MAX_CONTENT_BYTES // 1000:,} KB).",
            code="oversized",
        )
    if b"\x00" in data:
        raise ValidationError(
            f"{filename} looks like a binary file (it contains NUL bytes), not text.",
            code="binary",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(
            f"{filename} is not UTF-8 text (it may be a binary file or another encoding).",
            code="binary",
        ) from None
    return text, content_type


def _validate(*, kind: str, title: str, content: str, content_type: str) -> str:
    errors: dict[str, list[str]] = {}
    if kind not in SourceKind.values:
        errors.setdefault("kind", []).append(
            f"Unknown kind {kind!r}; choose one of {', '.join(SourceKind.values)}."
        )
    if content_type not in ContentType.values:
        errors.setdefault("content_type", []).append(
            f"Unsupported content type {content_type!r}; use markdown, text or html."
        )
    title = " ".join((title or "").split())
    if not title:
        errors.setdefault("title", []).append("A title is required.")
    elif len(title) > TITLE_MAX:
        errors.setdefault("title", []).append(f"The title is longer than {TITLE_MAX} characters.")
    if not isinstance(content, str):
        errors.setdefault("content", []).append("The content must be text.")
    elif not content.strip():
        errors.setdefault("content", []).append("The content is empty.")
    elif "\x00" in content:
        errors.setdefault("content", []).append(
            "The content looks binary (it contains NUL bytes), not text."
        )
    elif len(content) > CONTENT_MAX or len(content.encode("utf-8", "replace")) > MAX_CONTENT_BYTES:
        errors.setdefault("content", []).append(
            f"The content is too large (the limit is {MAX_CONTENT_BYTES // 1000:,} KB)."
        )
    elif content_type in ContentType.values and not chunk_document(content, content_type):
        errors.setdefault("content", []).append("The content has no readable text.")
    if errors:
        raise ValidationError(errors)
    return title


# --------------------------------------------------------------------------- ingest


def _resolve_source(*, tenant, source, keyed, external_key, kind, title, origin, provenance, actor):
    """The source to add a version to (locked), or a new one; and whether it is new.
    ``keyed``: the source ``external_key`` names, already read under its lock (or None)."""
    if source is not None:
        if source.tenant_id != tenant.pk:
            raise ValidationError("That source belongs to another workspace.")
        return Source.objects.for_tenant(tenant).select_for_update().get(pk=source.pk), False
    if keyed is not None:
        return keyed, False
    now = timezone.now()
    try:
        with transaction.atomic():  # a savepoint: a concurrent import of the same key may win
            created = Source.objects.create(
                tenant=tenant,
                kind=kind,
                title=title,
                origin=origin[:500],
                external_key=external_key[:500],
                provenance=provenance or {},
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        if not external_key:
            raise
        found = (
            Source.objects.for_tenant(tenant)
            .select_for_update()
            .get(external_key=external_key[:500])
        )
        return found, False
    return created, True


def _enqueue_index(document_id: int) -> None:
    from knowledge.tasks import index_document

    # robust: a broker outage only logs here, the version stays pending and the beat
    # (knowledge.tasks.reembed_stale) enqueues it again once PENDING_GRACE has passed.
    transaction.on_commit(lambda: index_document.delay(document_id), robust=True)


@transaction.atomic
def ingest_text(
    *,
    tenant,
    kind: str,
    title: str,
    content: str,
    content_type: str = "markdown",
    origin: str = "",
    external_key: str = "",
    provenance: dict[str, Any] | None = None,
    actor=None,
    source: Source | None = None,
    index_after_commit: bool = True,
) -> Document:
    """Add or update a knowledge source; return its current document.

    Unchanged content (same checksum as the current version) returns the current document and
    re-indexes nothing. New or changed content adds a version (it becomes current), deletes the
    old version's chunks and enqueues indexing after commit. Invalid input raises
    ``ValidationError`` with a message per field, and stores nothing.

    ``index_after_commit=False``: no index task is enqueued; a returned document that is
    pending is the caller's to index once this has committed (``knowledge.tasks
    .index_document_now``; if the caller dies first, the beat indexes it after PENDING_GRACE).
    """
    title = _validate(kind=kind, title=title, content=content, content_type=content_type)
    external_key = (external_key or "").strip()
    # The source the external key names, locked (read once: it also tells the quota whether a
    # source is added).
    keyed = None
    if source is None and external_key:
        keyed = (
            Source.objects.for_tenant(tenant)
            .select_for_update()
            .filter(external_key=external_key)
            .first()
        )
    # Before anything is stored or embedded: room for a new document, and for more passages.
    quotas.check_knowledge(tenant, documents=1 if source is None and keyed is None else 0)
    src, is_new = _resolve_source(
        tenant=tenant,
        source=source,
        keyed=keyed,
        external_key=external_key,
        kind=kind,
        title=title,
        origin=origin or "",
        provenance=provenance,
        actor=actor,
    )
    checksum = checksum_of(content, content_type)
    current = (
        None
        if is_new
        else Document.objects.for_tenant(tenant).filter(source=src, is_current=True).first()
    )

    # 1. Source fields that may change without new content (a renamed title, a new origin).
    changed_fields: dict[str, Any] = {}
    for name, value in (
        ("title", title),
        ("kind", kind),
        ("origin", (origin or "")[:500]),
    ):
        if not is_new and value and getattr(src, name) != value:
            changed_fields[name] = [getattr(src, name), value]
            setattr(src, name, value)
    if not is_new and provenance is not None and src.provenance != provenance:
        src.provenance = provenance
        changed_fields["provenance"] = "updated"
    if not is_new and not src.is_active:
        src.is_active = True
        changed_fields["is_active"] = [False, True]

    # 2. Unchanged content: nothing to index (a failed index is retried).
    if current is not None and current.checksum == checksum:
        if changed_fields:
            src.updated_at = timezone.now()
            src.save(update_fields=[*(f for f in changed_fields), "updated_at"])
            if "kind" in changed_fields:
                Chunk.objects.for_tenant(tenant).filter(source=src).update(kind=src.kind)
            audit.record(
                tenant=tenant,
                actor=actor,
                action="knowledge.source_updated",
                target_type="knowledge_source",
                target_id=src.pk,
                target_repr=src.title,
                changes=changed_fields,
            )
        # A failed index is retried; a reactivated source lost its chunks when it was
        # deactivated, so it is indexed again.
        if current.status == IndexStatus.FAILED or "is_active" in changed_fields:
            _reset_for_indexing(current)
            if index_after_commit:
                _enqueue_index(current.pk)
        return current

    # 3. New content: a new version becomes current; the old chunks go.
    version = 1
    if not is_new:
        last = Document.objects.for_tenant(tenant).filter(source=src).aggregate(v=Max("version"))
        version = (last["v"] or 0) + 1
        Document.objects.for_tenant(tenant).filter(source=src, is_current=True).update(
            is_current=False
        )
        Chunk.objects.for_tenant(tenant).filter(source=src).delete()
    document = Document.objects.create(
        tenant=tenant,
        source=src,
        version=version,
        is_current=True,
        content_type=content_type,
        content=content,
        checksum=checksum,
        status=IndexStatus.PENDING,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    src.updated_at = timezone.now()
    if not is_new:
        src.save(update_fields=[*(f for f in changed_fields), "updated_at"])
    audit.record(
        tenant=tenant,
        actor=actor,
        action="knowledge.source_created" if is_new else "knowledge.document_added",
        target_type="knowledge_source",
        target_id=src.pk,
        target_repr=src.title,
        changes={"version": version, **({k: v for k, v in changed_fields.items()})},
        metadata={
            "kind": src.kind,
            "content_type": content_type,
            "checksum": checksum,
            "bytes": len(content.encode("utf-8", "replace")),
            "origin": src.origin,
        },
    )
    if index_after_commit:
        _enqueue_index(document.pk)
    document.source = src
    return document


def _reset_for_indexing(document: Document) -> None:
    Document.objects.unscoped("the caller loaded this document through its tenant").filter(
        pk=document.pk
    ).update(
        status=IndexStatus.PENDING, error="", chunks_embedded=0, index_started_at=timezone.now()
    )
    document.status, document.error, document.chunks_embedded = IndexStatus.PENDING, "", 0


@transaction.atomic
def reindex_document(*, document: Document, actor=None) -> Document:
    """Index the current version again (after a failure, or by an admin's choice)."""
    claimed = (
        Document.objects.for_tenant(document.tenant)
        .filter(pk=document.pk, is_current=True)
        .exclude(status=IndexStatus.INDEXING)
        .update(
            status=IndexStatus.PENDING,
            chunks_embedded=0,
            error="",
            index_started_at=timezone.now(),
        )
    )
    if claimed:
        audit.record(
            tenant=document.tenant,
            actor=actor,
            action="knowledge.reindex_requested",
            target_type="knowledge_source",
            target_id=document.source_id,
            target_repr=str(document)[:200],
        )
        _enqueue_index(document.pk)
    return document


@transaction.atomic
def source_deactivate(*, source: Source, actor=None) -> Source:
    """Take a source out of retrieval (its chunks go; its versions stay for the record)."""
    locked = Source.objects.for_tenant(source.tenant).select_for_update().get(pk=source.pk)
    if not locked.is_active:
        return locked
    locked.is_active = False
    locked.updated_at = timezone.now()
    locked.save(update_fields=["is_active", "updated_at"])
    Chunk.objects.for_tenant(locked.tenant).filter(source=locked).delete()
    Document.objects.for_tenant(locked.tenant).filter(source=locked, is_current=True).update(
        chunks_total=0, chunks_embedded=0
    )
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="knowledge.source_deactivated",
        target_type="knowledge_source",
        target_id=locked.pk,
        target_repr=locked.title,
    )
    return locked


# --------------------------------------------------------------------------- folders

# The demo knowledge base, written for this project (loaded by seed_demo for each tenant).
DEMO_KB_DIR = Path(__file__).resolve().parent / "demo_kb"
# A folder named like this gives its files a kind (``runbooks/vpn.md`` is a runbook).
FOLDER_KINDS = {
    "runbooks": SourceKind.RUNBOOK,
    "guides": SourceKind.GUIDE,
    "policies": SourceKind.POLICY,
    "golden_paths": SourceKind.GOLDEN_PATH,
}
_MD_TITLE = re.compile(r"^ {0,3}# +(.+?)\s*#*\s*$", re.MULTILINE)
_HTML_TITLE = re.compile(r"<(title|h1)[^>]*>(.*?)</\1>", re.IGNORECASE | re.DOTALL)


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def title_from(content: str, content_type: str, fallback: str) -> str:
    """A document's own title: its first level-1 heading (or HTML title), else ``fallback``."""
    if content_type == ContentType.MARKDOWN:
        match = _MD_TITLE.search(content)
        if match:
            return match.group(1).strip()[:TITLE_MAX]
    elif content_type == ContentType.HTML:
        match = _HTML_TITLE.search(content)
        if match:
            text = " ".join(re.sub(r"<[^>]+>", " ", match.group(2)).split())
            if text:
                return text[:TITLE_MAX]
    return fallback[:TITLE_MAX]


def import_folder(*, tenant, folder, kind: str | None = None, actor=None) -> ImportReport:
    """Ingest every Markdown, text and HTML file under ``folder`` (recursively).

    The file's path relative to the folder is its ``external_key``, so importing the folder
    again skips unchanged files and adds a version for changed ones. Each file is its own
    transaction: one bad file is reported and the others go in.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValidationError(f"{folder} is not a folder.")
    report = ImportReport()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # .git, .DS_Store and friends
        try:
            content, content_type = decode_upload(path.read_bytes(), filename=rel)
            file_kind = kind or next(
                (FOLDER_KINDS[p] for p in path.relative_to(root).parts[:-1] if p in FOLDER_KINDS),
                SourceKind.RUNBOOK,
            )
            fallback = path.stem.replace("_", " ").replace("-", " ").capitalize()
            before = (
                Document.objects.for_tenant(tenant)
                .filter(source__external_key=rel, is_current=True)
                .values_list("pk", flat=True)
                .first()
            )
            document = ingest_text(
                tenant=tenant,
                kind=file_kind,
                title=title_from(content, content_type, fallback),
                content=content,
                content_type=content_type,
                origin=f"import:{rel}",
                external_key=rel,
                actor=actor,
            )
        except ValidationError as exc:
            report.refused.append((rel, " ".join(exc.messages)))
            continue
        if before is None:
            report.created.append(rel)
        elif before == document.pk:
            report.unchanged.append(rel)
        else:
            report.updated.append(rel)
    return report


# --------------------------------------------------------------------------- re-embedding


def reembed_stale(tenant=None) -> int:
    """Re-index every current document that has chunks embedded by another model (or none).

    Called when ``KNOWLEDGE_EMBEDDING_BACKEND`` changes (beat task ``knowledge.reembed_stale``
    and ``manage.py reembed_knowledge``). Returns the number of documents enqueued.
    """
    from knowledge.embeddings import get_embedder

    model = get_embedder().name
    chunks = (
        Chunk.objects.for_tenant(tenant)
        if tenant is not None
        else Chunk.objects.unscoped("maintenance: re-embed every tenant's stale chunks")
    )
    stale_docs = set(
        chunks.filter(~Q(embedding_model=model) | Q(embedding__isnull=True))
        .values_list("document_id", flat=True)
        .distinct()
    )
    if not stale_docs:
        return 0
    docs = (
        Document.objects.for_tenant(tenant)
        if tenant is not None
        else Document.objects.unscoped("maintenance: the stale chunks' documents")
    )
    enqueued = 0
    for document_id in sorted(stale_docs):
        with transaction.atomic():
            # Claim: only a document that is not being indexed right now is enqueued again.
            # A failed document waits for an edit or the admin's re-index (no retry loop).
            claimed = (
                docs.filter(pk=document_id, is_current=True)
                .exclude(status__in=[IndexStatus.INDEXING, IndexStatus.FAILED])
                .update(
                    status=IndexStatus.PENDING,
                    chunks_embedded=0,
                    error="",
                    index_started_at=timezone.now(),
                )
            )
            if claimed:
                _enqueue_index(document_id)
                enqueued += 1
    if enqueued:
        log.info("re-embedding %d documents with %s", enqueued, model)
    return enqueued
