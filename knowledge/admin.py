"""The knowledge base in the Django admin: read mostly; writes go through knowledge.services."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from agentops.admin import UnscopedAdminMixin
from knowledge import drafts, services
from knowledge.models import (
    ArticleDraft,
    Chunk,
    Document,
    DraftStatus,
    IndexStatus,
    Source,
    TriageModel,
)


class DocumentInline(admin.TabularInline):
    model = Document
    extra = 0
    fields = ["version", "is_current", "content_type", "status", "chunks_total", "chunks_embedded"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        # The formset narrows this to the parent source, which the admin loaded unscoped.
        return Document.objects.unscoped("admin inline of one source").defer("content")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Source)
class SourceAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["title", "tenant", "kind", "origin", "is_active", "updated_at"]
    list_filter = ["tenant", "kind", "is_active"]
    search_fields = ["title", "origin", "external_key"]
    readonly_fields = ["tenant", "external_key", "provenance", "created_by", "created_at"]
    fields = ["tenant", "title", "kind", "origin", "external_key", "provenance", "is_active"]
    inlines = [DocumentInline]
    actions = ["reindex", "deactivate"]

    def has_add_permission(self, request):
        return False  # the console's "New source" validates and indexes

    def save_model(self, request, obj, form, change):
        # Title / kind / origin edits only; the text changes through the console (a version).
        super().save_model(request, obj, form, change)
        if "kind" in form.changed_data:
            Chunk.objects.for_tenant(obj.tenant).filter(source=obj).update(kind=obj.kind)

    @admin.action(description="Re-index the current version")
    def reindex(self, request, queryset):
        count = 0
        for source in queryset:
            document = (
                Document.objects.for_tenant(source.tenant)
                .filter(source=source, is_current=True)
                .exclude(status=IndexStatus.INDEXING)
                .first()
            )
            if document is not None:
                services.reindex_document(document=document, actor=request.user)
                count += 1
        messages.success(request, f"{count} document(s) queued for indexing.")

    @admin.action(description="Take out of retrieval (deactivate)")
    def deactivate(self, request, queryset):
        for source in queryset:
            services.source_deactivate(source=source, actor=request.user)
        messages.success(request, f"{queryset.count()} source(s) deactivated.")


@admin.register(Document)
class DocumentAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["source", "tenant", "version", "is_current", "status", "chunks_total"]
    list_filter = ["tenant", "status", "is_current", "content_type"]
    search_fields = ["source__title", "checksum"]
    list_select_related = ["tenant", "source"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Document._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Chunk)
class ChunkAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "tenant", "kind", "seq", "token_count", "embedding_model"]
    list_filter = ["tenant", "kind", "embedding_model"]
    search_fields = ["heading_path", "text"]
    list_select_related = ["tenant"]
    exclude = ["embedding"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Chunk._meta.fields if f.name not in ("embedding", "search_vector")]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ArticleDraft)
class ArticleDraftAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """The knowledge manager's drafts; publishing goes through knowledge.drafts (indexes it)."""

    list_display = ["title", "tenant", "ref", "kind", "status", "created_at"]
    list_filter = ["tenant", "status", "kind"]
    search_fields = ["title", "ref"]
    readonly_fields = [
        "tenant",
        "ref",
        "status",
        "provenance",
        "source",
        "reviewed_by",
        "reviewed_at",
    ]
    fields = ["tenant", "ref", "title", "kind", "content", "status", "provenance", "source",
              "reviewed_by", "reviewed_at"]  # fmt: skip
    actions = ["publish", "reject"]

    def has_add_permission(self, request):
        return False  # the knowledge manager drafts them

    @admin.action(description="Publish the selected drafts (indexes them)")
    def publish(self, request, queryset):
        self._decide(request, queryset, drafts.draft_publish, "published")

    @admin.action(description="Reject the selected drafts")
    def reject(self, request, queryset):
        self._decide(request, queryset, drafts.draft_reject, "rejected")

    def _decide(self, request, queryset, service, verb: str) -> None:
        done = 0
        for draft in queryset.filter(status=DraftStatus.DRAFT):
            try:
                service(draft=draft, actor=request.user)
                done += 1
            except ValidationError as exc:
                self.message_user(request, f"{draft.title}: {exc}", level=messages.ERROR)
        self.message_user(request, f"{done} draft(s) {verb}.")


@admin.register(TriageModel)
class TriageModelAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Each tenant's linear triage model: what it learnt from and how it measured (read-only;
    the knowledge worker retrains it)."""

    list_display = ["tenant", "label", "examples", "trained_at", "train_seconds"]
    list_filter = ["tenant", "label"]
    exclude = ["blob"]
    readonly_fields = ["tenant", "label", "classes", "examples", "embedding_model", "metrics",
                       "trained_at", "train_seconds"]  # fmt: skip

    def has_add_permission(self, request):
        return False
