"""``POST /api/v1/webhooks/{provider}/{endpoint_id}``: signed deliveries from other tools.

No bearer token: the provider's signature is the authentication (401 when it does not check
out, and nothing is stored). 200 with the outcome for a new delivery, 200 with
``duplicate: true`` for one seen before, Slack's handshake answered with its challenge.
"""

from __future__ import annotations

from ninja import Router, Schema
from ninja import Status as HttpStatus

from incidents.intake import webhooks

router = Router(tags=["webhooks"], auth=None)


class DeliveryOut(Schema):
    delivery_id: str
    event_type: str
    outcome: str
    ticket: str | None
    duplicate: bool


class Refusal(Schema):
    error: str
    message: str


@router.post(
    "/{provider}/{endpoint_id}",
    response={200: DeliveryOut | dict, 400: Refusal, 401: Refusal},
    summary="Receive a signed webhook (generic, slack, jira, zendesk)",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
def receive_webhook(request, provider: str, endpoint_id: str):
    try:
        received = webhooks.receive(
            provider=provider, endpoint_id=endpoint_id, body=request.body, headers=request.headers
        )
    except webhooks.WebhookRefused as exc:
        return HttpStatus(401, {"error": "bad_signature", "message": f"Refused: {exc}."})
    except webhooks.WebhookBadRequest as exc:
        return HttpStatus(400, {"error": "bad_request", "message": str(exc)})
    if received.delivery is None:
        return HttpStatus(200, {"challenge": received.challenge})
    delivery = received.delivery
    return HttpStatus(
        200,
        {
            "delivery_id": delivery.delivery_id,
            "event_type": delivery.event_type,
            "outcome": delivery.outcome,
            "ticket": delivery.ticket_number or None,
            "duplicate": received.duplicate,
        },
    )
