"""The hash-chained audit trail: appending, tamper detection, the migration, the audit page."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from agentops import audit
from agentops.audit import GENESIS_HASH, compute_hash, verify_chain
from agentops.models import AuditEvent, Role
from agentops.postgres.statements import Statements
from tests.conftest import make_user, owner_rights

TRIGGER = "agentops_auditevent_append_only"


def chain(tenant):
    return list(AuditEvent.objects.for_tenant(tenant).order_by("seq"))


def add_events(tenant, n, *, actor=None, action="test.event", target_type="thing", **extra):
    return [
        audit.record(
            tenant=tenant,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=i,
            target_repr=f"thing {i}",
            **extra,
        )
        for i in range(n)
    ]


def tamper(sql: str | Statements, params=()):
    """Do what the database refuses, the way an attacker with DDL rights (the owner's) would:
    one statement, or several (``Statements``: one command each, as PostgreSQL binds them)."""
    statements = sql if isinstance(sql, Statements) else Statements((sql, params))
    with owner_rights() as cursor:
        # Deferred FK checks of rows inserted earlier in this (test) transaction would make
        # ALTER TABLE refuse ("pending trigger events"); run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE agentops_auditevent DISABLE TRIGGER {TRIGGER}")
        statements.execute()
        cursor.execute(f"ALTER TABLE agentops_auditevent ENABLE TRIGGER {TRIGGER}")


def verify_audit(*args) -> tuple[bool, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return False, out.getvalue() + err.getvalue() + str(exc)
    return True, out.getvalue() + err.getvalue()


def seq_id(tenant, seq) -> int:
    return AuditEvent.objects.for_tenant(tenant).get(seq=seq).pk


# --- the chain ----------------------------------------------------------------------------


def test_record_chains_events_per_tenant(personas):
    base_acme = len(chain(personas.tenant))
    base_globex = len(chain(personas.other_tenant))
    add_events(personas.tenant, 3, actor=personas.agent)
    add_events(personas.other_tenant, 2)
    acme = chain(personas.tenant)
    assert [e.seq for e in acme] == list(range(1, base_acme + 4))
    assert acme[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(acme):
        assert after.prev_hash == before.hash
    assert all(e.hash == compute_hash(e) and len(e.hash) == 64 for e in acme)
    assert [e.seq for e in chain(personas.other_tenant)] == list(range(1, base_globex + 3))
    assert verify_chain(personas.tenant).ok
    assert verify_chain(personas.other_tenant).count == base_globex + 2


def test_hash_survives_the_json_roundtrip(personas):
    """What record hashes is what the verifier reads back from jsonb."""
    event = audit.record(
        tenant=personas.tenant,
        actor=None,
        action="test.json",
        target_type="thing",
        target_id=1,
        changes={"b": (1, 2), "a": 1e20, "f": 0.1, "ü": "ß", "n": None, "big": 10**18},
        metadata={"nested": {"z": [1.0, "x"]}},
    )
    stored = AuditEvent.objects.for_tenant(personas.tenant).get(pk=event.pk)
    assert stored.hash == event.hash == compute_hash(stored)
    assert verify_chain(personas.tenant).ok


def test_record_returns_the_new_chain_head(personas):
    # The autocommit path (record opening its own transaction) is covered by the threaded
    # test below: half of its workers call record outside any atomic block.
    assert audit.record(
        tenant=personas.tenant, actor=None, action="x", target_type="y", target_id=1
    ).seq == len(chain(personas.tenant))


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_make_a_gapless_verified_chain(personas):
    """8 threads x 15 events, some in their own transactions, some in autocommit."""
    from concurrent.futures import ThreadPoolExecutor

    threads, per_thread = 8, 15
    base = len(chain(personas.tenant))

    def append(worker: int) -> None:
        try:
            for i in range(per_thread):
                kwargs = dict(
                    tenant=personas.tenant,
                    actor=None,
                    action="test.concurrent",
                    target_type="worker",
                    target_id=f"{worker}-{i}",
                )
                if worker % 2:
                    audit.record(**kwargs)  # autocommit: record opens its own transaction
                else:
                    with transaction.atomic():
                        audit.record(**kwargs)
                        # the other tenant's chain does not wait for this one
                        audit.record(**{**kwargs, "tenant": personas.other_tenant})
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(append, range(threads)))

    events = chain(personas.tenant)
    assert [e.seq for e in events] == list(range(1, base + threads * per_thread + 1))
    report = verify_chain(personas.tenant)
    assert report.ok and report.count == base + threads * per_thread
    assert verify_chain(personas.other_tenant).ok
    ok, output = verify_audit()
    assert ok, output


# --- the database refuses, the verifier detects ---------------------------------------------


def test_database_refuses_update_and_delete_of_any_column(personas):
    event = add_events(personas.tenant, 1)[0]
    for sql in (
        "UPDATE agentops_auditevent SET action = 'forged' WHERE id = %s",
        "UPDATE agentops_auditevent SET hash = repeat('0', 64) WHERE id = %s",
        "UPDATE agentops_auditevent SET seq = seq + 1000 WHERE id = %s",
        "DELETE FROM agentops_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            owner_rights() as cursor,  # the trigger refuses even the owner
        ):
            cursor.execute(sql, [event.pk])
    assert verify_chain(personas.tenant).ok


def test_verify_audit_reports_ok_with_counts(personas):
    add_events(personas.tenant, 4)
    ok, output = verify_audit()
    assert ok
    assert f"acme: OK, {len(chain(personas.tenant))} event(s)" in output
    assert "globex: OK" in output
    ok, output = verify_audit("--tenant", "globex")
    assert ok and "acme" not in output
    with pytest.raises(CommandError, match="No tenant"):
        call_command("verify_audit", "--tenant", "nope")


@pytest.fixture
def five(personas):
    """acme's chain with at least five events; returns the seq of a middle one to tamper."""
    add_events(personas.tenant, 5)
    return len(chain(personas.tenant)) - 2


def test_detects_a_modified_event(personas, five):
    tamper(
        "UPDATE agentops_auditevent SET target_repr = 'nothing to see' WHERE id = %s",
        [seq_id(personas.tenant, five)],
    )
    ok, output = verify_audit()
    assert not ok
    assert f"acme: BROKEN at event #{five} " in output and "modified" in output
    assert "globex: OK" in output
    assert verify_audit("--tenant", "globex")[0]


def test_detects_a_modified_event_whose_hash_was_recomputed(personas, five):
    """Rewriting an event and its hash breaks the link from the next event."""
    event = AuditEvent.objects.for_tenant(personas.tenant).get(seq=five)
    event.changes = {"forged": True}
    tamper(
        "UPDATE agentops_auditevent SET changes = %s, hash = %s WHERE id = %s",
        [json.dumps(event.changes), compute_hash(event), event.pk],
    )
    report = verify_chain(personas.tenant)
    assert report.broken.seq == five + 1 and report.broken.kind == "reordered"


def test_detects_a_deleted_event(personas, five):
    tamper("DELETE FROM agentops_auditevent WHERE id = %s", [seq_id(personas.tenant, five)])
    ok, output = verify_audit("--tenant", "acme")
    assert not ok
    assert f"BROKEN at event #{five + 1} " in output and "deleted" in output
    assert f"expected #{five} next" in output


def test_detects_swapped_events(personas, five):
    a, b = seq_id(personas.tenant, five), seq_id(personas.tenant, five + 1)
    swap = "UPDATE agentops_auditevent SET seq = %s WHERE id = %s"
    tamper(Statements((swap, [999999, a]), (swap, [five, b]), (swap, [five + 1, a])))
    ok, output = verify_audit()
    assert not ok
    assert f"acme: BROKEN at event #{five} " in output and "reordered" in output


def test_trigger_is_back_on_after_tampering(personas, five):
    tamper("SELECT 1")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        owner_rights() as cursor,
    ):
        cursor.execute("DELETE FROM agentops_auditevent WHERE seq = %s", [five])


# --- the migration ---------------------------------------------------------------------------


def test_migration_chains_existing_events(personas):
    """Migrate back to before the chain, write demo-like rows, migrate forward: it verifies."""
    from django.db.migrations.executor import MigrationExecutor

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # Migrations are the owner's (the test transaction's rollback ends this SET ROLE).
        cursor.execute("SET ROLE NONE")
    executor = MigrationExecutor(connection)
    leaf = executor.loader.graph.leaf_nodes("agentops")
    executor.migrate([("agentops", "0002_pgvector_and_append_only_audit")])
    now = timezone.now()
    rows = [
        # (tenant, created_at) — out of id order on purpose: the chain follows time.
        (personas.tenant.pk, now - timedelta(hours=1)),
        (personas.other_tenant.pk, now - timedelta(hours=3)),
        (personas.tenant.pk, now - timedelta(hours=2)),
        (personas.tenant.pk, now - timedelta(minutes=5)),
    ]
    with connection.cursor() as cursor:
        for tenant_id, created_at in rows:
            cursor.execute(
                "INSERT INTO agentops_auditevent (tenant_id, created_at, actor_id, actor_label,"
                " action, target_type, target_id, target_repr, changes, metadata)"
                " VALUES (%s, %s, NULL, 'seed', 'demo.seeded', 'ticket', 'REQ1', '<b>x</b>',"
                " '{\"n\": 1.5}', '{}')",
                [tenant_id, created_at],
            )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate(leaf)

    acme = chain(personas.tenant)
    assert [e.seq for e in acme] == list(range(1, len(acme) + 1))
    assert [e.created_at for e in acme] == sorted(e.created_at for e in acme)
    assert verify_chain(personas.tenant).ok and verify_chain(personas.other_tenant).ok
    # New events continue the backfilled chain, and the trigger is on again.
    assert add_events(personas.tenant, 1)[0].seq == len(acme) + 1
    assert verify_audit()[0]
    with (
        pytest.raises(DatabaseError, match="append-only"),
        owner_rights() as cursor,
    ):
        cursor.execute("DELETE FROM agentops_auditevent WHERE id = %s", [acme[0].pk])


# --- the audit page ---------------------------------------------------------------------------

URL = "/audit/"


@pytest.mark.parametrize("who", ["auditor", "admin"])
def test_auditors_and_admins_see_the_page_and_the_nav_link(personas, client_for, who):
    response = client_for(getattr(personas, who)).get(URL)
    assert response.status_code == 200
    assert f'href="{reverse("audit:list")}"' in response.text


@pytest.mark.parametrize("who", ["agent", "reviewer", "requester", "outsider"])
@pytest.mark.parametrize("url", [URL, "/audit/verify", "/audit/export.csv", "/audit/export.json"])
def test_other_roles_get_403(personas, client_for, who, url):
    assert client_for(getattr(personas, who)).get(url).status_code == 403


def test_other_roles_have_no_nav_link(personas, client_for):
    response = client_for(personas.agent).get(reverse("incidents:queue"))
    assert response.status_code == 200
    assert reverse("audit:list") not in response.text


def test_page_shows_only_the_current_tenants_events_newest_first(personas, client_for, make_ticket):
    make_ticket(personas.tenant, personas.requester, title="acme first")
    make_ticket(personas.tenant, personas.requester, title="acme second")
    make_ticket(personas.other_tenant, None, title="globex secret")
    text = client_for(personas.auditor).get(URL).text
    assert "globex secret" not in text
    assert text.index("acme second") < text.index("acme first")


def test_filters(personas, client_for):
    add_events(personas.tenant, 2, actor=personas.agent, action="ticket.updated")
    add_events(personas.tenant, 1, actor=personas.admin, action="ticket.assigned")
    add_events(
        personas.tenant, 1, actor=personas.admin, action="approval.decided", target_type="approval"
    )
    client = client_for(personas.auditor)

    def rows(**params):
        response = client.get(URL, params)
        assert response.status_code == 200
        return response.context["page"].paginator.count

    total = AuditEvent.objects.for_tenant(personas.tenant).count()
    assert rows() == total
    assert rows(actor="ALEX") == 2
    assert rows(action="ticket.") == 3
    assert rows(action="approval") == 1
    assert rows(target_type="approval") == 1
    assert rows(target_type="thing", target_id="0") == 2
    today = timezone.localdate()
    assert rows(date_from=today.isoformat(), date_to=today.isoformat()) == total
    assert rows(date_to=(today - timedelta(days=1)).isoformat()) == 0
    assert rows(date_from=(today + timedelta(days=1)).isoformat()) == 0
    # A filter that does not parse is reported and left out; the others still apply.
    response = client.get(URL, {"date_from": "not-a-date", "actor": "alex"})
    assert response.context["page"].paginator.count == 2
    assert "were ignored" in response.text


def test_htmx_gets_the_results_partial_and_pages(personas, client_for, settings):
    settings.TICKETS_PER_PAGE = 5
    add_events(personas.tenant, 12)
    client = client_for(personas.auditor)
    response = client.get(URL, {"action": "test.", "page": 2}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="results"')
    assert "<html" not in response.text
    assert "Page 2 of 3" in response.text
    assert "action=test.&amp;page=3" in response.text
    seqs = [int(s) for s in re.findall(r'title="hash [0-9a-f]{64}">(\d+)<', response.text)]
    assert len(seqs) == 5 and seqs == sorted(seqs, reverse=True)


def test_page_query_count_is_constant(personas, client_for, django_assert_max_num_queries):
    client = client_for(personas.auditor)
    add_events(personas.tenant, 3)
    client.get(URL)  # warm the session
    with django_assert_max_num_queries(6) as small:
        client.get(URL)
    add_events(personas.tenant, 40, changes={"a": {"from": 1, "to": 2}})
    with django_assert_max_num_queries(6) as large:
        client.get(URL)
    with django_assert_max_num_queries(6) as partial:
        client.get(URL, {"page": 2, "actor": "system"}, headers={"HX-Request": "true"})
    assert len(small) == len(large) == len(partial)


def test_untrusted_text_is_escaped(personas, client_for):
    audit.record(
        tenant=personas.tenant,
        actor=None,
        action="ticket.created",
        target_type="ticket",
        target_id="<img src=x onerror=alert(1)>",
        target_repr="<script>alert('repr')</script>",
        changes={"title": "<b onmouseover=alert(2)>hi</b>"},
    )
    text = client_for(personas.auditor).get(URL).text
    assert "<script>alert" not in text and "<img src=x" not in text and "<b onmouseover" not in text
    assert "&lt;script&gt;alert(&#x27;repr&#x27;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_csv_export_streams_the_filtered_set_safely(personas, client_for, settings):
    settings.TICKETS_PER_PAGE = 5  # the export is not paginated
    add_events(personas.tenant, 12, action="test.export")
    audit.record(
        tenant=personas.tenant,
        actor=None,
        action="test.export",
        target_type="thing",
        target_id="x",
        target_repr='=HYPERLINK("http://evil")',
    )
    add_events(personas.other_tenant, 3, action="test.export")
    response = client_for(personas.auditor).get("/audit/export.csv", {"action": "test.export"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="audit-acme-' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert len(rows) == 13
    assert [int(r["seq"]) for r in rows] == sorted((int(r["seq"]) for r in rows), reverse=True)
    assert rows[0]["target_repr"] == '\'=HYPERLINK("http://evil")'
    assert {r["hash"] for r in rows} <= {
        e.hash for e in AuditEvent.objects.for_tenant(personas.tenant)
    }


def test_json_export_streams_the_filtered_set(personas, client_for):
    add_events(personas.tenant, 3, actor=personas.agent, changes={"k": [1, 2]})
    add_events(personas.tenant, 2, actor=personas.admin)
    add_events(personas.other_tenant, 2)
    response = client_for(personas.admin).get("/audit/export.json", {"actor": "alex"})
    assert response.status_code == 200 and response.streaming
    data = json.loads(_body(response))
    assert len(data) == 3
    assert {d["actor_label"] for d in data} == {"alex"}
    assert data[0]["changes"] == {"k": [1, 2]}
    assert data[0]["seq"] > data[-1]["seq"]
    # Empty set is still valid JSON.
    empty = client_for(personas.admin).get("/audit/export.json", {"actor": "nobody"})
    assert json.loads(_body(empty)) == []


def test_export_format_is_csv_or_json(personas, client_for):
    assert client_for(personas.auditor).get("/audit/export.xml").status_code == 404


def test_verify_button_shows_the_chain_status(personas, client_for):
    add_events(personas.tenant, 4)
    client = client_for(personas.auditor)
    page = client.get(URL).text
    assert 'hx-get="/audit/verify"' in page
    response = client.get("/audit/verify", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Chain verified ✓" in response.text and "<html" not in response.text

    broken_at = len(chain(personas.tenant)) - 1
    tamper(
        "UPDATE agentops_auditevent SET actor_label = 'someone else' WHERE id = %s",
        [seq_id(personas.tenant, broken_at)],
    )
    response = client.get("/audit/verify", headers={"HX-Request": "true"})
    assert f"Chain broken at #{broken_at}" in response.text and "modified" in response.text
    # Without htmx the whole page, with the verdict in it.
    full = client.get("/audit/verify")
    assert "<html" in full.text and f"Chain broken at #{broken_at}" in full.text


def test_verify_covers_only_the_current_tenant(personas, client_for):
    admin_globex = make_user("gina", personas.other_tenant, Role.ADMIN)
    add_events(personas.tenant, 3)
    tamper("DELETE FROM agentops_auditevent WHERE id = %s", [seq_id(personas.tenant, 1)])
    response = client_for(admin_globex).get("/audit/verify", headers={"HX-Request": "true"})
    assert "Chain verified ✓" in response.text
