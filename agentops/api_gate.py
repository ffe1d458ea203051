"""The API's front gate for a token whose tenant is over its request rate.

Once a bearer token's request is refused with 429 (``quotas.check_api_rate``), every further
request with that exact token is refused here, first thing, until the window ends: one Redis
read instead of the sessions, authentication, a token and membership lookup and the body
checks. A flooding tenant then costs the web processes almost nothing, and the tenants beside
it keep their latency (tests/reliability/test_noisy_neighbour.py). The key is a hash of the
whole token, so only that token's holder is answered early; anything else takes the usual
path (and an unknown token still gets its 401 there).
"""

from __future__ import annotations

import hashlib
import logging

from django.core.cache import cache
from django.http import JsonResponse

from agentops import quotas

log = logging.getLogger(__name__)


def _key(authorization: str) -> str:
    return "api:blocked:" + hashlib.sha256(authorization.encode()).hexdigest()


def block(authorization: str, *, limit: int, retry_after: int) -> None:
    """Answer this token's requests at the gate for ``retry_after`` seconds."""
    try:
        cache.set(_key(authorization), (quotas._clock() + retry_after, limit), timeout=retry_after)
    except Exception:  # Redis down: the slow path still refuses (or lets through) as before
        log.warning("API gate unavailable", exc_info=True)


class RejectBlockedTokensMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        if authorization.startswith("Bearer ") and request.path.startswith("/api/"):
            try:
                blocked = cache.get(_key(authorization))
            except Exception:
                blocked = None
            now = quotas._clock()  # the rate window's clock
            if blocked and now < blocked[0]:
                until, limit = blocked
                retry_after = max(1, int(until - now + 0.999))
                response = JsonResponse(
                    {
                        "error": "rate_limited",
                        "message": f"More than {limit} API requests a minute; "
                        f"retry in {retry_after} s.",
                        "limit": limit,
                    },
                    status=429,
                )
                response["Retry-After"] = str(retry_after)
                return response
        return self.get_response(request)
