"""Blueprints: each agent type is a small module registered with the runtime.

- ``base``: the state-graph contract (states, transitions, ``state_<name>(ctx) -> Outcome``).
- ``loop``: the loop contract on top of it (``plan`` / ``execute_step`` / ``should_continue``,
  run as PLAN → EXECUTE_TOOL → EVALUATE with a multi-turn model conversation).
- ``registry``: registration, and each tenant's settings (enabled, config, tool allow-list).
"""

from agents.blueprints.base import DONE, ESCALATED, FAILED, TERMINAL, WAIT, Blueprint, Outcome
from agents.blueprints.loop import Action, LoopBlueprint, LoopState, Observation
from agents.blueprints.registry import (
    TenantBlueprint,
    all_blueprints,
    all_for_tenant,
    for_tenant,
    get,
    register,
    unregister,
    validate_setting,
)

__all__ = [
    "DONE",
    "ESCALATED",
    "FAILED",
    "TERMINAL",
    "WAIT",
    "Action",
    "Blueprint",
    "LoopBlueprint",
    "LoopState",
    "Observation",
    "Outcome",
    "TenantBlueprint",
    "all_blueprints",
    "all_for_tenant",
    "for_tenant",
    "get",
    "register",
    "unregister",
    "validate_setting",
]
