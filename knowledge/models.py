"""Knowledge: sources, their versioned documents, chunks with embeddings, labelled past tickets.

Every row is tenant-owned; retrieval filters by tenant inside the SQL (``knowledge.retrieval``),
so one tenant's knowledge never reaches another tenant's agent.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models.expressions import RawSQL
from django.utils import timezone
from pgvector.django import HnswIndex, VectorField

from agentops.tenancy import TenantOwned

# all-MiniLM-L6-v2 and the hashing backend both give 384 dimensions. A backend with another
# dimension needs a migration of the vector columns (and a re-embed, which a model change
# triggers anyway).
EMBEDDING_DIMENSIONS = 384
CONTENT_MAX = 2_000_000  # characters of one document (about 2 MB of text)


class SourceKind(models.TextChoices):
    RUNBOOK = "runbook", "Runbook"
    GUIDE = "guide", "Troubleshooting guide"
    POLICY = "policy", "Compliance policy"
    HISTORICAL_TICKET = "historical_ticket", "Historical ticket"
    GOLDEN_PATH = "golden_path", "Golden path"


class ContentType(models.TextChoices):
    MARKDOWN = "markdown", "Markdown"
    TEXT = "text", "Plain text"
    HTML = "html", "HTML"


class IndexStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be indexed"
    INDEXING = "indexing", "Indexing"
    READY = "ready", "Indexed"
    FAILED = "failed", "Failed"


class Source(TenantOwned):
    """One piece of knowledge as people name it: a runbook, a guide, a policy, a past ticket,
    a golden path. Its text lives in versioned ``Document`` rows; the newest is current."""

    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.RUNBOOK)
    title = models.CharField(max_length=300)
    # Where it came from: a file path, a URL, "console", "ticket:REQ0000042" ...
    origin = models.CharField(max_length=500, blank=True)
    # Stable key for re-imports (the file's relative path, the ticket number): an import of the
    # same key updates this source instead of creating another.
    external_key = models.CharField(max_length=500, blank=True)
    # Golden paths: {"ticket": "REQ...", "run": 12, "approved_by": "riley", "csat": 5, ...}
    provenance = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_key"],
                condition=~models.Q(external_key=""),
                name="source_unique_external_key",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "kind", "-updated_at"], name="source_kind_idx")]
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"


class Document(TenantOwned):
    """One version of a source's text. An edit adds a version and re-indexes; content with an
    unchanged checksum is skipped."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="documents")
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    content_type = models.CharField(
        max_length=10, choices=ContentType.choices, default=ContentType.MARKDOWN
    )
    content = models.TextField(max_length=CONTENT_MAX)
    checksum = models.CharField(max_length=64)  # sha256 of the content, hex
    status = models.CharField(
        max_length=10, choices=IndexStatus.choices, default=IndexStatus.PENDING
    )
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_embedded = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    indexed_at = models.DateTimeField(null=True, blank=True)
    # Indexing: when the index task claimed it (a claim older than the lease is taken over: a
    # worker that died mid-document leaves it "indexing" otherwise). Pending again: when it was
    # re-queued (a new version counts from created_at); the beat enqueues a version pending
    # for longer than knowledge.tasks.PENDING_GRACE again (its task was lost).
    index_started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "version"], name="document_unique_version"),
            models.UniqueConstraint(
                fields=["source"],
                condition=models.Q(is_current=True),
                name="document_one_current",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="document_status_idx")]
        ordering = ["source", "-version"]

    def __str__(self) -> str:
        return f"{self.source.title} v{self.version}"

    @property
    def progress_pct(self) -> int:
        if not self.chunks_total:
            return 100 if self.status == IndexStatus.READY else 0
        return min(100, round(100 * self.chunks_embedded / self.chunks_total))


class Chunk(TenantOwned):
    """A passage of a current document, cut along headings, with its full-text vector and its
    embedding. ``source`` and ``kind`` are copied from the document so retrieval filters and
    boosts without joins."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="chunks")
    kind = models.CharField(max_length=20, choices=SourceKind.choices)
    seq = models.PositiveIntegerField()
    heading_path = models.CharField(max_length=1000, blank=True)  # "VPN > Timeouts > Fix"
    anchor = models.CharField(max_length=200, blank=True)  # slug of the last heading, for links
    text = models.TextField()
    token_count = models.PositiveIntegerField(default=0)
    search_vector = models.GeneratedField(
        expression=RawSQL(
            "setweight(to_tsvector('english'::regconfig, heading_path), 'A') || "
            "setweight(to_tsvector('english'::regconfig, text), 'B')",
            [],
        ),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "seq"], name="chunk_unique_seq"),
        ]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            GinIndex(fields=["search_vector"], name="chunk_search_idx"),
            models.Index(fields=["tenant", "kind"], name="chunk_tenant_kind_idx"),
        ]
        ordering = ["document", "seq"]

    def __str__(self) -> str:
        return f"{self.heading_path or self.source_id}#{self.seq}"


class LabelledExample(TenantOwned):
    """A past ticket's text and the labels people gave it, for nearest-neighbour triage.

    Filled automatically when a ticket is resolved, and by ``manage.py import_tickets``.
    Labels are free text: each tenant's own taxonomy (category, priority, assignment group).
    """

    ref = models.CharField(max_length=200)  # ticket number or the imported row's id
    text = models.TextField()
    category = models.CharField(max_length=100, blank=True)
    priority = models.CharField(max_length=50, blank=True)
    assignment_group = models.CharField(max_length=100, blank=True)
    # How it was resolved (tool names in order), for playbook suggestions.
    resolution_path = models.CharField(max_length=500, blank=True)
    resolved_ok = models.BooleanField(default=True)
    origin = models.CharField(max_length=20, default="ticket")  # ticket / import
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "ref"], name="example_unique_ref"),
        ]
        indexes = [
            HnswIndex(
                name="example_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["tenant", "resolution_path"], name="example_path_idx"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.ref}: {self.text[:40]}"


class TriageModel(TenantOwned):
    """A tenant's linear triage model for one label (``knowledge.triage_model``): word n-grams
    plus the examples' embeddings, trained on the tenant's labelled history by the knowledge
    worker. ``blob`` is the fitted scikit-learn pipeline, pickled by our own worker (never
    uploaded: it is read back only from this table). One row per tenant and label; a retrain
    replaces it."""

    label = models.CharField(max_length=40, default="category")
    blob = models.BinaryField()
    classes = models.JSONField(default=list, blank=True)
    examples = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=200, blank=True)
    # Held-out figures from the training run: {"accuracy": .., "macro_f1": .., "held_out": n}.
    metrics = models.JSONField(default=dict, blank=True)
    trained_at = models.DateTimeField(default=timezone.now)
    train_seconds = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "label"], name="triagemodel_unique_label"),
        ]

    def __str__(self) -> str:
        return f"{self.label} model ({self.examples} examples)"


class DraftStatus(models.TextChoices):
    DRAFT = "draft", "Waiting for review"
    PUBLISHED = "published", "Published"
    REJECTED = "rejected", "Rejected"


class ArticleDraft(TenantOwned):
    """An article the knowledge manager drafted from a resolution that retrieval could not
    help with (an escalated or reopened ticket): a person reviews, edits and publishes it
    (``knowledge.drafts``); publishing makes it a source and indexes it."""

    ref = models.CharField(max_length=200)  # the ticket it was drafted from
    title = models.CharField(max_length=300)
    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.GUIDE)
    content = models.TextField(max_length=CONTENT_MAX)
    status = models.CharField(max_length=10, choices=DraftStatus.choices, default=DraftStatus.DRAFT)
    # {"ticket": "REQ…", "run": "run-…", "reason": "escalated; no article above 0.45", ...}
    provenance = models.JSONField(default=dict, blank=True)
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "ref"], name="articledraft_unique_ref"),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="draft_status_idx")
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Draft: {self.title}"
