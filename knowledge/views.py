"""Console views of the knowledge base. Each one goes through the gate in knowledge.selectors."""

from __future__ import annotations

import os

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from agentops.access import tenant_member
from knowledge import retrieval, services
from knowledge.embeddings import EmbeddingBackendError, backend_problem
from knowledge.forms import KindFilterForm, SearchForm, SourceForm
from knowledge.models import SourceKind
from knowledge.selectors import (
    access_source,
    can_write_knowledge,
    current_documents,
    indexing_in_progress,
    kinds_visible_to,
    source_chunks,
    source_versions,
    sources_visible_to,
)

SOURCES_PER_PAGE = 50
# The search page leaves out passages that share no word with the query and are far from it in
# meaning (cosine of the embeddings): in a small knowledge base the nearest are not all near.
SEARCH_MIN_VECTOR = 0.2
STOP_POLLING = 286  # htmx stops an every-Ns poll on this status


def _partial(request, template: str, name: str) -> str:
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        return f"{template}#{name}"
    return template


def _kind_choices(membership) -> list[tuple[str, str]]:
    visible = set(kinds_visible_to(membership))
    return [("", "Any kind"), *((v, label) for v, label in SourceKind.choices if v in visible)]


@tenant_member
def source_list(request):
    membership = request.membership
    form = KindFilterForm(request.GET or None)
    form.fields["kind"].choices = _kind_choices(membership)
    kind = form.cleaned_data["kind"] if form.is_valid() else ""
    sources = sources_visible_to(membership, kind=kind).order_by("-updated_at", "-id")
    page = Paginator(sources, SOURCES_PER_PAGE).get_page(request.GET.get("page"))
    docs = current_documents(membership.tenant, [s.pk for s in page.object_list])
    rows = [{"source": s, "doc": docs.get(s.pk)} for s in page.object_list]
    polling = indexing_in_progress(docs.values())
    context = {
        "form": form,
        "page": page,
        "rows": rows,
        "polling": polling,
        "can_write": can_write_knowledge(membership),
        "backend_problem": backend_problem(),
    }
    template = _partial(request, "knowledge/source_list.html", "sources")
    status = STOP_POLLING if template.endswith("#sources") and not polling else 200
    return render(request, template, context, status=status)


def _ingest_from_form(request, form: SourceForm, *, source=None):
    """Call the service with the form's text or file; errors land on the form. The document,
    or None when the input was refused."""
    data = form.cleaned_data
    upload = data.get("upload")
    title = (data.get("title") or "").strip()
    if upload is not None:
        try:
            content, content_type = services.decode_upload(upload.read(), filename=upload.name)
        except ValidationError as exc:
            form.add_error("upload", exc.messages)
            return None
        title = title or os.path.splitext(os.path.basename(upload.name))[0].replace("_", " ")
        origin = f"upload:{os.path.basename(upload.name)}"[:500]
    else:
        content, content_type, origin = data["content"], data["content_type"], "console"
    try:
        return services.ingest_text(
            tenant=request.membership.tenant,
            kind=data["kind"],
            title=title,
            content=content,
            content_type=content_type,
            origin=origin if source is None else "",
            actor=request.user,
            source=source,
        )
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            if field == "content" and upload is not None:
                field = "upload"  # the file's text was refused: say so next to the file
            form.add_error(field if field in form.fields else None, errors)
        return None


def _done(request, url: str):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@tenant_member
@require_http_methods(["GET", "POST"])
def source_create(request):
    membership = request.membership
    if not can_write_knowledge(membership):
        raise PermissionDenied("Only service-desk staff add knowledge.")
    form = SourceForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        document = _ingest_from_form(request, form)
        if document is not None:
            messages.success(request, f"“{document.source.title}” added; indexing has started.")
            return _done(request, reverse("knowledge:source-detail", args=[document.source_id]))
    status = 400 if form.is_bound and form.errors else 200
    context = {"form": form, "source": None, "backend_problem": backend_problem()}
    return render(request, "knowledge/source_form.html", context, status=status)


@tenant_member
@require_http_methods(["GET", "POST"])
def source_edit(request, source_id: int):
    membership = request.membership
    source = access_source(membership, source_id, write=True)
    current = current_documents(membership.tenant, [source.pk]).get(source.pk)
    initial = {"title": source.title, "kind": source.kind}
    if current is not None:
        current.refresh_from_db(fields=["content"])
        initial.update(content=current.content, content_type=current.content_type)
    form = SourceForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        document = _ingest_from_form(request, form, source=source)
        if document is not None:
            if current is not None and document.pk == current.pk:
                messages.success(request, "No change to the text: nothing to re-index.")
            else:
                messages.success(request, f"Saved as version {document.version}; re-indexing.")
            return _done(request, reverse("knowledge:source-detail", args=[source.pk]))
    status = 400 if form.is_bound and form.errors else 200
    context = {"form": form, "source": source, "backend_problem": backend_problem()}
    return render(request, "knowledge/source_form.html", context, status=status)


@tenant_member
def source_detail(request, source_id: int):
    membership = request.membership
    source = access_source(membership, source_id)
    versions = list(source_versions(source))
    current = next((d for d in versions if d.is_current), None)
    polling = current is not None and indexing_in_progress([current])
    template = _partial(request, "knowledge/source_detail.html", "status")
    if template.endswith("#status"):
        status = 200 if polling else STOP_POLLING
        context = {"source": source, "doc": current, "polling": polling}
        return render(request, template, context, status=status)
    chunks = list(source_chunks(source, current)) if current is not None else []
    seen: set[str] = set()
    for chunk in chunks:
        # The first passage of each section carries the section's anchor (the citations' link).
        chunk.anchor_here = bool(chunk.anchor) and chunk.anchor not in seen
        seen.add(chunk.anchor)
    context = {
        "source": source,
        "doc": current,
        "versions": versions,
        "chunks": chunks,
        "polling": polling,
        "can_write": can_write_knowledge(membership),
        "backend_problem": backend_problem(),
    }
    return render(request, template, context)


@tenant_member
def search(request):
    membership = request.membership
    form = SearchForm(request.GET or None)
    form.fields["kind"].choices = _kind_choices(membership)
    hits, error, query = [], "", ""
    if form.is_valid():
        query = form.cleaned_data["q"].strip()
        visible = kinds_visible_to(membership)
        kind = form.cleaned_data["kind"]
        kinds = [kind] if kind in visible else visible
        problem = backend_problem()
        if problem:
            error = problem
        elif query:
            try:
                hits = [
                    hit
                    for hit in retrieval.search(membership.tenant, query, k=10, kinds=kinds)
                    if hit.scores.text > 0 or hit.scores.vector >= SEARCH_MIN_VECTOR
                ]
            except EmbeddingBackendError as exc:
                error = str(exc)
    context = {
        "form": form,
        "hits": hits,
        "query": query,
        "error": error,
        # Scores explain the ranking to the people who tune it; a requester sees the answers.
        "show_scores": membership.can("knowledge.view_all"),
    }
    return render(request, _partial(request, "knowledge/search.html", "results"), context)


SUGGESTIONS = 3  # articles shown beside a new ticket
SUGGEST_MAX_CHARS = 600


@tenant_member
def suggest(request):
    """Articles that may answer a ticket being written (the New ticket form asks as the title
    and description are typed): the tenant's knowledge the viewer may read, best first. Quiet
    on purpose: nothing to show (a short text, no match, no embedding backend) is an empty
    partial, never an error in the middle of someone's form."""
    membership = request.membership
    text = " ".join(
        (request.GET.get(name) or "").strip() for name in ("title", "description")
    ).strip()[:SUGGEST_MAX_CHARS]
    hits = []
    if len(text) >= 3 and backend_problem() is None:
        try:
            hits = [
                hit
                for hit in retrieval.search(
                    membership.tenant, text, k=SUGGESTIONS, kinds=kinds_visible_to(membership)
                )
                if hit.scores.text > 0 or hit.scores.vector >= SEARCH_MIN_VECTOR
            ]
        except EmbeddingBackendError:
            hits = []
    return render(request, "knowledge/_suggestions.html", {"hits": hits})
