from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AgentopsConfig(AppConfig):
    name = "agentops"
    verbose_name = "AgentOps core"

    def ready(self) -> None:
        from agentops import audit_context
        from agentops.roles import ensure_role_groups

        post_migrate.connect(ensure_role_groups, dispatch_uid="agentops.ensure_role_groups")
        from agentops.db_roles import grant_app_role

        post_migrate.connect(grant_app_role, sender=self, dispatch_uid="agentops.grant_app_role")
        audit_context.connect()  # memberships, user groups and permissions are audited
        from axes.signals import user_locked_out

        from agentops.perimeter import audit_lockout

        user_locked_out.connect(audit_lockout, dispatch_uid="agentops.audit_lockout")
        from agentops import logging_config, tracing

        logging_config.configure_structlog()  # structlog's loggers write through LOGGING's handlers
        tracing.configure()  # OpenTelemetry: off unless OTEL_EXPORTER_OTLP_ENDPOINT (or tests)
