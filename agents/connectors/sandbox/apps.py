from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "agents.connectors.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox connector"
