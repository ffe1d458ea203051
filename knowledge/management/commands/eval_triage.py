"""manage.py eval_triage FILE.csv --text-column ... --label-column ... --test-fraction 0.2 --seed 1

How well would triage learn this tenant's labels? The rows are shuffled (seeded) and split;
the training part is imported into a scratch tenant (created here and deleted afterwards, also
on failure or Ctrl-C) and the tenant's linear model is trained on it as the knowledge worker
would (``knowledge.triage_model.train``). Each test row is then triaged three ways, side by
side: the k-NN history vote (same k and thresholds as the Triage step), the linear model, and
the two combined as triage uses them (``triage_model.combine``).

It prints accuracy and macro-F1 over EVERY test ticket first (a method's best guess on each,
also where triage would not trust it), then the confident subset of each: how many tickets it
is sure of (the rest fall back to the model), and accuracy and macro-F1 on those.

The default backend is the one triage uses (``KNOWLEDGE_EMBEDDING_BACKEND``: MiniLM, int8, in
production), because the numbers are meant to predict triage, and the hashing backend only
matches shared words. Embedding dominates the run time: MiniLM int8 embeds about 270 ticket
texts/s with one thread here (two threads were slower on the shared 2-core machine, so the
configured thread count stands unless ``--threads`` says otherwise), so 50,000 rows take
about 5 minutes on a quiet machine; ``--backend hashing`` answers in about 1.5 minutes.
"""

from __future__ import annotations

import os
import random
import time
import uuid

import numpy as np
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test.utils import override_settings

from agentops.models import Tenant
from knowledge import history, triage_model
from knowledge.embeddings import BACKENDS, EmbeddingBackendError, get_embedder
from knowledge.management.commands._ticket_csv import joined, open_rows
from knowledge.metrics import accuracy, macro_f1
from knowledge.models import LabelledExample, TriageModel

SCRATCH_PREFIX = "eval-triage-"


class Command(BaseCommand):
    help = (
        "Evaluate triage (k-NN history vote, linear model, both) on a labelled CSV: accuracy "
        "and macro-F1 over every test ticket, then on the confident subset."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file with a header row (UTF-8)")
        parser.add_argument("--text-column", action="append", required=True)
        parser.add_argument("--label-column", required=True, help="the label to predict")
        parser.add_argument("--test-fraction", type=float, default=0.2)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--k", type=int, default=history.DEFAULT_K)
        parser.add_argument(
            "--backend",
            choices=sorted(BACKENDS),
            help="embedding backend (default: the configured one, as triage uses)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            help="torch threads for MiniLM (default: KNOWLEDGE_EMBEDDING_THREADS, 1; on a busy "
            "2-core machine two threads embed slower than one)",
        )
        parser.add_argument(
            "--batch-size", type=int, default=512, help="rows per embedding call and upsert"
        )
        parser.add_argument("--limit", type=int, default=0, help="use only the first N rows")

    def handle(self, *args, file, text_column, label_column, **options):
        fraction, k = options["test_fraction"], options["k"]
        if not 0 < fraction < 1:
            raise CommandError("--test-fraction must be between 0 and 1.")
        if k < 1 or options["batch_size"] < 1 or (options["threads"] or 1) < 1:
            raise CommandError("--k, --batch-size and --threads must be at least 1.")

        # 1. Read and split the rows (seeded: the same split every time).
        rows = []
        for row in open_rows(file, required={"text": text_column, "label": label_column}):
            text, label = joined(row, text_column), (row.get(label_column) or "").strip()
            if text and label:
                rows.append((text, label))
            if options["limit"] and len(rows) >= options["limit"]:
                break
        if len(rows) < 2:
            raise CommandError(f"{file}: needs at least 2 rows with text and label.")
        random.Random(options["seed"]).shuffle(rows)
        n_test = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
        test, train = rows[:n_test], rows[n_test:]

        # 2. The embedder, with every core and big batches for this one process.
        backend = options["backend"] or None
        overrides = {}
        if options["threads"]:
            overrides["KNOWLEDGE_EMBEDDING_THREADS"] = options["threads"]
        if backend:
            overrides["KNOWLEDGE_EMBEDDING_BACKEND"] = backend
        with override_settings(**overrides):
            self._run(file, options, rows, train, test, k)

    def _run(self, file, options, rows, train, test, k: int) -> None:
        try:
            embedder = get_embedder()
        except EmbeddingBackendError as exc:
            raise CommandError(str(exc)) from exc
        if options["threads"] and hasattr(embedder, "base_name"):  # MiniLM, maybe loaded before
            import torch

            torch.set_num_threads(options["threads"])
        self.stdout.write(
            f"{len(rows)} labelled rows: {len(train)} to train, {len(test)} to test "
            f"(seed {options['seed']}); k={k}; embeddings: {embedder.name}"
        )

        # 3. A scratch tenant, deleted whatever happens.
        scratch = Tenant.objects.create(
            name=f"eval_triage scratch ({os.path.basename(file)})"[:120],
            slug=f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}",
            tier=Tenant.Tier.ENTERPRISE,  # an evaluation, not a customer: no quotas
            is_active=False,
        )
        try:
            self._evaluate(scratch, embedder, train, test, k, options["batch_size"])
        finally:
            LabelledExample.objects.for_tenant(scratch).delete()
            TriageModel.objects.for_tenant(scratch).delete()
            scratch.delete()

    def _evaluate(self, tenant, embedder, train, test, k: int, batch_size: int) -> None:
        started = time.monotonic()

        def progress(written: int) -> None:
            if written % (batch_size * 10) < batch_size or written == len(train):
                rate = written / max(time.monotonic() - started, 1e-6)
                self.stdout.write(f"  trained on {written}/{len(train)} ({rate:.0f}/s)")

        history.index_examples(
            tenant,
            (
                {"ref": f"row:{i}", "text": text, "category": label}
                for i, (text, label) in enumerate(train)
            ),
            origin="import",
            batch_size=batch_size,
            progress=progress,
            embedder=embedder,
            retrain=False,  # trained below, in this process
        )
        # Fresh statistics: the planner must know this tenant is now large, else it sorts
        # every one of its rows per query instead of walking the HNSW index.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {LabelledExample._meta.db_table}")
        indexed = time.monotonic()
        model_row = triage_model.train(tenant, embedder=embedder)
        loaded = triage_model.load(tenant) if model_row is not None else None
        trained = time.monotonic()
        if model_row is not None:
            self.stdout.write(
                f"  linear model: {model_row.examples} examples, {len(model_row.classes)} "
                f"labels, trained in {trained - indexed:.1f} s; confidence bar "
                f"{model_row.metrics.get('threshold')}; where both are sure and disagree, "
                f"triage takes the {model_row.metrics.get('prefer', 'linear')} answer "
                f"(held out: {model_row.metrics.get('disagreements', {})})"
            )
        else:
            self.stdout.write("  linear model: too little history to train one")

        scores = {name: Scores() for name in METHODS}
        threshold = history.min_similarity(embedder)
        for start in range(0, len(test), batch_size):
            part = test[start : start + batch_size]
            texts = [text for text, _label in part]
            vectors = embedder.embed(texts)
            linear = self._linear(loaded, texts, vectors)
            for (_text, label), vector, lin in zip(part, vectors, linear, strict=True):
                neighbours = history.similar(tenant, "", k, embedding=vector, embedder=embedder)
                # The Triage step's verdict (thresholds and all), and the plain k-NN guess that
                # is scored on every row, also where the step would fall back to the model.
                result = history.tally(neighbours, threshold=threshold)
                plain = history.tally(neighbours, threshold=-1.0)
                knn_guess = plain.category.value if plain.category else ""
                scores["kNN vote"].add(label, knn_guess, result.confident)
                if lin is not None:
                    scores["linear model"].add(label, lin.value, lin.confident)
                both = triage_model.combine(result, lin)
                if both is not None and both.category is not None:
                    scores["combined"].add(label, both.category.value, True)
                else:  # triage falls back; its best guess from history is the better one
                    best = lin.value if lin is not None else knn_guess
                    scores["combined"].add(label, best, False)
            done = start + len(part)
            if done % (batch_size * 10) < batch_size or done == len(test):
                self.stdout.write(f"  triaged {done}/{len(test)}")
        finished = time.monotonic()
        self._report(scores, len(test))
        self.stdout.write(
            f"time: index {indexed - started:.1f} s, linear model {trained - indexed:.1f} s, "
            f"triage {finished - trained:.1f} s ({len(test) / max(finished - trained, 1e-6):.0f} "
            "tickets/s)"
        )

    @staticmethod
    def _linear(loaded, texts, vectors) -> list:
        if loaded is None:
            return [None] * len(texts)
        meta, model = loaded
        guesses = model.predict(texts, np.asarray(vectors, dtype=np.float32))
        return [triage_model.prediction(meta, v, p) for v, p in guesses]

    def _report(self, scores: dict[str, Scores], n: int) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"Every test ticket ({n}), each method's best guess:"))
        for name, s in scores.items():
            if not s.truth:
                self.stdout.write(f"  {name:<13} no model (too little history)")
                continue
            self.stdout.write(
                f"  {name:<13} accuracy {accuracy(s.truth, s.guess):.3f}  "
                f"macro-F1 {macro_f1(s.truth, s.guess):.3f}"
            )
        self.stdout.write(self.style.SUCCESS("Confident subset (the rest fall back to the model):"))
        for name, s in scores.items():
            if not s.truth:
                continue
            sure = [(t, g) for t, g, c in zip(s.truth, s.guess, s.sure, strict=True) if c]
            share = len(sure) / len(s.truth)
            line = f"  {name:<13} {len(sure)} of {len(s.truth)} tickets ({share:.1%})"
            if sure:
                truth, guess = [t for t, _g in sure], [g for _t, g in sure]
                line += f": accuracy {accuracy(truth, guess):.3f}  macro-F1 {macro_f1(truth, guess):.3f}"
            self.stdout.write(f"{line}; fallback rate {1 - share:.3f}")


METHODS = ("kNN vote", "linear model", "combined")


class Scores:
    """The truth, the guess and whether the method was confident, per test ticket."""

    def __init__(self):
        self.truth: list[str] = []
        self.guess: list[str] = []
        self.sure: list[bool] = []

    def add(self, truth: str, guess: str, sure: bool) -> None:
        self.truth.append(truth)
        self.guess.append(guess)
        self.sure.append(sure)
