"""Admin for the sandbox state. Users and devices are editable (it stands in for an external
system an operator may change by hand); logs, metrics and operations are read-only records."""

from django.contrib import admin

from agentops.admin import UnscopedAdminMixin
from agents.connectors.sandbox.models import (
    Deploy,
    Device,
    DirectoryUser,
    LogLine,
    MetricPoint,
    MonitoredService,
    Operation,
    Span,
)


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DirectoryUser)
class DirectoryUserAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "email",
        "display_name",
        "tenant",
        "department",
        "locked",
        "failed_login_attempts",
        "mfa_enabled",
        "must_change_password",
        "is_admin",
        "disabled",
    ]
    list_filter = ["tenant", "locked", "mfa_enabled", "is_admin", "disabled", "department"]
    search_fields = ["email", "display_name", "department"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Device)
class DeviceAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "asset_tag",
        "hostname",
        "owner_email",
        "tenant",
        "vpn_profile_version",
        "vpn_status",
        "adapter_state",
        "last_diagnostic_at",
    ]
    list_filter = ["tenant", "vpn_status", "adapter_state", "os"]
    search_fields = ["asset_tag", "hostname", "owner_email", "model"]
    readonly_fields = ["last_diagnostic", "last_diagnostic_at", "created_at", "updated_at"]


@admin.register(LogLine)
class LogLineAdmin(ReadOnlyAdminMixin, UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "tenant", "service", "level", "message", "trace_id"]
    list_filter = ["tenant", "service", "level"]
    search_fields = ["message", "trace_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(MetricPoint)
class MetricPointAdmin(ReadOnlyAdminMixin, UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["at", "tenant", "service", "metric", "value"]
    list_filter = ["tenant", "service", "metric"]
    search_fields = ["service", "metric"]
    date_hierarchy = "at"
    show_full_result_count = False


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdminMixin, UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "tenant", "connector", "operation", "idempotency_key"]
    list_filter = ["tenant", "connector", "operation"]
    search_fields = ["idempotency_key", "operation"]
    date_hierarchy = "created_at"


@admin.register(MonitoredService)
class MonitoredServiceAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "tenant", "version", "replicas", "region", "standby_region"]
    list_filter = ["tenant"]
    search_fields = ["name", "owner_team"]


@admin.register(Deploy)
class DeployAdmin(ReadOnlyAdminMixin, UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["at", "tenant", "service", "version", "author", "rollback"]
    list_filter = ["tenant", "service", "rollback"]


@admin.register(Span)
class SpanAdmin(ReadOnlyAdminMixin, UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["at", "tenant", "service", "operation", "duration_ms", "error", "trace_id"]
    list_filter = ["tenant", "service"]
    search_fields = ["trace_id", "error"]
    show_full_result_count = False
