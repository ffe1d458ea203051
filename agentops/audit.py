"""Writing and verifying the audit trail. Services call ``record`` inside their transaction.

Each tenant's events form a hash chain: event ``seq`` N stores ``prev_hash`` (the hash of
event N-1, or 64 zeros for the first) and ``hash`` = sha256 of a canonical JSON of its own
fields plus ``prev_hash``. Changing, deleting or reordering a stored event therefore breaks
the chain at that event, which ``verify_chain`` (and ``manage.py verify_audit``) finds.

Appending is serialised per tenant with a transaction-scoped advisory lock taken before the
chain head is read, so concurrent writers of one tenant queue up (writers of different tenants
do not), and the lock is released when the caller's transaction commits or rolls back. That is
why ``record`` appends a transaction's events just before it commits (``before_commit`` of
``agentops.postgres``): the lock is then held for the append and the commit only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from agentops.models import AuditEvent, Tenant
from agentops.postgres.statements import Statements

GENESIS_HASH = "0" * 64
# First key of the two-key advisory lock: a constant namespace ("AUDT"), so the audit lock
# cannot collide with other advisory locks; the second key is the tenant id.
# The lock is taken by agentops_audit_append (migration 0008), which spells it 1096107092.
AUDIT_LOCK_NAMESPACE = 0x41554454

# The fields the hash covers, in a fixed order. Never change this list without a migration
# that re-chains every tenant: the stored hashes were computed from it.
HASHED_FIELDS = (
    "tenant_id",
    "seq",
    "created_at",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "changes",
    "metadata",
    "prev_hash",
)


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "username", None) or str(actor)


def _json_roundtrip(value: Any) -> Any:
    """What a JSONField gives back after a save: tuples become lists, and so on."""
    return json.loads(json.dumps(value))


def _canonical_numbers(value: Any) -> Any:
    """Integral floats as ints: jsonb keeps ``1e+20`` as a numeric that reads back as an int."""
    if isinstance(value, float) and value.is_integer():
        # Through its shortest decimal form, as jsonb keeps it: past 2**53, int(value) is the
        # binary float's exact integer (3.784486138836865e16 -> ...648), jsonb's is ...650.
        return int(Decimal(repr(value)))
    if isinstance(value, dict):
        return {k: _canonical_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_numbers(v) for v in value]
    return value


def canonical_payload(event) -> bytes:
    """The bytes that are hashed: the event's ``HASHED_FIELDS`` as sorted, compact JSON.

    ``event`` is anything with those attributes (a model instance, a historical model in a
    migration). Timestamps are UTC ISO-8601 with microseconds, as PostgreSQL keeps them.
    """
    data = {name: getattr(event, name) for name in HASHED_FIELDS}
    data["created_at"] = data["created_at"].astimezone(UTC).isoformat(timespec="microseconds")
    data["changes"] = _canonical_numbers(data["changes"])
    data["metadata"] = _canonical_numbers(data["metadata"])
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(event) -> str:
    return hashlib.sha256(canonical_payload(event)).hexdigest()


# Events recorded inside ``batched()`` wait here (per thread / task) until the block ends.
_pending: ContextVar[list[AuditEvent] | None] = ContextVar("audit_pending", default=None)


def _statements(sql: str | Statements, params=()) -> Statements:
    return sql if isinstance(sql, Statements) else Statements((sql, list(params)))


class Rider:
    """Statements sent in the same round trip as an audit append, in front of it (the
    change and the event recording it, or the last writes of a transaction, together): one
    pipeline (``Statements``), each statement on its own. ``on_result(cursor)`` reads the
    first statement's result."""

    def __init__(self, statements: Statements, on_result=None):
        self.statements, self.on_result = statements, on_result
        self.sent = False

    def send_now(self) -> None:
        """Send it alone (nothing to ride with, or someone must see its effect now)."""
        if self.sent:
            return
        self.sent = True
        cursors = self.statements.execute()
        if self.on_result is not None:
            self.on_result(cursors[0])


# Statements that ride in front of the next append (``sent_with``, ``flush``, a batch's end).
_riders: ContextVar[list[Rider] | None] = ContextVar("audit_riders", default=None)
# The open batch's riders, sent with its append at its end (``at_batch_end``).
_batch_riders: ContextVar[list[Rider] | None] = ContextVar("audit_batch_riders", default=None)


# Records carried to the next append of their tenant (``carry``), inside ``carrying``.
_carried: ContextVar[list[tuple[Rider, AuditEvent]] | None] = ContextVar(
    "audit_carried", default=None
)


@contextmanager
def carrying() -> Iterator[None]:
    """A block (the engine's step) inside which ``carry`` holds a change and its event for the
    block's next append of the tenant, in whatever transaction that comes: the step's own
    checkpoint, usually. What no append took is written at the block's end, in a transaction
    of its own; nested blocks join the outer one."""
    if _carried.get() is not None:
        yield
        return
    token = _carried.set([])
    try:
        yield
    finally:
        left = _carried.get() or []
        _carried.reset(token)
        _write_carried(left)


def carry(sql: str | Statements, params=(), **event: Any) -> bool:
    """Inside ``carrying``: hold ``sql`` (the change) and the event ``record(**event)`` would
    write, to go in front of the tenant's next append (one round trip with it, in its
    transaction, chained before its events). False outside ``carrying``: nothing is held, the
    caller writes them now.

    Only for a change nothing reads before the block ends or its next append: a transaction
    that carried it and then rolls back takes it along (a failing step; its retry writes it
    again)."""
    held = _carried.get()
    if held is None:
        return False
    held.append((Rider(_statements(sql, params)), _new_event(**event)))
    return True


def carried_pending() -> bool:
    """Whether the open ``carrying`` block holds records no append has taken yet."""
    return bool(_carried.get())


def send_carried() -> None:
    """Write what the open ``carrying`` block holds now, in a transaction of its own (before
    reading it back, or before a step's failure is recorded)."""
    held = _carried.get()
    if held:
        taken = list(held)
        held.clear()
        _write_carried(taken)


def _write_carried(items: list[tuple[Rider, AuditEvent]]) -> None:
    if not items:
        return
    token = _carried.set(items)
    try:
        with transaction.atomic(savepoint=False):
            for tenant_id in sorted({event.tenant_id for _rider, event in items}):
                _append([], tenant_id=tenant_id)
    finally:
        _carried.reset(token)


def _take_carried(tenant_id: int) -> list[tuple[Rider, AuditEvent]]:
    held = _carried.get()
    if not held:
        return []
    mine = [item for item in held if item[1].tenant_id == tenant_id]
    if mine:
        held[:] = [item for item in held if item[1].tenant_id != tenant_id]
    return mine


def at_batch_end(sql: str | Statements, params=(), on_result=None) -> Rider | None:
    """Send ``sql`` (a statement and its ``params``, or ``Statements``) at the end of the open ``batched`` block, in the round trip of its audit
    append (alone if it has no events), inside its transaction. None when no batch is open
    (the caller sends it). ``Rider.send_now`` sends it earlier if something must see it."""
    riders = _batch_riders.get()
    if riders is None:
        return None
    rider = Rider(_statements(sql, params), on_result)
    riders.append(rider)
    return rider


def _send_riding(riders: list[Rider], events_by_tenant: list[list[AuditEvent]]) -> None:
    token = _riders.set(riders)
    try:
        for tenant_events in events_by_tenant:
            _append(tenant_events)
        for tenant_id in sorted({event.tenant_id for _rider, event in _carried.get() or ()}):
            _append([], tenant_id=tenant_id)  # carried records ride here too
    finally:
        _riders.reset(token)
    for rider in riders:
        rider.send_now()  # those that found no append to ride with


def flush(sql: str | Statements = "", params: list | tuple = (), on_result=None) -> None:
    """Inside ``batched``: append the batch's events so far now, with ``sql`` (optional: a
    statement and its ``params``, or ``Statements``) in front of them in the same round trip;
    later events still wait for the batch's end. ``on_result(cursor)`` reads ``sql``'s
    (first statement's) own result. Sent alone when no event is waiting."""
    events = _pending.get()
    if events is None:
        raise RuntimeError("audit.flush() needs an open audit.batched() block")
    taken = list(events)
    events.clear()
    riders = [Rider(_statements(sql, params), on_result)] if sql else []
    _send_riding(riders, _by_tenant(taken))


def _by_tenant(events: list[AuditEvent]) -> list[list[AuditEvent]]:
    by_tenant: dict[int, list[AuditEvent]] = {}
    for event in events:
        by_tenant.setdefault(event.tenant_id, []).append(event)
    return list(by_tenant.values())


@contextmanager
def sent_with(sql: str | Statements, params=()) -> Iterator[None]:
    """Send ``sql`` (a statement and its ``params``, or ``Statements``) in the same round
    trip as the block's first audit append, in front of it (the change and the event that
    records it: one round trip). Sent alone at the end of the block if nothing was
    appended; not sent if the block raises before that."""
    rider = Rider(_statements(sql, params))
    if _pending.get() is not None:  # a batch appends at its end: no ride, send it now
        rider.send_now()
        yield
        return
    token = _riders.set([rider])
    try:
        yield
    finally:
        _riders.reset(token)
    rider.send_now()  # (reached only when the block did not raise; no-op if it rode)


def _pieces(event: AuditEvent) -> tuple[str, str, str, str]:
    """``event``'s canonical JSON (``canonical_payload``) cut into four pieces around the three
    values the database fills in when it appends (created_at, prev_hash, seq; sorted keys put
    them in that order). Random marks stand in for them, so no content can be mistaken for
    one."""
    marks = {name: f"@{secrets.token_hex(16)}@" for name in ("created_at", "prev_hash", "seq")}
    data = {name: getattr(event, name) for name in HASHED_FIELDS if name not in marks}
    data["changes"] = _canonical_numbers(data["changes"])
    data["metadata"] = _canonical_numbers(data["metadata"])
    data.update(marks)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    p0, rest = text.split(marks["created_at"])  # inside its quotes: a string
    p1, rest = rest.split(marks["prev_hash"])  # a string too
    p2, p3 = rest.split(f'"{marks["seq"]}"')  # a number: its quotes go with the mark
    return p0, p1, p2, p3


def _append(events: list[AuditEvent], *, tenant_id: int | None = None) -> None:
    """Chain ``events`` (one tenant's, in order) onto the head and insert them, in one round
    trip: ``agentops_audit_append`` (migration 0008) takes the tenant's append lock, reads the
    head, stamps the time, hashes each event from its canonical pieces and inserts it. The
    tenant's carried records (``carry``) go first: their changes in front of the riders',
    their events before ``events``."""
    tenant_id = events[0].tenant_id if tenant_id is None else tenant_id
    carried = _take_carried(tenant_id)
    events = [event for _rider, event in carried] + list(events)
    if not events:
        return
    rows = []
    for event in events:
        p0, p1, p2, p3 = _pieces(event)
        rows.append(
            {
                "p0": p0,
                "p1": p1,
                "p2": p2,
                "p3": p3,
                "actor_id": event.actor_id,
                "actor_label": event.actor_label,
                "action": event.action,
                "target_type": event.target_type,
                "target_id": event.target_id,
                "target_repr": event.target_repr,
                "changes": event.changes,
                "metadata": event.metadata,
            }
        )
    # The riders' statements first, then the append: one pipeline, one round trip.
    riders = [rider for rider, _event in carried]
    riders += [r for r in (_riders.get() or ()) if not r.sent]
    statements = Statements()
    for rider in riders:
        statements.extend(rider.statements)
    statements.add(
        "SELECT event_id, event_seq, event_prev, event_hash, event_at "
        "FROM agentops_audit_append(%s::bigint, %s::jsonb)",
        [tenant_id, json.dumps(rows)],
    )
    cursors = statements.execute()
    at = 0
    for rider in riders:  # each rider's results on its first statement's cursor, in order
        rider.sent = True
        if rider.on_result is not None:
            rider.on_result(cursors[at])
        at += len(rider.statements)
    written = cursors[-1].fetchall()
    for event, (pk, seq, prev_hash, hash_, created_at) in zip(events, written, strict=True):
        event.pk, event.seq, event.prev_hash, event.hash = pk, seq, prev_hash, hash_
        event.created_at = created_at
        event._state.adding = False
        event._state.db = connection.alias


def record(
    *,
    tenant: Tenant,
    actor,
    action: str,
    target_type: str,
    target_id: Any,
    target_repr: str = "",
    changes: dict | None = None,
    metadata: dict | None = None,
) -> AuditEvent:
    """Append one event to ``tenant``'s chain, in the caller's transaction.

    Inside ``batched()`` the event is appended when the block ends; inside any other
    transaction, just before it commits (its ``pk`` and ``seq`` are set then); in autocommit,
    now. Inside ``sent_with`` it is appended now, with the block's statement.
    """
    event = _new_event(
        tenant=tenant,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        changes=changes,
        metadata=metadata,
    )
    pending = _pending.get()
    if pending is not None:
        pending.append(event)
        return event
    if _riders.get() is None and _commits_later(connection):
        # Appended just before the caller's transaction commits: the tenant's chain stays
        # locked from the append to the commit, so the rest of the transaction runs unlocked
        # (a ticket opened with its agent's run held it ~13 ms, while the workers waited).
        connection.before_commit(_append_at_commit, event)
        return event
    # Joins the caller's transaction (no savepoint); opens one when called in autocommit, so
    # the advisory lock is held until the event is committed.
    with transaction.atomic(savepoint=False):
        _append([event])
    return event


def _new_event(**fields: Any) -> AuditEvent:
    """The unsaved event ``record(**fields)`` appends (the same keyword arguments)."""
    actor = fields["actor"]
    return AuditEvent(
        tenant=fields["tenant"],
        actor_id=getattr(actor, "pk", None),
        actor_label=actor_label(actor)[:150],
        action=fields["action"],
        target_type=fields["target_type"],
        target_id=str(fields["target_id"]),
        target_repr=fields.get("target_repr", "")[:200],
        changes=_json_roundtrip(fields.get("changes") or {}),
        metadata=_json_roundtrip(fields.get("metadata") or {}),
    )


def _commits_later(conn) -> bool:
    """Whether ``conn`` is in a transaction that will commit later, and can append then: our
    backend (``before_commit``), not inside a test case's transaction (which never commits:
    there events are appended at once, as the statements of the same transaction they are)."""
    return (
        conn.in_atomic_block
        and hasattr(conn, "before_commit")
        and not any(getattr(block, "_from_testcase", False) for block in conn.atomic_blocks)
    )


def _append_at_commit(events: list[AuditEvent]) -> None:
    """``before_commit``: the transaction's deferred events, one append per tenant (in tenant
    order, so two transactions never take two tenants' chain locks in opposite orders)."""
    token = _riders.set(None)  # nothing rides with these: sent_with blocks have ended
    try:
        for tenant_events in sorted(_by_tenant(events), key=lambda evs: evs[0].tenant_id):
            _append(tenant_events)
    finally:
        _riders.reset(token)


@contextmanager
def batched() -> Iterator[None]:
    """One transaction whose audit events are appended together at its end.

    The agent pipeline writes several events per transaction (ticket updated, triaged,
    status changed …): batched, they cost one lock, one head read and one INSERT instead of
    two round trips each. The events are written inside the same transaction as the changes
    they describe (just before it commits), so they commit or roll back together. Nested
    use joins the outer batch.
    """
    if _pending.get() is not None:
        with transaction.atomic():
            yield
        return
    token = _pending.set([])
    riders_token = _batch_riders.set([])
    try:
        with transaction.atomic():
            yield
            events, riders = _pending.get(), _batch_riders.get()
            # The batch ends before the commit: work that runs on commit (an eager task, say)
            # records its own events, not into a list already written.
            _pending.reset(token)
            _batch_riders.reset(riders_token)
            token = riders_token = None
            _send_riding(riders, _by_tenant(events))
    finally:
        if token is not None:
            _pending.reset(token)
        if riders_token is not None:
            _batch_riders.reset(riders_token)


# --- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    """The first event at which a tenant's chain does not hold, and why."""

    seq: int
    event_id: int
    kind: str  # "deleted" | "reordered" | "modified" | "truncated" | "rewritten"
    detail: str

    def __str__(self) -> str:
        where = f"event #{self.seq}" + (f" (id {self.event_id})" if self.event_id else "")
        return f"{where}: {self.kind} — {self.detail}"


@dataclass(frozen=True)
class ChainReport:
    tenant_slug: str
    count: int
    last_seq: int
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def check_events(events: Iterable) -> tuple[int, int, ChainBreak | None]:
    """Walk events in ``seq`` order; return (count, last seq, first break or None).

    Checked in this order, so each kind of tampering is named for what it is: a gap in
    ``seq`` (an event was deleted), a ``prev_hash`` that is not the previous event's hash
    (events were moved or swapped), a stored hash that does not match the recomputed one
    (the event's content was modified).
    """
    count, expected_seq, prev_hash = 0, 1, GENESIS_HASH
    for event in events:
        count += 1
        if event.seq != expected_seq:
            kind = "deleted" if event.seq > expected_seq else "reordered"
            detail = f"expected #{expected_seq} next, found #{event.seq}" + (
                " (events missing)" if kind == "deleted" else ""
            )
            return count, event.seq, ChainBreak(event.seq, event.pk, kind, detail)
        if event.prev_hash != prev_hash:
            return (
                count,
                event.seq,
                ChainBreak(
                    event.seq,
                    event.pk,
                    "reordered",
                    "prev_hash does not match the hash of the event before it",
                ),
            )
        if compute_hash(event) != event.hash:
            return (
                count,
                event.seq,
                ChainBreak(
                    event.seq,
                    event.pk,
                    "modified",
                    "stored hash does not match the hash of the event's content",
                ),
            )
        expected_seq, prev_hash = event.seq + 1, event.hash
    return count, expected_seq - 1, None


def verify_chain(tenant: Tenant, *, chunk_size: int = 2000) -> ChainReport:
    """Recompute ``tenant``'s whole chain from the database (streamed, constant memory)."""
    events = AuditEvent.objects.for_tenant(tenant).order_by("seq").iterator(chunk_size=chunk_size)
    count, last_seq, broken = check_events(events)
    if broken is None:
        # A shorter chain still verifies: compare its head with the latest signed checkpoint
        # kept outside the database (agentops.audit_witness).
        from agentops.audit_witness import check_head

        disagreement = check_head(tenant.pk, last_seq)
        if disagreement is not None:
            kind, detail = disagreement
            broken = ChainBreak(last_seq + 1 if kind == "truncated" else last_seq, 0, kind, detail)
    return ChainReport(tenant.slug, count, last_seq, broken)
