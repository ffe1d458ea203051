"""The service-desk analysis the offline LLM backend acts on: classifiers + slots + knowledge.

``analyse(conversation)`` is registered with ``agents.llm.offline`` at startup
(``incidents.apps``). Its steps:

1. The learned model classifies the request: intents, category, priority, decision, and
   whether it is made for someone else; the decision's calibrated probability is the
   confidence.
2. Slots say whom and what it is about (``incidents.nlu.slots``).
3. A few rules of the domain's policy correct the decision where the slots know better than
   the words: many people affected → an incident, never a device fix; an account action for
   someone else → a person; a request with little information (filler, junk) → a person; a
   confidence below ``MIN_CONFIDENCE`` → a person.
4. A how-to answer cites the knowledge-base section that covers it.
"""

from __future__ import annotations

import re

from agents.llm.offline import Analysis, Conversation, find_service
from incidents.nlu import intents as catalogue
from incidents.nlu import kb, slots
from incidents.nlu.model import get_model

TICKET_HEADER = re.compile(r"(?im)^[ \t]*Ticket\s+[A-Z]*-?\d+(?:\s*\([^)\n]*\))?\s*:[ \t]*")
MAX_REQUEST_CHARS = 20_000
MIN_CONFIDENCE = 0.5  # below: a person decides (the pipeline escalates below 0.5 too)
SECOND_INTENT_P = 0.25  # a second actionable intent joins when the model gives it this much
THIRD_PARTY_P = 0.3  # with a person named or pointed at (he, her …): a request for them
MIN_DISTINCT_RATIO = 0.08  # distinct words / words: below, the text is filler
# Faults: when many people have one, it is an incident. Requests made for many people (MFA
# for a team, software for a department) are no incident, and no self-service fix either.
FAULTS = frozenset(
    {
        "account_locked",
        "vpn",
        "wifi_device",
        "device_fault",
        "outage",
        "investigate",
        "email_issue",
        "app_issue",
        "hardware_request",
    }
)


def low_information(text: str) -> bool:
    """Filler: long text that repeats a handful of words (pasted junk, a flood of 'vpn')."""
    words = re.findall(r"\w+", text.lower())
    if len(words) < 80:
        return False
    return len(set(words)) / len(words) < MIN_DISTINCT_RATIO


def analyse(convo: Conversation) -> Analysis:
    # A request is read from its start: what matters is never 2 MB in (and the slots' patterns
    # over 2 MB would take seconds). Filler is still recognised in the first part.
    text = convo.request[:MAX_REQUEST_CHARS]
    lower = text.lower()
    found = slots.extract(text, convo.context[:MAX_REQUEST_CHARS])
    prediction = get_model().predict(TICKET_HEADER.sub("", text))
    decision, confidence = prediction.decision, prediction.decision_p
    ranked = [
        (catalogue.BY_NAME[name], p) for name, p in prediction.intents if name in catalogue.BY_NAME
    ]
    top = ranked[:1] + [
        (intent, p)
        for intent, p in ranked[1:]
        if p >= SECOND_INTENT_P and intent.steps and not intent.escalate
    ]
    if low_information(text):
        decision, top = "human", [(catalogue.BY_NAME["junk"], 1.0)]
    if prediction.third_party_p >= THIRD_PARTY_P and found.other_person:
        found.third_party = True  # the model hears it, and the text names or points at someone
    decision = _with_policy(decision, top, found)
    if confidence < MIN_CONFIDENCE and decision != "human":
        decision = "human"
    if not found.product:
        top = [(i, p) for i, p in top if not i.requires_product]
    priority = _priority(prediction.priority, decision, found)
    answer = kb.answer_for(text) if decision == "answer" else None
    category = prediction.category
    return Analysis(
        text=text,
        lower=lower,
        intents=top,
        email=found.email,
        devices=found.devices,
        device=found.device,
        product=found.product,
        products=found.products,
        service=find_service(convo.context[:MAX_REQUEST_CHARS], lower),
        ticket=found.ticket,
        title=_title(text),
        category=category,
        priority=priority,
        decision=decision,
        confidence=round(confidence, 2),
        widespread=found.many_users,
        escalate=decision != "auto_resolve",
        sentiment=found.sentiment,
        category_scores={category: 1.0},
        plan=_plan(decision, top, found, answer),
        guarded_tools=catalogue.GUARDED_TOOLS,
    )


def _priority(priority: str, decision: str, found: slots.Slots) -> str:
    """The model's priority, moved by what the requester states and how many it affects."""
    if found.urgency == "urgent" and priority in ("medium", "low"):
        return "high"
    if found.urgency == "calm" and priority in ("high", "medium"):
        return "low"
    if found.many_users and decision == "incident" and priority in ("medium", "low"):
        return "high"
    return priority


def _with_policy(decision: str, top, found: slots.Slots) -> str:
    intent = top[0][0] if top else None
    if found.many_users and intent is not None:
        if intent.name in FAULTS and decision in ("auto_resolve", "human"):
            return "incident"
        if decision == "auto_resolve":
            return "human"  # an action for many people is not one requester's fix
    if decision == "auto_resolve" and intent is not None:
        if intent.escalate or not intent.steps:
            return "human"
        if found.other_emails or (found.third_party and intent.targets_account):
            return "human"  # an action on someone else's account: a person handles it
    return decision


def _plan(decision: str, top, found: slots.Slots, answer) -> str:
    intent = top[0][0] if top else None
    if decision == "incident":
        where = f" ({found.site})" if found.site else ""
        return (
            f"Open an incident for people: it affects many users{where}. "
            "No single-device fix applies."
        )
    if decision == "answer":
        if answer is not None:
            return f"Answer from the knowledge base: {answer.section.title}."
        return "Answer the how-to question from the knowledge base."
    if decision == "redirect":
        return "Not an IT matter: point the requester to the right team (facilities, HR, payroll)."
    if decision == "human":
        if found.third_party and intent is not None and intent.targets_account:
            return (
                "A person must handle it: the request is for someone else's account; "
                "that person must ask (or be verified) themselves."
            )
        return f"A person must handle it. {intent.plan if intent else ''}".strip()
    plans = [i.plan for i, _ in top if i.plan]
    return " ".join(plans) or "No automated fix applies; a person should take it."


def _title(text: str) -> str:
    for line in text.splitlines():
        line = re.sub(r"(?i)^(title|subject)\s*:\s*", "", line.strip())
        line = re.sub(r"^Ticket\s+\S+?(\s*\([^)]*\))?\s*:\s*", "", line)
        if line:
            return line[:160]
    return "(no text)"
