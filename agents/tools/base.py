"""Tools the agents may call, with JSON-schema arguments validated before anything runs.

A tool is a small class: name, description, JSON schema, the connector it acts through, and
``run`` (do it) / ``verify`` (check the effect is real). Tools never decide whether they may
run: ``agents.policy`` does, before ``run`` is ever called. ``agents.tools.registry`` holds
them; ``incidents`` registers its own (create_ticket, escalate_to_human) at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolContext:
    """What a tool knows about the call: whose tenant, which run, on whose behalf."""

    tenant: Any  # agentops.models.Tenant
    run_id: int | None
    idempotency_key: str  # the connector must not apply the same key twice
    actor: Any = None  # the user who started the run, or None (system)
    subject_email: str = ""  # the requester the run works for (the only allowed target)
    started_by_staff: bool = False
    subject: Any = None  # the run's subject object (e.g. a ticket), for domain tools


@dataclass
class ToolResult:
    ok: bool
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    status_code: int = 200
    error_class: str = ""
    error_message: str = ""
    # A failure that may heal by itself (connector circuit open, timeout): the engine may
    # retry the step later. Never set on success or on a permanent failure (404, 400).
    retryable: bool = False
    # The target's state as verification read it after the effect (``observe``'s form), so
    # whoever compares before and after needs no second read. Never stored.
    observed: dict[str, Any] | None = None


class ToolError(Exception):
    """A tool failed in a way the agent should see (not a programming error)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 400,
        error_class: str = "ToolError",
        retryable: bool = False,
    ):
        super().__init__(message)
        self.status_code = status_code
        self.error_class = error_class
        self.retryable = retryable

    def to_result(self) -> ToolResult:
        """The failure as the agent sees it (the message only, never a traceback)."""
        return ToolResult(
            ok=False,
            summary=str(self),
            status_code=self.status_code,
            error_class=self.error_class,
            error_message=str(self),
            retryable=self.retryable,
        )


class Tool:
    name: str = ""
    description: str = ""
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    connector: str = ""  # "directory", "endpoint", "monitoring", "ticketing", "" (none)
    # Which argument names a person: policy allows it only for the run's requester unless
    # a staff member started the run.
    target_argument: str | None = None
    # Read-only tools (diagnostics, searches) may be retried freely; effects may not.
    read_only: bool = False

    def schema_for(self, tenant) -> dict[str, Any]:
        """The input schema as this tenant's runs see it (the model's spec and the argument
        check). The same for every tenant unless a tool's values are the tenant's own (the
        incidents app's ticket categories)."""
        return self.input_schema

    def target_email(self, ctx: ToolContext, args: dict[str, Any]) -> str | None:
        """The e-mail of the person this call affects, or None when it affects no one known.

        By default the value of ``target_argument``, normalised. Tools whose target is a thing
        a person owns (a device) override this and look the owner up through their connector;
        they may raise ``ToolError`` when the connector cannot answer.
        """
        if not self.target_argument:
            return None
        value = args.get(self.target_argument) if isinstance(args, dict) else None
        if not isinstance(value, str) or not value.strip():
            return None
        return value.strip().lower()

    def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        raise NotImplementedError

    def verify(self, ctx: ToolContext, args: dict[str, Any], result: ToolResult) -> bool:
        """Check, by reading the connector's state again, that the effect really happened."""
        return result.ok
