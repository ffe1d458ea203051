from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agent runtime"

    def ready(self) -> None:
        from agents import approval_hooks, engine
        from agents.rca.blueprint import register as register_rca
        from agents.tools.builtin import register_builtin_tools
        from approvals import handlers

        handlers.register(engine.APPROVAL_HANDLER, engine.on_approval_decided)
        register_builtin_tools()
        approval_hooks.register()
        register_rca()
        from agents.compliance.blueprint import register as register_compliance

        register_compliance()  # the compliance auditor (signed reports, agents.compliance)
        load_blueprint_modules()


def load_blueprint_modules() -> None:
    """Blueprints from modules named in ``settings.AGENT_BLUEPRINT_MODULES``: a new agent type
    is a small module with a ``register()`` function (the built-in ones register themselves)."""
    from importlib import import_module

    from django.conf import settings

    for path in getattr(settings, "AGENT_BLUEPRINT_MODULES", ()):
        import_module(path).register()
