"""Ticket tools that the incidents app registers with the agent runtime at start-up."""

from __future__ import annotations

from typing import Any

from agents.tools.base import Tool, ToolContext, ToolResult
from incidents.models import Kind, Priority, Severity, Status, Ticket


class CreateTicket(Tool):
    name = "create_ticket"
    description = "Open a follow-up ticket or incident for a person to work on."
    connector = "ticketing"
    input_schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 3, "maxLength": 200},
            "description": {"type": "string", "maxLength": 5000},
            "kind": {"type": "string", "enum": list(Kind.values)},
            "priority": {"type": "string", "enum": list(Priority.values)},
            "severity": {"type": "string", "enum": list(Severity.values)},
            # The tenant's own categories: ``schema_for`` fills the enum per tenant.
            "category": {"type": "string", "maxLength": 100},
        },
        "required": ["title", "description"],
        "additionalProperties": False,
    }

    def schema_for(self, tenant) -> dict[str, Any]:
        from incidents import taxonomy

        return taxonomy.with_categories(tenant, self.input_schema)

    def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        from agentops.models import AuditEvent
        from incidents import services

        # Idempotent: the ticket remembers which tool call created it (audit metadata).
        earlier = (
            AuditEvent.objects.for_tenant(ctx.tenant)
            .filter(action="ticket.created", metadata__idempotency_key=ctx.idempotency_key)
            .first()
        )
        if earlier is not None:
            return ToolResult(
                True, f"Ticket {earlier.target_id} already opened.", {"number": earlier.target_id}
            )
        ticket = services.ticket_create(
            tenant=ctx.tenant,
            actor=None,
            title=args["title"],
            description=args.get("description", ""),
            kind=args.get("kind", Kind.INCIDENT),
            priority=args.get("priority", Priority.MEDIUM),
            severity=args.get("severity", ""),
            category=args.get("category", ""),
            requester_email=ctx.subject_email or "service-desk@agentops.local",
            source="api",
            start_agent=False,
            audit_metadata={"idempotency_key": ctx.idempotency_key, "run_id": ctx.run_id},
        )
        return ToolResult(
            True, f"Opened {ticket.number}: {ticket.title}", {"number": ticket.number}
        )

    def verify(self, ctx, args, result) -> bool:
        number = result.data.get("number")
        return bool(number) and Ticket.objects.for_tenant(ctx.tenant).filter(number=number).exists()


class EscalateToHuman(Tool):
    name = "escalate_to_human"
    description = "Hand the ticket to the human service-desk queue with a summary."
    connector = "ticketing"
    input_schema = {
        "type": "object",
        "properties": {"reason": {"type": "string", "minLength": 3, "maxLength": 2000}},
        "required": ["reason"],
        "additionalProperties": False,
    }

    def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        from incidents import services

        ticket = ctx.subject
        if not isinstance(ticket, Ticket):
            return ToolResult(
                False, "No ticket to escalate.", status_code=404, error_class="NotFound"
            )
        ticket = Ticket.objects.for_tenant(ctx.tenant).get(pk=ticket.pk)
        if ticket.status == Status.ESCALATED:
            return ToolResult(True, f"{ticket.number} is already with the service desk.")
        services.ticket_comment(
            ticket=ticket, actor=None, body=f"Escalated: {args['reason']}", is_internal=True
        )
        services.ticket_transition(
            ticket=ticket, actor=None, status=Status.ESCALATED, note=args["reason"]
        )
        return ToolResult(True, f"{ticket.number} escalated to the service desk.")

    def verify(self, ctx, args, result) -> bool:
        ticket = ctx.subject
        return (
            isinstance(ticket, Ticket)
            and Ticket.objects.for_tenant(ctx.tenant)
            .filter(pk=ticket.pk, status=Status.ESCALATED)
            .exists()
        )


def register_ticket_tools() -> None:
    from agents.tools import registry

    for tool in (CreateTicket(), EscalateToHuman()):
        registry.register(tool)
