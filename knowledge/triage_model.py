"""A per-tenant linear triage model: word n-grams plus the embeddings the knowledge base
already computes, trained on the tenant's labelled history (scikit-learn).

Why a linear model beside the k-nearest-neighbour vote (``knowledge.history``): the vote
needs three near neighbours that agree, so a ticket phrased unlike any past one falls back to
the model; a logistic regression weighs every word and every embedding dimension over the
whole history, so it generalises from fewer and farther examples, and its probability says how
sure it is. scikit-learn because it is the well-kept standard for exactly this (TF-IDF,
logistic regression), deterministic, CPU-only, and already installed.

- ``train(tenant)`` fits the model on the tenant's examples (those embedded by the current
  model), measures it on a held-out part first (accuracy, macro-F1, and the probability above
  which its answers were right ``TARGET_PRECISION`` of the time: its confidence threshold),
  then refits on everything and stores it (``TriageModel``, one row per tenant and label).
- ``schedule_retrain(tenant)``: the knowledge worker retrains at most once per
  ``KNOWLEDGE_TRIAGE_RETRAIN_DEBOUNCE`` seconds as history grows (``history.index_examples``
  calls it after commit).
- ``predict(tenant, text, embedding)`` → ``Prediction`` or None (no model yet).
- ``decide(tenant, text)``: the vote triage uses — the linear model's category where it is
  confident and the k-NN vote is not (or disagrees, and the linear model won the held-out
  head-to-head), else the k-NN vote when that is confident.
"""

from __future__ import annotations

import logging
import pickle
import random
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from agentops.prepared import prepared
from knowledge import history
from knowledge.embeddings import get_embedder
from knowledge.models import LabelledExample, TriageModel

log = logging.getLogger(__name__)

LABEL = "category"
MIN_EXAMPLES = 20  # labelled examples before a model is worth training
MIN_CLASSES = 2
HELD_OUT = 0.15  # share of the examples that measures the model and sets its threshold
TARGET_PRECISION = 0.9  # its confident answers should be right this often (held out)
DEFAULT_THRESHOLD = 0.6  # when the held-out part is too small to set one
MIN_THRESHOLD = 0.3
EMBEDDING_WEIGHT = 1.0  # how much the embedding block counts beside the TF-IDF block
# Chosen by 3-fold cross-validation on the training split of the Endava IT tickets (never its
# test split), with balanced class weights: macro-F1 0.441 (C=8, unweighted) → 0.522 (C=8,
# balanced) → 0.535 (C=32, balanced); an embedding weight of 2 and min_df=2 did worse.
REGULARISATION_C = 32.0
# Each label weighs as much as the others in the loss, however rare: a tenant's small
# categories are the ones a frequency-weighted model never predicts (macro-F1 counts them).
CLASS_WEIGHT = "balanced"
MAX_FEATURES = 200_000
MAX_EXAMPLES = 200_000  # the newest examples a training reads, at most
KNN_BLOCK = 512  # held-out rows per similarity block in the k-NN head-to-head


# --------------------------------------------------------------------------- the model


class TextAndVectorClassifier:
    """TF-IDF of word 1-2-grams, next to the (L2-normalised) embedding, into a multinomial
    logistic regression. Plain scikit-learn parts; pickled whole."""

    def __init__(self, *, embedding_weight: float = EMBEDDING_WEIGHT, c: float = REGULARISATION_C):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.embedding_weight = embedding_weight
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, 2),
            sublinear_tf=True,
            strip_accents="unicode",
            max_features=MAX_FEATURES,
            dtype=np.float32,
        )
        self.classifier = LogisticRegression(C=c, max_iter=1000, class_weight=CLASS_WEIGHT)

    def _features(self, texts, embeddings, *, fit: bool = False):
        from scipy import sparse

        words = self.vectorizer.fit_transform(texts) if fit else self.vectorizer.transform(texts)
        if embeddings is None:
            return words
        vectors = np.asarray(embeddings, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-9) * self.embedding_weight
        return sparse.hstack([words, sparse.csr_matrix(vectors)], format="csr")

    def fit(self, texts, embeddings, labels) -> TextAndVectorClassifier:
        self.classifier.fit(self._features(texts, embeddings, fit=True), labels)
        return self

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.classifier.classes_]

    def predict_proba(self, texts, embeddings) -> np.ndarray:
        return self.classifier.predict_proba(self._features(texts, embeddings))

    def predict(self, texts, embeddings) -> list[tuple[str, float]]:
        """(label, probability) of the most likely label of each text."""
        probabilities = self.predict_proba(texts, embeddings)
        best = probabilities.argmax(axis=1)
        classes = self.classes
        return [(classes[i], float(p[i])) for i, p in zip(best, probabilities, strict=True)]


@dataclass(frozen=True)
class Prediction:
    value: str
    confidence: float  # the model's probability of it
    threshold: float  # the tenant model's confidence bar
    confident: bool
    # Which was right more often on the held-out tickets where both were confident and
    # disagreed: "linear" or "history" (the k-NN vote). Their confidences are not comparable
    # numbers (a probability and a share of neighbour weight); their track records are.
    prefer: str = "linear"


# --------------------------------------------------------------------------- training


def _threshold(pairs: list[tuple[bool, float]]) -> float:
    """The lowest probability above which the held-out answers were right TARGET_PRECISION
    of the time (scanning from the surest answer down)."""
    if len(pairs) < 20:
        return DEFAULT_THRESHOLD
    pairs = sorted(pairs, key=lambda p: -p[1])
    right, best = 0, 1.0
    for n, (ok, probability) in enumerate(pairs, start=1):
        right += ok
        if n >= 10 and right / n >= TARGET_PRECISION:
            best = probability
    return max(MIN_THRESHOLD, min(best, 0.99))


def _knn_held_out(train_vectors, train_labels, vectors, threshold: float) -> list[history.Vote]:
    """The k-NN vote of each held-out vector over the training part, in memory (the same
    ``history.tally`` and thresholds as the Triage step)."""

    def unit(m):
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)

    train_unit = unit(np.asarray(train_vectors, dtype=np.float32))
    k = min(history.DEFAULT_K, train_unit.shape[0])
    votes = []
    # In blocks: the whole held-out by training similarity matrix of a 50,000-ticket history
    # would be about 1 GB; a block of KNN_BLOCK rows is a few tens of MB.
    for start in range(0, len(vectors), KNN_BLOCK):
        block = (
            unit(np.asarray(vectors[start : start + KNN_BLOCK], dtype=np.float32)) @ train_unit.T
        )
        for row in block:
            votes.append(_vote(row, k, train_labels, threshold))
    return votes


def _vote(row, k: int, train_labels, threshold: float) -> history.Vote:
    """The vote of the k most similar training rows (argpartition: no full sort per row)."""
    nearest = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
    nearest = nearest[np.argsort(-row[nearest])]
    neighbours = [
        history.Neighbour(
            ref=str(i),
            text="",
            category=train_labels[i],
            priority="",
            assignment_group="",
            resolution_path="",
            resolved_ok=True,
            origin="",
            similarity=float(row[i]),
        )
        for i in nearest
    ]
    return history.tally(neighbours, threshold=threshold)


def _head_to_head(truth, guesses, knn: list[history.Vote], bar: float) -> dict:
    """On held-out tickets where both are confident and disagree: who was right more often."""
    linear_right = knn_right = 0
    for t, (guess, probability), vote in zip(truth, guesses, knn, strict=True):
        voted = vote.category.value if vote.confident and vote.category else None
        if probability >= bar and voted is not None and voted != guess:
            linear_right += guess == t
            knn_right += voted == t
    return {
        "disagreements": {"linear_right": linear_right, "knn_right": knn_right},
        "prefer": "history" if knn_right > linear_right else "linear",
    }


def fit_and_measure(texts, embeddings, labels, *, seed: int = 1, knn_threshold: float = 0.45):
    """Fit on a split, measure on the held-out part, refit on everything.
    Returns (model, metrics)."""
    from knowledge.metrics import accuracy, macro_f1

    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_out = int(len(order) * HELD_OUT) if len(order) >= 5 * MIN_EXAMPLES else 0
    metrics: dict = {"examples": len(texts), "held_out": n_out}
    if n_out:
        out, keep = order[:n_out], order[n_out:]
        keep_labels = [labels[i] for i in keep]
        if len(set(keep_labels)) >= MIN_CLASSES:
            part = TextAndVectorClassifier().fit(
                [texts[i] for i in keep], embeddings[keep], keep_labels
            )
            guesses = part.predict([texts[i] for i in out], embeddings[out])
            truth = [labels[i] for i in out]
            predicted = [g for g, _p in guesses]
            metrics["accuracy"] = round(accuracy(truth, predicted), 4)
            metrics["macro_f1"] = round(macro_f1(truth, predicted), 4)
            pairs = [(t == g, p) for t, (g, p) in zip(truth, guesses, strict=True)]
            metrics["threshold"] = round(_threshold(pairs), 4)
            knn = _knn_held_out(embeddings[keep], keep_labels, embeddings[out], knn_threshold)
            metrics.update(_head_to_head(truth, guesses, knn, metrics["threshold"]))
    metrics.setdefault("threshold", DEFAULT_THRESHOLD)
    return TextAndVectorClassifier().fit(texts, embeddings, labels), metrics


def _examples(tenant, embedder_name: str):
    rows = (
        LabelledExample.objects.for_tenant(tenant)
        .filter(embedding_model=embedder_name)
        .exclude(**{LABEL: ""})
        .order_by("-created_at", "-id")
        .values_list("text", LABEL, "embedding")[:MAX_EXAMPLES]
    )
    texts, labels, vectors = [], [], []
    for text, label, vector in rows:
        if vector is not None:
            texts.append(text)
            labels.append(label)
            vectors.append(vector)
    return texts, labels, vectors


def train(tenant, *, embedder=None) -> TriageModel | None:
    """Train and store the tenant's model; None (and any old model removed) when the history
    is too thin: fewer than MIN_EXAMPLES examples or MIN_CLASSES labels."""
    embedder = embedder or get_embedder()
    started = time.monotonic()
    texts, labels, vectors = _examples(tenant, embedder.name)
    if len(texts) < MIN_EXAMPLES or len(set(labels)) < MIN_CLASSES:
        TriageModel.objects.for_tenant(tenant).filter(label=LABEL).delete()
        return None
    model, metrics = fit_and_measure(
        texts,
        np.asarray(vectors, dtype=np.float32),
        labels,
        knn_threshold=history.min_similarity(embedder),
    )
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    row, _created = TriageModel.objects.for_tenant(tenant).update_or_create(
        tenant=tenant,
        label=LABEL,
        defaults={
            "blob": blob,
            "classes": model.classes,
            "examples": len(texts),
            "embedding_model": embedder.name,
            "metrics": metrics,
            "trained_at": timezone.now(),
            "train_seconds": round(time.monotonic() - started, 2),
        },
    )
    log.info("triage model of tenant %s: %s examples, %s", tenant.pk, len(texts), metrics)
    return row


def debounce_seconds() -> int:
    return int(getattr(settings, "KNOWLEDGE_TRIAGE_RETRAIN_DEBOUNCE", 60))


def _debounce_key(tenant_id: int) -> str:
    return f"knowledge:triage-retrain:{tenant_id}"


def schedule_retrain(tenant_id: int) -> bool:
    """Queue a retrain in ``debounce_seconds()`` unless one is queued already (Redis ``add``
    is the claim, so N processes learning at once queue one). Returns whether it queued."""
    from knowledge.tasks import retrain_triage_model

    delay = debounce_seconds()
    if not cache.add(_debounce_key(tenant_id), 1, timeout=max(delay, 1)):
        return False
    retrain_triage_model.apply_async((tenant_id,), countdown=delay)
    return True


def retrain_now(tenant_id: int) -> str:
    """The task's body: release the debounce, then train (history written meanwhile queues
    the next retrain)."""
    from agentops.models import Tenant

    cache.delete(_debounce_key(tenant_id))
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return "no tenant"
    row = train(tenant)
    return "trained" if row is not None else "too little history"


# --------------------------------------------------------------------------- predicting

_LOADED: dict[int, tuple[tuple, TextAndVectorClassifier]] = {}


@prepared  # (compiled once per process: triage asks on every run)
def _latest_meta(tenant_id: int, label: str):
    return (
        TriageModel.objects.for_tenant(tenant_id)
        .filter(label=label)
        .defer("blob")
        .order_by("-trained_at", "-pk")[:1]
    )


_LOCK = threading.Lock()


def load(tenant) -> tuple[TriageModel, TextAndVectorClassifier] | None:
    """The tenant's stored model, unpickled once per process per training (the row's id and
    time are the version; one small query checks them)."""
    meta = _latest_meta.first(tenant.pk, LABEL)
    if meta is None:
        return None
    version = (meta.pk, meta.trained_at)
    with _LOCK:
        cached = _LOADED.get(tenant.pk)
    if cached is None or cached[0] != version:
        blob = TriageModel.objects.for_tenant(tenant).values_list("blob", flat=True).get(pk=meta.pk)
        # Written by our own worker into our own table (train()), never from a request.
        model = pickle.loads(bytes(blob))  # noqa: S301
        with _LOCK:
            _LOADED[tenant.pk] = (version, model)
        cached = (version, model)
    return meta, cached[1]


def predict(tenant, text: str, *, embedding=None, embedder=None) -> Prediction | None:
    embedder = embedder or get_embedder()
    loaded = load(tenant)
    if loaded is None:
        return None
    meta, model = loaded
    if meta.embedding_model != embedder.name:
        return None  # trained on another model's vectors: wait for the retrain
    if embedding is None:
        embedding = embedder.embed_one(text)
    ((value, probability),) = model.predict([text], np.asarray([embedding], dtype=np.float32))
    return prediction(meta, value, probability)


def prediction(meta: TriageModel, value: str, probability: float) -> Prediction:
    threshold = float(meta.metrics.get("threshold", DEFAULT_THRESHOLD))
    return Prediction(
        value,
        round(probability, 3),
        threshold,
        probability >= threshold,
        prefer=meta.metrics.get("prefer", "linear"),
    )


def decide(tenant, text: str, *, embedder=None) -> history.Vote | None:
    """Triage's labels from the tenant's history: the k-NN vote, with the linear model's
    category instead where the model is confident and at least as sure as the vote (or the
    vote is not confident). None when neither is confident."""
    embedder = embedder or get_embedder()
    if not (text or "").strip():
        return None
    embedding = embedder.embed_one(text)
    knn = history.tally_for(tenant, text, embedding=embedding, embedder=embedder)
    linear = predict(tenant, text, embedding=embedding, embedder=embedder)
    return combine(knn, linear)


def combine(knn: history.Vote, linear: Prediction | None) -> history.Vote | None:
    """One confident: it decides. Both confident and agreeing: the vote (its neighbours are the
    evidence people can read). Both confident and disagreeing: the one the held-out tickets
    found right more often (``Prediction.prefer``). Neither: None (the model triages)."""
    knn_category = knn.category if knn.confident else None
    use_linear = (
        linear is not None
        and linear.confident
        and (
            knn_category is None
            or (knn_category.value != linear.value and linear.prefer == "linear")
        )
    )
    if not use_linear:
        return knn if knn.confident else None
    category = history.LabelVote(
        value=linear.value, confidence=linear.confidence, support=0, confident=True
    )
    return replace(knn, category=category, confident=True, decided_by="linear model")


@transaction.atomic
def forget_models(tenant) -> int:
    deleted, _ = TriageModel.objects.for_tenant(tenant).delete()
    return deleted
