"""Two reviewers decide the same request at the same moment: exactly one wins, once."""

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import connection

from agentops.models import AuditEvent, Role
from approvals import handlers, services
from approvals.models import ApprovalRequest
from tests.conftest import make_user

calls: list[int] = []


def _count_calls(request):
    calls.append(request.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(5))  # repeat the race
def test_parallel_decisions_have_one_winner(personas, attempt):
    handlers.register("test.race", _count_calls)
    reviewers = [personas.reviewer, personas.admin] + [
        make_user(f"rev{attempt}{i}", personas.tenant, Role.REVIEWER) for i in range(2)
    ]
    request = services.request_approval(
        tenant=personas.tenant,
        handler="test.race",
        handler_ref="x",
        subject_type="test",
        subject_id="1",
        action="grant_admin_access",
        arguments={"user_email": "robin@acme.example"},
        requested_by=personas.agent,
    )
    calls.clear()
    barrier = Barrier(len(reviewers))

    def decide(user):
        barrier.wait()
        try:
            services.decide(request=request, actor=user, approve=True, comment="ok")
            return "won"
        except services.DecisionConflict:
            return "conflict"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(reviewers)) as pool:
        results = list(pool.map(decide, reviewers))
    assert sorted(results) == ["conflict"] * (len(reviewers) - 1) + ["won"]
    assert calls == [request.pk]  # the handler (the run's resume) ran exactly once
    assert (
        AuditEvent.objects.for_tenant(personas.tenant)
        .filter(action="approval.approved", target_id=str(request.pk))
        .count()
        == 1
    )
    assert (
        ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=request.pk).status == "approved"
    )
