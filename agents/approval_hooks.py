"""What the runtime hangs on the approvals queue besides its decision handler.

Call ``register()`` from ``AgentsConfig.ready``: it lets a reviewer's edit-then-approve be
checked against the tool's JSON schema before anything changes.
"""

from __future__ import annotations

from typing import Any


def validate_tool_arguments(request: Any, arguments: Any) -> list[str]:
    """Problems with edited ``arguments`` for the tool the request names; empty when valid."""
    from agents.tools import registry

    try:
        tool = registry.get(request.action)
    except KeyError:
        return [f"The tool {request.action!r} is not known any more; reject the request."]
    return registry.validate_args(tool, arguments)


def register() -> None:
    from agents.engine import APPROVAL_HANDLER
    from approvals import handlers

    handlers.register_validator(APPROVAL_HANDLER, validate_tool_arguments)
