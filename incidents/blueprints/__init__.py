"""The service-desk domain's blueprints, registered with the agent runtime at start-up.

``service_desk`` lives in ``incidents.pipeline``; ``investigation`` here.
"""


def register_all() -> None:
    from incidents import pipeline
    from incidents.blueprints import (
        incident_response,
        investigation,
        knowledge_manager,
        onboarding,
        sentiment_monitor,
    )

    pipeline.register()
    investigation.register()
    incident_response.register()
    sentiment_monitor.register()
    knowledge_manager.register()
    onboarding.register()
