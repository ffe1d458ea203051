"""Diagnose before acting (issue 13): what the state says, and how wide the fault is.

``scope`` decides, in code and whatever the model said, whether a ticket describes a fault
many people share — several people, a room, a floor, a site, "everyone" in the text, or other
requesters' open tickets on the same fault within the last hours. Such a ticket becomes an
incident for people; no device fix runs on the one laptop of whoever wrote first.

``gather`` reads the state the plan should start from: the account of the person the ticket
is about (locked? failed sign-ins? MFA?) and their managed devices (VPN profile current?
adapter up?), as findings in plain words. The plan prompt carries them; the run page shows
them as the Diagnose step.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from agentops.prepared import prepared

log = logging.getLogger(__name__)

# A fault many share, in the words people use (several languages). Lower-cased text.
MANY_PEOPLE_PATTERNS = (
    r"\b(?:everyone|everybody|all of us|all users|all staff|the whole (?:team|office|floor|"
    r"building|company|department|site)|entire (?:team|office|floor|building|company|site))\b",
    r"\b(?:nobody|no one|no-one|none of us)\s+(?:can|can't|could|is able|are able|has|have|"
    r"here|in (?:the|our))\b",
    r"\b(?:several|many|multiple|lots of|a lot of|a few|[2-9]|\d{2,}|two|three|four|five|ten)\s+"
    r"(?:people|users|colleagues|of us|staff|employees|persons)\b",
    r"\b(?:we all|we are all|we're all|all the (?:laptops|computers|machines|users|people|"
    r"printers))\b",
    r"\b(?:meeting|conference|board|training|class)\s?room\b",
    r"\b(?:room|floor|building|wing|site|campus|branch|warehouse)\s+[a-z]?\d+[a-z]?\b",
    r"\b(?:\d+(?:st|nd|rd|th)|ground|first|second|third|fourth|fifth|top)\s+floor\b",
    r"\b(?:site-?wide|office-?wide|company-?wide|building-?wide)\b",
    # German, French, Spanish, Dutch.
    r"\b(?:alle (?:kollegen|mitarbeiter|benutzer)|niemand (?:kann|im)|keiner kann|"
    r"das ganze (?:team|büro)|im (?:besprechungsraum|stockwerk))\b",
    r"\b(?:tout le monde|personne ne peut|toute l'équipe|tous les (?:utilisateurs|collègues)|"
    r"salle de (?:réunion|conférence)|[àa] l'[ée]tage)\b",
    r"\b(?:todos (?:los usuarios|nosotros)|nadie puede|toda la oficina|sala de reuniones|"
    r"en la planta)\b",
    r"\b(?:iedereen|niemand kan|de hele afdeling|vergaderruimte|op de \w+ verdieping)\b",
)
# The requester says the fault is theirs alone: other reports then do not make it shared.
ONLY_ME_PATTERNS = (
    r"\b(?:other people|others|everyone else|everybody else|my colleagues|colleagues)\b"
    r"[^.!?\n]{0,30}\b(?:are|is|seem|work)\w*\s+(?:fine|ok|okay|working)\b",
    r"\b(?:only|just) (?:me|mine|my (?:laptop|pc|computer|device|phone|machine))\b",
    r"\b(?:nur bei mir|seulement (?:moi|chez moi)|solo (?:a mí|yo)|alleen bij mij)\b",
)
SIMILAR_WINDOW = timedelta(hours=4)
SIMILAR_REQUESTERS = 2  # other people reporting the same fault make it an incident
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "from",
        "that",
        "this",
        "have",
        "has",
        "not",
        "cannot",
        "can't",
        "can't",
        "does",
        "doesn't",
        "dont",
        "don't",
        "my",
        "our",
        "your",
        "its",
        "are",
        "was",
        "were",
        "will",
        "would",
        "please",
        "help",
        "issue",
        "problem",
        "since",
        "today",
        "again",
        "working",
        "work",
        "when",
        "what",
        "there",
        "their",
        "them",
        "they",
        "into",
        "just",
        "still",
        "some",
    ]
)


# Categories whose faults people share (a network, a printer, a mail service). Accounts and
# software requests are each person's own: several at once are not one fault.
SHARED_FAULT_CATEGORIES = frozenset(
    {"network", "hardware", "email", "application", "infrastructure"}
)


@dataclass
class Scope:
    """How wide the fault is. ``wide``: the text says many people share it (decided at once);
    ``crowd``: other people reported the same fault lately (decided after Diagnose, when the
    requester's own state shows no fault of its own)."""

    wide: bool
    reasons: list[str] = field(default_factory=list)
    similar: list[str] = field(default_factory=list)  # other open tickets on the same fault
    crowd: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "wide": self.wide,
            "crowd": self.crowd,
            "reasons": self.reasons,
            "similar": self.similar,
        }


def scope(ticket, text: str, *, category: str = "") -> Scope:
    """Whether ``ticket`` (its redacted ``text``) describes a fault many people share."""
    reasons = []
    lowered = (text or "")[:20000].lower()
    for pattern in MANY_PEOPLE_PATTERNS:
        match = re.search(pattern, lowered)
        if match:
            reasons.append(f"the ticket says “{match.group(0)}”")
            break
    wide = bool(reasons)
    similar = _similar_open_tickets(ticket, category=category) if category else []
    people = {email for _number, email in similar}
    only_me = any(re.search(p, lowered) for p in ONLY_ME_PATTERNS)
    crowd = (
        category in SHARED_FAULT_CATEGORIES and len(people) >= SIMILAR_REQUESTERS and not only_me
    )
    if crowd:
        reasons.append(
            f"{len(people)} other people reported the same fault in the last "
            f"{int(SIMILAR_WINDOW.total_seconds() // 3600)} hours"
        )
    return Scope(wide=wide, reasons=reasons, similar=[n for n, _ in similar], crowd=crowd)


def _keywords(title: str) -> list[str]:
    words = [w for w in re.findall(r"[a-z0-9]{4,}", (title or "").lower()) if w not in _STOP]
    return list(dict.fromkeys(words))[:6]


def _similar_query(tenant_id, tsquery, since, ticket_id, requester_email):
    from django.contrib.postgres.search import SearchQuery

    from incidents.models import OPEN_STATUSES, Kind, Ticket

    return (
        Ticket.objects.for_tenant(tenant_id)
        .filter(
            kind=Kind.REQUEST,
            status__in=sorted(OPEN_STATUSES),
            created_at__gte=since,
            search_vector=SearchQuery(tsquery, search_type="raw", config="english"),
        )
        .exclude(pk=ticket_id)
        .exclude(requester_email=requester_email)
    )


# Compiled once per process (agentops.prepared): Diagnose asks on every run.
@prepared
def _similar(tenant_id: int, tsquery: str, since: datetime, ticket_id: int, requester_email: str):
    return _similar_query(tenant_id, tsquery, since, ticket_id, requester_email).values_list(
        "number", "requester_email"
    )[:20]


@prepared
def _similar_in_category(
    tenant_id: int,
    tsquery: str,
    since: datetime,
    ticket_id: int,
    requester_email: str,
    category: str,
):
    return (
        _similar_query(tenant_id, tsquery, since, ticket_id, requester_email)
        .filter(category__in=[category, ""])
        .values_list("number", "requester_email")[:20]
    )


def _similar_open_tickets(ticket, *, category: str) -> list[tuple[str, str]]:
    """Other requesters' open tickets of the last hours sharing two words of this title."""
    words = _keywords(ticket.title)
    if len(words) < 2:
        return []
    pairs = [f"({a} & {b})" for i, a in enumerate(words) for b in words[i + 1 :]]
    since = timezone.now() - SIMILAR_WINDOW
    try:
        if category:
            return _similar_in_category(
                ticket.tenant_id,
                " | ".join(pairs),
                since,
                ticket.pk,
                ticket.requester_email,
                category,
            )
        return _similar(
            ticket.tenant_id, " | ".join(pairs), since, ticket.pk, ticket.requester_email
        )
    except Exception:  # a search problem never stops the pipeline; the text check still ran
        log.warning("similar-ticket search failed for %s", ticket.number, exc_info=True)
        return []


# --------------------------------------------------------------------------- the state


def gather(tenant, email: str) -> dict[str, Any]:
    """The account and devices of ``email`` as the connectors show them, with findings."""
    from agents.connectors.base import get_connector

    findings: list[str] = []
    account: dict[str, Any] | None = None
    devices: list[dict[str, Any]] = []
    if not email:
        return {"account": None, "devices": [], "findings": ["No requester address on record."]}
    try:
        account = get_connector("directory", tenant).get_user(email)
    except Exception:
        log.warning("directory unreadable while diagnosing", exc_info=True)
    try:
        devices = list(get_connector("endpoint", tenant).list_devices(email))[:5]
    except Exception:
        log.warning("endpoint management unreadable while diagnosing", exc_info=True)
    if account is None:
        findings.append(f"No directory account {email}.")
    else:
        findings.append(_account_line(account))
    for device in devices:
        findings.append(_device_line(device))
    if not devices:
        findings.append("No managed device on record.")
    return {
        "account": _slim_account(account),
        "devices": devices,
        "findings": findings,
        "own_fault": _own_fault(account, devices),
    }


def _own_fault(account: dict[str, Any] | None, devices: list[dict[str, Any]]) -> bool:
    """Whether the person's own account or devices show a fault a tool could fix."""
    if account is not None and (account.get("locked") or account.get("disabled")):
        return True
    return any(
        d.get("adapter_state") != "up"
        or d.get("vpn_profile_version") != d.get("latest_vpn_profile_version")
        for d in devices
    )


def _slim_account(account: dict[str, Any] | None) -> dict[str, Any] | None:
    if account is None:
        return None
    keep = ("user_email", "locked", "failed_login_attempts", "mfa_enabled", "mfa_method")
    return {k: account.get(k) for k in keep}


def _account_line(account: dict[str, Any]) -> str:
    attempts = account.get("failed_login_attempts") or 0
    state = "locked" if account.get("locked") else "not locked"
    mfa = f"MFA {account.get('mfa_method')}" if account.get("mfa_enabled") else "no MFA"
    disabled = ", disabled" if account.get("disabled") else ""
    return (
        f"Account {account.get('user_email')}: {state}, {attempts} failed sign-in "
        f"attempt{'s' if attempts != 1 else ''}, {mfa}{disabled}."
    )


def _device_line(device: dict[str, Any]) -> str:
    current, latest = device.get("vpn_profile_version"), device.get("latest_vpn_profile_version")
    profile = "current" if current == latest else f"outdated (v{current}, current v{latest})"
    return (
        f"Device {device.get('device_id')}: VPN profile {profile}, VPN "
        f"{device.get('vpn_status')}, network adapter {device.get('adapter_state')}."
    )


def prompt_block(diagnosis: dict[str, Any], scope_: dict[str, Any] | None) -> str:
    """The findings for the plan prompt, in a ``<context>`` block (state read from the
    connectors, not from the ticket; the offline model does not take actions from it)."""
    lines = list(diagnosis.get("findings") or [])
    if scope_ and scope_.get("similar"):
        lines.append("Other open tickets on the same fault: " + ", ".join(scope_["similar"]))
    if not lines:
        return ""
    body = "\n".join(f"- {line}" for line in lines)
    return (
        '\n\n<context kind="diagnosis">\nWhat the directory and device management show now '
        "(propose only a fix whose premise holds here):\n"
        f"{body}\n</context>"
    )
