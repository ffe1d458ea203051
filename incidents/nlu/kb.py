"""Retrieval over the knowledge base for the offline model: which article section answers a
how-to question, and how well.

The offline model reads no database: it indexes the knowledge base shipped with the product
(``knowledge/demo_kb``, the articles every demo tenant imports) by section, with the same
normalisation and TF-IDF features as the classifiers. Claude gets the tenant's own passages
from ``knowledge.retrieval`` in the pipeline instead.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from incidents.nlu.model import normalise

MIN_SCORE = 0.12  # cosine similarity below which a section does not answer the question


@dataclass(frozen=True)
class Section:
    document: str
    heading: str
    text: str

    @property
    def title(self) -> str:
        return f"{self.document} — {self.heading}" if self.heading else self.document


@dataclass(frozen=True)
class Hit:
    section: Section
    score: float


def _kb_dir() -> Path:
    from knowledge.services import DEMO_KB_DIR

    return Path(DEMO_KB_DIR)


def sections(folder: Path | None = None) -> list[Section]:
    """Every article split at its second-level headings, in a stable order."""
    found: list[Section] = []
    for path in sorted((folder or _kb_dir()).rglob("*")):
        if path.suffix not in (".md", ".html", ".txt"):
            continue
        raw = path.read_text(encoding="utf-8")
        if path.suffix == ".html":
            raw = re.sub(r"(?is)<h1[^>]*>(.*?)</h1>", r"\n# \1\n", raw)
            raw = re.sub(r"(?is)<h[23][^>]*>(.*?)</h[23]>", r"\n## \1\n", raw)
            raw = html.unescape(re.sub(r"(?s)<[^>]+>", " ", raw))
        title = re.search(r"(?m)^#\s+(.+)$", raw)
        document = title.group(1).strip() if title else path.stem.replace("_", " ")
        for part in re.split(r"(?m)^##\s+", raw)[1:]:
            heading, _, body = part.partition("\n")
            found.append(Section(document, heading.strip(), " ".join(body.split())))
    return found


class Index:
    def __init__(self, items: list[Section]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.items = items
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, stop_words="english"
        )
        corpus = [normalise(f"{s.document} {s.heading} {s.heading} {s.text}") for s in items]
        self.matrix = self.vectorizer.fit_transform(corpus) if items else None

    def search(self, text: str, k: int = 3) -> list[Hit]:
        if self.matrix is None:
            return []
        scores = (self.matrix @ self.vectorizer.transform([normalise(text)]).T).toarray()[:, 0]
        order = sorted(range(len(self.items)), key=lambda i: (-scores[i], i))[:k]
        return [Hit(self.items[i], round(float(scores[i]), 4)) for i in order if scores[i] > 0]


@lru_cache(maxsize=1)
def index() -> Index:
    return Index(sections())


def answer_for(text: str) -> Hit | None:
    """The best section for a question, if it is close enough to answer it."""
    hits = index().search(text, k=1)
    return hits[0] if hits and hits[0].score >= MIN_SCORE else None
