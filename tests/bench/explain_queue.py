"""EXPLAIN (ANALYZE, BUFFERS) of each queue variant's count and page on the kept bench database
(``make bench PYTEST_ARGS=--reuse-db`` leaves test_agentops_bench with its tickets):

    PYTHONPATH=. .venv/bin/python tests/bench/explain_queue.py [variant ...] [--before]

The ``requester_*`` variants read the requester persona's own queue ("my requests").

``--before`` shows the plans of the earlier code: an exact COUNT(*) and every match ranked.
"""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops.settings")
django.setup()
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

connection.close()
settings.DATABASES["default"]["NAME"] = "test_agentops_bench"
connection.settings_dict["NAME"] = "test_agentops_bench"

from agentops.models import Membership  # noqa: E402
from incidents import selectors  # noqa: E402
from incidents.selectors import (  # noqa: E402
    QueueFilters,
    count_matches,
    is_ranked,
    ticket_queue,
)

BEFORE = "--before" in sys.argv  # the code before this change: exact COUNT, rank every match
only = [a for a in sys.argv[1:] if not a.startswith("--")]


def membership_of(username):
    user = get_user_model().objects.get(username=username)
    return Membership.objects.select_related("tenant", "user").get(user=user, tenant__slug="acme")


staff, requester = membership_of("alex"), membership_of("robin")
VARIANTS = {
    "default": ({}, 0),
    "open": ({"status": "open"}, 0),
    "resolved": ({"status": "resolved"}, 0),
    "prio_high": ({"priority": "high"}, 0),
    "kind_incident": ({"kind": "incident"}, 0),
    "category_network": ({"category": "network"}, 0),
    "me_open": ({"assignee": "me", "status": "open"}, 0),
    "open_sort_prio": ({"status": "open", "sort": "priority"}, 0),
    "sort_updated": ({"sort": "updated"}, 0),
    "sort_sla": ({"sort": "sla"}, 0),
    "sort_oldest": ({"sort": "oldest"}, 0),
    "sort_number": ({"sort": "number"}, 0),
    "new_incident_sla": ({"status": "new", "kind": "incident", "sort": "sla"}, 0),
    "q_vpn": ({"q": "vpn"}, 0),
    "q_vpn_open_high": ({"q": "vpn", "status": "open", "priority": "high"}, 0),
    "q_vpn_relevance": ({"q": "vpn", "sort": "relevance"}, 0),
    "q_kubernetes": ({"q": "kubernetes"}, 0),
    "q_vpn_sla": ({"q": "vpn", "sort": "sla"}, 0),
    "q_vpn_security": ({"q": "vpn", "category": "security"}, 0),
    "q_vpn_me_new": ({"q": "vpn", "assignee": "me", "status": "new"}, 0),
    "q_vpn_critical_incident": ({"q": "vpn", "priority": "critical", "kind": "incident"}, 0),
    "q_password_resolved": ({"q": "password", "status": "resolved"}, 0),
    "q_vpn_priority": ({"q": "vpn", "sort": "priority"}, 0),
    "q_vpn_number": ({"q": "vpn", "sort": "number"}, 0),
    "q_vpn_updated": ({"q": "vpn", "sort": "updated"}, 0),
    "q_vpn_oldest": ({"q": "vpn", "sort": "oldest"}, 0),
    "q_kubernetes_relevance": ({"q": "kubernetes", "sort": "relevance"}, 0),
    "q_vpn_open_high_relevance": (
        {"q": "vpn", "status": "open", "priority": "high", "sort": "relevance"},
        0,
    ),
    "deep_default": ({}, 9975),
    "deep_open_sla": ({"status": "open", "sort": "sla"}, 9975),
    "requester": ({}, 0),
    "requester_open": ({"status": "open"}, 0),
    "requester_q_vpn": ({"q": "vpn"}, 0),
}


def explain(label, sql, params):
    with connection.cursor() as c:
        c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        lines = [r[0] for r in c.fetchall()]
    print(f"-- {label}")
    for line in lines:
        print("   " + line)


for name, (f, start) in VARIANTS.items():
    if only and name not in only:
        continue
    m = requester if name.startswith("requester") else staff
    qs = ticket_queue(m, QueueFilters(**f))
    print(f"\n===== {name} {f} start={start}")
    cap = selectors.SEARCH_COUNT_CAP if f.get("q") else selectors.COUNT_CAP
    in_order = bool(f.get("q")) and not BEFORE
    if is_ranked(qs) and in_order:
        # count_matches: the newest matches with their rank, count and candidates at once.
        reach = max(selectors.RELEVANCE_CANDIDATES, selectors.FEW_MATCHES, cap) + 1
        cq = qs.order_by("-created_at", "-id").values_list("pk", "rank")[:reach]
        counted = count_matches(qs, cap, in_order=True)
        sql, params = cq.query.get_compiler("default").as_sql()
        explain(f"ranked candidates, counted ({counted.found})", sql, params)
        ids = counted.ids[start : start + 25]
        page = qs.order_by().filter(pk__in=ids)
        sql, params = page.query.get_compiler("default").as_sql()
        explain("page (its rows by id)", sql, params)
        continue
    if in_order:
        # count_matches for a search: its ids in page order, up to cap + 1.
        ids = list(qs.values_list("pk", flat=True)[: cap + 1])
        sql, params = (
            qs.values_list("pk", flat=True)[: cap + 1].query.get_compiler("default").as_sql()
        )
        explain(f"ids in page order, counted ({len(ids)})", sql, params)
        page = qs.order_by().filter(pk__in=ids[start : start + 25])
        sql, params = page.query.get_compiler("default").as_sql()
        explain("page (its rows by id)", sql, params)
        continue
    cq = qs.order_by() if BEFORE else qs.order_by().values("pk")[: cap + 1]
    count = cq.count()
    sql, params = cq.query.get_compiler("default").as_sql()
    explain(
        f"{'exact' if BEFORE else 'capped'} count ({count})",
        f"SELECT COUNT(*) FROM ({sql}) s",  # noqa: S608 (Django-compiled SQL)
        params,
    )
    page = qs
    if count <= selectors.FEW_MATCHES:
        print("   (few matches: ids first)")
    elif is_ranked(qs):  # --before: every match ranked
        pass
    if start >= selectors.DEEP_OFFSET and not BEFORE:
        page = page.values_list("pk", flat=True)  # the deep path's ids query
    page = page[start : start + 25]
    sql, params = page.query.get_compiler("default").as_sql()
    explain("page", sql, params)
