"""The rollups in the Django admin: read-only (``manage.py rebuild_analytics`` writes them)."""

from __future__ import annotations

from django.contrib import admin

from agentops.admin import UnscopedAdminMixin
from incidents.analytics.models import DailyAgentStat, DailyApprovalStat, DailyTicketStat


class ReadOnlyRollupAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_filter = ["tenant"]
    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DailyTicketStat)
class DailyTicketStatAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "tenant", "queue_ref", "opened", "resolved", "sla_breached", "backlog"]


@admin.register(DailyAgentStat)
class DailyAgentStatAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "tenant", "agent_name", "runs", "succeeded", "tokens", "cost_usd"]
    search_fields = ["agent_name"]


@admin.register(DailyApprovalStat)
class DailyApprovalStatAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "tenant", "decided", "within_sla", "expired"]
