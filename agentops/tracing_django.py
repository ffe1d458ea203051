"""The OpenTelemetry Django middleware, made safe for any path (agentops.tracing installs it).

The official middleware builds the span's URL with ``wsgiref.util.request_uri``, which encodes
PATH_INFO as Latin-1 (as PEP 3333 servers deliver it). A PATH_INFO that is not Latin-1 (a test
client or an in-process caller handing over decoded text, e.g. an emoji) made it raise before
any view, so the request answered 500 instead of the perimeter's 400/404. Such a request is
served untraced instead.
"""

from __future__ import annotations

from opentelemetry.instrumentation.django.middleware.otel_middleware import _DjangoMiddleware

OFFICIAL = ".".join([_DjangoMiddleware.__module__, _DjangoMiddleware.__qualname__])
SAFE = f"{__name__}.SafeDjangoMiddleware"


def _traceable(request) -> bool:
    try:
        request.META.get("PATH_INFO", "").encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class SafeDjangoMiddleware(_DjangoMiddleware):
    def process_request(self, request):
        if _traceable(request):
            return super().process_request(request)
        return None

    def process_response(self, request, response):
        if _traceable(request):
            return super().process_response(request, response)
        return response

    def process_exception(self, request, exception):
        if _traceable(request):
            return super().process_exception(request, exception)
        return None
