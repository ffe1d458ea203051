from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from agentops.health import run_checks
from agentops.middleware import SESSION_KEY


@never_cache
@require_GET
def healthz(request):
    checks = run_checks()
    ok = all(value == "ok" for value in checks.values())
    return JsonResponse(checks, status=200 if ok else 503)


@login_required
@require_POST
def switch_tenant(request):
    slug = request.POST.get("tenant", "")
    membership = next((m for m in request.memberships if m.tenant.slug == slug), None)
    if membership is None:
        # Not a member: indistinguishable from a tenant that does not exist.
        raise Http404("No such workspace")
    request.session[SESSION_KEY] = membership.tenant_id
    messages.success(request, f"Switched to {membership.tenant.name}.")
    target = request.POST.get("next") or reverse("incidents:queue")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("incidents:queue")
    # A page of the old tenant (a ticket number) would 404 in the new one: go to the queue.
    if "/tickets/" in target and target.rstrip("/") != reverse("incidents:queue").rstrip("/"):
        target = reverse("incidents:queue")
    return HttpResponseRedirect(target)


@never_cache
@require_GET
def metrics(request):
    """Prometheus exposition of every process's samples (multiprocess mode). With METRICS_TOKEN
    set, only a scraper presenting it (``Authorization: Bearer …``) reads them."""
    import hmac

    from django.conf import settings
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), settings.METRICS_TOKEN.encode()):
            response = HttpResponse("A metrics token is required.\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response

    from agents.metrics import registry_for_scrape

    return HttpResponse(generate_latest(registry_for_scrape()), content_type=CONTENT_TYPE_LATEST)
