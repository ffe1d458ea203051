"""Each provider's own signature scheme. A verifier answers None (valid) or why it is not.

- Slack: ``v0=`` HMAC-SHA256 over ``v0:<timestamp>:<body>`` with the signing secret, checked
  by slack_sdk's own ``SignatureVerifier`` (5-minute window).
- Zendesk: ``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(timestamp + body)), with the
  timestamp in ``X-Zendesk-Webhook-Signature-Timestamp`` (Zendesk ships no verifying library).
- Jira: ``X-Hub-Signature: sha256=<hex>`` HMAC-SHA256 of the body (WebSub); Jira signs no
  timestamp, so replays are stopped by the delivery id (``X-Atlassian-Webhook-Identifier``).
- Generic: the Standard Webhooks shape: ``webhook-id``, ``webhook-timestamp`` (Unix seconds)
  and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` (several
  space-separated signatures allowed); a ``whsec_`` secret is base64-decoded first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from slack_sdk.signature import SignatureVerifier

TOLERANCE_SECONDS = 5 * 60

Verifier = Callable[[list[str], bytes, Mapping[str, str], float], "str | None"]


def _fresh(timestamp: float, now: float) -> bool:
    return abs(now - timestamp) <= TOLERANCE_SECONDS


def _unix_seconds(value: str | None) -> float | None:
    try:
        return float(int((value or "").strip()))
    except ValueError:
        return None


class _FixedClock:
    def __init__(self, now: float):
        self._now = now

    def now(self) -> float:
        return self._now


def verify_slack(secrets: list[str], body: bytes, headers: Mapping[str, str], now: float):
    timestamp = _unix_seconds(headers.get("x-slack-request-timestamp"))
    signature = headers.get("x-slack-signature")
    if timestamp is None or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not _fresh(timestamp, now):
        return "stale timestamp"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    for secret in secrets:
        verifier = SignatureVerifier(secret, clock=_FixedClock(now))
        if verifier.is_valid(body=body, timestamp=str(int(timestamp)), signature=signature):
            return None
    return "signature mismatch"


def verify_zendesk(secrets: list[str], body: bytes, headers: Mapping[str, str], now: float):
    stamp = headers.get("x-zendesk-webhook-signature-timestamp") or ""
    signature = headers.get("x-zendesk-webhook-signature") or ""
    if not stamp or not signature:
        return "missing X-Zendesk-Webhook-Signature or its timestamp"
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "unreadable timestamp"
    if not _fresh(when, now):
        return "stale timestamp"
    for secret in secrets:
        digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
        if hmac.compare_digest(base64.b64encode(digest).decode(), signature.strip()):
            return None
    return "signature mismatch"


def verify_jira(secrets: list[str], body: bytes, headers: Mapping[str, str], now: float):
    signature = (headers.get("x-hub-signature") or "").strip()
    method, _, received = signature.partition("=")
    if method.lower() != "sha256" or not received:
        return "missing X-Hub-Signature (sha256=...)"
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, received.lower()):
            return None
    return "signature mismatch"


def _generic_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def verify_generic(secrets: list[str], body: bytes, headers: Mapping[str, str], now: float):
    msg_id = headers.get("webhook-id") or ""
    timestamp = _unix_seconds(headers.get("webhook-timestamp"))
    signatures = (headers.get("webhook-signature") or "").split()
    if not msg_id or timestamp is None or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if not _fresh(timestamp, now):
        return "stale timestamp"
    received = [s.partition(",")[2] for s in signatures if s.startswith("v1,")]
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    for secret in secrets:
        digest = hmac.new(_generic_key(secret), signed, hashlib.sha256).digest()
        expected = base64.b64encode(digest).decode()
        if any(hmac.compare_digest(expected, r) for r in received):
            return None
    return "signature mismatch"


VERIFIERS: dict[str, Verifier] = {
    "slack": verify_slack,
    "zendesk": verify_zendesk,
    "jira": verify_jira,
    "generic": verify_generic,
}


def verify(provider: str, secrets: list[str], body: bytes, headers: Mapping[str, str], now=None):
    """None when ``body`` is signed with one of ``secrets`` the provider's way; else the reason."""
    if not secrets:
        return "the endpoint has no secret"
    return VERIFIERS[provider](secrets, body, headers, time.time() if now is None else now)


# --------------------------------------------------------------------------- signing (tests, docs)


def sign_generic(secret: str, body: bytes, *, msg_id: str, timestamp: int) -> dict[str, str]:
    digest = hmac.new(
        _generic_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest.digest()).decode(),
    }


def sign_zendesk(secret: str, body: bytes, *, timestamp: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return {
        "x-zendesk-webhook-signature": base64.b64encode(digest).decode(),
        "x-zendesk-webhook-signature-timestamp": timestamp,
    }


def sign_jira(secret: str, body: bytes) -> dict[str, str]:
    return {
        "x-hub-signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    }


def sign_slack(secret: str, body: bytes, *, timestamp: int) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    return {"x-slack-request-timestamp": str(timestamp), "x-slack-signature": signature or ""}
