"""The learned classifiers: intent, category, priority, decision and "on someone else's behalf".

One feature space for all heads: TF-IDF of word uni/bigrams plus character 2-5-grams inside
word boundaries (robust to typos, inflections and the four other languages in the training
set), accents folded. Each head is a linear SVM whose scores are calibrated into
probabilities (sigmoid, 3-fold cross-validation): the decision's probability is the
confidence triage reports, and a low one sends the ticket to a person. (A linear SVM trains in
a tenth of a second here where a logistic regression on the same features took ten.)

Deterministic: the examples are sorted before training, the solvers are deterministic and
seeded, so two trainings on the same file give the same predictions. Trained at build time by
``manage.py train_nlu`` (written under var/models/, named by the training data's hash so a
changed file is never served by a stale model), and in process on first use when the file is
missing, so tests and a fresh clone always work. Training takes a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_FILE = DATA_DIR / "train.jsonl"
MODEL_VERSION = "2"  # bump when the model's code changes: a built file of another is retrained
HEADS = ("intent", "category", "priority", "decision", "third_party")
MAX_CHARS = 3000  # of a ticket, for the features: the request is at its start
SEED = 13
RECENT_PREDICTIONS = 64  # texts whose prediction a process keeps (NluModel.predict)


def normalise(text: str) -> str:
    """Lower case, accents folded, whitespace collapsed, cut to MAX_CHARS."""
    text = unicodedata.normalize("NFKD", text[: MAX_CHARS * 2])
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return re.sub(r"\s+", " ", text).strip()[:MAX_CHARS]


def load_examples(path: Path = TRAIN_FILE) -> list[dict[str, Any]]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            example = json.loads(line)
            missing = [h for h in HEADS if h not in example] + (
                [] if example.get("text") else ["text"]
            )
            if missing:
                raise ValueError(f"{path.name} line {number}: missing {', '.join(missing)}")
            examples.append(example)
    # Sorted: the model does not depend on the order the file was written in.
    return sorted(examples, key=lambda e: (e["intent"], e["text"]))


def data_hash(path: Path = TRAIN_FILE) -> str:
    digest = hashlib.sha256(MODEL_VERSION.encode())
    digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Prediction:
    intents: tuple[tuple[str, float], ...]  # most probable first
    category: str
    category_p: float
    priority: str
    priority_p: float
    decision: str
    decision_p: float  # calibrated: the triage confidence
    third_party_p: float

    @property
    def intent(self) -> str:
        return self.intents[0][0]


class NluModel:
    """The fitted feature space and heads."""

    def __init__(
        self,
        features,
        heads: dict[str, Any],
        source_hash: str,
        decision_given_intent: dict[str, dict[str, float]],
    ):
        self.features = features
        self.heads = heads
        self.source_hash = source_hash
        self.decision_given_intent = decision_given_intent

    def predict(self, text: str) -> Prediction:
        """The heads' reading of ``text``. A run asks twice about the same request (triage,
        then the plan); the last few answers are kept (a prediction is a pure function of the
        text and this fitted model, and frozen)."""
        recent = self.__dict__.setdefault("_recent", OrderedDict())
        hit = recent.get(text)
        if hit is not None:
            recent.move_to_end(text)
            return hit
        prediction = self._predict(text)
        recent[text] = prediction
        if len(recent) > RECENT_PREDICTIONS:
            recent.popitem(last=False)
        return prediction

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_recent", None)  # (a built model file holds the fit, not a cache)
        return state

    def _predict(self, text: str) -> Prediction:
        x = self.vectorise(normalise(text))
        out: dict[str, list[tuple[str, float]]] = {}
        for name, head in self.heads.items():
            probs = head.predict_proba(x)[0]
            ranked = sorted(
                zip((str(c) for c in head.classes_), probs, strict=True),
                key=lambda pair: (-pair[1], pair[0]),
            )
            out[name] = [(label, round(float(p), 4)) for label, p in ranked]
        third = dict(out["third_party"]).get("True", 0.0)
        decisions = self._decision(out["decision"], out["intent"])
        return Prediction(
            intents=tuple(out["intent"][:3]),
            category=out["category"][0][0],
            category_p=out["category"][0][1],
            priority=out["priority"][0][0],
            priority_p=out["priority"][0][1],
            decision=decisions[0][0],
            decision_p=decisions[0][1],
            third_party_p=third,
        )

    def vectorise(self, text: str):
        """``features.transform([text])`` for one text, computed directly: the same TF-IDF
        row (the vectorisers' analysers, vocabularies, sublinear tf, idf and l2 norm), without
        sklearn's per-call checks and matrix plumbing, which took 90 % of a prediction's time
        (about 6 ms of each model call). Anything but plain TF-IDF vectorisers: sklearn's."""
        import numpy as np
        from scipy import sparse

        parts = _tfidf_parts(self.features)
        if parts is None:
            return self.features.transform([text])
        columns, values, offset = [], [], 0
        for vectoriser, analyse in parts:
            vocabulary = vectoriser.vocabulary_
            counts: dict[int, int] = {}
            for term in analyse(text):
                j = vocabulary.get(term)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            index = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
            tf = np.array([counts[j] for j in index], dtype=np.float64)
            if vectoriser.sublinear_tf:
                tf = 1.0 + np.log(tf) if len(tf) else tf
            tf = tf * vectoriser.idf_[index]
            norm = float(np.sqrt((tf * tf).sum()))
            if norm > 0:
                tf = tf / norm
            columns.append(index + offset)
            values.append(tf)
            offset += len(vocabulary)
        data, indices = np.concatenate(values), np.concatenate(columns)
        return sparse.csr_matrix((data, indices, [0, len(data)]), shape=(1, offset))

    def _decision(self, direct, intents) -> list[tuple[str, float]]:
        """Two views of the decision, averaged: the decision head's own, and the one implied
        by the intent head (the decisions each intent had in the training set)."""
        mixed = {label: 0.5 * p for label, p in direct}
        for intent, p in intents:
            for label, share in self.decision_given_intent.get(intent, {}).items():
                mixed[label] = mixed.get(label, 0.0) + 0.5 * p * share
        ranked = sorted(mixed.items(), key=lambda pair: (-pair[1], pair[0]))
        return [(label, round(p, 4)) for label, p in ranked]


def _tfidf_parts(features) -> list | None:
    """The (vectoriser, analyser) pairs of a FeatureUnion of plain l2-normalised TF-IDF
    vectorisers, in column order; None for anything else (kept on the features object)."""
    cached = getattr(features, "_agentops_tfidf_parts", False)
    if cached is not False:
        return cached
    from sklearn.feature_extraction.text import TfidfVectorizer

    parts = []
    for _name, vectoriser in getattr(features, "transformer_list", []):
        plain = (
            type(vectoriser) is TfidfVectorizer
            and vectoriser.use_idf
            and vectoriser.norm == "l2"
            and not vectoriser.binary
        )
        if not plain:
            parts = None
            break
        parts.append((vectoriser, vectoriser.build_analyzer()))
    if parts is not None and (not parts or getattr(features, "transformer_weights", None)):
        parts = None
    features._agentops_tfidf_parts = parts
    return parts


class ScaledSVM:
    """A linear SVM whose scores become probabilities by a softmax with one temperature,
    chosen to minimise the log loss of out-of-fold scores (3-fold, stratified, unshuffled):
    calibrated on examples the fold's model did not see, so a 0.8 means about 8 in 10."""

    TEMPERATURES = tuple(round(0.05 * 1.25**i, 4) for i in range(20))

    def fit(self, x, y: list[str]) -> ScaledSVM:
        import numpy as np
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        self.svm = self._svm().fit(x, y)
        self.classes_ = self.svm.classes_
        folds = min(3, min(y.count(c) for c in set(y)))
        if folds < 2:
            self.temperature = 1.0
            return self
        scores = cross_val_predict(
            self._svm(), x, y, cv=StratifiedKFold(folds), method="decision_function"
        )
        scores = scores.reshape(len(y), -1)
        if scores.shape[1] == 1:  # two classes: one score column
            scores = np.hstack([-scores, scores])
        truth = np.searchsorted(self.classes_, y)
        losses = [_log_loss(scores / t, truth) for t in self.TEMPERATURES]
        self.temperature = self.TEMPERATURES[int(np.argmin(losses))]
        return self

    def predict_proba(self, x):
        import numpy as np

        # LinearSVC.decision_function without its per-call input validation (a third of a
        # prediction's time on one ticket): the same product of the fitted weights.
        scores = np.asarray(x @ self.svm.coef_.T + self.svm.intercept_).reshape(x.shape[0], -1)
        if scores.shape[1] == 1:
            scores = np.hstack([-scores, scores])
        return _softmax(scores / self.temperature)

    @staticmethod
    def _svm():
        from sklearn.svm import LinearSVC

        return LinearSVC(C=1.0, class_weight="balanced", random_state=SEED)


def _softmax(z):
    import numpy as np

    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_loss(z, truth) -> float:
    import numpy as np

    p = _softmax(z)[np.arange(len(truth)), truth]
    return float(-np.log(np.clip(p, 1e-12, 1)).mean())


def _decision_given_intent(examples) -> dict[str, dict[str, float]]:
    counts: dict[str, dict[str, int]] = {}
    for e in examples:
        row = counts.setdefault(e["intent"], {})
        row[e["decision"]] = row.get(e["decision"], 0) + 1
    return {
        intent: {label: n / sum(row.values()) for label, n in sorted(row.items())}
        for intent, row in sorted(counts.items())
    }


def train(path: Path = TRAIN_FILE) -> NluModel:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    examples = load_examples(path)
    texts = [normalise(e["text"]) for e in examples]
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
                ),
            ),
        ]
    )
    x = features.fit_transform(texts)
    heads: dict[str, Any] = {}
    for name in HEADS:
        y = [str(e[name]) for e in examples]
        heads[name] = ScaledSVM().fit(x, y)
    return NluModel(features, heads, data_hash(path), _decision_given_intent(examples))


def model_path() -> Path:
    base = Path(
        getattr(settings, "NLU_MODEL_DIR", "") or Path(settings.BASE_DIR) / "var" / "models"
    )
    return base / f"nlu-{data_hash()}.pickle"


def save(model: NluModel, path: Path | None = None) -> Path:
    path = path or model_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(path)  # atomic: a reader never sees half a file
    for stale in path.parent.glob("nlu-*.pickle"):  # models of older training data
        if stale != path:
            stale.unlink(missing_ok=True)
    return path


def load(path: Path) -> NluModel | None:
    """The model built for the current training data at ``path``, or None (missing, corrupt,
    or built from other data)."""
    if not path.exists():
        return None
    try:
        model = pickle.loads(path.read_bytes())  # noqa: S301 - our own build output under var/
    except Exception:
        log.warning("NLU model %s unreadable; training in process", path, exc_info=True)
        return None
    if isinstance(model, NluModel) and model.source_hash == data_hash():
        return model
    return None


@lru_cache(maxsize=1)
def get_model() -> NluModel:
    """The model for the shipped training data: the built file, else trained now (cached)."""
    path = model_path()
    model = load(path)
    if model is not None:
        return model
    model = train()
    try:
        save(model, path)
    except OSError:
        log.info("could not write the NLU model to %s; kept in memory", path)
    return model
