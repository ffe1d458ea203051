"""Posting to Slack is delivery: a request opened in one process is posted by a real Celery
worker (another process) to the local fake of Slack's Web API, once, after commit."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from agentops.celery import app as celery_app
from approvals import handlers, services
from approvals.models import SlackApprovalMessage, SlackConnection
from tests.approvals.fake_slack import FakeSlack

pytestmark = pytest.mark.worker


@pytest.fixture
def real_delivery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


def test_a_worker_posts_the_new_request_to_slack(personas, worker_factory, real_delivery):
    fake = FakeSlack("xoxb-worker").start()
    try:
        worker_factory("slack", SLACK_API_BASE_URL=fake.base_url)
        SlackConnection.objects.create(
            tenant=personas.tenant, team_id="T1", channel_id="C9", bot_token="xoxb-worker",
            signing_secret="s" * 20,
        )  # fmt: skip
        handlers.register("test.noop", lambda request: None)
        with transaction.atomic():
            approval = services.request_approval(
                tenant=personas.tenant, handler="test.noop", handler_ref="x", subject_type="test",
                subject_id="1", subject_repr="Printer access", action="grant_admin_access",
                arguments={"user": "robin"},
            )  # fmt: skip
            assert fake.calls == []  # nothing leaves before the request is committed
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not fake.of("chat.postMessage"):
            time.sleep(0.2)
        (call,) = fake.of("chat.postMessage")
        assert call.body["channel"] == "C9" and "grant_admin_access" in call.body["text"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if (
                SlackApprovalMessage.objects.for_tenant(personas.tenant)
                .filter(request=approval)
                .exists()
            ):
                break
            time.sleep(0.1)
        posted = SlackApprovalMessage.objects.for_tenant(personas.tenant).get(request=approval)
        assert posted.channel_id == "C9" and posted.ts
    finally:
        fake.stop()
