from django.apps import AppConfig
from django.core import checks


class KnowledgeConfig(AppConfig):
    name = "knowledge"

    def ready(self) -> None:
        checks.register(check_embedding_backend, "knowledge")


def check_embedding_backend(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A missing or misnamed embedding backend stops startup with a clear message."""
    from knowledge.embeddings import backend_problem

    problem = backend_problem()
    if problem is None:
        return []
    return [
        checks.Error(
            problem,
            hint="Install the project (`pip install -e .`) or set KNOWLEDGE_EMBEDDING_BACKEND.",
            id="knowledge.E001",
        )
    ]
