from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Tickets and incidents"

    def ready(self) -> None:
        # The service-desk domain plugs its pipeline and ticket tools into the agent runtime.
        from incidents import signals
        from incidents.blueprints import register_all
        from incidents.tools import register_ticket_tools

        register_all()
        register_ticket_tools()
        # The offline model's service-desk understanding: the learned model (incidents.nlu).
        from agents.llm import offline
        from incidents.nlu.analyser import analyse

        offline.register_analyser(analyse)
        signals.connect()  # grants on tickets and queues are audited, whoever makes them
        # Reviewers granted a queue or a ticket decide its approvals (approvals.access).
        from incidents import approval_scopes

        approval_scopes.register()
        # Each new tenant starts with the nine built-in categories (incidents.taxonomy).
        from incidents import taxonomy

        taxonomy.register()
        # How the ticket's codes read in the history and the audit trail.
        from agentops.audit_words import register_labels
        from incidents.models import Category, Priority, Status

        for name, choices in (("status", Status), ("priority", Priority), ("category", Category)):
            register_labels(name, dict(choices.choices))
