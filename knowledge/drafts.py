"""Article drafts: what the knowledge manager proposes and a person publishes.

Services (atomic, audited): ``draft_create`` (one draft per ticket, ever: a rejected gap is
not proposed again), ``draft_update`` (the reviewer's edits), ``draft_publish`` (the text
becomes a source through ``services.ingest_text``, which indexes it) and ``draft_reject``.
Selectors: ``drafts_for`` and the gate ``access_draft`` (staff who write knowledge only).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from agentops import audit
from knowledge.models import CONTENT_MAX, ArticleDraft, DraftStatus, SourceKind
from knowledge.selectors import can_write_knowledge

PUBLISHABLE_KINDS = (SourceKind.GUIDE, SourceKind.RUNBOOK, SourceKind.POLICY)


def drafts_for(tenant, *, status: str | None = DraftStatus.DRAFT) -> QuerySet[ArticleDraft]:
    qs = ArticleDraft.objects.for_tenant(tenant)
    return qs.filter(status=status) if status else qs


def drafted_refs(tenant, refs) -> set[str]:
    """The refs among ``refs`` that have a draft already (any status)."""
    return set(
        drafts_for(tenant, status=None).filter(ref__in=list(refs)).values_list("ref", flat=True)
    )


def access_draft(membership, draft_id) -> ArticleDraft:
    """The draft, or 404 (not of this tenant, or not a number) or 403 (not a knowledge writer)."""
    if membership is None:
        raise Http404("No such draft")
    try:
        draft_id = int(draft_id)
    except (TypeError, ValueError):
        raise Http404("No such draft") from None
    draft = ArticleDraft.objects.for_tenant(membership.tenant).filter(pk=draft_id).first()
    if draft is None:
        raise Http404("No such draft")
    if not can_write_knowledge(membership):
        raise PermissionDenied("Only staff who write knowledge review drafts.")
    return draft


def _check(title: str, content: str, kind: str) -> tuple[str, str]:
    title, content = (title or "").strip(), (content or "").strip()
    errors = {}
    if not title:
        errors["title"] = "Give the article a title."
    if not content:
        errors["content"] = "The article has no text."
    if "\x00" in title or "\x00" in content:
        errors["content"] = "The text contains NUL characters."
    if len(content) > CONTENT_MAX:
        errors["content"] = f"At most {CONTENT_MAX:,} characters."
    if kind not in PUBLISHABLE_KINDS:
        errors["kind"] = "An article is a guide, a runbook or a policy."
    if errors:
        raise ValidationError(errors)
    return title[:300], content


@transaction.atomic
def draft_create(*, tenant, ref: str, title: str, content: str, provenance: dict, actor=None):
    """Store a draft for ``ref``; returns it, or None when the ref has one already."""
    title, content = _check(title, content, SourceKind.GUIDE)
    draft, created = ArticleDraft.objects.for_tenant(tenant).get_or_create(
        tenant=tenant,
        ref=ref[:200],
        defaults={"title": title, "content": content, "provenance": provenance},
    )
    if not created:
        return None
    audit.record(
        tenant=tenant,
        actor=actor,
        action="knowledge.draft_created",
        target_type="article_draft",
        target_id=draft.pk,
        target_repr=draft.title,
        metadata={"ref": draft.ref, "reason": provenance.get("reason", "")},
    )
    return draft


def _locked(draft: ArticleDraft) -> ArticleDraft:
    locked = ArticleDraft.objects.for_tenant(draft.tenant).select_for_update().get(pk=draft.pk)
    if locked.status != DraftStatus.DRAFT:
        raise ValidationError({"status": f"This draft is {locked.get_status_display().lower()}."})
    return locked


@transaction.atomic
def draft_update(*, draft: ArticleDraft, actor, title: str, content: str, kind: str):
    locked = _locked(draft)
    locked.title, locked.content = _check(title, content, kind)
    locked.kind = kind
    locked.save(update_fields=["title", "content", "kind"])
    return locked


@transaction.atomic
def draft_publish(*, draft: ArticleDraft, actor):
    """Publish: the draft's text becomes a knowledge source of its kind (indexed after
    commit), with the draft's provenance and its reviewer."""
    from knowledge.services import ingest_text

    locked = _locked(draft)
    user = getattr(actor, "get_username", lambda: "")()
    document = ingest_text(
        tenant=locked.tenant,
        kind=locked.kind,
        title=locked.title,
        content=locked.content,
        content_type="markdown",
        origin=f"draft:{locked.ref}",
        external_key=f"draft:{locked.ref}",
        provenance={**locked.provenance, "approver": user, "reason": "a reviewer published it"},
        actor=actor,
    )
    locked.status, locked.source_id = DraftStatus.PUBLISHED, document.source_id
    locked.reviewed_by = actor if getattr(actor, "is_authenticated", False) else None
    locked.reviewed_at = timezone.now()
    locked.save(update_fields=["status", "source", "reviewed_by", "reviewed_at"])
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="knowledge.draft_published",
        target_type="article_draft",
        target_id=locked.pk,
        target_repr=locked.title,
        metadata={"source": document.source_id},
    )
    return locked


@transaction.atomic
def draft_reject(*, draft: ArticleDraft, actor, reason: str = ""):
    locked = _locked(draft)
    locked.status = DraftStatus.REJECTED
    locked.reviewed_by = actor if getattr(actor, "is_authenticated", False) else None
    locked.reviewed_at = timezone.now()
    locked.save(update_fields=["status", "reviewed_by", "reviewed_at"])
    audit.record(
        tenant=locked.tenant,
        actor=actor,
        action="knowledge.draft_rejected",
        target_type="article_draft",
        target_id=locked.pk,
        target_repr=locked.title,
        metadata={"reason": reason[:500]},
    )
    return locked
