"""Requester notification rules: what a requester is told about their own tickets, and when.

Three events reach the requester: the status changed, the service desk wrote a public reply,
the desk needs their confirmation ("did this solve it?"). Each is a bell notification at once
and, unless they chose the console only, a line in an e-mail. The e-mail waits
``REQUESTER_DIGEST_SECONDS`` after the first change of a burst, then carries every change made
meanwhile: five changes in two minutes are one message, not five.

Nobody is told about their own action, internal notes are never news, and the text is the
requester's view (plain statuses, no queue moves or agent internals).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from incidents.portal.models import EmailChoice, NotificationPreference, RequesterUpdate, UpdateKind
from incidents.portal.plain import plain_status

log = logging.getLogger(__name__)

REPLY_CHARS = 500
HEADLINES = {
    UpdateKind.STATUS: "{number} is now: {status}",
    UpdateKind.REPLY: "New reply on {number}",
    UpdateKind.CONFIRM: "{number}: did this solve it?",
}


# Updates held back by ``grouped`` (None: tell each at once).
_held: ContextVar[list | None] = ContextVar("requester_updates_held", default=None)


@contextmanager
def grouped() -> Iterator[None]:
    """One change told once: the updates a block makes to a requester's ticket (the agent
    resolves it and writes how) become one bell notification and one e-mail line: the status
    change's headline, then every text in order. Sent at the end of the block, inside the caller's
    transaction; nothing is sent if the block raises. Nested blocks join the outer one."""
    if _held.get() is not None:
        yield
        return
    held: list = []
    token = _held.set(held)
    riding: list = []
    riding_token = _riding.set(riding)
    try:
        yield
        _flush(held, at_batch_end=True)  # in the audit batch's last round trip, if one is open
    finally:
        _held.reset(token)
        _riding.reset(riding_token)


def _flush(held: list, *, at_batch_end: bool = False) -> None:
    merged: dict[int, tuple] = {}
    # A status change leads (its headline names the new status), the words follow in order.
    for ticket, kind, text in sorted(held, key=lambda u: u[1] != UpdateKind.STATUS):
        merged.setdefault(ticket.pk, (ticket, kind, []))[2].append(text)
    for ticket, kind, texts in merged.values():
        _send(ticket=ticket, kind=kind, text="\n\n".join(texts), at_batch_end=at_batch_end)
    held.clear()


# --------------------------------------------------------------------------- preferences


def preference_for(tenant, user) -> str:
    row = NotificationPreference.objects.for_tenant(tenant).filter(user=user).first()
    return row.email if row else EmailChoice.GROUPED


def preference_set(*, tenant, user, email: str) -> NotificationPreference:
    from django.core.exceptions import ValidationError

    if email not in EmailChoice.values:
        raise ValidationError({"email": "Choose one of the options."})
    row, _ = NotificationPreference.objects.for_tenant(tenant).update_or_create(
        tenant=tenant, user=user, defaults={"email": email, "updated_at": timezone.now()}
    )
    return row


# --------------------------------------------------------------------------- the events


def on_status_changed(*, ticket, old: str, new: str, actor) -> None:
    if old == new:
        return
    text = f"Your request is now: {plain_status(ticket)}."
    if new in ("resolved",) and ticket.resolution_notes:
        text += f"\n\n{ticket.resolution_notes[:REPLY_CHARS]}"
    _tell(ticket=ticket, kind=UpdateKind.STATUS, text=text, actor=actor)


def on_public_reply(*, comment) -> None:
    """A public comment on the ticket; internal notes and the requester's own are no news."""
    if comment.is_internal:
        return
    who = comment.author_label or "The service desk"
    body = comment.body if len(comment.body) <= REPLY_CHARS else comment.body[:REPLY_CHARS] + "…"
    _tell(
        ticket=comment.ticket,
        kind=UpdateKind.REPLY,
        text=f"{who} wrote:\n{body}",
        actor=comment.author,
    )


def on_confirmation_needed(*, ticket, text: str = "", actor=None) -> None:
    """The desk asks the requester to confirm (e.g. an answer: did this solve it?)."""
    ask = "Did this solve it? Open the request and answer yes or no."
    _tell(
        ticket=ticket,
        kind=UpdateKind.CONFIRM,
        text=(text.strip() + "\n\n" + ask).strip(),
        actor=actor,
    )


def _recipient(ticket, actor):
    from agentops.models import Membership

    user = ticket.requester
    if user is None or not user.is_active:
        return None
    if actor is not None and getattr(actor, "pk", None) == user.pk:
        return None  # their own action
    if not Membership.objects.filter(tenant=ticket.tenant, user=user).exists():
        return None
    return user


def _tell(*, ticket, kind: str, text: str, actor) -> None:
    if ticket.requester_id is None:
        return
    if actor is not None and getattr(actor, "pk", None) == ticket.requester_id:
        return  # their own action
    held = _held.get()
    if kind == UpdateKind.CONFIRM:
        if held:  # the question may replace a reply's e-mail line: store the reply first
            _flush(held)
        for rider in _riding.get():
            rider.send_now()
        _tell_confirm(ticket=ticket, text=text, actor=actor)
        return
    if held is not None:
        held.append((ticket, kind, text))
        return
    _send(ticket=ticket, kind=kind, text=text)


def _send(*, ticket, kind: str, text: str, at_batch_end: bool = False) -> None:
    """Store one update. ``at_batch_end``: in the open audit batch's last round trip (the
    transaction's audit append), not one of its own."""
    from agentops import audit, notifications

    tenant_id, user_id = ticket.tenant_id, ticket.requester_id

    def stored(cursor) -> None:
        told, queued, burst_open = cursor.fetchone()
        # The EXISTS reads the snapshot from before this statement's own insert.
        if told:
            notifications.forget_unread(tenant_id, user_id)
        if queued and not burst_open:
            # The first change of a burst schedules the one e-mail; later ones ride along.
            delay = settings.REQUESTER_DIGEST_SECONDS
            # robust: a broker outage must not fail the step whose change committed; the beat
            # (incidents.portal.tasks.send_overdue_digests) sends the digest later.
            transaction.on_commit(lambda: _schedule(tenant_id, user_id, delay), robust=True)

    sql, params = _update_statement(ticket=ticket, kind=kind, text=text)
    if at_batch_end:
        rider = audit.at_batch_end(sql, params, on_result=stored)
        if rider is not None:
            _riding.get().append(rider)
            return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        stored(cursor)


# Updates waiting for the audit batch's end; a confirmation question sends them first.
_riding: ContextVar[list] = ContextVar("requester_updates_riding", default=[])  # noqa: B039


def _update_statement(*, ticket, kind: str, text: str) -> tuple[str, list]:
    """The bell notification and the e-mail line of one update, in one statement (an agent's
    step tells the requester several things; six round trips each were a tenth of a run's
    SQL). The requester must be an active member of the ticket's tenant; the e-mail line
    only when they have an address and did not choose the console only. Its row: (the bell
    rang, an e-mail line was queued, a burst was already waiting before this one)."""
    from django.contrib.auth import get_user_model

    from agentops.models import Membership, Notification

    headline = HEADLINES[kind].format(number=ticket.number, status=plain_status(ticket))
    params = {
        "tenant": ticket.tenant_id,
        "user": ticket.requester_id,
        "ticket": ticket.pk,
        "kind": kind,
        "verb": f"request.{kind}",
        "title": headline[:200],
        "body": text,
        "link": reverse("incidents:ticket-detail", args=[ticket.number])[:500],
        "now": timezone.now(),
        "grouped": EmailChoice.GROUPED,
        "off": EmailChoice.OFF,
    }
    tables = {
        "user": get_user_model()._meta.db_table,
        "member": Membership._meta.db_table,
        "pref": NotificationPreference._meta.db_table,
        "bell": Notification._meta.db_table,
        "update": RequesterUpdate._meta.db_table,
    }
    sql = """
        WITH rcpt AS (
            SELECT u.id, u.email <> '' AS has_email,
                   COALESCE((SELECT p.email FROM {pref} p
                             WHERE p.tenant_id = %(tenant)s AND p.user_id = u.id),
                            %(grouped)s) AS pref
            FROM {user} u
            WHERE u.id = %(user)s AND u.is_active
              AND EXISTS (SELECT 1 FROM {member} m
                          WHERE m.tenant_id = %(tenant)s AND m.user_id = u.id)
        ), bell AS (
            INSERT INTO {bell} (tenant_id, user_id, verb, title, body, link, read_at, created_at)
            SELECT %(tenant)s, id, %(verb)s, %(title)s, %(body)s, %(link)s, NULL, %(now)s
            FROM rcpt
            RETURNING 1
        ), line AS (
            INSERT INTO {update} (tenant_id, user_id, ticket_id, kind, text, created_at, emailed_at)
            SELECT %(tenant)s, id, %(ticket)s, %(kind)s, %(body)s, %(now)s, NULL
            FROM rcpt WHERE has_email AND pref <> %(off)s
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM bell), (SELECT count(*) FROM line),
               EXISTS (SELECT 1 FROM {update} r WHERE r.tenant_id = %(tenant)s
                       AND r.user_id = %(user)s AND r.emailed_at IS NULL)
    """.format(**tables)  # noqa: S608 (table names from the models, values as parameters)
    # Positional placeholders: the statement may share a round trip with others.
    names = re.findall(r"%\((\w+)\)s", sql)
    return re.sub(r"%\((\w+)\)s", "%s", sql), [params[name] for name in names]


def _tell_confirm(*, ticket, text: str, actor) -> None:
    """The confirmation question: its e-mail line may replace the reply that asked it."""
    from agentops import notifications

    user = _recipient(ticket, actor)
    if user is None:
        return
    tenant = ticket.tenant
    headline = HEADLINES[UpdateKind.CONFIRM].format(
        number=ticket.number, status=plain_status(ticket)
    )
    link = reverse("incidents:ticket-detail", args=[ticket.number])
    notifications.notify(
        tenant=tenant,
        user=user,
        verb=f"request.{UpdateKind.CONFIRM}",
        title=headline,
        body=text,
        link=link,
        email=False,
    )
    if not user.email or preference_for(tenant, user) == EmailChoice.OFF:
        return
    pending = RequesterUpdate.objects.for_tenant(tenant).filter(user=user, emailed_at__isnull=True)
    if _ask_on_the_reply(pending, ticket, text):
        return
    opens_burst = not pending.exists()
    RequesterUpdate.objects.create(
        tenant=tenant, user=user, ticket=ticket, kind=UpdateKind.CONFIRM, text=text
    )
    if opens_burst:
        delay = settings.REQUESTER_DIGEST_SECONDS
        tenant_id, user_id = tenant.pk, user.pk
        transaction.on_commit(lambda: _schedule(tenant_id, user_id, delay), robust=True)


def _ask_on_the_reply(pending, ticket, text: str) -> bool:
    """The desk's reply that asks for the confirmation is usually a public comment too: the
    e-mail says it once, as the question (the reply's line becomes the confirmation's)."""
    said = text.split("\n\n")[0].strip()
    reply = (
        pending.filter(ticket=ticket, kind=UpdateKind.REPLY).order_by("-created_at", "-id").first()
    )
    if not said or reply is None or said not in reply.text:
        return False
    reply.kind, reply.text = UpdateKind.CONFIRM, text
    reply.save(update_fields=["kind", "text"])
    return True


def _schedule(tenant_id: int, user_id: int, delay: int) -> None:
    from incidents.portal.tasks import send_requester_digest

    send_requester_digest.apply_async(args=[tenant_id, user_id], countdown=delay)


# --------------------------------------------------------------------------- the digest


@transaction.atomic
def digest_send(*, tenant, user) -> int:
    """E-mail the user's unsent updates as one message; returns how many it carried. The rows
    are claimed under lock (a second task at once skips them) and marked before commit; the
    mail goes out inside the transaction, so a mail failure leaves them to the retry."""
    rows = list(
        RequesterUpdate.objects.for_tenant(tenant)
        .filter(user=user, emailed_at__isnull=True)
        .select_for_update(skip_locked=True)
        .select_related("ticket")
        .order_by("created_at", "id")
    )
    if not rows or not user.email or not user.is_active:
        return 0
    subject, body = compose(rows)
    send_mail(
        subject=subject,
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
    RequesterUpdate.objects.for_tenant(tenant).filter(pk__in=[r.pk for r in rows]).update(
        emailed_at=timezone.now()
    )
    return len(rows)


def compose(rows: list[RequesterUpdate]) -> tuple[str, str]:
    """Subject and plain-text body: one section per ticket, its changes in order (the same
    words twice in a row are said once)."""
    base = getattr(settings, "CONSOLE_BASE_URL", "")
    by_ticket: dict[int, list[RequesterUpdate]] = {}
    for row in rows:
        by_ticket.setdefault(row.ticket_id, []).append(row)
    if len(rows) == 1:
        only = rows[0]
        subject = HEADLINES[only.kind].format(
            number=only.ticket.number, status=plain_status(only.ticket)
        )
    elif len(by_ticket) == 1:
        subject = f"{len(rows)} updates on {rows[0].ticket.number}: {rows[0].ticket.title}"
    else:
        subject = f"{len(rows)} updates on {len(by_ticket)} of your requests"
    sections = []
    for updates in by_ticket.values():
        ticket = updates[0].ticket
        lines = [f"{ticket.number}: {ticket.title}", f"Now: {plain_status(ticket)}", ""]
        said = None
        for update in updates:
            if update.text == said:
                continue
            said = update.text
            lines.append(f"- {timezone.localtime(update.created_at):%H:%M} {update.text}")
        link = reverse("incidents:ticket-detail", args=[ticket.number])
        lines += ["", f"Open it: {base}{link}"]
        sections.append("\n".join(lines))
    footer = (
        "\n\nYou get one message for several changes made within a few minutes. Choose how "
        f"you hear from us: {base}{reverse('portal:preferences')}"
    )
    return f"[AgentOps] {subject}"[:200], "\n\n".join(sections) + footer
