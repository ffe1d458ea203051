from django.apps import AppConfig
from django.core import checks


class KnowledgeConfig(AppConfig):
    name = "knowledge"

    def ready(self) -> None:
        checks.register(check_embedding_backend, "knowledge")
        # The knowledge base's size counts against the tenant's limits (agentops.quotas).
        from agentops import quotas
        from knowledge.models import Chunk, Source

        quotas.register_counter(
            "knowledge_documents",
            lambda tenant: Source.objects.for_tenant(tenant).filter(is_active=True).count(),
        )
        quotas.register_counter(
            "knowledge_chunks", lambda tenant: Chunk.objects.for_tenant(tenant).count()
        )


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
