"""Tenants, for platform admins (superusers): create with a tier, suspend/activate, change
tier, export every row as JSON lines, delete for good. Anyone else gets 404: the page does
not exist for them."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from agentops import lifecycle, quotas
from agentops.models import Tenant


class TenantCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=60, required=False, help_text="Empty: from the name.")
    tier = forms.ChoiceField(choices=Tenant.Tier.choices, initial=Tenant.Tier.FREE)


def _platform_admin(request) -> None:
    user = request.user
    if not (user.is_authenticated and user.is_superuser and user.is_active):
        raise Http404("No such page")


def _tenant(request, pk: int) -> Tenant:
    _platform_admin(request)
    return get_object_or_404(Tenant, pk=pk)


def _page(request, form: TenantCreateForm, status: int = 200):
    tenants = Tenant.objects.annotate(members=Count("memberships")).order_by("name")
    rows = [{"tenant": t, "runs": quotas.used(t, quotas.RUNS)} for t in tenants]
    context = {"rows": rows, "form": form, "tiers": Tenant.Tier.choices}
    return render(request, "agentops/platform_tenants.html", context, status=status)


@require_GET
def tenant_list(request):
    _platform_admin(request)
    return _page(request, TenantCreateForm())


@require_POST
def tenant_create(request):
    _platform_admin(request)
    form = TenantCreateForm(request.POST)
    if form.is_valid():
        try:
            tenant = lifecycle.tenant_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request, f"Tenant {tenant.slug} created ({tenant.get_tier_display()})."
            )
            return redirect("platform:tenants")
    return _page(request, form, status=400)


@require_POST
def tenant_active(request, pk: int):
    tenant = _tenant(request, pk)
    active = request.POST.get("active") == "1"
    lifecycle.tenant_set_active(tenant=tenant, actor=request.user, active=active)
    messages.success(request, f"{tenant.slug} is {'active' if active else 'suspended'}.")
    return redirect("platform:tenants")


@require_POST
def tenant_tier(request, pk: int):
    tenant = _tenant(request, pk)
    try:
        lifecycle.tenant_set_tier(
            tenant=tenant, actor=request.user, tier=request.POST.get("tier", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{tenant.slug} is on the {tenant.get_tier_display()} tier.")
    return redirect("platform:tenants")


@require_GET
def tenant_export(request, pk: int):
    tenant = _tenant(request, pk)
    response = StreamingHttpResponse(
        lifecycle.export_lines(tenant), content_type="application/x-ndjson; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="tenant-{tenant.slug}.jsonl"'
    return response


@require_POST
def tenant_delete(request, pk: int):
    tenant = _tenant(request, pk)
    slug = tenant.slug
    try:
        deleted = lifecycle.tenant_purge(
            tenant=tenant, actor=request.user, confirm_slug=request.POST.get("confirm_slug", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Tenant {slug} deleted for good ({sum(deleted.values())} rows).")
    return redirect("platform:tenants")


app_name = "platform"
urlpatterns = [
    path("tenants/", tenant_list, name="tenants"),
    path("tenants/new", tenant_create, name="tenant-create"),
    path("tenants/<int:pk>/active", tenant_active, name="tenant-active"),
    path("tenants/<int:pk>/tier", tenant_tier, name="tenant-tier"),
    path("tenants/<int:pk>/export.jsonl", tenant_export, name="tenant-export"),
    path("tenants/<int:pk>/delete", tenant_delete, name="tenant-delete"),
]
