"""Is a ticket about someone other than its requester? (issue 13)

"Please unlock Bob's account", "my colleague cannot sign in", "reset the password of
ana@example.com", "für meinen Kollegen", "pour ma collègue": the requester asks on someone
else's behalf. The service-desk pipeline must not turn that into an action on the requester,
and may act on the named person only with the approval of someone who is neither of them
(``agents.policy``). Recognised in code, from three kinds of evidence:

1. another e-mail address in the text;
2. a person of the tenant named in the text (a possessive "Bob's", or "for / on behalf of /
   für / pour / para / voor" + a name), looked up among the tenant's members by first name,
   full name or the local part of their address;
3. a phrase that points at someone else without naming them ("my colleague", "a new
   starter", "mon collègue", "mi compañero", "mijn collega", "meine Kollegin" …).

The requester's own name and address never count. Only the ticket's text is read; it is
untrusted, so what is found here can only make the policy stricter, never looser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

# Someone else, unnamed: (language-neutral) regular expressions, lower-cased text.
_RELATION = (
    r"colleague|co-?worker|teammate|team member|assistant|intern|contractor|"
    r"new (?:starter|hire|joiner|employee)|direct report"
)
# What a person owns that a request acts on.
_THINGS = (
    r"account|password|laptop|login|log-in|mailbox|inbox|access|device|computer|pc|phone|"
    r"e-?mail|mfa|vpn|profile|pin"
)
# (Compiled at import: the worker imports this module before it forks, agentops.celery.)
OTHER_PERSON_PATTERNS = tuple(
    re.compile(pattern)
    for pattern in (
        rf"\b(?:my|our|a|one of (?:my|our))\s+(?:{_RELATION})s?\b",
        rf"\b(?:his|her)\s+(?:{_THINGS})\b",
        r"\bon (?:behalf|the behalf) of\b",
        r"\b(?:he|she) (?:is|has been|got|cannot|can't|can not) (?:locked|unable)\b",
        # German, French, Spanish, Dutch, Italian, Portuguese.
        r"\b(?:mein(?:e|em|en)?|unser(?:e|em|en)?)\s+(?:kolleg(?:e|in|en)|mitarbeiter(?:in)?|chef(?:in)?)\b",
        r"\bim namen von\b|\bfür (?:herrn|frau)\b",
        r"\b(?:mon|ma|mes|notre|un|une)\s+(?:coll[eè]gue|collaborat(?:eur|rice)|manager|chef|stagiaire)s?\b",
        r"\bde la part de\b|\bau nom de\b|\bson (?:compte|mot de passe|ordinateur)\b",
        r"\b(?:mi|mis|nuestro|nuestra)\s+(?:compa[ñn]er[oa]|colega|jef[ea]|emplead[oa])s?\b",
        r"\ben nombre de\b|\bsu (?:cuenta|contrase[ñn]a)\b",
        r"\b(?:mijn|onze)\s+(?:collega|manager|medewerker)s?\b|\bnamens\b",
        r"\b(?:il mio|la mia|un mio|una mia)\s+(?:collega|responsabile)\b|\bper conto di\b",
        r"\b(?:meu|minha)\s+(?:colega|chefe)\b|\bem nome de\b",
    )
)
# Words that introduce the person a request is for, followed by a name.
FOR_NAME = re.compile(
    r"(?:for|on behalf of|f[üu]r|pour|para|voor|per|de la part de)\s+"
    r"(?P<name>[A-ZÀ-Ý][\w'-]+(?:\s+[A-ZÀ-Ý][\w'-]+)?)"
)
POSSESSIVE_NAME = re.compile(
    r"(?P<name>[A-ZÀ-Ý][\w-]+(?:\s+[A-ZÀ-Ý][\w-]+)?)(?:'s|’s|s')\s+(?:\w+\s+)?(?:"
    + _THINGS
    + r")\b"
)
# Capitalised words that look like names but are not people.
NOT_NAMES = frozenset(
    [
        "i",
        "it",
        "the",
        "a",
        "an",
        "my",
        "our",
        "your",
        "this",
        "that",
        "please",
        "hi",
        "hello",
        "dear",
        "thanks",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "vpn",
        "wifi",
        "wi-fi",
        "outlook",
        "teams",
        "windows",
        "mac",
        "office",
        "excel",
        "zoom",
        "slack",
        "sap",
        "jira",
        "it",
        "hr",
        "ceo",
        "cfo",
        "today",
        "tomorrow",
        "everyone",
    ]
)


@dataclass(frozen=True)
class ThirdParty:
    """Whom the ticket is for, when not its requester. ``email`` only when the tenant's
    directory (or the text itself) gives an address; ``phrase`` is the evidence in the text."""

    who: str
    email: str = ""
    phrase: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"who": self.who, "email": self.email, "phrase": self.phrase}


def detect(tenant, text: str, *, requester_email: str) -> ThirdParty | None:
    """The third party a ticket is about, or None when it reads as the requester's own."""
    requester = (requester_email or "").strip().lower()
    text = (text or "")[:5000]
    for match in EMAIL_RE.finditer(text):
        address = match.group(0).lower()
        if address != requester:
            member = _member_by_email(tenant, address)
            return ThirdParty(who=member[1] if member else address, email=address, phrase=address)
    for pattern in (POSSESSIVE_NAME, FOR_NAME):
        for match in pattern.finditer(text):
            name = match.group("name").strip()
            if name.lower() in NOT_NAMES or name.split()[0].lower() in NOT_NAMES:
                continue
            email, label = _member_by_name(tenant, name)
            if email == requester or _names_requester(name, requester):
                continue
            if email or pattern is POSSESSIVE_NAME:
                return ThirdParty(who=label or name, email=email, phrase=match.group(0).strip())
    lowered = text.lower()
    for pattern in OTHER_PERSON_PATTERNS:
        match = pattern.search(lowered)
        if match:
            return ThirdParty(who="someone else (" + match.group(0) + ")", phrase=match.group(0))
    return None


def _names_requester(name: str, requester: str) -> bool:
    local = requester.split("@", 1)[0]
    parts = [p for p in re.split(r"[._-]+", local) if p]
    return bool(parts) and name.split()[0].lower() == parts[0]


def _members(tenant):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(memberships__tenant=tenant, is_active=True)


def _member_by_email(tenant, address: str) -> tuple[str, str] | None:
    user = _members(tenant).filter(email__iexact=address).first()
    return (user.email.lower(), user.get_full_name() or user.username) if user else None


def _member_by_name(tenant, name: str) -> tuple[str, str]:
    """(address, full name) of the one member the name designates; ("", "") when none or
    several do (an ambiguous name is not guessed)."""
    first, _, last = name.partition(" ")
    candidates = []
    for user in _members(tenant).only("email", "first_name", "last_name", "username")[:5000]:
        local = (user.email or "").split("@", 1)[0].lower()
        local_parts = re.split(r"[._-]+", local)
        given = (user.first_name or "").lower()
        family = (user.last_name or "").lower()
        if last:
            hit = given == first.lower() and family == last.lower()
        else:
            hit = first.lower() in {given, user.username.lower(), local_parts[0]}
        if hit:
            candidates.append(user)
    if len(candidates) != 1:
        return "", ""
    user = candidates[0]
    return user.email.lower(), user.get_full_name() or name
