"""Tools (agents.tools.base) and their registry (agents.tools.registry)."""
