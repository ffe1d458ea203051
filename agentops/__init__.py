"""AgentOps: the project package and core app (settings, tenancy, access gate, audit, health)."""

from agentops.celery import app as celery_app

__all__ = ["celery_app"]
