"""Admin of the service-desk agent's replies (issue 13): the tenant's directory of non-IT teams
(editable: where a redirect points) and the replies themselves (read-only)."""

from __future__ import annotations

from django.contrib import admin

from agentops.admin import UnscopedAdminMixin
from incidents.models import AgentReply, NonItTeam


@admin.register(NonItTeam)
class NonItTeamAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Teams outside IT (facilities, payroll/HR, finance …). With none, the defaults apply."""

    list_display = ["name", "tenant", "contact", "is_active"]
    list_filter = ["tenant", "is_active"]
    search_fields = ["name", "contact"]


@admin.register(AgentReply)
class AgentReplyAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["ticket", "tenant", "kind", "state", "team", "created_at", "due_at"]
    list_filter = ["tenant", "kind", "state"]
    search_fields = ["ticket__number", "body", "team"]
    list_select_related = ["tenant", "ticket"]
    readonly_fields = [
        "tenant",
        "ticket",
        "kind",
        "state",
        "body",
        "citations",
        "team",
        "incident",
        "run_id",
        "due_at",
        "answered_at",
        "answered_by",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False
