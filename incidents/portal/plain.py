"""Ticket statuses in the requester's words (the portal and the chat assistant)."""

from incidents.models import Status

PLAIN_STATUS = {
    Status.NEW: "Received: we will look at it shortly",
    Status.TRIAGED: "Received: it is in the right hands",
    Status.IN_PROGRESS: "Being worked on",
    Status.ON_HOLD: "Waiting: we may need something from you",
    Status.ESCALATED: "With a specialist",
    Status.RESOLVED: "Resolved: tell us how we did",
    Status.CLOSED: "Closed",
    Status.CANCELLED: "Cancelled",
}


def plain_status(ticket) -> str:
    return PLAIN_STATUS.get(ticket.status, ticket.get_status_display())
