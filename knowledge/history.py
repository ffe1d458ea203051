"""Past tickets as labelled examples: nearest neighbours and the triage vote.

Plain values in and out: this module knows nothing of tickets (``incidents`` turns a resolved
ticket into a row; ``manage.py import_tickets`` turns a CSV line into one).

- ``index_examples(tenant, rows)`` upserts examples by ``ref``, embedding them in batches.
- ``similar(tenant, text, k)`` returns the nearest examples by cosine similarity. The tenant
  filter is inside the SQL; the HNSW index answers it with ``hnsw.iterative_scan`` so a small
  tenant among large ones still gets its k neighbours.
- ``vote(tenant, text)`` is a similarity-weighted k-nearest-neighbour vote for category,
  priority and assignment group, or None when the tenant's history is too thin to trust (the
  caller falls back to the model).

Why these thresholds (``MIN_SIMILARITY``, ``MIN_NEIGHBOURS``, ``MIN_AGREEMENT``): measured
with all-MiniLM-L6-v2, two IT tickets about different problems score 0.04-0.25 ("install
Acrobat" / "install Visio" 0.24), and two tickets about the same problem in other words score
0.65-0.88 ("locked out after too many attempts" / "account locked, cannot sign in" 0.69).
0.45 sits between the two. The hashing backend only sees shared words: paraphrases score
0.1-0.45 and unrelated texts 0-0.15, so its bar is 0.2. Three such neighbours, not one, must
carry the vote, so one mislabelled past ticket cannot decide; and the winning label needs 60%
of the similarity weight and two votes: with three neighbours at least two must agree, and an
even split between two labels falls back to the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from agentops.postgres.statements import Statements
from knowledge.embeddings import get_embedder
from knowledge.models import LabelledExample

LABELS = ("category", "priority", "assignment_group")
DEFAULT_K = 15
# Cosine similarity a neighbour needs to count at all, by embedding model (see above).
MIN_SIMILARITY = {"all-MiniLM-L6-v2": 0.45, "hashing-v1": 0.2}
DEFAULT_MIN_SIMILARITY = 0.45
MIN_NEIGHBOURS = 3  # qualifying neighbours needed before the history may decide
MIN_AGREEMENT = 0.6  # share of the similarity weight the winning label needs
EF_SEARCH = 100  # HNSW candidate list: recall close to exact search at a few ms per query
EMBED_BATCH = 256  # texts per embedder call and rows per upsert while indexing

TEXT_MAX = 20_000
FIELD_MAX = {
    "ref": 200,
    "category": 100,
    "priority": 50,
    "assignment_group": 100,
    "resolution_path": 500,
}


@dataclass(frozen=True)
class Neighbour:
    """A past example near the query, with its cosine similarity (1 = same direction)."""

    ref: str
    text: str
    category: str
    priority: str
    assignment_group: str
    resolution_path: str
    resolved_ok: bool
    origin: str
    similarity: float


@dataclass(frozen=True)
class LabelVote:
    """The winning value of one label, its share of the similarity weight and its support."""

    value: str
    confidence: float
    support: int  # neighbours that voted for it
    confident: bool


@dataclass(frozen=True)
class Vote:
    """The vote of the nearest past examples. Labels that did not reach agreement are None."""

    category: LabelVote | None
    priority: LabelVote | None
    assignment_group: LabelVote | None
    neighbours: list[Neighbour] = field(default_factory=list)
    qualified: int = 0  # neighbours at or above the model's MIN_SIMILARITY
    confident: bool = False
    # Who set the category: the neighbours, or the tenant's linear model (knowledge.triage_model).
    decided_by: str = "history"

    def label(self, name: str) -> str | None:
        """The label's value when it is confident, else None."""
        vote = getattr(self, name)
        return vote.value if vote is not None and vote.confident else None

    def as_dict(self) -> dict[str, Any]:
        """JSON for a step's detail: the labels with their confidence and the neighbours."""
        return {
            "confident": self.confident,
            "qualified": self.qualified,
            "decided_by": self.decided_by,
            "labels": {
                name: asdict(getattr(self, name)) if getattr(self, name) else None
                for name in LABELS
            },
            "neighbours": [
                {
                    "ref": n.ref,
                    "similarity": round(n.similarity, 3),
                    "category": n.category,
                    "priority": n.priority,
                    "assignment_group": n.assignment_group,
                }
                for n in self.neighbours
            ],
        }

    def explain(self, limit: int = 5) -> str:
        """One line for a timeline: which labels, how sure, and which past tickets said so."""
        labels = ", ".join(
            f"{name.replace('_', ' ')} {vote.value} ({vote.confidence:.2f})"
            for name in LABELS
            if (vote := getattr(self, name)) is not None and vote.confident
        )
        near = ", ".join(f"{n.ref} ({n.similarity:.2f})" for n in self.neighbours[:limit])
        if self.decided_by != "history":
            return (
                f"{labels or 'no label agreed'} — category from the tenant's {self.decided_by} "
                f"(trained on its history); similar past tickets: {near or 'none'}"
            )
        return f"{labels or 'no label agreed'} — voted by {self.qualified} similar past tickets: {near}"


# --------------------------------------------------------------------------- label mappers

# A label's name → fn(tenant, labels) → {label: the value to store}. The domain above registers
# its taxonomy here (incidents: the tenant's ticket categories, created as imported history
# names them), so an import stores labels the tenant's tickets can carry; this module stays
# free of tickets.
_LABEL_MAPPERS: dict[str, Callable[[Any, list[str]], dict[str, str]]] = {}


def register_label_mapper(name: str, mapper: Callable[[Any, list[str]], dict[str, str]]) -> None:
    _LABEL_MAPPERS[name] = mapper


def map_labels(tenant, name: str, labels: Iterable[str]) -> dict[str, str]:
    """label → stored value for ``name`` (identity when no mapper is registered)."""
    labels = [str(v).strip() for v in labels if str(v or "").strip()]
    mapper = _LABEL_MAPPERS.get(name)
    if mapper is None:
        return {v: v for v in labels}
    return mapper(tenant, labels)


# --------------------------------------------------------------------------- indexing


def _clip(value: Any, name: str) -> str:
    return str(value or "").strip()[: FIELD_MAX[name]]


def example_ref(text: str) -> str:
    """A stable ref for a row that has no id of its own: the hash of its text."""
    return "sha1:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:20]


def index_examples(
    tenant,
    rows: Iterable[Mapping[str, Any]],
    *,
    origin: str = "ticket",
    batch_size: int = EMBED_BATCH,
    progress: Callable[[int], None] | None = None,
    embedder=None,
    retrain: bool = True,
) -> int:
    """Upsert labelled examples by ``ref`` and return how many rows were written.

    ``retrain``: after commit, queue the tenant's linear triage model to retrain (debounced,
    ``knowledge.triage_model.schedule_retrain``); an evaluation's scratch tenant says False.

    Each row is a mapping with ``text`` and optionally ``ref`` (default: a hash of the text),
    ``category``, ``priority``, ``assignment_group``, ``resolution_path`` and ``resolved_ok``.
    Rows without text are skipped. Texts are embedded ``batch_size`` at a time and each batch
    is one INSERT … ON CONFLICT (tenant, ref) DO UPDATE; within a batch the last row of a ref
    wins (PostgreSQL refuses to update one row twice in one statement).
    """
    embedder = embedder or get_embedder()
    written = 0
    batch: dict[str, dict[str, Any]] = {}

    def flush() -> None:
        nonlocal written
        if not batch:
            return
        items = list(batch.values())
        vectors = embedder.embed([item["text"] for item in items])
        now = timezone.now()
        objs = [
            LabelledExample(
                tenant=tenant,
                embedding=vector,
                embedding_model=embedder.name,
                origin=origin,
                created_at=now,
                **item,
            )
            for item, vector in zip(items, vectors, strict=True)
        ]
        LabelledExample.objects.bulk_create(
            objs,
            update_conflicts=True,
            unique_fields=["tenant", "ref"],
            update_fields=[
                "text",
                *LABELS,
                "resolution_path",
                "resolved_ok",
                "origin",
                "embedding",
                "embedding_model",
            ],
        )
        written += len(objs)
        batch.clear()
        if progress is not None:
            progress(written)

    for row in rows:
        text = str(row.get("text") or "").strip()[:TEXT_MAX]
        if not text:
            continue
        ref = _clip(row.get("ref"), "ref") or example_ref(text)
        batch.pop(ref, None)  # the later row of a ref wins, and goes to the end
        batch[ref] = {
            "ref": ref,
            "text": text,
            "category": _clip(row.get("category"), "category"),
            "priority": _clip(row.get("priority"), "priority"),
            "assignment_group": _clip(row.get("assignment_group"), "assignment_group"),
            "resolution_path": _clip(row.get("resolution_path"), "resolution_path"),
            "resolved_ok": bool(row.get("resolved_ok", True)),
        }
        if len(batch) >= batch_size:
            flush()
    flush()
    if written and retrain:
        from knowledge.triage_model import schedule_retrain

        tenant_id = tenant.pk
        # robust: with Redis or the broker down the examples stay written (the learning
        # that wrote them goes on); the tenant's next history change schedules the retrain.
        transaction.on_commit(lambda: schedule_retrain(tenant_id), robust=True)
    return written


def forget(tenant, ref: str) -> int:
    """Remove the example ``ref``: it no longer votes (its resolution taught nothing)."""
    deleted, _ = LabelledExample.objects.for_tenant(tenant).filter(ref=ref).delete()
    return deleted


def set_resolved_ok(tenant, ref: str, resolved_ok: bool) -> int:
    """Mark whether the example's resolution worked (a poor rating says it did not)."""
    return (
        LabelledExample.objects.for_tenant(tenant)
        .filter(ref=ref)
        .exclude(resolved_ok=resolved_ok)
        .update(resolved_ok=resolved_ok)
    )


# --------------------------------------------------------------------------- searching


def _vector_literal(vector: Iterable[float]) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in vector) + "]"


_NEAREST_SQL = """
WITH nearest AS MATERIALIZED (
    SELECT ref, left(text, 500) AS text, category, priority, assignment_group,
           resolution_path, resolved_ok, origin, embedding <=> %(q)s::vector AS distance
    FROM {table}
    WHERE tenant_id = %(tenant)s AND embedding_model = %(model)s {exclude}
    ORDER BY embedding <=> %(q)s::vector
    LIMIT %(k)s
)
SELECT ref, text, category, priority, assignment_group, resolution_path, resolved_ok, origin,
       1 - distance AS similarity
FROM nearest
ORDER BY distance, ref
"""


def similar(
    tenant,
    text: str,
    k: int = 10,
    exclude_ref: str | None = None,
    *,
    embedding: list[float] | None = None,
    embedder=None,
) -> list[Neighbour]:
    """The ``k`` nearest examples of ``tenant`` (cosine), most similar first.

    Only examples embedded by the current model count: vectors of another model are not
    comparable (a model change re-embeds). ``embedding`` skips embedding ``text`` again when
    the caller already has its vector (eval_triage embeds its test rows in batches).
    """
    if tenant is None:
        raise ValueError("similar() needs a tenant")
    if k <= 0:
        return []
    embedder = embedder or get_embedder()
    if embedding is None:
        if not (text or "").strip():
            return []
        embedding = embedder.embed_one(text)
    params = {
        "q": _vector_literal(embedding),
        "tenant": tenant.pk,
        "model": embedder.name,
        "k": int(k),
    }
    exclude = ""
    if exclude_ref:
        exclude = "AND ref <> %(exclude)s"
        params["exclude"] = exclude_ref
    # relaxed_order lets the index keep scanning until k rows of this tenant are found; the
    # outer ORDER BY puts the (nearly ordered) rows back in exact order.
    # The SET LOCALs and the scan in one round trip (two statements, one pipeline); no
    # savepoint inside a caller's transaction (the settings only widen its later HNSW scans).
    with transaction.atomic(savepoint=False):
        rows = Statements(
            (
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                [str(max(EF_SEARCH, int(k)))],
            ),
            (_NEAREST_SQL.format(table=LabelledExample._meta.db_table, exclude=exclude), params),
        ).fetchall()
    return [
        Neighbour(
            ref=ref,
            text=snippet,
            category=category,
            priority=priority,
            assignment_group=group,
            resolution_path=path,
            resolved_ok=ok,
            origin=origin,
            similarity=float(sim),
        )
        for ref, snippet, category, priority, group, path, ok, origin, sim in rows
    ]


# --------------------------------------------------------------------------- voting


def _tally(neighbours: list[Neighbour], name: str) -> LabelVote | None:
    weights: dict[str, float] = {}
    support: dict[str, int] = {}
    for n in neighbours:
        value = getattr(n, name)
        if not value:
            continue
        weights[value] = weights.get(value, 0.0) + max(n.similarity, 0.0)
        support[value] = support.get(value, 0) + 1
    total = sum(weights.values())
    if not weights or total <= 0:
        return None
    # Highest weight wins; ties go to more support, then to the name (deterministic).
    value = max(weights, key=lambda v: (weights[v], support[v], v))
    confidence = weights[value] / total
    return LabelVote(
        value=value,
        confidence=round(confidence, 3),
        support=support[value],
        confident=confidence >= MIN_AGREEMENT and support[value] >= 2,
    )


def min_similarity(embedder=None) -> float:
    """The bar for this embedder; variants of a model (int8, shorter input) share their base's."""
    embedder = embedder or get_embedder()
    name = getattr(embedder, "base_name", "") or embedder.name
    return MIN_SIMILARITY.get(name, DEFAULT_MIN_SIMILARITY)


def tally(neighbours: list[Neighbour], *, threshold: float = DEFAULT_MIN_SIMILARITY) -> Vote:
    """The vote of these neighbours, confident or not (``vote`` returns only confident ones;
    ``eval_triage`` also scores the unconfident guesses)."""
    qualified = [n for n in neighbours if n.similarity >= threshold]
    labels = {name: _tally(qualified, name) for name in LABELS}
    primary = next((labels[name] for name in LABELS if labels[name] is not None), None)
    confident = len(qualified) >= MIN_NEIGHBOURS and primary is not None and primary.confident
    return Vote(
        neighbours=qualified or neighbours[:3],
        qualified=len(qualified),
        confident=confident,
        **labels,
    )


def vote(
    tenant,
    text: str,
    k: int = DEFAULT_K,
    *,
    exclude_ref: str | None = None,
    embedding: list[float] | None = None,
    embedder=None,
) -> Vote | None:
    """The similarity-weighted vote of the ``k`` nearest examples, or None when the history
    is too thin to trust: fewer than MIN_NEIGHBOURS examples at the model's MIN_SIMILARITY, or the first
    label present (category, else priority, else group) without MIN_AGREEMENT."""
    result = tally_for(
        tenant, text, k, exclude_ref=exclude_ref, embedding=embedding, embedder=embedder
    )
    return result if result.confident else None


def tally_for(
    tenant,
    text: str,
    k: int = DEFAULT_K,
    *,
    exclude_ref: str | None = None,
    embedding: list[float] | None = None,
    embedder=None,
) -> Vote:
    """``vote`` without the final verdict: the tally even when it is not confident."""
    embedder = embedder or get_embedder()
    neighbours = similar(tenant, text, k, exclude_ref, embedding=embedding, embedder=embedder)
    return tally(neighbours, threshold=min_similarity(embedder))
