"""Sensitive-data detection: redact card numbers, national IDs and secrets before text reaches
the model, the timeline, the knowledge passages an agent reads, or the logs.

Deterministic regular expressions plus a Luhn check (a 16-digit order number that is not a
card survives) and a few rules of context (a 9-digit number is a national id only where the
text says so; ``-p`` is a password only when what follows does not look like a port or a
path). It lives in the bottom layer so that every layer (the logging filter in the settings,
knowledge retrieval, the agent runtime) redacts the same way; ``agents.redaction`` re-exports it.

Redaction is idempotent: redacting redacted text changes nothing (a marker is never taken for a
secret value, which once rendered ``[REDACTED secret] secret]``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_MARK = r"(?!\[REDACTED)"  # a value never starts with a marker: redaction stays idempotent

# Words that name a secret, and how a sentence joins one to its value.
_LABEL = (
    r"(?:pass(?:word|wd|phrase|code)?s?|pwd|pin(?:\s*code)?|secret|api[_ -]?key|"
    r"access[_ -]?key|token|client[_ -]?secret|credentials?)"
)
_JOIN = r"(?:\s*[:=]\s*|\s+(?:is|was|are|were|will\s+be|would\s+be|should\s+be|to|of)\s*:?\s+)"
# A value: quoted (anything up to the closing quote) or one unquoted word.
_QUOTED = r"\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|“[^”\n]{1,200}”|‘[^’\n]{1,200}’|`[^`\n]{1,200}`"
_VALUE = rf"{_MARK}(?:{_QUOTED}|[^\s\"'“‘`]{{3,}})"
# Unquoted words that say something about a password rather than being one.
_NOT_A_VALUE = {
    "expired", "expiring", "wrong", "incorrect", "invalid", "locked", "working", "broken",
    "correct", "right", "the", "not", "still", "being", "reset", "required", "changed",
    "forgotten", "forgot", "missing", "blank", "empty", "weak", "needed", "supposed", "too",
    "very", "also", "now", "default", "same", "different", "new", "old", "my", "your", "their",
    "our", "his", "her", "its", "this", "that", "what", "which", "never", "always", "does",
    "doesn't", "isn't", "wasn't", "has", "have", "had", "been", "set", "sent", "unknown",
    "accepted", "rejected", "case-sensitive", "temporary", "long", "short", "strong", "change",
    "policy", "manager", "vault", "field", "prompt", "screen", "page", "reset.", "expired.",
    "every", "each", "when", "after", "before", "because", "and", "or", "but", "for", "with",
    "without", "from", "into", "about", "again", "please", "help", "stuck", "requirements",
}  # fmt: skip

# Each pattern with what a text must hold for it to match at all (``_DIGIT``: a digit; a
# string: that substring), checked first: most texts (a step's summary, a ticket's title)
# hold no digit or keyword, and eighteen regular-expression scans of every text were ~4 % of
# a worker's CPU. A gate only skips a scan that could not match: the result is the same.
_DIGIT = re.compile(r"\d")

_PATTERNS: list[tuple[str, re.Pattern[str], object]] = [
    (
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "PRIVATE KEY-----",
    ),
    ("api_key", re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_\-]{16,}\b"), "sk-"),
    ("api_key", re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "AKIA"),
    ("api_key", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "_"),
    ("api_key", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), "xox"),
    ("api_key", re.compile(r"\bao_[0-9a-f]{8}_[A-Za-z0-9_\-]{20,}\b"), "ao_"),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b"), "eyJ"),
    (
        "national_id",
        re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"),
        _DIGIT,
    ),  # US SSN
    (
        "national_id",
        re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"),
        _DIGIT,
    ),  # UK NINO
    (
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?\b"),
        _DIGIT,
    ),
]

# Patterns whose group 1 is kept (the label, the flag, the context) and group "value" redacted.
_LABEL_WORD = re.compile(r"pass|pwd|pin|secret|key|token|credential", re.I)  # (in _LABEL)
_QUOTE = re.compile(r"[\"'“‘`]")  # (a _QUOTED value opens with one)

_LABELLED: list[tuple[str, re.Pattern[str], object]] = [
    # "user:pass@host" in a URL.
    (
        "secret",
        re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)(?P<value>" + _MARK + r"[^\s@/]+)@"),
        "://",
    ),
    # --password=x, --password x, --api-key 'x' (a command line's long option).
    (
        "secret",
        re.compile(
            r"((?<![\w-])--?(?:password|passwd|pass|pwd|secret|token|api-?key|client-secret)"
            r"(?:=|\s+))(?P<value>" + _MARK + r"(?:" + _QUOTED + r"|[^\s\"'`]+))",
            re.I,
        ),
        "-",
    ),
    # -p secret / -psecret (mysql, sshpass …), but not -p 22, -p 8080:80 or -p /a/path.
    (
        "secret",
        re.compile(
            r"((?:(?<=\s)|^)-p\s*)(?P<value>" + _MARK + r"(?![\d:]+(?:\s|$))(?:" + _QUOTED + r"|"
            r"[^\s/.\-~\"'`][^\s/]{2,}))"
        ),
        "-p",
    ),
    # DB_PASSWORD=x, export API_TOKEN="x" (environment assignments: upper case, no spaces).
    (
        "secret",
        re.compile(
            r"(\b[A-Z0-9_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_?KEY)[A-Z0-9_]*=)"
            r"(?P<value>" + _MARK + r"(?:" + _QUOTED + r"|[^\s\"'`#]+))"
        ),
        "=",
    ),
    # "my password is hunter2", "the VPN password for bob was 'x y'", "pin: 1234".
    (
        "secret",
        re.compile(
            r"(\b" + _LABEL + r"\b(?:\s+(?:for|of|on|to)\s+[^\s:=]{1,40}){0,2}" + _JOIN + r")"
            r"(?P<value>" + _VALUE + r")",
            re.I,
        ),
        _LABEL_WORD,
    ),
    # "set it back to 'Summer2024!'", "change it to “x”": a quoted value someone asks to set.
    (
        "secret",
        re.compile(
            r"(\b(?:set|change|reset|revert|put|make)\b[^.\n]{0,40}?\b(?:to|as)\s+)"
            r"(?P<value>" + _MARK + r"(?:" + _QUOTED + r"))",
            re.I,
        ),
        _QUOTE,
    ),
    # A 9-digit national id without dashes, where the text says it is one.
    (
        "national_id",
        re.compile(
            r"(\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|num|#))?|national\s+"
            r"(?:id|identification|insurance)(?:\s+(?:number|no\.?|#))?|tax\s+(?:id|identification)"
            r"(?:\s+(?:number|no\.?|#))?|sin|tin|itin)\b[^\d\n]{0,30}?)"
            r"(?P<value>(?<!\d)\d{3}[ .]?\d{2}[ .]?\d{4}(?!\d))",
            re.I,
        ),
        _DIGIT,
    ),
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


def _marker(kind: str) -> str:
    return f"[REDACTED {kind.replace('_', ' ')}]"


_VERBAL_JOIN = re.compile(r"\s(?:is|was|are|were|be|to|of)\s*:?\s+$", re.I)
_PLAIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _says_something_about_it(prefix: str, value: str) -> bool:
    """True when the "value" is an ordinary word: "the password is expired / saved / of four
    words". After a verb, an unquoted value counts only when it looks like a password (a digit,
    a capital or a symbol); after ``:`` or ``=`` anything does, except the words above."""
    word = value.rstrip(".,;:!?)]*").lower()
    if word in _NOT_A_VALUE:
        return True
    quoted = value[:1] in "\"'“‘`"
    bare = value.rstrip(".,;:!?)]*")
    return bool(_VERBAL_JOIN.search(prefix)) and not quoted and bool(_PLAIN_WORD.fullmatch(bare))


def _labelled(kind: str, findings: list[str]) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        value = m.group("value")
        if kind == "secret" and _says_something_about_it(m.group(1), value):
            return m.group(0)
        findings.append(kind)
        end = m.group(0)[m.end("value") - m.start() :]  # e.g. the "@" after a URL's password
        return f"{m.group(1)}{_marker(kind)}{end}"

    return replace


def redact(text: str) -> Redaction:
    if not text:
        return Redaction(text or "", ())
    findings: list[str] = []

    def card(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            findings.append("card_number")
            return _marker("card_number")
        return match.group(0)

    out = _CARD.sub(card, text) if _DIGIT.search(text) else text
    for kind, pattern, gate in _PATTERNS:
        if not _may_match(gate, out):
            continue

        def replace(m: re.Match[str], kind: str = kind) -> str:
            findings.append(kind)
            return _marker(kind)

        out = pattern.sub(replace, out)
    for kind, pattern, gate in _LABELLED:
        if _may_match(gate, out):
            out = pattern.sub(_labelled(kind, findings), out)
    return Redaction(out, tuple(dict.fromkeys(findings)))


def _may_match(gate, text: str) -> bool:
    """Whether ``text`` holds what its pattern needs to match at all (see ``_PATTERNS``)."""
    return gate in text if type(gate) is str else gate.search(text) is not None


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


class RedactingFilter(logging.Filter):
    """A logging filter (settings LOGGING, on every handler) that redacts each record's message
    and traceback before any handler writes it, so no secret reaches the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):  # a structlog event (agentops.logging_config): keep
            record.msg = redact_value(record.msg)[0]  # its shape for the formatter, redacted
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: keep what there is, redacted
            message = str(record.msg)
        record.msg = redact(message).text
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text).text
        if record.stack_info:
            record.stack_info = redact(record.stack_info).text
        return True
