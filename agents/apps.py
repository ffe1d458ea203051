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
