from django import forms
from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from agentops.admin import UnscopedAdminMixin
from incidents import services
from incidents.models import Comment, OnCallShift, Page, Queue, Ticket


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


class TicketAdminForm(forms.ModelForm):
    class Meta:
        model = Ticket
        fields = ["title", "description", "requester_email", "requester", "category", "priority"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "category" in self.fields and self.instance.tenant_id:
            from incidents.taxonomy import choices_for

            current = self.instance.category
            choices = choices_for(self.instance.tenant_id, blank="—")
            if current and current not in dict(choices):
                choices.append((current, current))  # a retired category stays on its ticket
            self.fields["category"] = forms.ChoiceField(choices=choices, required=False)

    def clean_queue(self):
        queue = self.cleaned_data.get("queue")
        if queue is not None and queue.tenant_id != self.instance.tenant_id:
            raise forms.ValidationError("That queue belongs to another tenant.")
        return queue


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
        "queue",
        "assignee",
        "sla_due",
        "created_at",
    ]
    list_filter = ["tenant", "kind", "status", "priority", "category", "source", "sla_breached"]
    search_fields = ["number", "title", "requester_email"]
    list_select_related = ["tenant", "assignee", "queue"]
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
        "queue",
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
    form = TicketAdminForm  # the admin's own fields list decides what the form shows

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "queue":
            # A select of every tenant's queues (a raw-id widget would look its label up
            # unscoped); the form refuses another tenant's.
            kwargs["queryset"] = Queue.objects.unscoped("django admin").select_related("tenant")
            field = super().formfield_for_foreignkey(db_field, request, **kwargs)
            field.label_from_instance = lambda queue: f"{queue.name} ({queue.tenant.slug})"
            return field
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

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
            ticket = services.ticket_assign(
                ticket=ticket, actor=request.user, assignee=form.cleaned_data["assignee"]
            )
        if "queue" in form.changed_data:
            services.ticket_set_queue(
                ticket=ticket, actor=request.user, queue=form.cleaned_data["queue"]
            )


class QueueAdminForm(forms.ModelForm):
    class Meta:
        model = Queue
        fields = ["tenant", "name", "slug", "description", "categories"]

    def _get_validation_exclusions(self):
        # The slug's uniqueness per tenant is checked by queue_create (a scoped query); the
        # model's constraint check would query the tenant-owned table unscoped. The form
        # field still validates the slug's shape.
        return {*super()._get_validation_exclusions(), "slug"}


@admin.register(Queue)
class QueueAdmin(UnscopedAdminMixin, GuardedModelAdmin):
    """Queues in the admin. 'Object permissions' (guardian) grants a user or group a queue:
    view_queue to see its tickets, work_queue (or change_queue) to work them. Every grant is
    audited (incidents.signals)."""

    form = QueueAdminForm
    list_display = ["name", "slug", "tenant", "categories", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "slug"]
    fields = ["tenant", "name", "slug", "description", "categories", "created_at"]
    readonly_fields = ["created_at"]

    def get_readonly_fields(self, request, obj=None):
        # The tenant and slug are fixed once the queue exists (URLs and grants refer to them).
        return (
            [*self.readonly_fields, "tenant", "slug"] if obj is not None else self.readonly_fields
        )

    def save_model(self, request, obj, form, change):
        # Through the services, so the change is validated and audited like any other.
        if not change:
            created = services.queue_create(
                tenant=obj.tenant,
                actor=request.user,
                name=obj.name,
                slug=obj.slug,
                description=obj.description,
                categories=obj.categories,
            )
            obj.pk = created.pk
            return
        fields = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in ("name", "description", "categories")
        }
        if fields:
            queue = Queue.objects.for_tenant(obj.tenant).get(pk=obj.pk)
            services.queue_update(queue=queue, actor=request.user, **fields)


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


# The analytics rollups' read-only admin lives in their package.
from incidents.analytics import admin as analytics_admin  # noqa: E402, F401
from incidents.intake import admin as intake_admin  # noqa: E402,F401  (webhook endpoints, deliveries)


@admin.register(OnCallShift)
class OnCallShiftAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """The on-call rota: admins add and edit shifts (who is on call from when until when)."""

    list_display = ["user", "tenant", "starts_at", "ends_at", "note"]
    list_filter = ["tenant"]
    autocomplete_fields = ["user"]
    date_hierarchy = "starts_at"


@admin.register(Page)
class PageAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "tenant", "ticket", "user", "acknowledged_at"]
    list_filter = ["tenant"]
    readonly_fields = ["tenant", "ticket", "user", "reason", "created_at", "acknowledged_at",
                       "acknowledged_by"]  # fmt: skip

    def has_add_permission(self, request):
        return False


# Issue 13: the non-IT teams requests are redirected to, and the agent's replies (read-only).
# Each tenant's ticket categories (incidents.taxonomy).
from incidents import taxonomy_admin  # noqa: E402,F401
from incidents.reply_admin import AgentReplyAdmin, NonItTeamAdmin  # noqa: E402, F401

# Contract SLAs: business calendars per tenant (and per queue); each ticket's clock, read-only.
from incidents.sla_models import BusinessCalendar, TicketSLA  # noqa: E402


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "tenant", "queue", "timezone", "holiday_country"]
    list_filter = ["tenant"]
    list_select_related = ["tenant", "queue"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "queue":  # any tenant's queue; the model's clean() checks the match
            kwargs["queryset"] = Queue.objects.unscoped("django admin").select_related("tenant")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(TicketSLA)
class TicketSLAAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["ticket", "tenant", "paused", "due_at", "warned_at", "breached_at"]
    list_filter = ["tenant", "paused"]
    list_select_related = ["tenant", "ticket"]
    readonly_fields = [f.name for f in TicketSLA._meta.fields]

    def has_add_permission(self, request):
        return False
