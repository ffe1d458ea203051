"""The JSON API for machines (django-ninja: typed endpoints, OpenAPI generated from them).

Authentication is ``Authorization: Bearer <token>``; the token fixes the tenant and the user.
Errors are JSON: 400 with per-field messages for invalid input or malformed JSON, 401 for a
missing or bad token, 404 for unknown ids (including another tenant's), 413 for oversized
bodies.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils import timezone
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from agentops import quotas
from agentops.models import ApiToken, Membership


class BearerToken(HttpBearer):
    """Resolve ``ao_<prefix>_<secret>`` to its (tenant, user, membership)."""

    def authenticate(self, request, token: str):
        parts = token.split("_")
        if len(parts) < 3 or parts[0] != "ao":
            return None
        prefix = parts[1]
        api_token = (
            ApiToken.objects.unscoped("the token names its own tenant")
            .select_related("tenant", "user")
            .filter(prefix=prefix, revoked_at__isnull=True, tenant__is_active=True)
            .first()
        )
        if api_token is None or not api_token.user.is_active:
            return None
        if not hmac.compare_digest(api_token.token_hash, ApiToken.hash_secret(token)):
            return None
        membership = (
            Membership.objects.filter(user=api_token.user, tenant=api_token.tenant)
            .select_related("tenant", "user")
            .first()
        )
        if membership is None:
            return None
        now = timezone.now()
        if api_token.last_used_at is None or now - api_token.last_used_at > timedelta(
            seconds=settings.API_TOKEN_TOUCH_SECONDS
        ):
            ApiToken.objects.for_tenant(api_token.tenant).filter(pk=api_token.pk).update(
                last_used_at=now
            )
        request.tenant = api_token.tenant
        request.membership = membership
        request.api_token = api_token
        quotas.check_api_rate(api_token.tenant)  # 429 past the tier's requests per minute
        return api_token


api = NinjaAPI(
    title="AgentOps API",
    version="1",
    description="Tickets and incidents for machines: monitoring systems, other agents, ticketing tools.",
    auth=BearerToken(),
    openapi_url="/openapi.json",
    docs_url="/docs",
    urls_namespace="api",
)


def _field_name(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "payload", "query", "path")]
    return ".".join(parts) or "body"


@api.exception_handler(NinjaValidationError)
def on_validation_error(request, exc: NinjaValidationError):
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        if error.get("type") == "json_invalid":
            return _malformed_json(request)
        fields.setdefault(_field_name(error.get("loc", ())), []).append(error.get("msg", "invalid"))
    return api.create_response(
        request,
        {"error": "validation_error", "message": "Some fields are invalid.", "fields": fields},
        status=400,
    )


@api.exception_handler(DjangoValidationError)
def on_service_validation_error(request, exc: DjangoValidationError):
    fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    return api.create_response(
        request,
        {"error": "validation_error", "message": "Some fields are invalid.", "fields": fields},
        status=400,
    )


@api.exception_handler(quotas.QuotaExceeded)
def on_quota_exceeded(request, exc: quotas.QuotaExceeded):
    return api.create_response(request, exc.as_dict(), status=403)


@api.exception_handler(quotas.RateLimited)
def on_rate_limited(request, exc: quotas.RateLimited):
    response = api.create_response(
        request,
        {"error": "rate_limited", "message": str(exc), "limit": exc.limit},
        status=429,
    )
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(Http404)
def on_not_found(request, exc):
    return api.create_response(
        request, {"error": "not_found", "message": str(exc) or "Not found."}, status=404
    )


@api.exception_handler(PermissionDenied)
def on_forbidden(request, exc):
    return api.create_response(
        request, {"error": "forbidden", "message": str(exc) or "Forbidden."}, status=403
    )


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request, exc):
    response = api.create_response(
        request,
        {
            "error": "unauthenticated",
            "message": "Send Authorization: Bearer <token> with a valid token.",
        },
        status=401,
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(RequestDataTooBig)
def on_too_big(request, exc):
    return api.create_response(
        request,
        {
            "error": "too_large",
            "message": f"The body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
        },
        status=413,
    )


def _malformed_json(request):
    return api.create_response(
        request,
        {"error": "malformed_json", "message": "The body is not valid JSON."},
        status=400,
    )


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    # ninja parses the body itself and turns any parse failure into HttpError(400, "Cannot
    # parse request body") raised from the JSONDecodeError / UnicodeDecodeError (both
    # ValueError); it never reaches the ValidationError handler.
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        return _malformed_json(request)
    return api.create_response(
        request, {"error": "error", "message": str(exc)}, status=exc.status_code
    )
