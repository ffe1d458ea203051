"""The service-desk domain's blueprints, registered with the agent runtime at start-up.

``service_desk`` lives in ``incidents.pipeline``; ``investigation`` here.
"""


def register_all() -> None:
    from incidents import pipeline
    from incidents.blueprints import incident_response, investigation

    pipeline.register()
    investigation.register()
    incident_response.register()
    from incidents.blueprints import knowledge_manager

    knowledge_manager.register()
    from incidents.blueprints import onboarding

    onboarding.register()
