"""Scores of a classifier's guesses: accuracy and macro-F1 (eval_triage, the triage model)."""

from __future__ import annotations

from collections import Counter


def macro_f1(truth: list[str], predicted: list[str]) -> float:
    """Unweighted mean of per-label F1 over the labels in the truth (as scikit-learn's
    ``f1_score(average="macro")`` with ``labels`` = the true labels). A label never predicted
    scores 0; a prediction of "" (no vote at all) is simply wrong."""
    labels = sorted(set(truth))
    if not labels:
        return 0.0
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for t, p in zip(truth, predicted, strict=True):
        if t == p:
            tp[t] += 1
        else:
            fn[t] += 1
            fp[p] += 1
    scores = []
    for label in labels:
        denominator = 2 * tp[label] + fp[label] + fn[label]
        scores.append(2 * tp[label] / denominator if denominator else 0.0)
    return sum(scores) / len(scores)


def accuracy(truth: list[str], predicted: list[str]) -> float:
    if not truth:
        return 0.0
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
