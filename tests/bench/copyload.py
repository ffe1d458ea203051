"""Loading a million tickets in minutes: PostgreSQL COPY, with the secondary indexes built
once at the end instead of row by row.

``incidents.testdata.bulk_generate`` (``bulk_create`` in batches) writes 100k tickets in about a
minute; at 1M its cost is dominated by maintaining 17 B-tree and GIN indexes per row. Here:

1. the tables' secondary indexes (not the primary keys or unique constraints) are dropped,
2. tickets are generated in Python (the same ``fake_ticket`` templates and status mix as
   ``bulk_generate``) and streamed with ``COPY ... FROM STDIN`` in chunks (one transaction each;
   the search-vector trigger still fills ``search_vector``),
3. comments are written by the server itself (``INSERT ... SELECT`` over the tickets),
4. the dropped indexes are created again from their saved definitions (one sort each).

Bench only: it drops indexes, so nothing else may use the tables while it runs.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from agentops.services import sequence_next
from incidents.models import KIND_PREFIX, Comment, Priority, Status, Ticket
from incidents.services import NUMBER_DIGITS, sla_due_for
from incidents.testdata import REPLIES, fake_ticket

CHUNK = 100_000
STATUSES = [
    Status.NEW,
    Status.TRIAGED,
    Status.IN_PROGRESS,
    Status.ON_HOLD,
    Status.RESOLVED,
    Status.RESOLVED,
    Status.CLOSED,
    Status.CLOSED,
    Status.CLOSED,
]
COLUMNS = (
    "tenant_id",
    "kind",
    "number",
    "title",
    "description",
    "requester_email",
    "category",
    "priority",
    "severity",
    "status",
    "affected_services",
    "detected_by",
    "source",
    "sla_due",
    "sla_breached",
    "csat_comment",
    "resolution_notes",
    "triage_decision",
    "suggested_path",
    "created_at",
    "updated_at",
    "resolved_at",
)


def _secondary_indexes(table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's indexes that back no constraint."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            [table],
        )
        return cursor.fetchall()


def _reserve_numbers(tenant, count: int) -> dict[str, int]:
    """The first number of a block of ``count`` per kind (the counters end past the last
    number used; gaps are harmless). Read before any COPY: the connection is busy during one."""
    return {
        kind: sequence_next(tenant=tenant, name=f"ticket:{kind}", step=count) - count + 1
        for kind in KIND_PREFIX
    }


def _ticket_rows(tenant, count: int, rng: random.Random, next_number: dict[str, int]):
    """Yield COPY rows, numbered from ``next_number`` per kind, oldest first.

    A year of tickets in the order they were opened, as a live table receives them: ids,
    numbers and the heap's physical order follow created_at. (Rows written in random date
    order put each ticket of a newest-first walk on a different heap page, a layout no table
    that takes its tickets one by one has.)"""
    domain = f"{tenant.slug}.example"
    now = timezone.now()
    spread = 365 * 24 * 60
    ages = sorted((rng.randint(0, spread) for _ in range(count)), reverse=True)
    for age in ages:
        data = fake_ticket(rng, domain)
        created = now - timedelta(minutes=age)
        status = rng.choice(STATUSES)
        done = status in (Status.RESOLVED, Status.CLOSED)
        kind = data["kind"]
        number = f"{KIND_PREFIX[kind]}{next_number[kind]:0{NUMBER_DIGITS}d}"
        next_number[kind] += 1
        yield (
            tenant.pk,
            kind,
            number,
            data["title"],
            data["description"],
            data["requester_email"],
            data["category"],
            data["priority"],
            data["severity"],
            status,
            data["affected_services"],
            data["detected_by"],
            data["source"],
            sla_due_for(tenant=tenant, priority=data["priority"] or Priority.MEDIUM, start=created),
            False,
            "",
            "Resolved following the runbook." if done else "",
            "",
            "",
            created,
            created,
            created + timedelta(hours=rng.randint(1, 72)) if done else None,
        )


def copy_generate(
    *, tenant, count: int, comments_per_ticket: int = 2, seed: int = 1, before_indexes=None
) -> dict:
    """Write ``count`` tickets and ``comments_per_ticket`` comments each; returns timings (s).

    ``before_indexes()``, if given, runs once the rows are in and before the indexes are built:
    the place for bulk UPDATEs (an UPDATE of half a million indexed rows costs minutes)."""
    ticket_table, comment_table = Ticket._meta.db_table, Comment._meta.db_table
    timings: dict[str, float] = {}
    saved = _secondary_indexes(ticket_table) + _secondary_indexes(comment_table)
    with connection.cursor() as cursor:
        for name, _ in saved:
            cursor.execute(f'DROP INDEX "{name}"')

    # 2. Tickets, streamed in chunks (each COPY is one transaction in autocommit).
    began = time.perf_counter()
    rows = _ticket_rows(tenant, count, random.Random(seed), _reserve_numbers(tenant, count))
    copy_sql = f"COPY {ticket_table} ({', '.join(COLUMNS)}) FROM STDIN"
    written = 0
    while written < count:
        n = min(CHUNK, count - written)
        with connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
            for _ in range(n):
                copy.write_row(next(rows))
        written += n
    timings["copy_tickets"] = time.perf_counter() - began

    # 3. Comments, by the server: the same replies and spacing as bulk_generate.
    began = time.perf_counter()
    replies = "ARRAY[" + ", ".join(["%s"] * len(REPLIES)) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {comment_table} "  # noqa: S608
            "(tenant_id, ticket_id, author_label, body, is_internal, created_at) "
            f"SELECT t.tenant_id, t.id, 'service-desk', ({replies})[1 + (t.id + i) %% %s], "
            "(i - 1) %% 3 = 2, t.created_at + (10 * i) * interval '1 minute' "
            f"FROM {ticket_table} t CROSS JOIN generate_series(1, %s) AS i "
            "WHERE t.tenant_id = %s",
            [*REPLIES, len(REPLIES), comments_per_ticket, tenant.pk],
        )
    timings["comments"] = time.perf_counter() - began
    if before_indexes is not None:
        began = time.perf_counter()
        before_indexes()
        timings["before_indexes"] = time.perf_counter() - began

    # 4. The indexes again, each built by one sort.
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in saved:
            cursor.execute(definition)
        cursor.execute("RESET maintenance_work_mem")
    timings["create_indexes"] = time.perf_counter() - began
    return timings
