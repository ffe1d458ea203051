"""The per-tenant linear triage model (knowledge.triage_model): trained from the tenant's
history, stored per tenant, retrained (debounced) as history grows, and used by triage where
it is more confident than the k-NN vote."""

from __future__ import annotations

import random
import time

import pytest
from django.core.cache import cache

from knowledge import history, triage_model
from knowledge.models import LabelledExample, TriageModel

TOPICS = {
    "network": ["vpn", "wifi", "disconnects", "router", "latency", "tunnel", "ethernet"],
    "access": ["password", "locked", "account", "login", "mfa", "reset", "sign-in"],
    "hardware": ["laptop", "battery", "screen", "keyboard", "docking", "broken", "charger"],
    "facilities": ["badge", "door", "desk", "chair", "parking", "heating", "kitchen"],
}
FILLER = ["please", "help", "today", "since", "morning", "again", "my", "the", "urgent", "hi"]


def rows(n, seed, prefix="R"):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(sorted(TOPICS))
        words = rng.sample(TOPICS[label], 3) + rng.sample(FILLER, 4)
        rng.shuffle(words)
        out.append({"ref": f"{prefix}{i}", "text": " ".join(words), "category": label})
    return out


@pytest.fixture
def real_delivery():
    """Tasks go through the broker to the real worker."""
    from agentops.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def no_debounce_left():
    """Models unpickled by this process are keyed by tenant id: none outlive the test."""
    yield
    for key in list(triage_model._LOADED):
        triage_model._LOADED.pop(key, None)


def test_train_stores_a_model_per_tenant_and_predicts_its_labels(personas):
    acme, globex = personas.tenant, personas.other_tenant
    history.index_examples(acme, rows(160, seed=1), retrain=False)
    row = triage_model.train(acme)
    assert row is not None and row.examples == 160
    assert set(row.classes) == set(TOPICS)
    assert row.metrics["held_out"] == 24 and row.metrics["accuracy"] >= 0.8
    assert 0.3 <= row.metrics["threshold"] <= 0.99
    assert row.metrics["prefer"] in ("linear", "history") and "disagreements" in row.metrics
    prediction = triage_model.predict(acme, "my badge does not open the door to the parking")
    assert prediction.value == "facilities" and 0 < prediction.confidence <= 1
    # Tenant-owned: the other tenant has no model and no prediction.
    assert triage_model.predict(globex, "badge door parking") is None
    assert not TriageModel.objects.for_tenant(globex).exists()
    # Too little history: no model (and an old one goes).
    LabelledExample.objects.for_tenant(acme).exclude(ref__in=["R0", "R1", "R2"]).delete()
    assert triage_model.train(acme) is None
    assert not TriageModel.objects.for_tenant(acme).exists()


def test_history_growth_queues_a_retrain_after_commit(personas, django_capture_on_commit_callbacks):
    acme = personas.tenant
    cache.delete(triage_model._debounce_key(acme.pk))
    with django_capture_on_commit_callbacks(execute=True):
        history.index_examples(acme, rows(60, seed=2))
    # Eager in tests: the task ran at once, trained, and released its debounce claim.
    assert TriageModel.objects.for_tenant(acme).get().examples == 60
    assert cache.get(triage_model._debounce_key(acme.pk)) is None
    assert triage_model.retrain_now(10**9) == "no tenant"


@pytest.mark.worker
def test_a_burst_of_history_is_one_retrain_on_a_real_knowledge_worker(
    celery_worker, real_delivery, personas, settings
):
    """Two imports in a row inside the debounce window: one task, which sees both."""
    acme = personas.tenant
    settings.KNOWLEDGE_TRIAGE_RETRAIN_DEBOUNCE = 3
    cache.delete(triage_model._debounce_key(acme.pk))
    history.index_examples(acme, rows(60, seed=2))  # autocommit: queued on commit
    assert cache.get(triage_model._debounce_key(acme.pk)) is not None  # the claim is held
    history.index_examples(acme, rows(30, seed=3, prefix="S"))  # no second task
    assert triage_model.schedule_retrain(acme.pk) is False
    deadline = time.monotonic() + 60
    while not TriageModel.objects.for_tenant(acme).exists():
        assert time.monotonic() < deadline, "no retrain arrived"
        time.sleep(0.3)
    model = TriageModel.objects.for_tenant(acme).get()
    assert model.examples == 90 and model.trained_at is not None
    assert not TriageModel.objects.for_tenant(personas.other_tenant).exists()


def test_decide_uses_the_linear_model_where_it_is_surer_than_the_vote(personas):
    acme = personas.tenant
    history.index_examples(acme, rows(200, seed=4), retrain=False)
    triage_model.train(acme)
    # No past ticket is near "charger lost" (the vote falls back); the model knows "charger".
    text = "charger lost"
    assert not history.tally_for(acme, text).confident
    decided = triage_model.decide(acme, text)
    assert decided.category.value == "hardware" and decided.decided_by == "linear model"
    assert "linear model" in decided.explain()
    assert decided.as_dict()["decided_by"] == "linear model"
    # Fifteen past tickets agree on "badge": the vote is as sure as it gets and stays.
    decided = triage_model.decide(acme, "badge")
    assert decided.category.value == "facilities" and decided.decided_by == "history"
    assert decided.category.support >= 3
    assert triage_model.decide(personas.other_tenant, "charger lost") is None


def test_combine_follows_the_held_out_record_and_falls_back_to_none():
    vote = history.LabelVote
    knn = history.Vote(
        category=vote("network", 0.7, 3, True), priority=None, assignment_group=None, confident=True
    )
    unsure = history.Vote(category=vote("network", 0.4, 1, False), priority=None,
                          assignment_group=None, confident=False)  # fmt: skip
    sure_linear = triage_model.Prediction("access", 0.9, 0.6, True, prefer="linear")
    weak_linear = triage_model.Prediction("access", 0.5, 0.6, False)
    assert triage_model.combine(knn, sure_linear).category.value == "access"
    assert triage_model.combine(knn, sure_linear).decided_by == "linear model"
    assert triage_model.combine(knn, weak_linear).category.value == "network"
    assert triage_model.combine(knn, None) is knn
    assert triage_model.combine(unsure, sure_linear).category.value == "access"
    assert triage_model.combine(unsure, weak_linear) is None
    # Where the vote won the held-out disagreements, it keeps them.
    history_won = triage_model.Prediction("access", 0.99, 0.6, True, prefer="history")
    assert triage_model.combine(knn, history_won).decided_by == "history"
    # Agreeing: the vote, whose neighbours people can read.
    agreeing = triage_model.Prediction("network", 0.99, 0.6, True)
    assert triage_model.combine(knn, agreeing) is knn


def test_a_small_category_is_not_drowned_by_a_large_one():
    """Balanced class weights: a category with few examples is still predicted (macro-F1
    counts it as much as the large one)."""
    import numpy as np

    rng = random.Random(5)
    texts, labels = [], []
    for i in range(400):
        label = "facilities" if i % 40 == 0 else "network"  # 10 of 400
        words = rng.sample(TOPICS[label], 2) + rng.sample(FILLER, 5) + ["network"]
        texts.append(" ".join(words))
        labels.append(label)
    vectors = np.zeros((len(texts), 4), dtype=np.float32)
    model = triage_model.TextAndVectorClassifier().fit(texts, vectors, labels)
    fresh = [
        " ".join([*rng.sample(TOPICS["facilities"], 2), "network", "please"]) for _ in range(20)
    ]
    guesses = model.predict(fresh, np.zeros((20, 4), dtype=np.float32))
    assert sum(label == "facilities" for label, _p in guesses) >= 18


def test_the_held_out_knn_vote_in_blocks_is_the_exact_vote():
    import numpy as np

    rng = np.random.default_rng(3)
    train = rng.normal(size=(300, 8)).astype(np.float32)
    labels = [str(i % 4) for i in range(300)]
    held_out = rng.normal(size=(triage_model.KNN_BLOCK + 40, 8)).astype(np.float32)
    votes = triage_model._knn_held_out(train, labels, held_out, 0.1)
    assert len(votes) == len(held_out)
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    for i in (0, triage_model.KNN_BLOCK - 1, triage_model.KNN_BLOCK, len(held_out) - 1):
        row = unit @ (held_out[i] / np.linalg.norm(held_out[i]))
        nearest = np.argsort(-row)[: history.DEFAULT_K]
        assert [n.ref for n in votes[i].neighbours] == [
            str(j) for j in nearest if row[j] >= 0.1
        ] or votes[i].qualified < history.MIN_NEIGHBOURS
