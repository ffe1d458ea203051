"""GET /api/v1/approvals: the queue for integrations, read-only, filtered, tenant-scoped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agentops.services import api_token_create
from approvals import handlers, services
from approvals.models import ApprovalRequest


@pytest.fixture
def queue(personas):
    handlers.register("test.noop", lambda request: None)

    def make(tenant=None, **extra):
        return services.request_approval(
            tenant=tenant or personas.tenant,
            handler="test.noop",
            handler_ref="x",
            subject_type="test",
            subject_id="1",
            action="grant_admin_access",
            arguments={"user": "x"},
            auto_assign=False,
            **extra,
        )

    return make


def get(client, user, tenant, **params):
    _, raw = api_token_create(tenant=tenant, user=user)
    return client.get("/api/v1/approvals", params, headers={"Authorization": f"Bearer {raw}"})


def test_filters(client, personas, queue):
    low = queue(priority="low")
    critical = queue(priority="critical")
    ApprovalRequest.objects.for_tenant(personas.tenant).filter(pk=critical.pk).update(
        assigned_to=personas.reviewer, sla_due=timezone.now() - timedelta(minutes=1)
    )
    decided = queue()
    services.decide(request=decided, actor=personas.reviewer, approve=True)
    queue(tenant=personas.other_tenant)
    ids = lambda r: [i["id"] for i in r.json()["items"]]  # noqa: E731
    everything = get(client, personas.reviewer, personas.tenant)
    assert everything.status_code == 200 and everything.json()["count"] == 3
    assert ids(everything)[0] == critical.pk  # most urgent first
    assert ids(get(client, personas.reviewer, personas.tenant, status="pending")) == [
        critical.pk,
        low.pk,
    ]
    assert ids(get(client, personas.reviewer, personas.tenant, priority="low")) == [low.pk]
    assert ids(get(client, personas.reviewer, personas.tenant, assignee="me")) == [critical.pk]
    assert ids(get(client, personas.reviewer, personas.tenant, assignee="riley")) == [critical.pk]
    assert critical.pk not in ids(get(client, personas.reviewer, personas.tenant, assignee="none"))
    assert ids(get(client, personas.reviewer, personas.tenant, breached="true")) == [critical.pk]
    assert critical.pk not in ids(get(client, personas.reviewer, personas.tenant, breached="false"))
    assert get(client, personas.reviewer, personas.tenant, status="maybe").status_code == 400
    assert get(client, personas.reviewer, personas.tenant, limit=0).status_code == 400


def test_who_may_read_the_queue(client, personas, queue):
    queue()
    # Staff-only, and said so (as for the queues API): requesters get 403 like auditors.
    assert get(client, personas.requester, personas.tenant).status_code == 403
    assert get(client, personas.auditor, personas.tenant).status_code == 403
    assert get(client, personas.outsider, personas.other_tenant).status_code == 403
    assert client.get("/api/v1/approvals").status_code == 401


def test_the_api_cannot_decide(client, personas, queue):
    approval = queue()
    _, raw = api_token_create(tenant=personas.tenant, user=personas.reviewer)
    response = client.post(
        f"/api/v1/approvals/{approval.pk}", headers={"Authorization": f"Bearer {raw}"}
    )
    assert response.status_code in (404, 405)
    assert (
        ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=approval.pk).status == "pending"
    )
