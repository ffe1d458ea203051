"""The audit page: the current tenant's trail, filtered, paginated, exported, verified.

Auditors and tenant admins only (capability ``audit.view``); everyone else gets 403. Every
query starts from ``AuditEvent.objects.for_tenant(request.tenant)``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator

from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.urls import path, re_path
from django.utils import timezone
from django.views.decorators.http import require_GET

from agentops.access import require_capability, tenant_member
from agentops.audit import verify_chain
from agentops.audit_words import describe
from agentops.models import AuditEvent

EXPORT_CHUNK = 1000
EXPORT_FIELDS = (
    "seq",
    "created_at",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "changes",
    "metadata",
    "prev_hash",
    "hash",
)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=80, label="Action starts with")
    target_type = forms.CharField(required=False, max_length=60)
    target_id = forms.CharField(required=False, max_length=64)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def audit_events(request):
    """The tenant's events matching the request's filters, newest first, and the form."""
    require_capability(request.membership, "audit.view")
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.for_tenant(request.membership.tenant).order_by("-seq")
    if not form.is_bound:
        return events, form
    form.is_valid()  # a filter that does not parse is reported on the page and left out
    data = form.cleaned_data
    if actor := data.get("actor", "").strip():
        events = events.filter(actor_label__iexact=actor)
    if action := data.get("action", "").strip():
        events = events.filter(action__startswith=action)
    if target_type := data.get("target_type", "").strip():
        events = events.filter(target_type=target_type)
    if target_id := data.get("target_id", "").strip():
        events = events.filter(target_id=target_id)
    if date_from := data.get("date_from"):
        events = events.filter(created_at__gte=_start_of(date_from))
    if date_to := data.get("date_to"):
        events = events.filter(created_at__lt=_start_of(date_to + dt.timedelta(days=1)))
    return events, form


def _querystring(request, *, drop: tuple[str, ...] = ("page",)) -> str:
    query = request.GET.copy()
    for key in drop:
        query.pop(key, None)
    return query.urlencode()


def _list_context(request) -> dict:
    events, form = audit_events(request)
    page = Paginator(events, settings.TICKETS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [(event, describe(event)) for event in page.object_list]
    return {"form": form, "page": page, "rows": rows, "querystring": _querystring(request)}


@tenant_member
@require_GET
def audit_list(request):
    context = _list_context(request)
    template = "agentops/audit.html"
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        template += "#results"
    return render(request, template, context)


@tenant_member
@require_GET
def audit_verify(request):
    """Recompute the tenant's chain now and show the verdict (the page's status badge)."""
    require_capability(request.membership, "audit.view")
    report = verify_chain(request.membership.tenant)
    if request.htmx and not request.htmx.boosted:
        return render(request, "agentops/audit.html#chain-status", {"report": report})
    return render(request, "agentops/audit.html", {"report": report, **_list_context(request)})


# --- export -------------------------------------------------------------------------------


def _safe_cell(value) -> str:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ gets a leading '."""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _rows(events) -> Iterator[tuple]:
    return events.values_list(*EXPORT_FIELDS).iterator(chunk_size=EXPORT_CHUNK)


def _csv_stream(events) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for row in _rows(events):
        yield writer.writerow([_safe_cell(v) for v in row])


def _json_stream(events) -> Iterator[str]:
    yield "["
    separator = "\n"
    for row in _rows(events):
        yield separator + json.dumps(
            dict(zip(EXPORT_FIELDS, row, strict=True)), cls=DjangoJSONEncoder
        )
        separator = ",\n"
    yield "\n]\n"


EXPORTERS = {
    "csv": ("text/csv; charset=utf-8", _csv_stream),
    "json": ("application/json", _json_stream),
}


@tenant_member
@require_GET
def audit_export(request, fmt: str):
    """The filtered set (all pages), streamed from a server-side cursor."""
    events, _form = audit_events(request)
    content_type, stream = EXPORTERS[fmt]
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    filename = f"audit-{request.membership.tenant.slug}-{stamp}.{fmt}"
    response = StreamingHttpResponse(stream(events), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


app_name = "audit"
urlpatterns = [
    path("", audit_list, name="list"),
    path("verify", audit_verify, name="verify"),
    re_path(r"^export\.(?P<fmt>csv|json)$", audit_export, name="export"),
]
