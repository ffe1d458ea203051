from django.contrib import admin

from agentops.admin import UnscopedAdminMixin
from approvals.models import ApprovalRequest


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Approval requests are decided in the console (four-eyes, race-free); read-only here."""

    list_display = [
        "created_at",
        "tenant",
        "action",
        "subject_repr",
        "priority",
        "status",
        "requested_by_label",
        "decided_by",
        "sla_due",
    ]
    list_filter = ["tenant", "status", "priority", "action"]
    search_fields = ["action", "subject_repr", "subject_id", "reason", "comment"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ApprovalRequest._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
