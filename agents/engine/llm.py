"""Which model a run's tenant uses: its agent config, the LLM settings, the backend.

Tests replace ``agents.engine.backend_for`` (the package attribute): the step context looks it
up there at call time.
"""

from __future__ import annotations

import os

from django.conf import settings

from agentops.prepared import prepared
from agents.models import AgentConfig


@prepared  # (every ticket opened and every run asks)
def _config_of(tenant_id: int):
    return AgentConfig.objects.for_tenant(tenant_id).order_by("pk")[:1]


def agent_config(tenant) -> AgentConfig:
    config = _config_of.first(tenant.pk)
    if config is None:
        config, _ = AgentConfig.objects.for_tenant(tenant).get_or_create(
            tenant=tenant,
            defaults={"auto_resolve_on_create": getattr(settings, "AGENT_AUTOSTART_DEFAULT", True)},
        )
    return config


def backend_for(config: AgentConfig):
    """The LLM backend for a tenant's settings (tests may monkeypatch this function)."""
    from agents.llm import get_backend

    return get_backend(llm_config(config))


def llm_config(config: AgentConfig):

    from agents.llm.config import LLMConfig

    key = (
        os.environ.get(config.api_key_env, "") if config.api_key_env else settings.ANTHROPIC_API_KEY
    )
    backend = config.llm_backend
    if backend == AgentConfig.Backend.AUTO:
        backend = "anthropic" if key else "offline"
    return LLMConfig.from_settings(
        backend=backend,
        model=config.llm_model or settings.ANTHROPIC_MODEL,
        api_key=key,
        max_tokens=config.max_tokens,
        requests_per_minute=config.requests_per_minute,
        tokens_per_minute=config.tokens_per_minute,
        limit_key=f"tenant-{config.tenant_id}",
        # One breaker per tenant: one tenant's outage (its key, its spend) opens only its own.
        breaker_name=f"llm:anthropic:tenant-{config.tenant_id}",
    )


def model_name(config: AgentConfig) -> str:
    try:
        cfg = llm_config(config)
    except Exception:  # settings problems surface when the run starts its first step
        return ""
    return cfg.model if cfg.backend == "anthropic" else "offline"
