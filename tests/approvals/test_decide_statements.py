"""What one decision costs the database: its SQL statements, pinned (the count, not a time).

``approvals.services.decide`` runs under 20 reviewers at once (tests/bench/test_bench_approvals.py)
and every decision of a tenant queues for the tenant's audit-chain lock, so each statement
counts. The tests run with real transactions (no test savepoints), so what is captured is
what production sends, one round trip each, BEGIN and COMMIT included. Before the claim was one
UPDATE … RETURNING, a decision by another reviewer took 9: membership, BEGIN, SELECT … FOR
UPDATE, UPDATE, audit lock + head, audit INSERT, SELECT of the assignee, notification, COMMIT.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agentops.models import AuditEvent, Notification, Role
from approvals import handlers, services
from approvals.models import ApprovalRequest
from tests.conftest import make_user

HANDLER = "test.statements"
calls: list[tuple[int, str]] = []


@pytest.fixture
def opened(personas):
    """A pending request assigned to ``personas.reviewer`` (the only other decider is the
    admin), the handler recording each call."""
    handlers.register(HANDLER, lambda request: calls.append((request.pk, request.status)))
    calls.clear()
    request = services.request_approval(
        tenant=personas.tenant,
        handler=HANDLER,
        handler_ref="ref",
        subject_type="test",
        subject_id="1",
        subject_repr="Test subject",
        action="grant_admin_access",
        arguments={"user_email": personas.requester.email},
        requested_by=personas.agent,
        parties=[{"role": "beneficiary", "email": personas.requester.email}],
    )
    assert request.assigned_to_id in (personas.reviewer.pk, personas.admin.pk)
    # As the queue hands it to a reviewer (approvals.selectors): the tenant not loaded.
    return ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=request.pk)


def _decisions(request) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.for_tenant(request.tenant_id).filter(
            action__in=["approval.approved", "approval.rejected"], target_id=str(request.pk)
        )
    )


def _other_decider(personas, request):
    return personas.admin if request.assigned_to_id == personas.reviewer.pk else personas.reviewer


@pytest.mark.django_db(transaction=True)
def test_an_approval_by_another_reviewer_is_five_round_trips(personas, opened):
    """BEGIN, the claim (UPDATE … RETURNING, reading the assignee too), the assignee's
    notification, the audit append (one call: lock, head, hash, INSERT), COMMIT."""
    actor = _other_decider(personas, opened)
    with CaptureQueriesContext(connection) as sql:
        decided = services.decide(request=opened, actor=actor, approve=True, comment="ok")
    statements = [q["sql"] for q in sql.captured_queries]
    assert len(statements) == 5, "\n".join(statements)
    assert statements[0] == "BEGIN" and statements[-1] == "COMMIT"
    assert statements[1].startswith("WITH claimed AS (UPDATE")
    assert "agentops_audit_append(" in statements[-2]

    stored = ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=opened.pk)
    assert (stored.status, stored.decided_by_id, stored.comment) == ("approved", actor.pk, "ok")
    assert decided.decided_at == stored.decided_at
    assert calls == [(opened.pk, "approved")]
    assert [e.actor_id for e in _decisions(opened)] == [actor.pk]
    told = Notification.objects.for_tenant(personas.tenant).filter(verb__endswith="_by_other")
    assert list(told.values_list("user_id", "verb")) == [
        (opened.assigned_to_id, "approval.approved_by_other")
    ]


@pytest.mark.django_db(transaction=True)
def test_a_rejection_by_the_assignee_is_four_round_trips(personas, opened):
    assignee = personas.reviewer if opened.assigned_to_id == personas.reviewer.pk else None
    assignee = assignee or personas.admin
    with CaptureQueriesContext(connection) as sql:
        services.decide(request=opened, actor=assignee, approve=False, comment="Not today.")
    assert len(sql.captured_queries) == 4, "\n".join(q["sql"] for q in sql.captured_queries)
    assert calls == [(opened.pk, "rejected")]
    assert (
        not Notification.objects.for_tenant(personas.tenant)
        .filter(verb__endswith="_by_other")
        .exists()
    )


@pytest.mark.django_db(transaction=True)
def test_a_lost_race_changes_nothing_and_says_why(personas, opened):
    actor = _other_decider(personas, opened)
    services.decide(request=opened, actor=actor, approve=True, comment="first")
    with (
        CaptureQueriesContext(connection) as sql,
        pytest.raises(services.DecisionConflict, match="already approved"),
    ):
        services.decide(request=opened, actor=actor, approve=False, comment="second")
    # BEGIN, the claim (no row), one read of why (status, and the actor's role), ROLLBACK.
    assert len(sql.captured_queries) == 4, "\n".join(q["sql"] for q in sql.captured_queries)
    stored = ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=opened.pk)
    assert (stored.status, stored.comment) == ("approved", "first")
    assert len(_decisions(opened)) == 1 and calls == [(opened.pk, "approved")]


@pytest.mark.django_db(transaction=True)
def test_the_claim_refuses_a_non_decider_and_keeps_the_request_pending(personas, opened):
    """The decider check folded into the claim still refuses: an agent (no decide capability)
    and a reviewer of the other tenant get 403, and nothing changes."""
    stranger = make_user("stella", personas.other_tenant, Role.REVIEWER)
    for actor in (personas.agent2, stranger):
        with pytest.raises(PermissionDenied):
            services.decide(request=opened, actor=actor, approve=True, comment="ok")
    stored = ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=opened.pk)
    assert stored.status == "pending" and stored.decided_by_id is None
    assert calls == [] and _decisions(opened) == []


@pytest.mark.django_db(transaction=True)
def test_an_expired_request_cannot_be_decided(personas, opened):
    from datetime import timedelta

    from django.utils import timezone

    ApprovalRequest.objects.for_tenant(personas.tenant).filter(pk=opened.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    with pytest.raises(services.DecisionConflict, match="expired"):
        services.decide(
            request=opened, actor=_other_decider(personas, opened), approve=True, comment="ok"
        )
    assert ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=opened.pk).status == (
        "pending"
    )
    assert calls == []
