"""manage.py eval_triage FILE.csv --text-column ... --label-column ... --test-fraction 0.2 --seed 1

How well would the history vote triage this tenant's tickets? The rows are shuffled (seeded)
and split; the training part is imported into a scratch tenant (created here and deleted
afterwards, also on failure or Ctrl-C), each test row is triaged with the same vote, the same
k and the same thresholds the Triage step uses, and the command prints accuracy and macro-F1
of the voted label, the fallback rate (rows where the vote is not confident and the model
would decide) and the accuracy of the confident votes alone.

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
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test.utils import override_settings

from agentops.models import Tenant
from knowledge import history
from knowledge.embeddings import BACKENDS, EmbeddingBackendError, get_embedder
from knowledge.management.commands._ticket_csv import joined, open_rows
from knowledge.models import LabelledExample

SCRATCH_PREFIX = "eval-triage-"


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


class Command(BaseCommand):
    help = "Evaluate history-vote triage on a labelled CSV: accuracy, macro-F1, fallback rate."

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
        )
        # Fresh statistics: the planner must know this tenant is now large, else it sorts
        # every one of its rows per query instead of walking the HNSW index.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {LabelledExample._meta.db_table}")
        trained = time.monotonic()

        threshold = history.min_similarity(embedder)
        truth, guessed, confident_truth, confident_guess = [], [], [], []
        for start in range(0, len(test), batch_size):
            part = test[start : start + batch_size]
            vectors = embedder.embed([text for text, _label in part])
            for (_text, label), vector in zip(part, vectors, strict=True):
                neighbours = history.similar(tenant, "", k, embedding=vector, embedder=embedder)
                # The Triage step's verdict (thresholds and all), and the plain k-NN guess that
                # is scored on every row, also where the step would fall back to the model.
                result = history.tally(neighbours, threshold=threshold)
                plain = history.tally(neighbours, threshold=-1.0)
                guess = plain.category.value if plain.category else ""
                truth.append(label)
                guessed.append(guess)
                if result.confident:
                    confident_truth.append(label)
                    confident_guess.append(guess)
            done = start + len(part)
            if done % (batch_size * 10) < batch_size or done == len(test):
                self.stdout.write(f"  triaged {done}/{len(test)}")
        finished = time.monotonic()

        n = len(truth)
        fallback = 1 - len(confident_truth) / n
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"accuracy: {accuracy(truth, guessed):.3f}"))
        self.stdout.write(self.style.SUCCESS(f"macro-F1: {macro_f1(truth, guessed):.3f}"))
        self.stdout.write(
            f"fallback rate: {fallback:.3f} ({n - len(confident_truth)} of {n} test tickets "
            "would go to the model: too few similar past tickets, or no agreement)"
        )
        if confident_truth:
            self.stdout.write(
                f"confident votes: accuracy {accuracy(confident_truth, confident_guess):.3f}, "
                f"macro-F1 {macro_f1(confident_truth, confident_guess):.3f} "
                f"on {len(confident_truth)} tickets"
            )
        self.stdout.write(
            "(accuracy and macro-F1 score the vote's leading label on every test ticket, "
            "including those that would fall back)"
        )
        self.stdout.write(
            f"time: train {trained - started:.1f} s, triage {finished - trained:.1f} s "
            f"({n / max(finished - trained, 1e-6):.0f} tickets/s)"
        )
