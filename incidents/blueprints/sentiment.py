"""Signs that a requester is frustrated, in the languages our requesters write in.

``assess(texts, reopen_count=...)`` returns the evidence: the phrases found (with the words
as the requester wrote them), shouting, piled-up punctuation, follow-ups nobody answered, and
how often the ticket was reopened. The phrases are cues of frustration as people write them
in each language (still not working, once again broken, how many times, unacceptable, nobody
answers …); matching ignores case and accents, and is whole-word. Nothing here is tuned to one
message: a score adds independent signals, and a person decides what to do with a flag.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

CUES: dict[str, tuple[str, ...]] = {
    "en": (
        "still not working",
        "still doesn't work",
        "still does not work",
        "still broken",
        "not working again",
        "broken again",
        "happened again",
        "again and again",
        "third time",
        "fourth time",
        "how many times",
        "unacceptable",
        "ridiculous",
        "frustrated",
        "frustrating",
        "fed up",
        "sick of",
        "waste of time",
        "nobody answers",
        "no one answers",
        "nobody replies",
        "no response",
        "still waiting",
        "waiting for days",
        "this is a joke",
        "useless",
        "terrible service",
        "worst service",
    ),
    "de": (
        "immer noch nicht",
        "schon wieder",
        "zum dritten mal",
        "zum x-ten mal",
        "wie oft noch",
        "unzumutbar",
        "inakzeptabel",
        "frustriert",
        "frustrierend",
        "argerlich",
        "niemand antwortet",
        "keine antwort",
        "warte seit tagen",
        "es reicht",
        "langsam reicht",
        "eine frechheit",
        "unmoglich",
    ),
    "fr": (
        "toujours pas",
        "ne marche toujours pas",
        "encore en panne",
        "de nouveau en panne",
        "pour la troisieme fois",
        "combien de fois",
        "inacceptable",
        "inadmissible",
        "ridicule",
        "frustre",
        "frustree",
        "ras le bol",
        "j'en ai marre",
        "personne ne repond",
        "aucune reponse",
        "j'attends depuis",
    ),
    "es": (
        "sigue sin funcionar",
        "todavia no funciona",
        "otra vez roto",
        "otra vez no funciona",
        "por tercera vez",
        "cuantas veces",
        "inaceptable",
        "ridiculo",
        "frustrado",
        "frustrada",
        "harto",
        "harta",
        "nadie responde",
        "nadie contesta",
        "sin respuesta",
        "llevo dias esperando",
    ),
    "it": (
        "ancora non funziona",
        "non funziona ancora",
        "di nuovo rotto",
        "per la terza volta",
        "quante volte",
        "inaccettabile",
        "ridicolo",
        "frustrato",
        "frustrata",
        "stufo",
        "stufa",
        "nessuno risponde",
        "nessuna risposta",
    ),
    "pt": (
        "ainda nao funciona",
        "continua sem funcionar",
        "pela terceira vez",
        "quantas vezes",
        "inaceitavel",
        "ridiculo",
        "frustrado",
        "frustrada",
        "cansado disso",
        "cansada disso",
        "ninguem responde",
        "sem resposta",
    ),
    "nl": (
        "werkt nog steeds niet",
        "nog steeds niet",
        "alweer kapot",
        "voor de derde keer",
        "hoe vaak nog",
        "onacceptabel",
        "belachelijk",
        "gefrustreerd",
        "niemand reageert",
        "geen reactie",
    ),
}
PHRASES_COUNTED = 3  # more phrases of the same mood add no more weight
FLAG_SCORE = 2


def fold(text: str) -> str:
    """Lower case, no accents, one kind of apostrophe: 'Ärgerlich' and 'argerlich' match."""
    text = unicodedata.normalize("NFKD", text.replace("’", "'").replace("`", "'"))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


_PATTERNS = [
    (lang, phrase, re.compile(r"(?<!\w)" + re.escape(fold(phrase)) + r"(?!\w)"))
    for lang, phrases in CUES.items()
    for phrase in phrases
]
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_PILED = re.compile(r"[!?]{2,}")


@dataclass
class Assessment:
    phrases: list[dict] = field(default_factory=list)  # {"phrase", "lang", "quote"}
    shouting: list[str] = field(default_factory=list)  # words written in capitals
    piled_punctuation: int = 0
    unanswered_followups: int = 0
    reopen_count: int = 0

    @property
    def score(self) -> int:
        return (
            min(len({p["phrase"] for p in self.phrases}), PHRASES_COUNTED)
            + (1 if len(self.shouting) >= 2 else 0)
            + (1 if self.piled_punctuation else 0)
            + (1 if self.unanswered_followups >= 3 else 0)
            + self.reopen_count
        )

    @property
    def flagged(self) -> bool:
        return self.reopen_count >= 2 or self.score >= FLAG_SCORE

    def evidence(self) -> dict:
        return {
            "phrases": self.phrases,
            "shouting": self.shouting[:10],
            "piled_punctuation": self.piled_punctuation,
            "unanswered_followups": self.unanswered_followups,
            "reopen_count": self.reopen_count,
            "score": self.score,
        }


def _quote(text: str, folded: str, match: re.Match) -> str:
    """The words as written around the match (folding keeps one character per character for
    nearly all text; where it does not, the folded words are quoted)."""
    start, end = max(0, match.start() - 40), min(len(folded), match.end() + 40)
    source = text if len(text) == len(folded) else folded
    return " ".join(source[start:end].split())


def assess(texts: list[str], *, reopen_count: int = 0, unanswered_followups: int = 0) -> Assessment:
    result = Assessment(reopen_count=reopen_count, unanswered_followups=unanswered_followups)
    seen: set[str] = set()
    for text in texts:
        folded = fold(text)
        for lang, phrase, pattern in _PATTERNS:
            match = pattern.search(folded)
            if match and phrase not in seen:
                seen.add(phrase)
                result.phrases.append(
                    {"phrase": phrase, "lang": lang, "quote": _quote(text, folded, match)}
                )
        result.shouting += [w for w in _WORD.findall(text) if len(w) >= 4 and w.isupper()]
        result.piled_punctuation += len(_PILED.findall(text))
    # A phrase inside a longer one found too ("nog steeds niet" in "werkt nog steeds niet")
    # is the same complaint, said once.
    result.phrases = [
        p
        for p in result.phrases
        if not any(
            p["phrase"] != q["phrase"] and p["phrase"] in q["phrase"] for q in result.phrases
        )
    ]
    return result
