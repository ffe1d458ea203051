"""Repair 8: times in words ("just now", never "0 minutes ago" or "now ago") and SLA text."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from agentops.templatetags.console_time import age, ago, due
from incidents.views import queue_rows


def test_filters_say_times_in_words():
    now = timezone.now()
    assert ago(now - timedelta(seconds=5)) == "just now"
    assert ago(now - timedelta(minutes=5, seconds=3)) == "5\xa0minutes ago"
    assert ago(now + timedelta(hours=2, minutes=1)) == "in 2\xa0hours"
    assert due(now + timedelta(seconds=20)) == "due now"
    assert due(now + timedelta(hours=3, minutes=2)) == "due in 3\xa0hours"
    assert due(now - timedelta(days=2, hours=1)) == "2\xa0days overdue"
    assert age(now) == "new" and ago(None) == "" and due("x") == ""


def test_queue_rows_never_say_now_ago(personas, make_ticket):
    fresh = make_ticket(personas.tenant, personas.requester, title="Just opened")
    [row] = queue_rows([fresh])
    assert row["created_ago"] == "just now"
    assert row["sla_text"].startswith("due in ")
    fresh.sla_due = timezone.now() + timedelta(seconds=10)
    assert queue_rows([fresh])[0]["sla_text"] == "due now"
    fresh.sla_due = timezone.now() - timedelta(hours=5, minutes=1)
    assert queue_rows([fresh])[0]["sla_text"] == "5 h overdue"
    for text in (row["created_ago"], row["sla_text"]):
        assert "now ago" not in text and "0 min" not in text
