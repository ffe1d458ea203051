"""The knowledge base in the Django admin: read mostly; writes go through knowledge.services."""

from django.contrib import admin, messages

from agentops.admin import UnscopedAdminMixin
from knowledge import services
from knowledge.models import Chunk, Document, IndexStatus, Source


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
