"""Hybrid retrieval: pgvector cosine (HNSW) + Postgres full text, fused, reranked, cited.

``search(tenant, query)`` runs, all inside one transaction (for the ``SET LOCAL``s):

1. The query's lexemes (``to_tsvector('english', q)``). None — only stop-words or symbols —
   means an empty result, not an error.
2. Vector arm: the nearest chunks by cosine distance over the HNSW index, with
   ``hnsw.ef_search`` raised and ``hnsw.iterative_scan`` on, so the tenant filter inside the
   SQL still yields enough rows (without it HNSW returns ef_search rows and then filters).
3. Text arm: chunks with every word (``websearch_to_tsquery``), ranked by ``ts_rank_cd``; when
   those are too few (ticket text never matches every word), chunks with ANY of the query's
   lexemes fill up the list (cover density ranks those with more of the words first). The rows
   ranked are capped, so a very common word costs a bounded amount.
4. Reciprocal rank fusion (k=60) of the two lists.
5. Rerank of the fused candidates: exact cosine, the text rank, how many query words the title
   and heading path contain, and the kind's standing: curated articles and golden paths
   (resolutions people vouched for) above raw past tickets. Then one passage per document,
   its best: ten passages of one long ticket are one answer, not ten.
6. Snippets from ``ts_headline`` with control-character markers; everything is escaped and
   only then the markers become ``<mark>``: retrieved text never becomes markup.

Every SQL statement filters by tenant itself; no row of another tenant can come back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from agentops.postgres.statements import Statements
from agentops.redaction import redact

log = logging.getLogger(__name__)

RRF_K = 60
# Matching rows the text arm ranks, at most: a word in half the knowledge base costs a bounded
# time (those rows are ranked among the first 1,000 found; rarer words are ranked exactly).
TEXT_RANK_CAP = 1000
# Rerank weights (see ``_rerank``).
W_VECTOR = 0.55
W_TEXT = 0.20
W_HEADING = 0.10
W_FUSED = 0.15
GOLDEN_PATH_BOOST = 0.08
# A raw past ticket is one requester's words and one resolution, not an article someone wrote
# to be read: it ranks under a curated article or a golden path of about the same relevance.
# (0.12 of a score whose vector part moves 0.55 per unit of cosine: a past ticket must be
# about 0.2 more similar in meaning than an article to come before it.)
HISTORICAL_TICKET_PENALTY = 0.12
# How close in meaning a curated passage with none of the query's words must be to count as
# matching it (``curated_first``); MiniLM puts unrelated IT texts at 0.04-0.25.
CURATED_MIN_COSINE = 0.35
KIND_ADJUST = {"golden_path": GOLDEN_PATH_BOOST, "historical_ticket": -HISTORICAL_TICKET_PENALTY}
_START, _STOP = "\x02", "\x03"  # ts_headline markers: never in stored text (stripped in SQL)
HEADLINE_OPTIONS = (
    f"StartSel={_START}, StopSel={_STOP}, MaxWords=45, MinWords=18, "
    "MaxFragments=2, FragmentDelimiter=' … '"
)


@dataclass(frozen=True)
class Scores:
    vector: float  # exact cosine similarity of query and chunk (-1..1)
    text: float  # ts_rank_cd, normalised to 0..1 (0: no query word in the chunk)
    fused: float  # reciprocal rank fusion of the two arms
    final: float  # after the rerank; results are ordered by this


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and what it takes to cite it."""

    chunk_id: int
    source_id: int
    source_title: str
    kind: str
    heading_path: str
    anchor: str
    url: str
    snippet: SafeString
    text: str
    scores: Scores
    document_version: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def kind_label(self) -> str:
        """The kind in words ("Runbook", "Historical ticket"), for people."""
        from knowledge.models import SourceKind

        try:
            return str(SourceKind(self.kind).label)
        except ValueError:
            return self.kind.replace("_", " ").capitalize()

    def citation(self) -> dict:
        """What a run step records (JSON): enough to show a link without loading anything."""
        return {
            "source_id": self.source_id,
            "chunk_id": self.chunk_id,
            "title": self.source_title,
            "heading": self.heading_path,
            "kind": self.kind,
            "url": self.url,
            "score": round(self.scores.final, 4),
        }


# --------------------------------------------------------------------------- helpers


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in vector) + "]"


def _or_query(lexemes: Iterable[str]) -> str:
    """A tsquery (for the 'simple' config: the lexemes are stemmed already) matching any."""
    quoted = ("'" + lx.replace("\\", "\\\\").replace("'", "''") + "'" for lx in lexemes)
    return " | ".join(quoted)


def _filters(kinds, exclude_source_ids, alias: str = "") -> tuple[str, list]:
    prefix = f"{alias}." if alias else ""
    sql, params = "", []
    if kinds:
        sql += f" AND {prefix}kind = ANY(%s)"
        params.append(list(kinds))
    if exclude_source_ids:
        sql += f" AND NOT ({prefix}source_id = ANY(%s))"
        params.append([int(s) for s in exclude_source_ids])
    return sql, params


def query_lexemes(query: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", [query])
        return list(cursor.fetchone()[0] or [])


# --------------------------------------------------------------------------- arms


def vector_arm(
    cursor, tenant_id: int, vector: str, n: int, kinds=None, exclude=(), model: str | None = None
) -> list:
    """(chunk id, cosine distance), nearest first, over the HNSW index. Call inside a
    transaction: the ``SET LOCAL``s hold until it ends.

    ``model``: only chunks embedded by this model (the query's). Vectors of another model live
    in another space; while they are re-embedded (after the model changed) those chunks are
    found by their words only."""
    ef_search = max(n, getattr(settings, "KNOWLEDGE_HNSW_EF_SEARCH", 100))
    extra, params = _filters(kinds, exclude)
    if model is not None:
        extra, params = f"{extra} AND embedding_model = %s", [*params, model]
    # SET LOCAL (both hold until the transaction ends), then the scan: one round trip, two
    # statements (one pipeline, on ``cursor``'s connection). ``extra`` is one of _filters'
    # fixed fragments; every value is a parameter.
    rows = Statements(
        (
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            [str(int(ef_search))],
        ),
        (
            "SELECT id, embedding <=> %s::vector AS distance FROM knowledge_chunk "  # noqa: S608
            f"WHERE tenant_id = %s AND embedding IS NOT NULL{extra} "
            "ORDER BY embedding <=> %s::vector LIMIT %s",
            [vector, tenant_id, *params, vector, n],
        ),
    ).fetchall(using=cursor.db.alias)
    # relaxed_order may return a row slightly out of order: sort by the exact distance.
    return sorted(rows, key=lambda row: row[1])


# The two tsqueries of the text arm (fixed SQL; the query text is a parameter).
_ALL_WORDS = "websearch_to_tsquery('english', %s)"  # every word, "phrases", -exclusions
_ANY_WORD = "to_tsquery('simple', %s)"  # any lexeme (stemmed already, so 'simple')


def _text_sql(tsquery: str, extra: str) -> str:
    # As in vector_arm: fixed fragments, every value a parameter.
    return (
        f"SELECT m.id, ts_rank_cd(m.search_vector, q.q, 32) AS rank FROM (SELECT {tsquery} AS q) q, "  # noqa: S608
        "LATERAL (SELECT id, search_vector FROM knowledge_chunk "
        f"  WHERE tenant_id = %s AND search_vector @@ q.q{extra} LIMIT %s"
        ") m ORDER BY rank DESC, m.id LIMIT %s"
    )


def _text_query(cursor, tsquery: str, value: str, tenant_id: int, n: int, kinds, exclude):
    extra, params = _filters(kinds, exclude)
    cursor.execute(_text_sql(tsquery, extra), [value, tenant_id, *params, TEXT_RANK_CAP, n])
    return cursor.fetchall()


def text_arm(
    cursor,
    tenant_id: int,
    query: str,
    lexemes: Sequence[str],
    n: int,
    kinds=None,
    exclude=(),
    *,
    fill_below: int | None = None,
) -> list:
    """(chunk id, ts_rank_cd normalised to 0..1), best first.

    Chunks with every word of the query come first (``websearch_to_tsquery``: few rows, so
    fast). When they are fewer than ``fill_below`` (default ``n``; a long ticket text never
    matches every word), chunks with any of the words fill the list up to ``n``. A query with
    "phrases" or -exclusions keeps to its strict meaning.
    """
    rows = _text_query(cursor, _ALL_WORDS, query, tenant_id, n, kinds, exclude)
    return _fill(cursor, rows, tenant_id, query, lexemes, n, kinds, exclude, fill_below)


def text_arm_and_lexemes(
    cursor, tenant_id: int, query: str, n: int, kinds=None, exclude=(), *, fill_below=None
) -> tuple[list, list[str]]:
    """``text_arm``, with the query's lexemes (``query_lexemes``) read in the same round trip
    as its first query; returns (rows, lexemes)."""
    extra, params = _filters(kinds, exclude)
    words, found = Statements(
        ("SELECT tsvector_to_array(to_tsvector('english', %s::text))", [query]),
        (_text_sql(_ALL_WORDS, extra), [query, tenant_id, *params, TEXT_RANK_CAP, n]),
    ).execute(using=cursor.db.alias)
    lexemes = list(words.fetchone()[0] or [])
    rows = found.fetchall()
    return _fill(cursor, rows, tenant_id, query, lexemes, n, kinds, exclude, fill_below), lexemes


def _fill(cursor, rows, tenant_id, query, lexemes, n, kinds, exclude, fill_below) -> list:
    """Chunks with any of the words after those with all of them, up to ``n``."""
    strict = '"' in query or query.startswith("-") or " -" in query
    if len(rows) >= (fill_below or n) or len(lexemes) < 2 or strict:
        return rows
    seen = {row[0] for row in rows}
    more = _text_query(cursor, _ANY_WORD, _or_query(lexemes), tenant_id, n, kinds, exclude)
    return rows + [row for row in more if row[0] not in seen][: n - len(rows)]


def fuse(*ranked_lists: Sequence[tuple[int, float]]) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds 1 / (RRF_K + rank) to its ids."""
    fused: dict[int, float] = {}
    for ranked in ranked_lists:
        for rank, (chunk_id, _score) in enumerate(ranked, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return fused


# --------------------------------------------------------------------------- search


def search(
    tenant,
    query: str,
    *,
    k: int = 8,
    kinds: Iterable[str] | None = None,
    exclude_source_ids: Iterable[int] = (),
    query_vector: Sequence[float] | None = None,
    embedding_model: str | None = None,
) -> list[Hit]:
    """The ``k`` best passages of ``tenant``'s knowledge for ``query``, best first.

    The vector arm compares the query's vector with chunks of the same embedding model only:
    the configured embedder's, or ``embedding_model`` for a given ``query_vector``."""
    from knowledge.embeddings import get_embedder

    query = " ".join((query or "").split())[:2000]
    if not query or k <= 0 or tenant is None:
        return []
    tenant_id = getattr(tenant, "pk", tenant)
    kinds = [str(x) for x in kinds] if kinds else None
    exclude = [int(s) for s in exclude_source_ids]
    pool = max(40, 4 * k)
    # No savepoint inside a caller's transaction: the SET LOCALs may outlive this search
    # there (they only widen later HNSW scans of that transaction), two round trips fewer.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        by_text, lexemes = text_arm_and_lexemes(
            cursor, tenant_id, query, pool, kinds, exclude, fill_below=k
        )
        if not lexemes:
            return []  # only stop-words or symbols
        if query_vector is None:
            embedder = get_embedder()
            query_vector, embedding_model = embedder.embed_one(query), embedder.name
        vector = vector_literal(query_vector)
        by_vector = vector_arm(cursor, tenant_id, vector, pool, kinds, exclude, embedding_model)
    fused = fuse(by_vector, by_text)
    if not fused:
        return []
    text_rank = dict(by_text)
    candidates = sorted(fused, key=fused.get, reverse=True)[: max(3 * k, 30)]
    rows = _candidate_rows(tenant_id, candidates, vector)
    ranked = curated_first(best_per_source(_rerank(rows, fused, text_rank, set(lexemes))))[:k]
    snippets = _snippets(tenant_id, [r["id"] for r, _ in ranked], _or_query(lexemes))
    return [_hit(row, final, fused, text_rank, snippets) for row, final in ranked]


def _candidate_rows(tenant_id: int, ids: list[int], vector: str) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.id, c.source_id, s.title, c.kind, c.heading_path, c.anchor, c.text, "
            "  1 - (c.embedding <=> %s::vector) AS cosine, d.version, "
            "  tsvector_to_array(to_tsvector('english', s.title || ' ' || c.heading_path)) "
            "FROM knowledge_chunk c "
            "JOIN knowledge_source s ON s.id = c.source_id AND s.tenant_id = c.tenant_id "
            "JOIN knowledge_document d ON d.id = c.document_id AND d.tenant_id = c.tenant_id "
            "WHERE c.tenant_id = %s AND c.id = ANY(%s) AND s.is_active",
            [vector, tenant_id, ids],
        )
        names = ["id", "source_id", "title", "kind", "heading_path", "anchor", "text"]
        names += ["cosine", "version", "heading_lexemes"]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _rerank(rows, fused, text_rank, lexemes: set[str]) -> list[tuple[dict, float]]:
    top_fused = max(fused.values())
    scored = []
    for row in rows:
        cosine = float(row["cosine"]) if row["cosine"] is not None else 0.0
        heading = len(lexemes & set(row["heading_lexemes"] or ())) / len(lexemes)
        final = (
            W_VECTOR * cosine
            + W_TEXT * float(text_rank.get(row["id"], 0.0))
            + W_HEADING * heading
            + W_FUSED * fused[row["id"]] / top_fused
            + KIND_ADJUST.get(row["kind"], 0.0)
        )
        row["cosine"] = cosine
        row["text_rank"] = float(text_rank.get(row["id"], 0.0))
        scored.append((row, final))
    scored.sort(key=lambda pair: (-pair[1], pair[0]["id"]))
    return scored


def curated_first(ranked: list[tuple[dict, float]]) -> list[tuple[dict, float]]:
    """Curated articles and golden paths that match the query (a query word in the passage,
    or close in meaning) before raw past tickets; the rest keep their rank order. A past
    ticket still answers when nothing curated does, and an article that merely shares the
    tenant's vocabulary does not jump ahead of it."""

    def tier(pair: tuple[dict, float]) -> int:
        row = pair[0]
        if row["kind"] == "historical_ticket":
            return 1
        matches = row.get("text_rank", 0.0) > 0 or row["cosine"] >= CURATED_MIN_COSINE
        return 0 if matches else 1

    return sorted(ranked, key=tier)  # stable: rank order within each tier


def best_per_source(ranked: list[tuple[dict, float]]) -> list[tuple[dict, float]]:
    """The best-ranked passage of each source, in rank order (the input is ranked)."""
    seen: set[int] = set()
    best = []
    for row, final in ranked:
        if row["source_id"] not in seen:
            seen.add(row["source_id"])
            best.append((row, final))
    return best


def _snippets(tenant_id: int, ids: list[int], or_query: str) -> dict[int, str]:
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, ts_headline('english', translate(text, chr(2) || chr(3), ''), "
            "  to_tsquery('simple', %s), %s) "
            "FROM knowledge_chunk WHERE tenant_id = %s AND id = ANY(%s)",
            [or_query, HEADLINE_OPTIONS, tenant_id, ids],
        )
        return dict(cursor.fetchall())


def highlight(headline: str) -> SafeString:
    """Escape everything, then turn only our own markers into <mark>."""
    # Escape first, then substitute: the markers are control characters, which escape() keeps.
    escaped = str(escape(headline))
    return mark_safe(  # noqa: S308 - every character of the text was escaped above
        escaped.replace(_START, "<mark>").replace(_STOP, "</mark>")
    )


def _redacted_snippet(headline: str) -> SafeString:
    """The highlighted snippet, redacted. Redaction reads the text without the highlight
    markers (a marked "password" must still be seen as the label it is); a snippet that held
    a secret loses its highlighting rather than keep the secret."""
    plain = headline.replace(_START, "").replace(_STOP, "")
    redacted = redact(plain)
    return highlight(redacted.text if redacted.changed else headline)


def _hit(row: dict, final: float, fused, text_rank, snippets) -> Hit:
    url = reverse("knowledge:source-detail", args=[row["source_id"]])
    if row["anchor"]:
        url += f"#{row['anchor']}"
    return Hit(
        chunk_id=row["id"],
        source_id=row["source_id"],
        source_title=row["title"],
        kind=row["kind"],
        heading_path=row["heading_path"],
        anchor=row["anchor"],
        url=url,
        # A passage leaves the knowledge base redacted (agentops.redaction): a password pasted
        # into a runbook reaches neither the model's prompt nor a search result.
        snippet=_redacted_snippet(snippets.get(row["id"], row["text"][:300])),
        text=redact(row["text"]).text,
        scores=Scores(
            vector=row["cosine"],
            text=float(text_rank.get(row["id"], 0.0)),
            fused=fused[row["id"]],
            final=final,
        ),
        document_version=row["version"],
    )


def exact_vector_search(cursor, tenant_id: int, vector: str, n: int) -> list[int]:
    """Ground truth for the benchmark: a sequential scan of exact cosine, same tenant filter."""
    cursor.execute("SET LOCAL enable_indexscan = off")
    cursor.execute("SET LOCAL enable_bitmapscan = off")
    cursor.execute(
        "SELECT id FROM knowledge_chunk WHERE tenant_id = %s AND embedding IS NOT NULL "
        "ORDER BY embedding <=> %s::vector LIMIT %s",
        [tenant_id, vector, n],
    )
    return [row[0] for row in cursor.fetchall()]
