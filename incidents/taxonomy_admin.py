"""The tenant's ticket taxonomy in the Django admin: categories and subcategories.

Admins work across tenants (``UnscopedAdminMixin``); a category's parent must be of the same
tenant, and its value (what tickets store) defaults to the slug of its name. A value in use
is not renamed here: tickets, queues and the labelled history keep it (retire it instead).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin

from agentops.admin import UnscopedAdminMixin
from incidents import taxonomy
from incidents.models import Ticket, TicketCategory


class TicketCategoryForm(forms.ModelForm):
    class Meta:
        model = TicketCategory
        fields = ["tenant", "name", "value", "parent", "description", "position", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["value"].required = False
        self.fields[
            "value"
        ].help_text = "What tickets and imported history store; blank: the slug of the name."
        if "parent" in self.fields:
            self.fields["parent"].queryset = TicketCategory.objects.unscoped(
                "admin: parents are checked against the tenant in clean()"
            ).select_related("tenant")

    def _get_validation_exclusions(self):
        # The (tenant, value) constraint is checked in clean() through the tenant's scoped
        # manager; Django's own check would query the table unscoped (which the manager refuses).
        exclusions = super()._get_validation_exclusions()
        exclusions.add("tenant")
        return exclusions

    def clean(self):
        data = super().clean()
        tenant, parent = data.get("tenant") or self.instance.tenant_id, data.get("parent")
        tenant_id = getattr(tenant, "pk", tenant)
        if parent is not None and parent.tenant_id != tenant_id:
            self.add_error("parent", "That category belongs to another tenant.")
        if parent is not None and self.instance.pk and parent.pk == self.instance.pk:
            self.add_error("parent", "A category cannot be its own parent.")
        value = (data.get("value") or "").strip() or taxonomy.suggested_value(
            data.get("name") or ""
        )
        if not value:
            self.add_error("value", "Give a value or a name made of letters or digits.")
        data["value"] = value
        self.instance.value = value
        if self.instance.pk and "value" in self.changed_data:
            old = TicketCategory.objects.unscoped("admin").get(pk=self.instance.pk).value
            if Ticket.objects.for_tenant(tenant_id).filter(category=old).exists():
                self.add_error("value", f"Tickets have {old!r}: retire it and add another.")
        if value and tenant_id:
            clash = TicketCategory.objects.for_tenant(tenant_id).filter(value=value)
            if clash.exclude(pk=self.instance.pk).exists():
                self.add_error("value", f"This tenant already has a category {value!r}.")
        return data


@admin.register(TicketCategory)
class TicketCategoryAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Each tenant's categories: add, rename, nest under a parent, order, retire."""

    form = TicketCategoryForm
    list_display = ["name", "value", "parent", "tenant", "position", "is_active"]
    list_filter = ["tenant", "is_active"]
    list_editable = ["position", "is_active"]
    search_fields = ["name", "value"]
    list_select_related = ["tenant", "parent"]
    actions = ["retire"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant"] if obj is not None else []

    @admin.action(description="Retire the selected categories (tickets keep them)")
    def retire(self, request, queryset):
        updated = queryset.update(is_active=False)
        self.message_user(request, f"{updated} categor{'y' if updated == 1 else 'ies'} retired.")
