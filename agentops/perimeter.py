"""The perimeter: what every request must satisfy before any view sees it.

One middleware refuses, with a 400 that names the offending field, any request whose path,
query parameters, form fields, uploaded file names or JSON strings (keys and values) hold a
NUL byte, a lone UTF-16 surrogate or a control character other than tab, newline and carriage
return. Such text cannot be stored (PostgreSQL refuses NUL in text), cannot be encoded as
UTF-8 (surrogates), and has no business in a ticket; refusing it here, once, means no view,
form or schema has to remember to.

Also here: the client address for login throttling (django-axes) and its lockout page, and the
audit event written when an account or address is locked out.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

log = logging.getLogger(__name__)

# C0 controls except \t \n \r, DEL, and the UTF-16 surrogate range (never valid on its own).
UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_JSON_TYPES = ("application/json",)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def describe(char: str) -> str:
    """How the error message names the character: NUL, U+001B, a lone surrogate."""
    if char == "\x00":
        return "a NUL byte"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (U+{ord(char):04X})"
    return f"a control character (U+{ord(char):04X})"


MAX_JSON_DEPTH = 64  # no request of ours nests deeper; Python's parser gives up near 1,000


class TooDeep(ValueError):
    """A JSON document nested deeper than MAX_JSON_DEPTH."""


def _json_strings(document: Any) -> Iterator[tuple[str, str]]:
    """Every string in a decoded JSON document with where it is, named as the API names fields
    (``title``, ``steps[0].name``; ``body`` for the document itself); object keys are checked
    as strings of their own. Iterative, with a depth limit."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise TooDeep(where or "body")
        if isinstance(value, str):
            yield where or "body", value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield f"{where or 'body'} (a key)", str(key)
                stack.append((item, f"{where}.{key}" if where else str(key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


# A JSON escape that decodes to an unsafe character (or a surrogate, paired or not).
# JSON's short escapes \b and \f decode to control characters too (found by the property test).
_UNSAFE_ESCAPE = re.compile(
    r"\\(?:[bf]|u(?:00[01][0-9a-fA-F]|007[fF]|[dD][89a-fA-F][0-9a-fA-F]{2}))"
)
# A JSON string literal, written as an unrolled loop (ten times faster than an alternation).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def plainly_safe_json(body: bytes) -> bool:
    """True when no string of this JSON text can hold an unsafe character and it nests no
    deeper than MAX_JSON_DEPTH, judged on the raw text without decoding it.

    A decoded string holds an unsafe character only if the text has it raw or a ``\\u``
    escape names it; the escape test also matches an escaped backslash followed by ``u00…``
    and paired surrogates (emoji), which only sends such a body to the full walk. False says
    "walk it", never "unsafe"."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if UNSAFE_CHARACTERS.search(text) or _UNSAFE_ESCAPE.search(text):
        return False
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest <= MAX_JSON_DEPTH


def _content_type(request: HttpRequest) -> str:
    return request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()


def _strings(request: HttpRequest) -> Iterator[tuple[str, str]]:
    """(where, text) for every piece of text the request carries, path first."""
    yield "path", request.path
    for key, values in request.GET.lists():
        yield f"query parameter {key!r} (its name)", key
        for value in values:
            yield f"query parameter {key!r}", value
    content_type = _content_type(request)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if content_type in _FORM_TYPES:
        if is_api(request):
            # The API's parser reads request.body (and answers 415 to a form): read it first,
            # so parsing the form here parses a copy instead of consuming the stream.
            request.body  # noqa: B018
        for key, values in request.POST.lists():
            yield f"form field {key!r} (its name)", key
            for value in values:
                yield f"form field {key!r}", value
        for key, files in request.FILES.lists():
            for upload in files:
                yield f"file name of {key!r}", upload.name or ""
    elif content_type in _JSON_TYPES or content_type.endswith("+json"):
        if plainly_safe_json(request.body):
            return  # nothing to find: no need to parse and walk every string
        try:
            document = json.loads(request.body)
        except RecursionError as exc:
            raise TooDeep("body") from exc
        except ValueError:
            return  # malformed JSON: the view answers 400 in its own words
        yield from _json_strings(document)


def find_unsafe(request: HttpRequest) -> tuple[str, str] | None:
    """(where, what) for the first unsafe character the request carries, or None."""
    for where, text in _strings(request):
        match = UNSAFE_CHARACTERS.search(text)
        if match:
            return where, describe(match.group(0))
    return None


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(
    request: HttpRequest, message: str, *, field: str = "", error: str = "invalid_characters"
) -> HttpResponse:
    """A 400 in the request's own language: JSON for the API, the styled page for people."""
    if is_api(request):
        body: dict[str, Any] = {"error": error, "message": message}
        if field:
            body["fields"] = {field: [message]}
        return JsonResponse(body, status=400)
    html = render_to_string("400.html", {"message": message})
    return HttpResponse(html, status=400)


class RejectUnsafeInputMiddleware:
    """400 for NUL bytes, lone surrogates and control characters anywhere in the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            found = find_unsafe(request)
        except RequestDataTooBig:
            found = None  # the body is not read; the view answers 413/400 for the size
        except TooDeep:
            return bad_request(
                request,
                f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.",
                field="body",
                error="malformed_json",
            )
        if found is not None:
            where, what = found
            log.info("refused %s %s: %s in the %s", request.method, "request", what, where)
            return bad_request(
                request,
                f"The {where} contains {what}, which is not accepted.",
                field=where,
            )
        return self.get_response(request)


# --------------------------------------------------------------------------- login throttling


def client_ip(request: HttpRequest) -> str | None:
    """The address login throttling counts by: REMOTE_ADDR, or, behind N trusted proxies
    (``TRUSTED_PROXY_HOPS``), the address the Nth proxy from the end saw. A client can put
    anything at the start of X-Forwarded-For, so only the hops our own proxies added count."""
    hops = getattr(settings, "TRUSTED_PROXY_HOPS", 0)
    if hops:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR") or None  # None: axes records no address


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    """The answer while an account or address is locked out: the sign-in page with a clear
    message (429), so the person knows to wait or ask an administrator."""
    from django.shortcuts import render

    cooloff = settings.AXES_COOLOFF_TIME
    minutes = int(cooloff.total_seconds() // 60) if cooloff else None
    context = {"locked_out": True, "cooloff_minutes": minutes, "form": None}
    response = render(request, "registration/locked_out.html", context, status=429)
    if cooloff:
        response["Retry-After"] = str(int(cooloff.total_seconds()))
    return response


def login_username(request: HttpRequest, credentials: dict | None) -> str:
    """The name django-axes counts failures under: what was typed, cut to the longest
    username there can be (a 20,000-character name must not overflow its column)."""
    from django.contrib.auth import get_user_model

    field = get_user_model().USERNAME_FIELD
    raw = (credentials or {}).get(field) or request.POST.get("username", "")
    return str(raw)[:150]


def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """django-axes ``user_locked_out``: an audit event in every tenant of the locked-out
    account (an unknown name or a bare address has no tenant: the warning log keeps it)."""
    from django.contrib.auth import get_user_model

    from agentops.audit import record
    from agentops.models import Membership

    log.warning("login locked out: username=%r address=%s", username, ip_address)
    user = get_user_model().objects.filter(username=username).first() if username else None
    if user is None:
        return
    for membership in Membership.objects.filter(user=user).select_related("tenant"):
        record(
            tenant=membership.tenant,
            actor=None,
            action="auth.locked_out",
            target_type="user",
            target_id=user.pk,
            target_repr=user.get_username(),
            metadata={"ip_address": ip_address or "", "username": username},
        )
