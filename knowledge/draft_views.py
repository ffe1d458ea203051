"""Reviewing the knowledge manager's article drafts: list, edit, publish or reject.

Staff who write knowledge only (``drafts.access_draft``: 404 for another tenant's draft, 403
for a member who may not write knowledge). Publishing indexes the article.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from agentops.access import tenant_member
from knowledge import drafts
from knowledge.models import CONTENT_MAX, DraftStatus
from knowledge.selectors import can_write_knowledge


class DraftForm(forms.Form):
    action = forms.ChoiceField(choices=[("publish", "Publish"), ("reject", "Reject")])
    title = forms.CharField(max_length=300)
    kind = forms.ChoiceField(
        choices=[(str(k), k.label) for k in drafts.PUBLISHABLE_KINDS], initial="guide"
    )
    content = forms.CharField(
        max_length=CONTENT_MAX,
        widget=forms.Textarea(attrs={"rows": 18, "class": "mono"}),
        strip=True,
    )


@tenant_member
def draft_list(request):
    membership = request.membership
    if not can_write_knowledge(membership):
        raise PermissionDenied("Only staff who write knowledge review drafts.")
    waiting = list(drafts.drafts_for(membership.tenant).order_by("-created_at", "-id")[:100])
    return render(request, "knowledge/drafts.html", {"drafts": waiting})


@tenant_member
@require_http_methods(["GET", "POST"])
def draft_detail(request, draft_id: int):
    draft = drafts.access_draft(request.membership, draft_id)
    initial = {"title": draft.title, "kind": draft.kind, "content": draft.content}
    form = DraftForm(request.POST or None, initial=initial)
    if request.method == "POST" and draft.status == DraftStatus.DRAFT and form.is_valid():
        data = form.cleaned_data
        try:
            draft = drafts.draft_update(
                draft=draft,
                actor=request.user,
                title=data["title"],
                content=data["content"],
                kind=data["kind"],
            )
            if data["action"] == "publish":
                drafts.draft_publish(draft=draft, actor=request.user)
                messages.success(request, f"“{draft.title}” published; indexing has started.")
            else:
                drafts.draft_reject(draft=draft, actor=request.user)
                messages.success(request, f"“{draft.title}” rejected.")
            return redirect(reverse("knowledge:draft-list"))
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
    status = 400 if form.is_bound and (form.errors or draft.status != DraftStatus.DRAFT) else 200
    return render(
        request, "knowledge/draft_detail.html", {"draft": draft, "form": form}, status=status
    )
