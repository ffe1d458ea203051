"""The bell and the notifications page: a user's own in-console notifications, in the current
tenant only. Every query starts from ``agentops.notifications.notifications_for``."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from agentops import notifications
from agentops.access import tenant_member

TEMPLATE = "agentops/notifications.html"
PAGE_SIZE = 50


def _bell_context(request) -> dict:
    return {"notifications_unread": notifications.unread_count(request.tenant, request.user)}


@tenant_member
@require_GET
def notification_list(request):
    """Newest first; ?filter=unread for the unread ones only."""
    unread_only = request.GET.get("filter") == "unread"
    qs = notifications.notifications_for(request.tenant, request.user)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    page = Paginator(qs.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "unread_only": unread_only, **_bell_context(request)}
    return render(request, TEMPLATE, context)


@tenant_member
@require_GET
def bell(request):
    """The nav's bell alone: on the notificationsChanged event, and polled (live: new
    notifications appear without a reload). ``?unread=N`` is the count the page shows: the
    same count answers an empty 204 (nothing to swap)."""
    shown = request.GET.get("unread")
    if shown is not None:  # a poll: the cached count (dropped whenever a notification changes)
        context = {
            "notifications_unread": notifications.unread_count(
                request.tenant, request.user, cached=True
            )
        }
    else:
        context = _bell_context(request)
    if shown == str(context["notifications_unread"]):
        return HttpResponse(status=204)
    return render(request, f"{TEMPLATE}#bell", context)


@tenant_member
@require_POST
def mark_read(request, pk: int):
    """Mark one of the user's notifications read (someone else's: 404)."""
    notifications.mark_read(tenant=request.tenant, user=request.user, pk=pk)
    if request.htmx:
        note = notifications.access_notification(request.tenant, request.user, pk)
        response = render(request, f"{TEMPLATE}#row", {"note": note})
        response["HX-Trigger"] = "notificationsChanged"
        return response
    return redirect("notifications:list")


@tenant_member
@require_POST
def mark_all_read(request):
    notifications.mark_read(tenant=request.tenant, user=request.user)
    if request.htmx:
        response = render(request, f"{TEMPLATE}#bell", _bell_context(request))
        response["HX-Trigger"] = "notificationsChanged"
        response["HX-Refresh"] = "true"
        return response
    return redirect("notifications:list")


app_name = "notifications"
urlpatterns = [
    path("", notification_list, name="list"),
    path("bell", bell, name="bell"),
    path("<int:pk>/read", mark_read, name="read"),
    path("read-all", mark_all_read, name="read-all"),
]
