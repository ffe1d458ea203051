"""Sensitive-data detection: redact card numbers, national IDs and secrets before text reaches
the model, the timeline or the logs. Deterministic regular expressions plus a Luhn check, so
a 16-digit order number that is not a card survives."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    ),
    ("api_key", re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_\-]{16,}\b")),
    ("api_key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    ("api_key", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    ("api_key", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("api_key", re.compile(r"\bao_[0-9a-f]{8}_[A-Za-z0-9_\-]{20,}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")),
    (
        "secret",
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|api[_ -]?key|token|client[_ -]?secret)\b(\s*[:=]\s*|\s+is\s+)(\S{4,})"
        ),
    ),
    ("national_id", re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")),  # US SSN
    (
        "national_id",
        re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"),
    ),  # UK NINO
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?\b")),
]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class Redaction:
    text: str
    findings: tuple[str, ...]  # the kinds found, e.g. ("card_number", "api_key")

    @property
    def changed(self) -> bool:
        return bool(self.findings)


def redact(text: str) -> Redaction:
    if not text:
        return Redaction(text or "", ())
    findings: list[str] = []

    def card(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            findings.append("card_number")
            return "[REDACTED card number]"
        return match.group(0)

    out = _CARD.sub(card, text)
    for kind, pattern in _PATTERNS:
        if kind == "secret":

            def keep_label(m: re.Match[str]) -> str:
                findings.append("secret")
                return f"{m.group(1)}{m.group(2)}[REDACTED secret]"

            out = pattern.sub(keep_label, out)
        else:

            def replace(m: re.Match[str], kind: str = kind) -> str:
                findings.append(kind)
                return f"[REDACTED {kind.replace('_', ' ')}]"

            out = pattern.sub(replace, out)
    return Redaction(out, tuple(dict.fromkeys(findings)))


def redact_value(value):
    """Redact every string inside a JSON-like value; returns (value, findings)."""
    findings: list[str] = []

    def walk(v):
        if isinstance(v, str):
            r = redact(v)
            findings.extend(r.findings)
            return r.text
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value), tuple(dict.fromkeys(findings))
