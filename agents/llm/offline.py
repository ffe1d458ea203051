"""The offline model: deterministic, no network, good enough for the service-desk demo.

It reads only what it is given — system, messages, tools — and answers like a careful model:

- **Structured output** (``tool_choice`` names a tool): one call of that tool whose input fits
  its JSON schema. Enum values are chosen by classifying the conversation with an IT keyword
  table (category, priority, auto-resolve vs human, severity, sentiment …), matched by the
  enum's own strings, so any schema works; ``confidence`` reflects how strongly keywords hit.
- **Tools offered, model decides**: intents found by keywords (VPN timeout, locked account,
  password reset, MFA, software install, admin rights, Wi-Fi/adapter, …) become calls of the
  offered tools that fix them, arguments filled from the schema and from context lines:
  ``Requester: someone@example.com`` and ``Requester devices: LT-0042 (ThinkPad T14), …``.
  Nothing matches → a text saying no automated fix applies. After ``tool_result`` blocks → a
  short summary, unless a follow-up step remains (e.g. a diagnostic that suggests a fix).
- **No tools**: a short text analysis of the request.

What counts as the request: the text of the user messages, without the context lines above,
``Triage:`` lines, ``<knowledge>…</knowledge>``-style blocks and sections headed ``Knowledge:``
/ ``Relevant knowledge`` / ``Retrieved …``, and without tool results (untrusted output never
chooses an action). Same input → same output, tool-use ids included.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from agents.llm.base import LLMResponse, ToolSpec, ToolUse, Usage, tool_choice_param

MODEL_NAME = "offline-1"

# --------------------------------------------------------------------------- intents


@dataclass(frozen=True)
class Intent:
    name: str
    label: str  # what it is, in words
    category: str
    strong: tuple[str, ...]  # regexes (on lower-case text); one hit = 2 points
    weak: tuple[str, ...] = ()  # 1 point; only counts when no intent has a strong hit
    steps: tuple[tuple[str, ...], ...] = ()  # tools in order; each step: candidate tool names
    plan: str = ""
    escalate: bool = False  # security incident etc.: a person must handle it
    needs_approval: bool = False  # the fix exists but policy will want a reviewer
    priority: str = ""  # baseline priority when no keyword says otherwise
    sequential: bool = False  # one step per turn, looking at each result (else all at once)
    excludes: tuple[str, ...] = ()  # intents suppressed when this one is found ("*" = all)
    weight: float = 1.0
    requires_product: bool = False  # only an intent when a product is named


INTENTS: tuple[Intent, ...] = (
    Intent(
        "onboarding",
        "new-starter onboarding",
        "other",
        (
            r"\bonboard(ing)?\b",
            r"\bnew (starter|joiner|hire|employee|team member)\b",
            r"\bstarts on (monday|tuesday|wednesday|thursday|friday)\b",
        ),
        plan="Hand to the service desk: a new starter needs equipment and accounts set up.",
        priority="low",
        excludes=("*",),
    ),
    Intent(
        "security_incident",
        "possible security incident",
        "security",
        (
            r"\bphishing\b",
            r"\bmalware\b",
            r"\bvirus\b",
            r"\bransomware\b",
            r"\bsuspicious\b",
            r"\bbreach(ed)?\b",
            r"\bcompromised\b",
            r"\bhacked\b",
            r"\bunfamiliar (location|country|device|ip)\b",
            r"\bsign-?in attempts\b",
        ),
        plan="Escalate to the security team: contain first, then investigate the accounts involved.",
        escalate=True,
        priority="high",
        weight=1.5,
    ),
    Intent(
        "disable_mfa",
        "request to disable MFA",
        "security",
        (
            r"\b(disable|turn off|switch off|remove|deactivate|bypass|exempt)\W+(?:\w+\W+){0,3}"
            r"(mfa|2fa|two[- ]?factor|multi[- ]?factor)",
        ),
        steps=(("disable_mfa",),),
        plan="Propose disable_mfa for the requester; policy requires a reviewer's approval.",
        needs_approval=True,
        excludes=("mfa_enroll",),
        weight=1.5,
    ),
    Intent(
        "admin_rights",
        "administrator rights request",
        "access",
        (
            r"\badmin(istrator)?\W+(rights|access|privileges?|permissions?)\b",
            r"\blocal admin\b",
            r"\belevated (rights|privileges|access|permissions)\b",
            r"\bsudo\b",
            r"\broot access\b",
            r"\bdomain admin\b",
        ),
        steps=(("grant_admin_access",),),
        plan="Propose grant_admin_access for the requester; policy requires a reviewer's approval.",
        needs_approval=True,
        priority="high",
        weight=1.5,
    ),
    Intent(
        "security_group",
        "security group change",
        "access",
        (
            r"\b(add|added|remove|removed)\b[^.\n]{0,40}\b(security )?group\b",
            r"\bgroup membership\b",
        ),
        steps=(("modify_security_group",),),
        plan="Propose modify_security_group; policy requires a reviewer's approval.",
        needs_approval=True,
    ),
    Intent(
        "export_data",
        "personal data export",
        "security",
        (
            r"\bsubject access request\b",
            r"\bexport (all )?(my|the|his|her|their) (personal )?data\b",
            r"\bgdpr\b",
            r"\bdata export\b",
        ),
        steps=(("export_user_data",),),
        plan="Propose export_user_data; policy requires a reviewer's approval.",
        needs_approval=True,
    ),
    Intent(
        "delete_account",
        "account deletion",
        "access",
        (
            r"\b(delete|remove|deactivate|close)\W+(?:\w+\W+){0,2}(user )?account\b",
            r"\bleaver\b",
            r"\boffboard(ing)?\b",
        ),
        steps=(("delete_user_account",),),
        plan="Propose delete_user_account; policy requires a reviewer's approval.",
        needs_approval=True,
    ),
    Intent(
        "privileged_access",
        "privileged system access",
        "security",
        (
            r"\bprivileged (access|session)\b",
            r"\b(access|login|log in|session) (to|on) (the )?(prod|production)[- ]?\w*",
            r"\bbreak[- ]glass\b",
        ),
        steps=(("access_privileged_system",),),
        plan="Propose access_privileged_system; policy requires a reviewer's approval.",
        needs_approval=True,
    ),
    Intent(
        "account_locked",
        "locked account",
        "access",
        (
            r"\blocked out\b",
            r"\block(ed)?[- ]?out\b",
            r"\baccount (is |has been |got |was )?(locked|disabled)\b",
            r"\bunlock\b",
            r"\blockout\b",
            r"\btoo many (failed|wrong|incorrect) (attempts|logins|sign-?ins|passwords)\b",
        ),
        steps=(("unlock_account",),),
        plan="Unlock the account in the directory and clear the failed sign-in count.",
    ),
    Intent(
        "password_reset",
        "password reset",
        "access",
        (
            r"\b(forgot|forgotten|reset|change|expired?|new|temporary)\W+(?:\w+\W+){0,3}password",
            r"\bpassword\W+(?:\w+\W+){0,3}(reset|expired|expires|change|not working|"
            r"doesn'?t work|does not work|incorrect)",
            r"\bdon'?t remember (my )?password\b",
            r"\bcan'?t remember (my )?password\b",
        ),
        weak=(r"\bpassword\b",),
        steps=(("reset_password",),),
        plan="Verify the requester's identity, then reset the password with a temporary one.",
    ),
    Intent(
        "mfa_enroll",
        "MFA enrolment",
        "security",
        (
            r"\bmfa\b",
            r"\b2fa\b",
            r"\btwo[- ]?factor\b",
            r"\bmulti[- ]?factor\b",
            r"\bauthenticator\b",
            r"\bverification code\b",
            r"\bone[- ]time (pass)?code\b",
            r"\botp\b",
        ),
        steps=(("enable_mfa", "reset_mfa"),),
        plan="Re-enrol MFA for the requester with the authenticator app.",
    ),
    Intent(
        "vpn",
        "VPN connection problem",
        "network",
        (
            r"\bvpn\b",
            r"\banyconnect\b",
            r"\bglobalprotect\b",
            r"\bforticlient\b",
            r"\bremote access client\b",
        ),
        steps=(("push_vpn_config",),),
        plan="Push the current VPN profile to the requester's device and reconnect.",
    ),
    Intent(
        "network_adapter",
        "Wi-Fi / network adapter problem",
        "network",
        (
            r"\bwi-?fi\b",
            r"\bwireless\b",
            r"\bwlan\b",
            r"\bnetwork adapter\b",
            r"\badapter\b",
            r"\bethernet\b",
            r"\bno internet\b",
            r"\b(network|connection) (keeps )?(dropping|drops|disconnect\w*)\b",
        ),
        steps=(("run_diagnostic",), ("reset_network_adapter",)),
        plan="Run a diagnostic on the requester's device, then reset its network adapter.",
    ),
    Intent(
        "software_install",
        "software installation",
        "software",
        (r"\b(install|installed|installing|installation)\b", r"\bneed (a |an )?licen[cs]e for\b"),
        steps=(("install_software", "deploy_software"),),
        plan="Install the requested software from the catalogue on the requester's device.",
        priority="low",
        requires_product=True,
    ),
    Intent(
        "access_request",
        "access request",
        "access",
        (
            r"\bneed (read |write |edit |admin )?access to\b",
            r"\b(read|write|edit) access\b",
            r"\bpermissions? (to|for) (the )?\w+",
            r"\baccess to the\b",
        ),
        plan="Route to the resource owner for approval of the access.",
    ),
    Intent(
        "email",
        "e-mail problem",
        "email",
        (
            r"\boutlook\b",
            r"\bmailbox\b",
            r"\bmail relay\b",
            r"\bexchange( online)?\b",
            r"\bcalendar\b",
            r"\bsmtp\b",
            r"\bdistribution list\b",
        ),
        weak=(r"\be-?mails?\b",),
        plan="Check the mailbox and client configuration; hand to the messaging team if needed.",
    ),
    Intent(
        "hardware",
        "hardware problem",
        "hardware",
        (
            r"\bbattery\b",
            r"\bprinter\b",
            r"\bpaper jam\b",
            r"\bmonitors?\b",
            r"\bkeyboard\b",
            r"\bmouse\b",
            r"\bdocking station\b",
            r"\bheadset\b",
            r"\bwebcam\b",
            r"\bcharger\b",
            r"\bscreen (is )?(broken|cracked|flickering|black)\b",
        ),
        weak=(r"\blaptop\b", r"\bhardware\b"),
        plan="Hand to desk-side support to inspect or replace the hardware.",
        priority="low",
    ),
    Intent(
        "software_fault",
        "software fault",
        "software",
        (
            r"\bcrash(es|ed|ing)?\b",
            r"\bwon'?t (start|open|launch)\b",
            r"\bcloses immediately\b",
            r"\bnot responding\b",
            r"\bfreez(es|ing)\b",
        ),
        plan="Collect the application logs and hand to application support.",
    ),
    Intent(
        "application",
        "business application problem",
        "application",
        (
            r"\bslow page\b",
            r"\bpages? take\b",
            r"\bapp tier\b",
            r"\breport job\b",
            r"\bexport failed\b",
            r"\bnightly\b",
        ),
        plan="Check the application's health and recent jobs; hand to the application team.",
    ),
    Intent(
        "investigate",
        "service degradation",
        "infrastructure",
        (
            r"\b5xx\b",
            r"\b50[0-4] errors?\b",
            r"\berror rate\b",
            r"\berror spikes?\b",
            r"\bspik(e|es|ing) (in|of) errors\b",
            r"\binvestigat(e|ion)\b.{0,60}\b(errors?|failures?|latency|slow(ness)?)\b",
            r"\blatency\b",
            r"\bp9[59]\b",
            r"\bconnection (pool|slots)\b",
            r"\bdisk (usage|space|full)\b",
            r"\bcpu\b",
            r"\bmemory (usage|leak)\b",
            r"\bout of memory\b",
            r"\bqueue (depth|is growing|growing)\b",
            r"\bdeploy(ment|ed)?\b",
            r"\bhealth ?check\b",
            r"\b(function|request|job)s? tim(ing|ed|es) out\b",
            r"\bdatabase\b",
            r"\bservers?\b",
            r"\bnodes?\b",
            r"\blog rotation\b",
        ),
        steps=(("query_metrics",), ("search_logs",), ("get_traces",), ("generate_report",)),
        plan="Investigate: metrics, then logs and traces of the affected service; escalate to on-call.",
        escalate=True,
        sequential=True,
    ),
)
INTENTS_BY_NAME = {intent.name: intent for intent in INTENTS}

# --------------------------------------------------------------------------- keyword tables

PRIORITY_CRITICAL = (
    r"\boutage\b",
    r"\ball (users|staff|employees|customers)\b",
    r"\beveryone\b",
    r"\bcompany[- ]wide\b",
    r"\bentire (company|office|organi[sz]ation|site|region)\b",
    r"\bsev ?1\b",
    r"\bproduction (is )?down\b",
    r"\bcustomers (report|cannot|can'?t|are unable)",
    r"\bdata breach\b",
    r"\bransomware\b",
    r"\bsuspicious sign-?ins?\b",
)
PRIORITY_HIGH = (
    r"\burgent(ly)?\b",
    r"\basap\b",
    r"\bcustomers?\b",
    r"\bcannot work\b",
    r"\bcan'?t work\b",
    r"\bunable to work\b",
    r"\bblocked\b",
    r"(?<!shut )(?<!slow )(?<!drop )(?<!drop-)\bdown\b",
    r"\bdeadline\b",
    r"\b(executive|ceo|cfo|vip)\b",
    r"\bexhausted\b",
    r"\bqueue depth\b",
    r"\bcannot send\b",
    r"\bunreachable\b",
    r"\bsev ?2\b",
)
PRIORITY_LOW = (
    r"\bnot urgent\b",
    r"\bno rush\b",
    r"\bwhen you (have|get) (a )?(chance|time|moment)\b",
    r"\bnice to have\b",
    r"\bwould like\b",
    r"\bhow (do|can) i\b",
    r"\brequest(ing)? (a|an)\b",
)
WIDESPREAD = (
    r"\ball (users|staff|employees)\b",
    r"\beveryone\b",
    r"\b(multiple|many|several) (users|people|colleagues|accounts)\b",
    r"\b(whole|entire) (team|office|floor|company|site|region)\b",
    r"\bremote staff\b",
    r"\bcompany[- ]wide\b",
    r"\boutage\b",
    r"\bconcentrator\b",
    r"\bcustomers report\b",
    r"\b\d{2,} (users|people|accounts)\b",
)

# Enum vocabularies: concept → words that name it in an enum value.
FAMILIES: dict[str, dict[str, tuple[str, ...]]] = {
    "category": {
        "access": ("access", "identity", "account", "accounts", "iam", "authentication", "login"),
        "network": ("network", "networking", "connectivity", "vpn", "wifi"),
        "hardware": ("hardware", "device", "devices", "peripheral", "peripherals"),
        "software": ("software", "install", "installation"),
        "email": ("email", "e-mail", "mail", "messaging", "collaboration"),
        "security": ("security", "secops", "infosec"),
        "infrastructure": ("infrastructure", "infra", "cloud", "server", "servers", "platform"),
        "application": ("application", "applications", "app", "apps", "business"),
        "other": ("other", "general", "misc", "miscellaneous", "unknown", "none"),
    },
    "priority": {
        "critical": ("critical", "urgent", "p1", "highest", "blocker", "emergency"),
        "high": ("high", "p2", "major", "important"),
        "medium": ("medium", "normal", "moderate", "p3", "standard"),
        "low": ("low", "p4", "minor", "lowest", "trivial"),
    },
    "severity": {
        "critical": ("sev1", "s1", "sev-1", "critical"),
        "high": ("sev2", "s2", "sev-2", "major", "high"),
        "medium": ("sev3", "s3", "sev-3", "moderate", "medium", "minor"),
        "low": ("sev4", "s4", "sev-4", "low", "cosmetic"),
    },
    "decision": {
        "auto": (
            "auto",
            "auto_resolve",
            "autoresolve",
            "automate",
            "automated",
            "automatic",
            "agent",
            "agent_resolution",
            "self_service",
            "bot",
            "resolve",
        ),
        "human": (
            "human",
            "escalate",
            "escalation",
            "manual",
            "person",
            "human_review",
            "human_escalation",
            "needs_human",
            "review",
        ),
    },
    "sentiment": {
        "negative": ("negative", "angry", "frustrated", "upset", "unhappy", "dissatisfied"),
        "neutral": ("neutral", "mixed", "calm"),
        "positive": ("positive", "happy", "satisfied", "pleased"),
    },
}
NEGATIVE_WORDS = (
    r"\bfrustrat\w*",
    r"\bangry\b",
    r"\bunacceptable\b",
    r"\bagain\b",
    r"\bstill (not|broken|doesn'?t|does not)\b",
    r"\bridiculous\b",
    r"\bterrible\b",
    r"\bworst\b",
    r"\bfed up\b",
    r"!{2,}",
)
POSITIVE_WORDS = (
    r"\bthanks?\b",
    r"\bthank you\b",
    r"\bgreat\b",
    r"\bappreciate\w*",
    r"\bworks now\b",
)

# Software catalogue: canonical name → aliases (lower case). Longest alias wins.
PRODUCTS: dict[str, tuple[str, ...]] = {
    "Zoom": ("zoom",),
    "Slack": ("slack",),
    "Microsoft Teams": ("microsoft teams", "ms teams", "teams"),
    "Microsoft Office": ("microsoft office", "ms office", "office 365", "microsoft 365", "office"),
    "Microsoft Word": ("microsoft word", "ms word"),
    "Microsoft Excel": ("microsoft excel", "ms excel", "excel"),
    "Microsoft PowerPoint": ("powerpoint",),
    "Microsoft Outlook": ("microsoft outlook",),
    "Visual Studio Code": ("visual studio code", "vs code", "vscode"),
    "Visual Studio": ("visual studio",),
    "Google Chrome": ("google chrome", "chrome"),
    "Mozilla Firefox": ("mozilla firefox", "firefox"),
    "Adobe Acrobat Reader": ("adobe acrobat reader", "acrobat reader", "adobe reader"),
    "Adobe Acrobat": ("adobe acrobat", "acrobat pro", "acrobat"),
    "Adobe Photoshop": ("adobe photoshop", "photoshop"),
    "7-Zip": ("7-zip", "7zip", "7 zip"),
    "Notepad++": ("notepad++", "notepad plus plus"),
    "Power BI Desktop": ("power bi desktop", "power bi", "powerbi"),
    "Tableau Reader": ("tableau reader",),
    "Tableau": ("tableau desktop", "tableau"),
    "Salesforce": ("salesforce",),
    "SAP GUI": ("sap gui", "sapgui"),
    "Jira": ("jira",),
    "Confluence": ("confluence",),
    "Workday": ("workday",),
    "Figma": ("figma",),
    "Git": ("git",),
    "Python": ("python",),
    "Docker Desktop": ("docker desktop", "docker"),
    "Node.js": ("node.js", "nodejs"),
    "Java": ("java", "jdk"),
    "Postman": ("postman",),
    "PyCharm": ("pycharm",),
    "IntelliJ IDEA": ("intellij idea", "intellij"),
    "Webex": ("webex",),
    "Dropbox": ("dropbox",),
    "OneDrive": ("onedrive",),
    "VLC": ("vlc",),
    "PuTTY": ("putty",),
    "Wireshark": ("wireshark",),
    "WinSCP": ("winscp",),
    "RStudio": ("rstudio",),
    "MATLAB": ("matlab",),
    "AutoCAD": ("autocad",),
    "Cisco AnyConnect": ("cisco anyconnect",),
}
_ALIASES = sorted(
    ((alias, name) for name, aliases in PRODUCTS.items() for alias in aliases),
    key=lambda pair: (-len(pair[0]), pair[0]),
)

METRICS = (
    (r"\b(5xx|errors?|error rate|failed|failing|failures?)\b", "error_rate"),
    (r"\b(latency|slow|p9[59]|timeouts?|timing out|timed out)\b", "latency_p95_ms"),
    (r"\b(traffic|requests? per|throughput|rpm)\b", "requests_per_min"),
)

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
DEVICE_RE = re.compile(r"\b[A-Z]{2,4}-\d{3,6}\b")
TICKET_RE = re.compile(r"\b(?:INC|REQ|RITM|CHG|PRB|TKT|SR)-?\d{3,}\b")
REQUESTER_RE = re.compile(r"(?im)^[ \t]*requester(?:[ \t]*e-?mail)?[ \t]*:[ \t]*(.*)$")
DEVICES_RE = re.compile(r"(?im)^[ \t]*requester[ \t]+devices?[ \t]*:[ \t]*(.*)$")
SERVICES_RE = re.compile(r"(?im)^[ \t]*(?:affected[ \t]+)?services?[ \t]*:[ \t]*(.*)$")
CONTEXT_LINE_RE = re.compile(
    r"(?im)^[ \t]*(requester(?:[ \t]*e-?mail)?|requester[ \t]+devices?|triage)[ \t]*:.*$"
)
KNOWLEDGE_BLOCK_RE = re.compile(
    r"(?is)<(knowledge|documents?|context|kb|articles?|retrieved|search_results?|sources?)\b[^>]*>"
    r".*?</\1\s*>"
)
KNOWLEDGE_HEADER_RE = re.compile(
    r"(?i)^[ \t]*(#+[ \t]*)?(relevant[ \t]+)?(knowledge(?:[ \t]+base)?|kb[ \t]+articles?|"
    r"retrieved\b[^:\n]*|similar tickets|runbooks?|golden paths?|references?)[ \t]*:"
)
SECTION_START_RE = re.compile(
    r"(?i)^[ \t]*(ticket\b|title[ \t]*:|description[ \t]*:|requester|triage[ \t]*:|request[ \t]*:)"
)


def _hits(patterns: tuple[str, ...], text: str) -> int:
    return sum(len(re.findall(p, text)) for p in patterns)


def _any(patterns: tuple[str, ...], text: str) -> bool:
    return any(re.search(p, text) for p in patterns)


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9+]+", value.lower()) if w]


# --------------------------------------------------------------------------- reading the input


def _block_field(block: Any, name: str, default: Any = None) -> Any:
    if isinstance(block, dict):
        return block.get(name, default)
    return getattr(block, name, default)


def _text_of(content: Any) -> str:
    """Plain text of a message content or a tool_result content."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif _block_field(block, "type") == "text":
                parts.append(str(_block_field(block, "text", "")))
        return "\n".join(parts)
    return str(content)


def strip_knowledge(text: str) -> str:
    """Drop retrieved documents: tagged blocks, and sections under a knowledge header."""
    text = KNOWLEDGE_BLOCK_RE.sub("\n", text)
    kept, skipping = [], False
    for line in text.splitlines():
        if KNOWLEDGE_HEADER_RE.match(line):
            skipping = True
            continue
        if skipping and SECTION_START_RE.match(line):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


@dataclass
class Conversation:
    """What the offline model reads from system + messages."""

    request: str  # the request text (user text minus context, knowledge, tool results)
    context: str  # system + all user text (for context lines)
    tool_uses: list[dict[str, Any]] = field(default_factory=list)  # every earlier tool_use
    last_results: list[dict[str, Any]] = field(default_factory=list)  # tool_results, last turn
    all_results: list[dict[str, Any]] = field(default_factory=list)  # every tool_result

    @classmethod
    def read(cls, system: str, messages: list[dict[str, Any]]) -> Conversation:
        request_parts: list[str] = []
        context_parts: list[str] = [system or ""]
        tool_uses: list[dict[str, Any]] = []
        last_results: list[dict[str, Any]] = []
        all_results: list[dict[str, Any]] = []
        for index, message in enumerate(messages or []):
            role = _block_field(message, "role", "")
            content = _block_field(message, "content", "")
            blocks = content if isinstance(content, list | tuple) else None
            if role == "assistant":
                for block in blocks or []:
                    if _block_field(block, "type") == "tool_use":
                        tool_uses.append(
                            {
                                "id": _block_field(block, "id", ""),
                                "name": _block_field(block, "name", ""),
                                "input": _block_field(block, "input", {}) or {},
                            }
                        )
                continue
            if role != "user":
                continue
            text = _text_of(content)
            context_parts.append(text)
            request_parts.append(text)
            results = []
            for block in blocks or []:
                if _block_field(block, "type") == "tool_result":
                    results.append(
                        {
                            "tool_use_id": _block_field(block, "tool_use_id", ""),
                            "content": _text_of(_block_field(block, "content", "")),
                            "is_error": bool(_block_field(block, "is_error", False)),
                        }
                    )
            all_results += results
            if index == len(messages) - 1:
                last_results = results
        request = strip_knowledge("\n".join(request_parts))
        request = CONTEXT_LINE_RE.sub("", request).strip()
        return cls(request, "\n".join(context_parts), tool_uses, last_results, all_results)


# --------------------------------------------------------------------------- analysis


@dataclass
class Analysis:
    text: str  # request, original case
    lower: str
    intents: list[tuple[Intent, float]]  # found, strongest first
    email: str
    devices: list[tuple[str, str]]  # (asset tag, model)
    device: str
    product: str  # the first of products
    service: str
    ticket: str
    title: str
    category: str
    priority: str
    decision: str
    confidence: float
    widespread: bool
    escalate: bool
    sentiment: str
    category_scores: dict[str, float]
    products: list[str] = field(default_factory=list)

    @property
    def intent_names(self) -> list[str]:
        return [intent.name for intent, _ in self.intents]

    @property
    def actionable(self) -> list[Intent]:
        """Intents with a fix a tool can apply (policy may still want approval)."""
        return [intent for intent, _ in self.intents if intent.steps and not intent.escalate]

    @property
    def investigative(self) -> list[Intent]:
        """Intents a person owns, with read-only tools that gather evidence for them."""
        return [intent for intent, _ in self.intents if intent.steps and intent.escalate]

    @property
    def summary(self) -> str:
        what = ", ".join(intent.label for intent, _ in self.intents[:3]) or "unclassified request"
        who = f" for {self.email}" if self.email else ""
        return f"{what[0].upper()}{what[1:]}{who}: {self.title}"[:400]

    @property
    def plan(self) -> str:
        if self.widespread or self.escalate:
            reason = (
                "it affects many users"
                if self.widespread
                else f"it looks like {_a(self.intents[0][0].label)}"
            )
            steps = [intent.plan for intent, _ in self.intents if intent.escalate]
            return " ".join([f"Escalate to a person: {reason}.", *steps[:1]])[:500]
        steps = [intent.plan for intent in self.actionable]
        if not steps:
            steps = [intent.plan for intent, _ in self.intents[:1] if intent.plan]
        return (" ".join(steps) or "No automated fix applies; a person should take it.")[:500]


def detect_intents(lower: str) -> list[tuple[Intent, float]]:
    scored: list[tuple[Intent, float, bool]] = []
    for intent in INTENTS:
        strong = _hits(intent.strong, lower)
        weak = _hits(intent.weak, lower)
        if strong or weak:
            scored.append((intent, 2.0 * strong + weak, strong > 0))
    # Weak words ("password", "laptop", "e-mail") only count when nothing strong was found.
    any_strong = any(strong for _, _, strong in scored)
    found = [(intent, score) for intent, score, strong in scored if strong or not any_strong]
    names = {intent.name for intent, _ in found}
    excluded: set[str] = set()
    for intent, _ in found:
        for name in intent.excludes:
            excluded |= (names - {intent.name}) if name == "*" else {name}
    found = [(intent, score) for intent, score in found if intent.name not in excluded]
    order = {intent.name: i for i, intent in enumerate(INTENTS)}
    found.sort(key=lambda pair: (-pair[1] * pair[0].weight, order[pair[0].name]))
    return found


def _confidence(intents: list[tuple[Intent, float]], lower: str) -> float:
    """How sure the classification is: distinct strong keywords of the top intent, and its
    margin over the runner-up. Nothing matched: 0.35."""
    if not intents:
        return 0.35
    top, top_score = intents[0]
    distinct = sum(1 for p in top.strong if re.search(p, lower))
    if not distinct:  # weak words only
        return 0.45
    value = 0.55 + 0.1 * min(distinct, 3)
    if len(intents) == 1 or top_score * top.weight >= 2 * intents[1][1] * intents[1][0].weight:
        value += 0.05
    return value


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _aliases_in(lower: str, start: int, end: int) -> list[tuple[int, str]]:
    """Catalogue products named in lower[start:end]: (position, canonical name), in order;
    the longest alias wins where aliases overlap ("visual studio code" over "visual studio")."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, str]] = []
    window = lower[start:end]
    for alias, name in _ALIASES:
        for match in re.finditer(rf"(?<![\w+]){re.escape(alias)}(?![\w+])", window):
            span = (match.start(), match.end())
            if any(a < span[1] and span[0] < b for a, b in taken):
                continue
            taken.append(span)
            found.append((span[0], name))
    seen: set[str] = set()
    ordered = []
    for pos, name in sorted(found):
        if name not in seen:
            seen.add(name)
            ordered.append((pos, name))
    return ordered


def find_products(text: str) -> list[str]:
    """The catalogue products named after "install" in the same sentence (else just before it,
    else anywhere in a request that needs software), or the capitalised words right after
    "install"; canonical spelling, in the order named."""
    lower = text.lower()
    installs = list(re.finditer(r"\binstall(?:ed|ing|ation)?\b", lower))
    names: list[str] = []
    for match in installs:
        stop = re.search(r"[.!?\n]", lower[match.end() :])
        end = match.end() + (stop.start() if stop else len(lower))
        for _, name in _aliases_in(lower, match.end(), min(end, match.end() + 120)):
            if name not in names:
                names.append(name)
    if names:
        return names
    for match in installs:
        for _, name in _aliases_in(lower, max(0, match.start() - 60), match.start())[-1:]:
            return [name]
    anywhere = _aliases_in(lower, 0, len(lower))
    if anywhere and re.search(r"\b(install\w*|need|licen[cs]e|set up|setup)\b", lower):
        return [anywhere[0][1]]
    raw = re.search(
        r"\binstall(?:ed|ing)?\s+(?:the\s+|a\s+|an\s+)?([A-Z][\w.+-]*(?:\s+[A-Z0-9][\w.+-]*){0,2})",
        text,
    )
    if raw:
        return [raw.group(1).strip(" .")[:80]]
    return []


def parse_devices(context: str) -> list[tuple[str, str]]:
    devices: list[tuple[str, str]] = []
    for line in DEVICES_RE.findall(context):
        for item in re.split(r",(?![^()]*\))", line):
            item = item.strip()
            if not item:
                continue
            tags = DEVICE_RE.findall(item) or re.findall(r"\b[A-Z0-9]{2,}(?:-[A-Z0-9]+)+\b", item)
            if not tags:
                continue
            tag = tags[0]
            model = re.sub(r"[()]", " ", item.replace(tag, " "))
            devices.append((tag, " ".join(model.split())))
    return devices


def choose_device(devices: list[tuple[str, str]], text: str) -> str:
    lower = text.lower()
    mentioned = [(lower.find(tag.lower()), tag) for tag, _ in devices if tag.lower() in lower]
    if mentioned:
        return min(mentioned)[1]  # the one named first
    for tag, model in devices:
        words = [w for w in _words(model) if len(w) >= 4 and not w.isdigit()]
        if words and any(re.search(rf"\b{re.escape(w)}\b", lower) for w in words):
            return tag
    if devices:
        return devices[0][0]
    found = DEVICE_RE.findall(text)
    return found[0] if found else ""


def find_email(context: str, text: str) -> str:
    for line in REQUESTER_RE.findall(context):
        match = EMAIL_RE.search(line)
        if match:
            return match.group(0)
    match = EMAIL_RE.search(text) or EMAIL_RE.search(context)
    return match.group(0) if match else ""


def find_service(context: str, lower: str) -> str:
    for line in SERVICES_RE.findall(context):
        for item in re.split(r"[,;]", line):
            name = re.sub(r"[^a-z0-9_-]+", "-", item.strip().lower()).strip("-")
            if name:
                return name[:40]
    patterns = (
        r"\b([a-z][a-z0-9_-]{2,39})\s+(?:api|service|worker|nodes?|cluster|database|db)\b",
        r"\b(?:on|in|for|of)\s+(?:the\s+)?([a-z][a-z0-9_-]{2,39})\s+(?:service|api)\b",
        r"(?m)\b(?:on|in)\s+(?:the\s+)?([a-z][a-z0-9_-]{2,39})[ \t]*$",
    )
    stop = {"the", "our", "this", "that", "database", "connection", "all", "my", "your", "pool"}
    for pattern in patterns:
        for match in re.finditer(pattern, lower):
            if match.group(1) not in stop:
                return match.group(1)
    return ""


def _title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        line = re.sub(r"(?i)^(title|subject)\s*:\s*", "", line)
        line = re.sub(r"^Ticket\s+\S+?(\s*\([^)]*\))?\s*:\s*", "", line)
        if line:
            return line[:160]
    return "(no text)"


def analyse(convo: Conversation) -> Analysis:
    text = convo.request
    lower = text.lower()
    intents = detect_intents(lower)
    products = find_products(text) if "software_install" in {i.name for i, _ in intents} else []
    product = products[0] if products else ""
    if not product:  # "install" alone (e.g. "…so I can install tools myself") is no request
        intents = [(i, s) for i, s in intents if not i.requires_product]

    scores: dict[str, float] = {}
    for intent, score in intents:
        scores[intent.category] = scores.get(intent.category, 0.0) + score * intent.weight
    category = max(scores, key=lambda c: scores[c]) if scores else "other"

    calm = re.sub(r"\b(not urgent|no rush)\b", " ", lower)
    widespread = _any(WIDESPREAD, lower)
    if _any(PRIORITY_CRITICAL, lower):
        priority = "critical"
    elif _any(PRIORITY_HIGH, calm):
        priority = "high"
    elif _any(PRIORITY_LOW, lower):
        priority = "low"
    else:
        baselines = [intent.priority or "medium" for intent, _ in intents]
        order = ["critical", "high", "medium", "low"]
        priority = min(baselines, key=order.index) if baselines else "medium"

    escalate = any(intent.escalate for intent, _ in intents)
    actionable = [i for i, _ in intents if i.steps and not i.escalate]
    auto = bool(actionable) and not escalate and not widespread and priority != "critical"
    confidence = _confidence(intents, lower)
    negative = _hits(NEGATIVE_WORDS, lower)
    positive = _hits(POSITIVE_WORDS, lower)
    sentiment = (
        "negative" if negative > positive else "positive" if positive > negative else "neutral"
    )

    devices = parse_devices(convo.context)
    return Analysis(
        text=text,
        lower=lower,
        intents=intents,
        email=find_email(convo.context, text),
        devices=devices,
        device=choose_device(devices, text),
        product=product,
        products=products,
        service=find_service(convo.context, lower),
        ticket=(TICKET_RE.findall(convo.context) or [""])[0],
        title=_title(text),
        category=category,
        priority=priority,
        decision="auto" if auto else "human",
        confidence=round(confidence, 2),
        widespread=widespread,
        escalate=escalate,
        sentiment=sentiment,
        category_scores=scores,
    )


# --------------------------------------------------------------------------- schema filling


class Missing(Exception):
    """A required value cannot be filled from what the model knows (e.g. no e-mail)."""


def _family_for(values: list[str], name: str) -> str | None:
    hint = name.lower()
    counts: dict[str, int] = {}
    for family, _concepts in FAMILIES.items():
        counts[family] = sum(1 for v in values if _concept(family, v) is not None)
    for family in ("severity", "priority", "category", "decision", "sentiment"):
        if family in hint and counts.get(family):
            return family
    if "urgency" in hint and counts.get("priority"):
        return "priority"
    best = max(counts, key=lambda f: counts[f])
    return best if counts[best] else None


def _concept(family: str, value: str) -> str | None:
    v = value.lower().strip()
    tokens = [t for t in re.split(r"[\s_/-]+", v) if t]
    for concept, synonyms in FAMILIES[family].items():
        if v in synonyms or v.replace("-", "_") in synonyms:
            return concept
    for concept, synonyms in FAMILIES[family].items():
        if any(t in synonyms for t in tokens):
            return concept
    return None


def choose_enum(values: list[Any], name: str, analysis: Analysis) -> Any:
    strings = [v for v in values if isinstance(v, str)]
    if not strings:
        return values[0] if values else None
    family = _family_for(strings, name)
    wanted: dict[str, float] = {}
    if family == "category":
        wanted = dict(analysis.category_scores) or {"other": 1.0}
    elif family in ("priority", "severity"):
        wanted = {analysis.priority: 1.0}
    elif family == "decision":
        wanted = {analysis.decision: 1.0}
    elif family == "sentiment":
        wanted = {analysis.sentiment: 1.0}
    if family:
        best, best_score = None, 0.0
        for value in strings:
            score = wanted.get(_concept(family, value) or "", 0.0)
            if score > best_score:
                best, best_score = value, score
        if best is not None:
            return best
        for fallback in ("other", "medium", "unknown", "general", "none", "normal", "neutral"):
            if fallback in strings:
                return fallback
    # Unknown vocabulary: the value whose words the request uses most (ties: schema order).
    compact = analysis.lower.replace("-", "")
    best, best_score = strings[0], 0
    for value in strings:
        score = sum(
            1
            for w in _words(value)
            if re.search(rf"\b{re.escape(w)}\b", analysis.lower) or (len(w) > 3 and w in compact)
        )
        if score > best_score:
            best, best_score = value, score
    return best


def _fit_string(value: str, schema: dict[str, Any]) -> str:
    max_len = schema.get("maxLength")
    if isinstance(max_len, int) and len(value) > max_len:
        value = value[: max(0, max_len - 1)].rstrip() + "…" if max_len > 1 else value[:max_len]
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and len(value) < min_len:
        value = (value + " " + "(details in the ticket)").strip()
        if len(value) < min_len:
            value = value.ljust(min_len, ".")
    return value


def _matches(value: str, schema: dict[str, Any]) -> bool:
    pattern = schema.get("pattern")
    return not (pattern and not re.search(pattern, value))


class Filler:
    """Fills a JSON schema from an ``Analysis``; ``focus`` is the intent a call is for."""

    def __init__(self, analysis: Analysis, *, root: dict[str, Any], focus: Intent | None = None):
        self.a = analysis
        self.root = root
        self.focus: Intent | None = focus

    # -- dispatch

    def resolve(self, schema: Any) -> dict[str, Any]:
        if not isinstance(schema, dict):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = self.root
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            merged = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.resolve(merged)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                chosen = next(
                    (o for o in options if isinstance(o, dict) and o.get("type") != "null"),
                    options[0],
                )
                rest = {k: v for k, v in schema.items() if k != key}
                return self.resolve({**rest, **self.resolve(chosen)})
        if isinstance(schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            props: dict[str, Any] = dict(merged.get("properties", {}))
            required: list[str] = list(merged.get("required", []))
            for part in schema["allOf"]:
                part = self.resolve(part)
                props.update(part.get("properties", {}))
                required += [r for r in part.get("required", []) if r not in required]
                merged = {**part, **merged}
            merged["properties"], merged["required"] = props, required
            return merged
        return schema

    def value(self, schema: Any, name: str = "", *, required: bool = True) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return choose_enum(schema["enum"], name, self.a)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = (
                "object" if "properties" in schema else "array" if "items" in schema else "string"
            )
        if kind == "object":
            return self.object(schema)
        if kind == "array":
            return self.array(schema, name)
        if kind in ("number", "integer"):
            return self.number(schema, name, integer=kind == "integer")
        if kind == "boolean":
            return self.boolean(schema, name)
        if kind == "null":
            return None
        return self.string(schema, name, required=required)

    def object(self, schema: dict[str, Any]) -> dict[str, Any]:
        props = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        out: dict[str, Any] = {}
        for name, sub in props.items():
            needed = name in required
            try:
                value = self.value(sub, name, required=needed)
            except Missing:
                if needed:
                    raise
                continue
            if not needed and value in ("", None, [], {}):
                continue
            out[name] = value
        for name in required:  # required but not described: a short text
            out.setdefault(name, self.a.summary)
        return out

    def lenient(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Like ``object`` but never raises: what cannot be known becomes an empty string
        (structured output must always come back)."""
        schema = self.resolve(schema)
        out: dict[str, Any] = {}
        required = list(schema.get("required") or [])
        for name, sub in (schema.get("properties") or {}).items():
            try:
                value = self.value(sub, name, required=name in required)
            except Missing:
                value = ""
            if name in required or value not in ("", None, [], {}):
                out[name] = value
        for name in required:
            out.setdefault(name, self.a.summary)
        return out

    def array(self, schema: dict[str, Any], name: str) -> list[Any]:
        items = self.resolve(schema.get("items") or {"type": "string"})
        low = name.lower()
        values: list[Any] = []
        if isinstance(items.get("enum"), list) and items["enum"]:
            values = [choose_enum(items["enum"], name, self.a)]
        elif items.get("type", "string") == "string" and not items.get("enum"):
            if any(w in low for w in ("tool", "action")):
                values = [step[0] for intent in self.a.actionable for step in intent.steps[:1]]
            elif any(w in low for w in ("step", "plan")):
                values = [self.a.plan]
            elif any(w in low for w in ("tag", "keyword", "label", "intent")):
                values = self.a.intent_names[:5]
            elif "service" in low:
                values = [self.a.service] if self.a.service else []
            elif "email" in low:
                values = [self.a.email] if self.a.email else []
            values = [v for v in values if isinstance(v, str) and _matches(v, items)]
            values = [_fit_string(v, items) for v in values]
        elif items.get("type") == "object" and any(w in low for w in ("action", "tool", "step")):
            for intent in self.a.actionable:
                try:
                    values.append(Filler(self.a, root=self.root, focus=intent).object(items))
                except Missing:
                    continue
        min_items = schema.get("minItems", 0) or 0
        while len(values) < min_items:
            values.append(self.value(items, name[:-1] if name.endswith("s") else name))
        max_items = schema.get("maxItems")
        if isinstance(max_items, int):
            values = values[:max_items]
        return values

    def number(self, schema: dict[str, Any], name: str, *, integer: bool) -> float | int:
        low = name.lower()
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if isinstance(schema.get("exclusiveMinimum"), int | float):
            lo = schema["exclusiveMinimum"] + (1 if integer else 1e-6)
        if isinstance(schema.get("exclusiveMaximum"), int | float):
            hi = schema["exclusiveMaximum"] - (1 if integer else 1e-6)
        rank = {"critical": 1, "high": 2, "medium": 3, "low": 4}[self.a.priority]
        if any(w in low for w in ("confidence", "probability", "certainty", "score")):
            value: float = self.a.confidence
            if isinstance(hi, int | float) and hi > 1:
                value = value * hi
        elif "priority" in low or "severity" in low or "urgency" in low:
            value = rank
        elif any(w in low for w in ("minute", "window", "lookback", "since")):
            value = 60
        elif "hour" in low:
            value = 1
        elif any(w in low for w in ("limit", "count", "lines", "top", "max")):
            value = 20
        elif "default" in schema:
            value = schema["default"]
        else:
            value = lo if isinstance(lo, int | float) else 0
        if isinstance(lo, int | float):
            value = max(lo, value)
        if isinstance(hi, int | float):
            value = min(hi, value)
        return round(value) if integer else round(float(value), 2)

    def boolean(self, schema: dict[str, Any], name: str) -> bool:
        low = name.lower()
        if any(w in low for w in ("human", "escalat", "approval", "manual", "review")):
            return self.a.decision == "human" or bool(self.focus and self.focus.needs_approval)
        if any(w in low for w in ("auto", "resolvable", "self_service")):
            return self.a.decision == "auto"
        if "widespread" in low or "outage" in low:
            return self.a.widespread
        if "notify" in low:
            return True
        return bool(schema.get("default", False))

    def string(self, schema: dict[str, Any], name: str, *, required: bool) -> str:
        low = name.lower()
        a = self.a
        candidates: list[str]
        fmt = schema.get("format", "")
        if fmt == "email" or "email" in low or low in {"user", "upn", "principal", "requester"}:
            candidates = [a.email]
        elif low in {"username", "login", "user_name", "account_name", "samaccountname"}:
            candidates = [a.email.split("@")[0] if a.email else ""]
        elif any(
            w in low for w in ("device", "hostname", "computer", "machine", "asset", "endpoint")
        ):
            candidates = [a.device]
        elif any(w in low for w in ("software", "package", "product", "program")) or (
            low in {"app", "application", "name", "app_name"} and a.product
        ):
            candidates = [a.product]
        elif "ticket" in low or low in {"incident", "incident_id"}:
            candidates = [a.ticket]
        elif "service" in low:
            candidates = [a.service]
        elif "metric" in low:
            candidates = [m for pattern, m in METRICS if re.search(pattern, a.lower)] + [
                "error_rate"
            ]
        elif low in {"query", "pattern", "search", "keywords", "filter", "q"}:
            candidates = [self._query()]
        elif low in {"group", "group_name", "security_group"}:
            candidates = re.findall(
                r"\b([a-z0-9][a-z0-9._-]*-(?:users|group|admins|team|readers|writers|members))\b",
                a.lower,
            )
        elif low in {"system", "system_name", "target_system"}:
            candidates = re.findall(
                r"\b((?:prod|production|staging)-[a-z0-9._-]+|[a-z0-9._-]+-(?:db|prod))\b", a.lower
            )
        elif "category" in low:
            candidates = [a.category]
        elif "priority" in low or "urgency" in low:
            candidates = [a.priority]
        elif "severity" in low:
            candidates = [
                {"critical": "sev1", "high": "sev2", "medium": "sev3", "low": "sev4"}[a.priority]
            ]
        elif "decision" in low:
            candidates = ["auto_resolve" if a.decision == "auto" else "human"]
        elif "sentiment" in low:
            candidates = [a.sentiment]
        elif any(w in low for w in ("title", "subject", "headline")):
            candidates = [a.title]
        elif any(
            w in low
            for w in ("path", "plan", "resolution", "next_step", "recommend", "remediation")
        ):
            candidates = [a.plan]
        elif "method" in low:
            candidates = ["authenticator_app"]
        elif any(w in low for w in ("platform", "os")):
            model = " ".join(m for t, m in a.devices if t == a.device).lower()
            candidates = ["macos" if "mac" in model else "windows"]
        elif any(w in low for w in ("reason", "justification", "why")):
            candidates = [self._reason()]
        else:
            candidates = [a.summary]
        for candidate in candidates:
            if not candidate:
                continue
            candidate = _fit_string(candidate, schema)
            if _matches(candidate, schema):
                return candidate
        if "default" in schema and isinstance(schema["default"], str):
            return schema["default"]
        if required and any(
            w in low
            for w in ("email", "device", "software", "package", "service", "group", "system")
        ):
            raise Missing(name)
        if required and (fmt == "email" or schema.get("pattern")):
            raise Missing(name)
        return "" if not required else _fit_string(a.summary, schema)

    def _query(self) -> str:
        for pattern, words in (
            (r"\btim(e|ed|ing) ?out\b|\btimeouts?\b", "timeout"),
            (r"\bconnection (pool|slots)\b", "connection"),
            (r"\bdisk\b", "disk"),
            (r"\bpermission denied\b", "permission denied"),
        ):
            if re.search(pattern, self.a.lower):
                return words
        return "error"

    def _reason(self) -> str:
        who = self.a.email or "the requester"
        what = self.focus.label if self.focus else "this request"
        return f"Requested by {who} ({what}): {self.a.title}"


# --------------------------------------------------------------------------- the backend


def _estimate_tokens(*parts: Any) -> int:
    chars = 0
    for part in parts:
        chars += len(part) if isinstance(part, str) else len(json.dumps(part, default=str))
    return max(1, chars // 4)


class OfflineBackend:
    """Deterministic stand-in for Claude; same interface, no network, cost 0."""

    name = "offline"

    def __init__(self, config: Any = None, *, model: str = MODEL_NAME):
        self.config = config
        self.model = model

    def complete(
        self,
        *,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[ToolSpec] = (),
        tool_choice: str | None = None,
        max_tokens: int | None = None,
        limit_key: str | None = None,
    ) -> LLMResponse:
        tools = list(tools or ())
        tool_choice_param(tool_choice, tools)  # the same request errors as the API
        convo = Conversation.read(system, messages)
        analysis = analyse(convo)
        by_name = {tool.name: tool for tool in tools}
        start = len(convo.tool_uses)

        text, calls = "", []
        if tool_choice and tool_choice in by_name:
            calls = [self._forced(by_name[tool_choice], analysis)]
        elif tools and tool_choice != "none":
            text, calls = self._act(convo, analysis, by_name)
            if not calls and tool_choice == "any":
                fallback = by_name.get("escalate_to_human") or tools[0]
                calls = [self._forced(fallback, analysis)]
                text = ""
        else:
            text = self._describe(analysis)

        uses = [
            ToolUse(id=self._use_id(start + i + 1, name, args), name=name, input=args)
            for i, (name, args) in enumerate(calls)
        ]
        output = [text, [[u.name, u.input] for u in uses]]
        return LLMResponse(
            text=text,
            tool_uses=uses,
            usage=Usage(
                input_tokens=_estimate_tokens(
                    system or "", messages, [[t.name, t.description, t.input_schema] for t in tools]
                ),
                output_tokens=_estimate_tokens(output),
            ),
            model=self.model,
            backend=self.name,
            stop_reason="tool_use" if uses else "end_turn",
            cost_usd=0.0,
            latency_ms=0,
            attempts=1,
            raw={
                "intents": analysis.intent_names,
                "category": analysis.category,
                "priority": analysis.priority,
                "decision": analysis.decision,
            },
        )

    # -- the three modes

    def _forced(self, tool: ToolSpec, analysis: Analysis) -> tuple[str, dict[str, Any]]:
        focus = next(
            (
                i
                for i in analysis.actionable + analysis.investigative
                if any(tool.name in step for step in i.steps)
            ),
            None,
        )
        filler = Filler(analysis, root=tool.input_schema, focus=focus)
        try:
            args = filler.object(filler.resolve(tool.input_schema))
        except Missing:
            args = filler.lenient(tool.input_schema)
        return tool.name, args

    def _act(
        self, convo: Conversation, analysis: Analysis, tools: dict[str, ToolSpec]
    ) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
        called = [use["name"] for use in convo.tool_uses]
        if convo.last_results:
            follow = self._follow_up(convo, analysis, tools, called)
            if follow:
                return "", follow
            return self._summarise(convo, analysis), []
        candidates = analysis.actionable
        if analysis.widespread or analysis.escalate:
            # Not a fix for one requester: only read-only investigation, if it is offered.
            candidates = analysis.investigative
            offered = [i for i in candidates if any(n in tools for s in i.steps for n in s)]
            if not offered:
                return f"No automated fix applies. {analysis.plan}", []
        calls: list[tuple[str, dict[str, Any]]] = []
        skipped: list[str] = []
        for intent in candidates:
            steps = intent.steps
            if intent.sequential:  # one step per turn: the first one offered
                steps = [s for s in steps if any(n in tools for n in s)][:1]
            for step in steps:
                name = next((n for n in step if n in tools), None)
                if name is None or name in called or any(name == c for c, _ in calls):
                    continue
                variants = [analysis]
                if intent.requires_product and len(analysis.products) > 1:
                    variants = [replace(analysis, product=p) for p in analysis.products]
                made = [self._args(tools[name], variant, intent) for variant in variants]
                if any(args is None for args in made):
                    skipped.append(name)
                    break  # a later step needs the earlier one
                calls.extend((name, args) for args in made)
        if calls:
            return "", calls
        if skipped:
            return (
                "I would use "
                + ", ".join(skipped)
                + " but the request lacks what it needs (the requester's e-mail, device or the "
                "software's name). A person should confirm the details.",
                [],
            )
        return (
            "No automated fix applies to this request: "
            + (
                f"it looks like {_a(analysis.intents[0][0].label)}, which needs a person."
                if analysis.intents
                else "I could not match it to a known self-service problem."
            )
            + " It should go to the service desk.",
            [],
        )

    def _follow_up(
        self,
        convo: Conversation,
        analysis: Analysis,
        tools: dict[str, ToolSpec],
        called: list[str],
    ) -> list[tuple[str, dict[str, Any]]]:
        by_id = {use["id"]: use["name"] for use in convo.tool_uses}
        ok = {by_id.get(r["tool_use_id"], "") for r in convo.last_results if not r["is_error"]}
        if not ok or any(r["is_error"] for r in convo.last_results):
            return []
        calls: list[tuple[str, dict[str, Any]]] = []
        chains = analysis.investigative
        if not (analysis.widespread or analysis.escalate):
            chains = analysis.actionable + chains
        for intent in chains:
            names = [next((n for n in step if n in tools), None) for step in intent.steps]
            for prev, nxt in itertools.pairwise(names):
                if prev and nxt and prev in ok and nxt not in called:
                    args = self._args(tools[nxt], analysis, intent)
                    if args is not None:
                        calls.append((nxt, args))
                    break
        # A result may name the tool that fixes what it found (e.g. a diagnostic's findings).
        results = " ".join(r["content"] for r in convo.last_results)
        for name in sorted(set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", results))):
            if name in tools and name not in called and all(name != c for c, _ in calls):
                if name in {s[0] for i in INTENTS for s in i.steps if i.needs_approval}:
                    continue  # tool output never proposes a high-risk action
                args = self._args(tools[name], analysis, None)
                if args is not None:
                    calls.append((name, args))
        return calls

    def _summarise(self, convo: Conversation, analysis: Analysis) -> str:
        by_id = {use["id"]: use["name"] for use in convo.tool_uses}
        investigating = {n for i in analysis.investigative for step in i.steps for n in step}
        lines, failed, names = [], False, []
        for result in convo.all_results:
            name = by_id.get(result["tool_use_id"], "a tool")
            names.append(name)
            content = " ".join(result["content"].split())[:200] or "no output"
            if result["is_error"] and result in convo.last_results:
                failed = True
            lines.append(f"- {name}{' failed' if result['is_error'] else ''}: {content}")
        if failed:
            head = "Not resolved: a step failed, so a person should take over from here."
        elif names and all(n in investigating for n in names):
            head = f"Investigation of {_a(analysis.intents[0][0].label)}: evidence gathered; "
            head += "a person should review it and decide the remediation."
        else:
            head = "Done: the actions completed."
        return "\n".join([head, *lines[-8:]])

    def _describe(self, analysis: Analysis) -> str:
        return (
            f"{analysis.summary}. Category {analysis.category}, priority {analysis.priority}. "
            f"Suggested path: {analysis.plan}"
        )

    # -- helpers

    def _args(self, tool: ToolSpec, analysis: Analysis, intent: Intent | None):
        filler = Filler(analysis, root=tool.input_schema, focus=intent)
        try:
            return filler.object(filler.resolve(tool.input_schema))
        except Missing:
            return None

    @staticmethod
    def _use_id(n: int, name: str, args: dict[str, Any]) -> str:
        digest = hashlib.sha256(
            json.dumps([name, args], sort_keys=True, default=str).encode()
        ).hexdigest()
        return f"toolu_offline_{n}_{digest[:8]}"
