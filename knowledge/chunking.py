"""Cut Markdown, plain text and HTML into passages along their headings.

1. Each format is read into a flat list of blocks: ``Heading(level, text)`` or ``Text(str)``
   (HTML through the standard library's parser, keeping headings, paragraphs, list items,
   table rows and preformatted text; Markdown line by line, fenced code kept whole).
2. Headings build a path ("VPN > Timeouts > Fix") and an anchor (slug of the last heading,
   made unique within the document, as the source page renders it).
3. Each section's text is cut into windows of about ``TARGET_WORDS`` words that overlap by
   ``OVERLAP_WORDS``. Cuts fall between words (never inside one) and prefer the end of a line or
   sentence near the target, so a numbered step is rarely cut in two. The passage keeps the
   original line breaks.

No third-party parser: the standard library's ``html.parser`` is tolerant of broken markup and
Markdown headings are a line-level rule, so a dependency would buy little here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

from django.utils.text import slugify

TARGET_WORDS = 200
OVERLAP_WORDS = 40
# A section up to 1.3 x the target stays one passage (no 200 + 30 split into two).
SINGLE_FACTOR = 1.3
# How far before the target a window may end to land on a line or sentence end.
SOFT_BREAK_WINDOW = 40
# A window over the model's word pieces is halved down to this many words at least.
MIN_SPLIT_WORDS = 4
HEADING_SEPARATOR = " > "

_WORD = re.compile(r"\S+")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_INLINE_MD = re.compile(r"(\*\*|__|`)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ChunkDraft:
    """One passage, ready to store as a ``knowledge.models.Chunk``."""

    seq: int
    heading_path: str
    anchor: str
    text: str
    word_count: int

    @property
    def embedding_text(self) -> str:
        """What the embedder reads: the headings give a short passage its topic."""
        return f"{self.heading_path}\n\n{self.text}" if self.heading_path else self.text


# --------------------------------------------------------------------------- readers


def _clean_heading(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = _INLINE_MD.sub("", text)
    return " ".join(text.split())[:200]


def markdown_blocks(content: str) -> list[Heading | Text]:
    """ATX (``## Title``) and setext (``Title`` over ``====``) headings; fenced code is text."""
    blocks: list[Heading | Text] = []
    buffer: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if buffer and any(line.strip() for line in buffer):
            blocks.append(Text("\n".join(buffer).strip("\n")))
        buffer.clear()

    for line in content.splitlines():
        if fence is not None:
            buffer.append(line)
            if line.strip().startswith(fence):
                fence = None
            continue
        fence_match = _FENCE.match(line)
        if fence_match:
            fence = fence_match.group(1)[:3]
            buffer.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            title = _clean_heading(atx.group(2) or "")
            if title:
                blocks.append(Heading(len(atx.group(1)), title))
            continue
        setext = _SETEXT.match(line)
        if setext and buffer and buffer[-1].strip() and not _SETEXT.match(buffer[-1]):
            title = _clean_heading(buffer.pop())
            flush()
            blocks.append(Heading(1 if setext.group(1)[0] == "=" else 2, title))
            continue
        buffer.append(line)
    flush()
    return blocks


def text_blocks(content: str) -> list[Heading | Text]:
    stripped = content.strip()
    return [Text(stripped)] if stripped else []


class _HTMLToBlocks(HTMLParser):
    """HTML → headings and text blocks. Scripts, styles and other invisible parts are dropped;
    block elements end a line; list items get a bullet; ``<pre>`` keeps its whitespace."""

    HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
    SKIP = {"script", "style", "head", "noscript", "template", "svg", "iframe", "object"}
    BLOCK = {
        "p", "div", "section", "article", "main", "header", "footer", "aside", "nav",
        "ul", "ol", "table", "thead", "tbody", "tr", "blockquote", "pre", "br", "hr",
        "dl", "dt", "dd", "figure", "figcaption", "form", "fieldset", "address", "details",
        "summary", "body", "html",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Heading | Text] = []
        self._lines: list[str] = [""]
        self._skip_depth = 0
        self._pre_depth = 0
        self._heading: tuple[int, list[str]] | None = None

    # -- helpers
    def _newline(self) -> None:
        if self._lines[-1].strip():
            self._lines.append("")

    def _flush_text(self) -> None:
        text = "\n".join(line.rstrip() for line in self._lines).strip("\n")
        if text.strip():
            self.blocks.append(Text(text))
        self._lines = [""]

    # -- parser callbacks
    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag in self.HEADINGS:
            self._flush_text()
            self._heading = (self.HEADINGS[tag], [])
        elif tag == "li":
            self._newline()
            self._lines[-1] += "- "
        elif tag in ("td", "th"):
            if self._lines[-1].strip():
                self._lines[-1] += " | "
        elif tag in self.BLOCK:
            if tag == "pre":
                self._pre_depth += 1
            self._newline()

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag in self.HEADINGS and self._heading is not None:
            level, parts = self._heading
            self._heading = None
            title = " ".join("".join(parts).split())[:200]
            if title:
                self.blocks.append(Heading(level, title))
        elif tag == "li" or tag in self.BLOCK:
            if tag == "pre":
                self._pre_depth = max(0, self._pre_depth - 1)
            self._newline()

    def handle_startendtag(self, tag, attrs):
        if tag in ("br", "hr") and not self._skip_depth:
            self._newline()

    def handle_data(self, data):
        if self._skip_depth:
            return
        if self._heading is not None:
            self._heading[1].append(data)
            return
        if self._pre_depth:
            lines = data.split("\n")
            self._lines[-1] += lines[0]
            self._lines.extend(lines[1:])
            return
        collapsed = " ".join(data.split())
        if not collapsed:
            if data and self._lines[-1] and not self._lines[-1].endswith(" "):
                self._lines[-1] += " "
            return
        if data[:1].isspace() and self._lines[-1] and not self._lines[-1].endswith(" "):
            collapsed = " " + collapsed
        if data[-1:].isspace():
            collapsed += " "
        self._lines[-1] += collapsed

    def close(self):
        super().close()
        self._flush_text()


def html_blocks(content: str) -> list[Heading | Text]:
    parser = _HTMLToBlocks()
    parser.feed(content)
    parser.close()
    return parser.blocks


def html_to_text(content: str) -> str:
    """The readable text of an HTML document, headings as Markdown headings."""
    out = []
    for block in html_blocks(content):
        out.append(
            f"{'#' * block.level} {block.text}" if isinstance(block, Heading) else block.text
        )
    return "\n\n".join(out)


READERS = {"markdown": markdown_blocks, "text": text_blocks, "html": html_blocks}


# --------------------------------------------------------------------------- windows


def _line_break_after(text: str, spans, count: int) -> bool:
    """Whether a line ends after the ``count``-th word."""
    return count < len(spans) and "\n" in text[spans[count - 1][1] : spans[count][0]]


def _sentence_end_after(text: str, spans, count: int) -> bool:
    """Whether the ``count``-th word ends a sentence (not a list number such as "16.")."""
    word = text[spans[count - 1][0] : spans[count - 1][1]]
    return word[-1] in ".!?:" and not word[:-1].isdigit()


def _cut_points(text: str, spans: list[tuple[int, int]], target: int, overlap: int):
    """Yield (first word, end word) windows over ``spans`` (the words' offsets)."""
    n = len(spans)
    if n <= target * SINGLE_FACTOR:
        yield 0, n
        return
    start = 0
    while start < n:
        end = min(n, start + target)
        if end < n:
            # Prefer to end on a line break or a sentence end shortly before the target.
            # Line breaks first (a step, a list item), then sentence ends.
            lowest = max(start + target - SOFT_BREAK_WINDOW, start + overlap + 1)
            for is_break in (_line_break_after, _sentence_end_after):
                found = next(
                    (c for c in range(end, lowest - 1, -1) if is_break(text, spans, c)), None
                )
                if found is not None:
                    end = found
                    break
            # The last window would be tiny: stretch this one to the end instead.
            if n - end < overlap:
                end = n
        yield start, end
        if end >= n:
            return
        start = max(end - overlap, start + 1)


def _fitting(first: int, end: int, fits, overlap: int) -> list[tuple[int, int]]:
    """``(first, end)`` cut in two halves (overlapping) until every window ``fits``."""
    if end - first <= MIN_SPLIT_WORDS or fits(first, end):
        return [(first, end)]
    middle = (first + end) // 2
    half_overlap = min(overlap, (end - first) // 4) // 2
    return _fitting(first, middle + half_overlap, fits, overlap) + _fitting(
        middle - half_overlap, end, fits, overlap
    )


def chunk_document(
    content: str,
    content_type: str = "markdown",
    *,
    target_words: int = TARGET_WORDS,
    overlap_words: int = OVERLAP_WORDS,
    count_pieces: Callable[[str], int] | None = None,
    max_pieces: int | None = None,
) -> list[ChunkDraft]:
    """The passages of one document, in reading order. Empty list if it has no text.

    ``count_pieces`` and ``max_pieces``: the embedding model's word pieces per text and the
    most it reads (all-MiniLM-L6-v2: 256). A window whose embedding text is longer is cut in
    two until each part fits, so no passage has an unembedded tail (technical text, with its
    paths and commands, runs to two or more pieces a word, prose to about 1.3).
    """
    if overlap_words >= target_words:
        raise ValueError("overlap_words must be smaller than target_words")
    try:
        reader = READERS[content_type]
    except KeyError:
        raise ValueError(f"Unsupported content type {content_type!r}") from None

    drafts: list[ChunkDraft] = []
    path: list[tuple[int, str]] = []
    anchors_used: dict[str, int] = {}
    anchor = ""
    for block in reader(content):
        if isinstance(block, Heading):
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, block.text))
            base = slugify(block.text)[:180] or "section"
            count = anchors_used.get(base, 0)
            anchors_used[base] = count + 1
            anchor = base if count == 0 else f"{base}-{count}"
            continue
        heading_path = HEADING_SEPARATOR.join(title for _, title in path)[:1000]
        text = block.text
        spans = [m.span() for m in _WORD.finditer(text)]
        if not spans:
            continue
        windows = list(_cut_points(text, spans, target_words, overlap_words))
        if count_pieces is not None and max_pieces:
            prefix = f"{heading_path}\n\n" if heading_path else ""

            def fits(first: int, end: int, text=text, spans=spans, prefix=prefix) -> bool:
                passage = text[spans[first][0] : spans[end - 1][1]]
                return count_pieces(prefix + passage) <= max_pieces

            windows = [
                part for first, end in windows for part in _fitting(first, end, fits, overlap_words)
            ]
        for first, end in windows:
            passage = text[spans[first][0] : spans[end - 1][1]]
            drafts.append(
                ChunkDraft(
                    seq=len(drafts),
                    heading_path=heading_path,
                    anchor=anchor,
                    text=passage,
                    word_count=end - first,
                )
            )
    return drafts
