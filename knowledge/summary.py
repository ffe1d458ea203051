"""Capping and summarising text that comes from tickets before it becomes knowledge.

A ticket's text is written by whoever opened it: a pasted log, an e-mail thread, or 2 MB of
filler. What the knowledge base keeps of it is an extractive summary: its sentences in order,
each once, without runs of one repeated word, cut at a budget and marked as cut. Deterministic
and offline (no model): the same text always gives the same summary, so re-learning a ticket
does not make a new version of its source.
"""

from __future__ import annotations

import re

SUMMARY_MAX = 2_000  # characters of a ticket's problem or resolution kept as knowledge
SENTENCE_MAX = 400  # characters of one sentence (a pasted log line without an end)
# A sentence of at least REPEAT_MIN_WORDS words of which fewer than this share are different
# words is filler ("vpn vpn vpn ...", a pasted progress bar).
REPEAT_MIN_WORDS = 12
MIN_DISTINCT_SHARE = 0.3
# Reading at most this much of the input (twice the largest document the knowledge base
# stores): one regex pass over 2 MB takes a few milliseconds.
READ_MAX = 4_000_000

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"[ \t\r\f\v]+")


def _is_filler(sentence: str) -> bool:
    words = [w.lower() for w in _WORD.findall(sentence)]
    if not words:
        return True  # punctuation, separators, box drawing
    if len(words) < REPEAT_MIN_WORDS:
        return False
    return len(set(words)) / len(words) < MIN_DISTINCT_SHARE


def sentences(text: str) -> list[str]:
    """The text's sentences (or lines), whitespace collapsed, each at most SENTENCE_MAX."""
    out = []
    for part in _SENTENCE_END.split((text or "")[:READ_MAX]):
        part = _SPACE.sub(" ", part).strip()
        if part:
            out.append(part if len(part) <= SENTENCE_MAX else part[: SENTENCE_MAX - 1] + "…")
    return out


def summarise(text: str, limit: int = SUMMARY_MAX) -> str:
    """At most ``limit`` characters of ``text``: its sentences in order, each once, filler
    left out, and a note saying how much was left out when anything was."""
    original = len(text or "")
    kept: list[str] = []
    seen: set[str] = set()
    size = 0
    for sentence in sentences(text):
        key = " ".join(_WORD.findall(sentence.lower()))
        if key in seen or _is_filler(sentence):
            continue
        seen.add(key)
        if size + len(sentence) + 1 > limit:
            break
        kept.append(sentence)
        size += len(sentence) + 1
    summary = " ".join(kept)
    left_out = original - len(summary)
    # Whitespace alone is not worth a note; anything more is said, so no reader mistakes the
    # summary for the whole text.
    if left_out > max(40, original // 10):
        note = f" [summarised: {left_out:,} characters of repeated or long text left out]"
        summary = (summary[: max(0, limit - len(note))] + note).strip()
    return summary
