"""Reading knowledge: the gate (``access_source``) and the tenant-scoped lists.

Requesters read the published kinds only (runbooks, guides, policies): past tickets and golden
paths are written from other people's tickets. Staff (``knowledge.view_all``) read every kind.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from agentops.models import Membership
from knowledge.models import Chunk, Document, IndexStatus, Source, SourceKind

PUBLIC_KINDS = (SourceKind.RUNBOOK, SourceKind.GUIDE, SourceKind.POLICY)


def kinds_visible_to(membership: Membership | None) -> list[str]:
    if membership is None:
        return []
    if membership.can("knowledge.view_all"):
        return list(SourceKind.values)
    return [str(k) for k in PUBLIC_KINDS]


def can_write_knowledge(membership: Membership | None) -> bool:
    return membership is not None and membership.can("knowledge.write")


def sources_visible_to(membership: Membership, *, kind: str = "") -> QuerySet[Source]:
    kinds = kinds_visible_to(membership)
    if kind:
        kinds = [k for k in kinds if k == kind]
    return Source.objects.for_tenant(membership.tenant).filter(kind__in=kinds, is_active=True)


def access_source(membership: Membership | None, source_id, *, write: bool = False) -> Source:
    """The source, or 404 (not visible: never say it exists) or 403 (visible, not writable)."""
    if membership is None:
        raise Http404("No such source")
    try:
        source_id = int(source_id)
    except (TypeError, ValueError):
        raise Http404("No such source") from None
    source = sources_visible_to(membership).filter(pk=source_id).first()
    if source is None:
        raise Http404("No such source")
    if write and not can_write_knowledge(membership):
        raise PermissionDenied("You may read this source but not change it.")
    return source


def current_documents(tenant, source_ids) -> dict[int, Document]:
    docs = Document.objects.for_tenant(tenant).filter(source_id__in=source_ids, is_current=True)
    return {d.source_id: d for d in docs.defer("content")}


def indexing_in_progress(documents) -> bool:
    return any(d.status in (IndexStatus.PENDING, IndexStatus.INDEXING) for d in documents)


def source_versions(source: Source) -> QuerySet[Document]:
    return (
        Document.objects.for_tenant(source.tenant)
        .filter(source=source)
        .defer("content")
        .select_related("created_by")
        .order_by("-version")
    )


def source_chunks(source: Source, document: Document) -> QuerySet[Chunk]:
    return (
        Chunk.objects.for_tenant(source.tenant)
        .filter(document=document)
        .only("id", "seq", "heading_path", "anchor", "text", "token_count", "embedding_model")
        .order_by("seq")
    )
