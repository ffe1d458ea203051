"""Slots of a service-desk request: who it is for, which device, which software, which site or
room, whether many people are affected, and the tone.

Entities with a closed form are read by pattern (e-mail addresses, asset tags, ticket numbers,
the context lines the pipeline writes: ``Requester:`` / ``Requester devices:``) or by
gazetteer (the software catalogue); "someone else", "many users" and "a room or site" are
phrase patterns in the five languages of the training set. The classifiers in
``incidents.nlu.model`` decide what the request is; these say what it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
DEVICE_RE = re.compile(r"\b[A-Z]{2,4}-\d{3,6}\b")
TICKET_RE = re.compile(r"\b(?:INC|REQ|RITM|CHG|PRB|TKT|SR)-?\d{3,}\b")
REQUESTER_RE = re.compile(r"(?im)^[ \t]*requester(?:[ \t]*e-?mail)?[ \t]*:[ \t]*(.*)$")
DEVICES_RE = re.compile(r"(?im)^[ \t]*requester[ \t]+devices?[ \t]*:[ \t]*(.*)$")

# Many people affected (en, fr, de, es, nl).
MANY_USERS = re.compile(
    r"\b(all (users|staff|employees|of us|colleagues|participants)|everyone|everybody|nobody|"
    r"no ?one (in|on|at|can)|none of (us|the \d+|the people)|whole (team|office|floor|company|"
    r"site|building|department|region)|entire (team|office|floor|company|site|building|"
    r"department|organi[sz]ation|region)|(multiple|many|several|all the) (users|people|"
    r"colleagues|accounts)|\d{2,} (users|people|colleagues|participants|staff)|company[- ]wide|"
    r"outage|tout le monde|personne n|tout le site|plus personne|alle (kollegen|mitarbeiter|"
    r"abteilungen)|niemand|ganze[mn]? (gebäude|büro|team|standort)|im ganzen|todos|nadie|"
    r"toda la (oficina|planta)|iedereen|niemand|hele (kantoor|verdieping|team))\b"
)
SITE = re.compile(
    r"\b((meeting|training|conference|board) ?room\s+[\w.-]+|room\s+[\w.-]*\d[\w.-]*|"
    r"\d+(st|nd|rd|th) floor|floor \d+|building [a-z0-9]\b|\w+ office|"
    r"salle\s+[\w.-]+|bureau de \w+|site de \w+|raum\s+[\w.-]+|besprechungsraum\s*[\w.-]*|"
    r"gebäude \w+|stock \d|planta \w+|sala\s+[\w.-]+|verdieping|zaal\s+[\w.-]+|kantine|"
    r"canteen|warehouse|reception)\b"
)
# A request about another person's account (named, a colleague, a manager, on behalf of).
THIRD_PARTY = re.compile(
    r"\b(on behalf of|for (him|her|them)\b|(my|our|a) (colleague|coworker|co-worker|manager|"
    r"boss|assistant|team ?mate|intern|report|direct report)\b|his account|her account|"
    r"[a-z]+'s (account|password|login|laptop)|for (mr|mrs|ms|dr)\.? [a-z]+|"
    r"(ma|mon) (collègue|manager|responsable)|(meines|meiner) (kollegen|kollegin|chefs?)|"
    r"von (herrn|frau) \w+|(mi|nuestro) (compañero|compañera|jefe|jefa)|"
    r"(mijn|onze) (collega|manager|baas)|raising (this )?for|help (him|her|them)\b|"
    r"\b(he|she)('s| is| was| has| can'?t| cannot| got)\b)"
)
# Urgency the requester states (en, fr, de, es, nl): raises a medium/low priority to high.
URGENT = re.compile(
    r"\b(urgent(ly)?|asap|as soon as possible|right now|immediately|emergency|cannot work|"
    r"can'?t work|unable to work|deadline|in \d+ min(ute)?s|before (my|the) (call|meeting|"
    r"flight|presentation)|dringend|sofort|eilig|urgente|inmediatamente|immédiatement|"
    r"au plus vite|spoed|dringend)\b|!{2,}"
)
CALM = re.compile(
    r"\b(not urgent|no rush|whenever you (can|have time)|when you (have|get) (a )?(chance|"
    r"moment|time)|nice to have|pas urgent|nicht dringend|no es urgente|niet dringend)\b"
)
# Someone other than the writer is pointed at or named ("help him", "for Maria in sales").
OTHER_PERSON = re.compile(
    r"\b(he|she|him|her|his|hers|il|elle|lui|er|sie|ihm|ihr|él|ella|hij|zij|haar)\b"
    r"|\bfor [A-Z][a-z]+ (in|from|at|of)\b"
)
NEGATIVE = re.compile(
    r"(\bfrustrat\w*|\bangry\b|\bunacceptable\b|\bagain\b|\bstill (not|broken|doesn'?t)\b|"
    r"\bridiculous\b|\bterrible\b|\buseless\b|\bworst\b|\bfed up\b|!{2,}|\bthird time\b)"
)
POSITIVE = re.compile(r"\b(thanks?|thank you|great|appreciated?|works now|merci|danke|gracias)\b")

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
    "Microsoft Visio": ("microsoft visio", "visio"),
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
# Each alias as a whole word, compiled once (76 patterns; built per call they cost 0.25 ms).
_ALIAS_PATTERNS = [
    (alias, re.compile(rf"(?<![\w+]){re.escape(alias)}(?![\w+])"), name) for alias, name in _ALIASES
]
INSTALL_WORDS = r"install(?:ed|ing|ation|er|ieren|eren|ar)?"


@dataclass
class Slots:
    email: str = ""  # whom the request is for: the requester unless the text names another
    requester_email: str = ""
    other_emails: list[str] = field(default_factory=list)
    devices: list[tuple[str, str]] = field(default_factory=list)  # (asset tag, model)
    device: str = ""
    products: list[str] = field(default_factory=list)
    site: str = ""
    many_users: bool = False
    urgency: str = ""  # "urgent", "calm" or ""
    third_party: bool = False
    other_person: bool = False
    ticket: str = ""
    sentiment: str = "neutral"

    @property
    def product(self) -> str:
        return self.products[0] if self.products else ""


def extract(text: str, context: str) -> Slots:
    lower = text.lower()
    requester = requester_email(context)
    named = sorted(set(EMAIL_RE.findall(text)), key=text.find)
    # Without a known requester an address in the text is taken as theirs, not another's.
    others = [e for e in named if e.lower() != requester.lower()] if requester else []
    devices = parse_devices(context)
    site = SITE.search(lower)
    negative, positive = len(NEGATIVE.findall(lower)), len(POSITIVE.findall(lower))
    return Slots(
        email=requester or (named[0] if named else ""),
        requester_email=requester,
        other_emails=others,
        devices=devices,
        device=choose_device(devices, text),
        products=find_products(text),
        site=site.group(0) if site else "",
        many_users=bool(MANY_USERS.search(lower)),
        urgency="calm" if CALM.search(lower) else "urgent" if URGENT.search(lower) else "",
        third_party=bool(THIRD_PARTY.search(lower)) or bool(requester and others),
        other_person=bool(OTHER_PERSON.search(text[:20_000])),
        ticket=(TICKET_RE.findall(context) or [""])[0],
        sentiment="negative"
        if negative > positive
        else "positive"
        if positive > negative
        else "neutral",
    )


def requester_email(context: str) -> str:
    for line in REQUESTER_RE.findall(context):
        match = EMAIL_RE.search(line)
        if match:
            return match.group(0)
    return ""


def _aliases_in(lower: str, start: int, end: int) -> list[tuple[int, str]]:
    """Catalogue products named in lower[start:end]: (position, canonical name), in order;
    the longest alias wins where aliases overlap ("visual studio code" over "visual studio")."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, str]] = []
    window = lower[start:end]
    for alias, pattern, name in _ALIAS_PATTERNS:
        if alias not in window:  # (a substring test first: most aliases are nowhere near)
            continue
        for match in pattern.finditer(window):
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
    else anywhere in a request that asks for software), or the capitalised words right after
    "install"; canonical spelling, in the order named."""
    lower = text.lower()
    installs = list(re.finditer(rf"\b{INSTALL_WORDS}\b", lower))
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
    if anywhere and re.search(rf"\b({INSTALL_WORDS}|need|licen[cs]e|set up|setup)\b", lower):
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
    """The device the text names (by tag, first named; else by a word of its model), else the
    requester's first device, else a tag written in the text."""
    lower = text.lower()
    mentioned = [(lower.find(tag.lower()), tag) for tag, _ in devices if tag.lower() in lower]
    if mentioned:
        return min(mentioned)[1]
    for tag, model in devices:
        words = [w for w in re.split(r"[^a-z0-9+]+", model.lower()) if len(w) >= 4]
        words = [w for w in words if not w.isdigit()]
        if words and any(re.search(rf"\b{re.escape(w)}\b", lower) for w in words):
            return tag
    if devices:
        return devices[0][0]
    found = DEVICE_RE.findall(text)
    return found[0] if found else ""
