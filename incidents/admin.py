from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from agentops.admin import UnscopedAdminMixin
from incidents import services
from incidents.models import Comment, Ticket


class CommentInline(admin.TabularInline):
    model = Comment
    extra = 0
    fields = ["created_at", "author_label", "is_internal", "body"]
    readonly_fields = fields
    can_delete = False

    def get_queryset(self, request):
        # The formset narrows this to the parent ticket, which the admin loaded unscoped.
        return Comment.objects.unscoped("admin inline of one ticket")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Ticket)
class TicketAdmin(UnscopedAdminMixin, GuardedModelAdmin):
    """Tickets in the admin. 'Object permissions' (guardian) shares one ticket with a user."""

    list_display = [
        "number",
        "title",
        "tenant",
        "kind",
        "status",
        "priority",
        "category",
        "assignee",
        "sla_due",
        "created_at",
    ]
    list_filter = ["tenant", "kind", "status", "priority", "category", "source", "sla_breached"]
    search_fields = ["number", "title", "requester_email"]
    list_select_related = ["tenant", "assignee"]
    date_hierarchy = "created_at"
    raw_id_fields = ["requester", "assignee"]
    readonly_fields = [
        "tenant",
        "number",
        "kind",
        "created_at",
        "updated_at",
        "resolved_at",
        "closed_at",
        "sla_due",
        "sla_breached",
        "source",
        "status",
    ]
    fields = [
        "tenant",
        "number",
        "kind",
        "status",
        "title",
        "description",
        "requester_email",
        "requester",
        "category",
        "priority",
        "severity",
        "affected_services",
        "detected_by",
        "source",
        "assignee",
        "sla_due",
        "sla_breached",
        "resolution_notes",
        "created_at",
        "updated_at",
        "resolved_at",
        "closed_at",
    ]
    inlines = [CommentInline]

    def has_add_permission(self, request):
        return False  # tickets are opened in the console, the portal or the API (numbering, SLA, audit)

    def save_model(self, request, obj, form, change):
        # Through the services, so the change is validated and audited like any other.
        changed = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in services.UPDATABLE_FIELDS
        }
        ticket = Ticket.objects.for_tenant(obj.tenant).get(pk=obj.pk)
        if changed:
            ticket = services.ticket_update(ticket=ticket, actor=request.user, **changed)
        if "assignee" in form.changed_data:
            services.ticket_assign(
                ticket=ticket, actor=request.user, assignee=form.cleaned_data["assignee"]
            )


@admin.register(Comment)
class CommentAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["ticket", "author_label", "is_internal", "created_at"]
    list_filter = ["tenant", "is_internal"]
    search_fields = ["body", "ticket__number", "author_label"]
    list_select_related = ["tenant", "ticket"]
    readonly_fields = [
        "tenant",
        "ticket",
        "author",
        "author_label",
        "body",
        "is_internal",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False
