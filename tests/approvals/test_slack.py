"""Slack approvals: Block Kit messages posted to a local fake of Slack's Web API, and signed
interactions decided through the same services.decide (four-eyes, role, scope)."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from slack_sdk.signature import SignatureVerifier

from approvals import handlers, services
from approvals.models import ApprovalRequest, SlackApprovalMessage, SlackConnection, SlackUserLink
from tests.approvals.fake_slack import FakeSlack

SIGNING = "slack-signing-secret-0123456789"
TOKEN = "xoxb-test-token"


@pytest.fixture
def fake_slack(settings):
    fake = FakeSlack(TOKEN).start()
    settings.SLACK_API_BASE_URL = fake.base_url
    yield fake
    fake.stop()


@pytest.fixture
def connected(personas, fake_slack):
    tenant = personas.tenant
    SlackConnection.objects.create(
        tenant=tenant, team_id="T1", channel_id="C1", bot_token=TOKEN, signing_secret=SIGNING
    )
    for slack_id, user in (
        ("U_REV", personas.reviewer),
        ("U_REQ", personas.requester),
        ("U_AUD", personas.auditor),
    ):
        SlackUserLink.objects.create(tenant=tenant, slack_user_id=slack_id, user=user)
    return fake_slack


@pytest.fixture
def posted(connected, park, django_capture_on_commit_callbacks):
    """A run parked on an approval, its request posted to Slack after commit."""
    with django_capture_on_commit_callbacks(execute=True):
        return park()


def press(client, payload: dict, *, secret=SIGNING, ts=None):
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(ts or int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return client.post(
        reverse("api:slack_interactions"),
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature},
    )


def button(approval, user: str, action="approval_approve", team="T1"):
    return {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": user},
        "channel": {"id": "C1"},
        "trigger_id": "trig-1",
        "actions": [{"action_id": action, "value": str(approval.pk)}],
    }


def status_of(approval) -> str:
    return ApprovalRequest.objects.for_tenant(approval.tenant).get(pk=approval.pk).status


def test_a_new_request_is_posted_with_approve_reject_open(connected, posted):
    _, _, approval = posted
    (call,) = connected.of("chat.postMessage")
    assert call.token == TOKEN and call.body["channel"] == "C1"
    actions = next(b for b in call.body["blocks"] if b["type"] == "actions")["elements"]
    assert [e["text"]["text"] for e in actions] == ["Approve", "Reject", "Open"]
    assert actions[0]["value"] == str(approval.pk)
    assert actions[2]["url"].endswith(f"/approvals/{approval.pk}/")
    posted = SlackApprovalMessage.objects.for_tenant(approval.tenant).get(request=approval)
    assert posted.channel_id == "C1" and posted.ts


def test_linked_reviewer_approves_and_the_run_resumes(client, connected, posted, personas):
    _, run, approval = posted
    response = press(client, button(approval, "U_REV"))
    assert response.status_code == 200
    decided = ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=approval.pk)
    assert decided.status == "approved" and decided.decided_by == personas.reviewer
    run.refresh_from_db()
    assert run.status != "waiting_approval"  # the handler resumed it, as from the console
    (update,) = connected.of("chat.update")
    assert "Approved by riley" in json.dumps(update.body["blocks"])
    assert not connected.of("chat.postEphemeral")


@pytest.mark.parametrize(
    ("slack_user", "says"),
    [("U_NOBODY", "not linked"), ("U_REQ", "Only reviewers"), ("U_AUD", "Only reviewers")],
)
def test_unlinked_or_unauthorised_user_gets_an_ephemeral_refusal(
    client, connected, parked, slack_user, says
):
    _, _, approval = parked
    assert press(client, button(approval, slack_user)).status_code == 200
    assert status_of(approval) == "pending"
    (refusal,) = connected.of("chat.postEphemeral")
    assert refusal.body["user"] == slack_user and says in refusal.body["text"]


def test_four_eyes_holds_in_slack(client, connected, personas):
    handlers.register("test.noop", lambda request: None)
    approval = services.request_approval(
        tenant=personas.tenant,
        handler="test.noop",
        handler_ref="x",
        subject_type="test",
        subject_id="1",
        action="grant_admin_access",
        arguments={"user": "x"},
        requested_by=personas.reviewer,
    )
    press(client, button(approval, "U_REV"))
    assert status_of(approval) == "pending"
    assert "four-eyes" in connected.of("chat.postEphemeral")[0].body["text"]


def test_reject_asks_for_a_reason_then_decides(client, connected, parked, personas):
    _, _, approval = parked
    press(client, button(approval, "U_REV", action="approval_reject"))
    (opened,) = connected.of("views.open")
    assert opened.body["trigger_id"] == "trig-1" and status_of(approval) == "pending"
    view = {"callback_id": opened.body["view"]["callback_id"], "private_metadata": str(approval.pk)}

    def submit(reason):
        state = {"values": {"reason": {"text": {"type": "plain_text_input", "value": reason}}}}
        payload = {
            "type": "view_submission",
            "team": {"id": "T1"},
            "user": {"id": "U_REV"},
            "view": {**view, "state": state},
        }
        return press(client, payload)

    empty = submit("  ")
    assert empty.json()["response_action"] == "errors" and status_of(approval) == "pending"
    assert submit("Not without a manager's OK").json() == {}
    decided = ApprovalRequest.objects.for_tenant(personas.tenant).get(pk=approval.pk)
    assert (decided.status, decided.comment) == ("rejected", "Not without a manager's OK")


def test_refusals_without_a_valid_signature(client, connected, parked):
    _, _, approval = parked
    assert (
        press(client, button(approval, "U_REV"), secret="wrong-secret-0123456789").status_code
        == 401
    )
    assert press(client, button(approval, "U_REV"), ts=int(time.time()) - 400).status_code == 401
    assert press(client, button(approval, "U_REV", team="T_OTHER")).status_code == 401
    bad = client.post(
        reverse("api:slack_interactions"),
        data=b"payload=%7Bnot",
        content_type="application/x-www-form-urlencoded",
    )
    assert bad.status_code == 400
    nul = button(approval, "U_REV") | {"view": {"state": "\x00"}}
    assert press(client, nul).status_code == 400
    assert status_of(approval) == "pending"


def test_another_tenants_request_cannot_be_reached_from_this_workspace(client, connected, personas):
    handlers.register("test.noop", lambda request: None)
    theirs = services.request_approval(
        tenant=personas.other_tenant,
        handler="test.noop",
        handler_ref="x",
        subject_type="test",
        subject_id="1",
        action="grant_admin_access",
        arguments={},
    )
    press(client, button(theirs, "U_REV"))
    assert status_of(theirs) == "pending"
    assert "no longer exists" in connected.of("chat.postEphemeral")[0].body["text"]


def test_posting_is_once_and_untrusted_text_is_escaped(connected, posted):
    from approvals import slack

    _, _, approval = posted
    slack.post_request(request=approval)  # a redelivered task
    assert len(connected.of("chat.postMessage")) == 1
    approval.subject_repr = "<!channel> & <https://evil.example|click>"
    text = json.dumps(slack.blocks_for(approval))
    assert (
        "<!channel>" not in text
        and "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
    )


def test_a_console_decision_shows_on_the_slack_message(
    client, connected, posted, personas, django_capture_on_commit_callbacks
):
    _, _, approval = posted
    client.force_login(personas.reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("approvals:decide", args=[approval.pk]), {"decision": "approve"}
        )
    assert response.status_code in (200, 302)
    assert status_of(approval) == "approved"
    (update,) = connected.of("chat.update")
    assert "Approved by riley" in json.dumps(update.body["blocks"])
    assert "approval_approve" not in json.dumps(update.body["blocks"])  # no buttons left


def test_a_request_whose_post_was_lost_is_posted_by_the_beat(
    connected, park, personas, monkeypatch, django_capture_on_commit_callbacks
):
    """The broker is down when the request opens: nothing reaches Slack then. Once the request
    has waited SLACK_GRACE, the beat posts it, once; a decided request, another tenant without
    a connection, or one already posted is left alone."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from approvals import tasks

    def broker_down(approval_id):
        raise ConnectionError("Error 111 connecting to the broker")

    real_delay = tasks.post_approval_to_slack.delay
    monkeypatch.setattr(tasks.post_approval_to_slack, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        _, _, approval = park()
    monkeypatch.setattr(tasks.post_approval_to_slack, "delay", real_delay)  # the broker is back
    assert connected.of("chat.postMessage") == []

    assert tasks.post_missed_slack_approvals() == 0  # not yet: its own post may still come
    ApprovalRequest.objects.for_tenant(approval.tenant).filter(pk=approval.pk).update(
        created_at=timezone.now() - tasks.SLACK_GRACE - timedelta(minutes=1)
    )
    assert tasks.post_missed_slack_approvals() == 1
    (call,) = connected.of("chat.postMessage")
    assert call.body["channel"] == "C1"
    assert (
        SlackApprovalMessage.objects.for_tenant(approval.tenant).filter(request=approval).exists()
    )
    assert tasks.post_missed_slack_approvals() == 0  # posted now
    assert len(connected.of("chat.postMessage")) == 1
    beat = settings.CELERY_BEAT_SCHEDULE["slack-approvals-missed"]
    assert beat["task"] == tasks.post_missed_slack_approvals.name


def test_the_beat_leaves_decided_old_and_unconnected_requests(
    connected, park, personas, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from approvals import tasks

    monkeypatch.setattr(tasks.post_approval_to_slack, "delay", lambda approval_id: None)
    with django_capture_on_commit_callbacks(execute=True):
        _, _, approval = park()
    requests = ApprovalRequest.objects.for_tenant(approval.tenant).filter(pk=approval.pk)
    requests.update(created_at=timezone.now() - tasks.SLACK_LOOKBACK - timedelta(minutes=1))
    assert tasks.post_missed_slack_approvals() == 0  # too old: the queue has it
    requests.update(created_at=timezone.now() - tasks.SLACK_GRACE - timedelta(minutes=1))
    SlackConnection.objects.for_tenant(approval.tenant).update(post_approvals=False)
    assert tasks.post_missed_slack_approvals() == 0  # the tenant posts no approvals
    SlackConnection.objects.for_tenant(approval.tenant).update(post_approvals=True)
    requests.update(status=ApprovalRequest.Status.REJECTED)
    assert tasks.post_missed_slack_approvals() == 0  # decided
    requests.update(status=ApprovalRequest.Status.PENDING)
    assert tasks.post_missed_slack_approvals() == 1
