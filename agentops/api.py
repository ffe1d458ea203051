"""The JSON API for machines (django-ninja: typed endpoints, OpenAPI generated from them).

Authentication is ``Authorization: Bearer <token>``; the token fixes the tenant and the user.
Errors are JSON: 400 with per-field messages for invalid input, unknown fields or malformed
JSON, 401 for a missing, bad, revoked or expired token, 404 for unknown ids (including another
tenant's), 413 for oversized bodies, 415 for a body that is not JSON, 429 with Retry-After when
one token sends more than API_TOKEN_REQUESTS_PER_MINUTE.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.http import Http404
from django.utils import timezone
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle
from pydantic import ConfigDict, model_validator

from agentops import api_gate, quotas
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
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
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
        try:
            quotas.check_api_rate(api_token.tenant)  # 429 past the tier's requests per minute
        except quotas.RateLimited as exc:
            # The rest of the window is answered at the gate (agentops.api_gate), cheaply.
            api_gate.block(
                request.META.get("HTTP_AUTHORIZATION", ""),
                limit=exc.limit,
                retry_after=exc.retry_after,
            )
            raise
        return api_token


class StrictIn(Schema):
    """The base of every request body: a JSON object whose every field the schema names.
    An unknown field (``is_admin``, ``tenant``, ``status``) is a 400 naming it, never
    silently dropped: a client that believes it set something must learn it did not."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _json_object_only(cls, data: Any, handler):
        # Without this, ninja would read fields off any value as attributes: the JSON body
        # "some text" became a ticket titled "Some Text" (str.title()).
        if not isinstance(data, (dict, cls)):
            raise ValueError("The body must be a JSON object.")
        return handler(data)


class NotJson(Exception):
    """A body sent with a content type other than JSON."""


class JsonOnlyParser(Parser):
    """Bodies are JSON or nothing: anything else (text/plain, a form) is a 415."""

    def parse_body(self, request):
        content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise NotJson(content_type or "none")
        return json.loads(request.body)


log = logging.getLogger(__name__)


class TokenRateThrottle(BaseThrottle):
    """At most API_TOKEN_REQUESTS_PER_MINUTE requests per token per minute, counted with an
    atomic INCR in Redis (a fixed one-minute window), so every web process shares the count
    and concurrent requests cannot both read a stale total."""

    def allow_request(self, request) -> bool:
        limit = settings.API_TOKEN_REQUESTS_PER_MINUTE
        token = getattr(request, "api_token", None)
        if not limit or token is None:
            return True
        now = time.time()
        window = int(now // 60)
        key = f"api-rate:{token.prefix}:{window}"
        try:
            cache.add(key, 0, timeout=120)
            return cache.incr(key) <= limit
        except Exception:  # Redis down: let it through, as quotas.check_api_rate does (the
            # limit protects, it does not gate; a ticket must still be taken in an outage)
            log.warning("API token rate counter unavailable", exc_info=True)
            return True

    def wait(self) -> float:
        # Until the window ends; computed, not stored, so threads never share a value.
        return max(1.0, 60 - time.time() % 60)


api = NinjaAPI(
    title="AgentOps API",
    version="1",
    description="Tickets and incidents for machines: monitoring systems, other agents, ticketing tools.",
    auth=BearerToken(),
    openapi_url="/openapi.json",
    docs_url="/docs",
    urls_namespace="api",
    parser=JsonOnlyParser(),
    throttle=[TokenRateThrottle()],
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
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "Unknown field: this API does not accept it."
        fields.setdefault(_field_name(error.get("loc", ())), []).append(message)
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
    if exc.status_code == 400 and isinstance(exc.__cause__, NotJson):
        return api.create_response(
            request,
            {
                "error": "unsupported_media_type",
                "message": f"Send the body as application/json (got {exc.__cause__}).",
            },
            status=415,
        )
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        return _malformed_json(request)
    return api.create_response(
        request, {"error": "error", "message": str(exc)}, status=exc.status_code
    )


@api.exception_handler(Throttled)
def on_throttled(request, exc: Throttled):
    # ninja adds Retry-After (whole seconds) to this response.
    return api.create_response(
        request,
        {
            "error": "rate_limited",
            "message": (
                f"This token sent more than {settings.API_TOKEN_REQUESTS_PER_MINUTE} requests "
                "in a minute; wait for Retry-After seconds."
            ),
        },
        status=429,
    )
