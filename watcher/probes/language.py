"""Which language an answer is written in, from stop words and marker letters, and the ``language``
canary check built on it.

Its own module because the word lists are long and have nothing to do with the other checks.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from pydantic import field_validator

from watcher.probes.answer_checks import AnswerCheck, Score, empty_answer, fail, quoted

LANGUAGES = ("fr", "en", "es", "de")


# --------------------------------------------------------------------------- language


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words, which make up 40-50 % of running text in these languages. Words on two
# lists ("de", "la", "en", "in") are no evidence for either (see _OWN_WORDS) but count
# towards each language's share of function words.
_STOP_WORDS: dict[str, frozenset[str]] = {
    "fr": _words(
        """le la les l un une des du de d et est sont à au aux en dans sur pour par avec ce cet cette
        ces c ça qui que qu ne n pas plus il elle ils elles nous vous je j tu on se s son sa ses leur
        leurs mon ma mes ton ta tes notre votre nos vos mais ou où donc car très bien aussi été être
        avoir ai as avons avez ont fait comme tout tous toute toutes y sans sous chez dès maintenant
        aujourd hui voici voilà oui non lui eux moi toi"""
    ),
    "en": _words(
        """the a an and or but is are was were be been being to of in on at for with by from as it its
        this that these those i you he she we they them not no yes do does did have has had will would
        can could should shall may might must there their what which who whom how now your our my me his
        her than then so if into about just only also very here when where why"""
    ),
    "es": _words(
        """el la los las un una unos unas y o pero es son está están estaba fue ser de del al en con por
        para que qué no sí se su sus lo le les mi mis tu tus este esta estos estas ese esa como cómo más
        muy ya ahora también hay yo él ella nosotros ustedes ellos cuando donde dónde sin sobre hoy
        porque"""
    ),
    "de": _words(
        """der die das den dem des ein eine einen einem einer eines und oder aber ist sind war waren sein
        zu zum zur von vom mit für auf aus bei nicht kein keine keinen ich du er sie es wir ihr im in an
        am auch nur noch jetzt schon sehr wie was wer wenn dass hat haben wird werden heute hier ja nein
        doch mehr über unter"""
    ),
}
# Letters that mark a language; é is shared by French and Spanish, ü goes to German.
_MARKERS: dict[str, str] = {
    "fr": "àâçèêëîïôùûœæé",
    "en": "",
    "es": "áíóúñ¿¡é",
    "de": "äöüß",
}
# Evidence counts only what belongs to one language alone, so "le" (French and Spanish)
# or é (French and Spanish) tells nothing, and "Achetez-le now" reads as English.
_OWN_WORDS: dict[str, frozenset[str]] = {
    lang: words - frozenset().union(*(w for other, w in _STOP_WORDS.items() if other != lang))
    for lang, words in _STOP_WORDS.items()
}
_OWN_MARKERS: dict[str, str] = {
    lang: "".join(c for c in marks if not any(c in m for o, m in _MARKERS.items() if o != lang))
    for lang, marks in _MARKERS.items()
}
_LANG_NAMES = {"fr": "French", "en": "English", "es": "Spanish", "de": "German"}
_WORD = re.compile(r"[^\W\d_]+")
MIN_STOP_RATIO = 0.15
"""Below this share of function words a text of 8 words or more is taken as garbled."""


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """What :func:`detect_language` saw."""

    language: str | None
    """The best-scoring language, or None when there is no evidence or a tie at the top."""
    evidence: dict[str, int]
    """Per language: words that only it uses (function words or marker letters)."""
    stop_ratio: dict[str, float]
    """Per language: share of the words that are its function words."""
    words: int
    foreign_script: str | None
    """The name of the first non-Latin script seen in a letter (e.g. ``"CJK"``, ``"THAI"``), if any."""


def _script_of(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def detect_language(text: str) -> LanguageGuess:
    """Guess which of fr, en, es, de a short text is in, from function words and accented letters.

    The heuristic: split into words (letters only, so "l'eau" is "l" + "eau");
    each language scores one point per word that is on its function-word list and
    on no other language's, or that carries a letter only it uses (French ç è ê…,
    Spanish ñ á í…, German ä ö ü ß; é is shared, so it counts for none). The top
    scorer wins; a tie at the top, or no points at all (common for two-word answers
    such as "Bleu clair"), gives ``language=None``. Letters from any script other than Latin
    are reported in ``foreign_script``. Good for telling these four apart in a
    sentence or two; not a general language identifier.
    """
    text = unicodedata.normalize("NFC", text)
    words = _WORD.findall(text.casefold())
    foreign = next((s for ch in text if ch.isalpha() and (s := _script_of(ch)) != "LATIN"), None)
    evidence: dict[str, int] = {}
    ratio: dict[str, float] = {}
    for lang in LANGUAGES:
        own, marks = _OWN_WORDS[lang], _OWN_MARKERS[lang]
        evidence[lang] = sum(1 for w in words if w in own or (marks and any(c in marks for c in w)))
        hits = sum(1 for w in words if w in _STOP_WORDS[lang])
        ratio[lang] = hits / len(words) if words else 0.0
    top = max(evidence.values(), default=0)
    leaders = [lang for lang, e in evidence.items() if e == top]
    guess = leaders[0] if top > 0 and len(leaders) == 1 else None
    return LanguageGuess(guess, evidence, ratio, len(words), foreign)


def _fold(text: str) -> str:
    """Casefolded, accents removed: for ``contains_any``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class LanguageCheck(AnswerCheck):
    type: Literal["language"]
    language: Literal["fr", "en", "es", "de"]
    contains_any: tuple[str, ...] = ()
    """If given, the answer must also contain one of these (no case, no accents, substring)."""

    @field_validator("contains_any")
    @classmethod
    def _non_blank(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not x.strip() for x in v):
            raise ValueError("contains_any has an empty string, which would match anything")
        return v

    def score(self, answer: str | None) -> Score:
        if empty_answer(answer):
            return fail("empty answer")
        assert answer is not None
        want = _LANG_NAMES[self.language]
        guess = detect_language(answer)
        if guess.foreign_script:
            return fail(
                f"expected {want}, but the answer has {guess.foreign_script} letters: {quoted(answer)}"
            )
        if guess.words == 0:
            return fail(f"expected {want}, got no words: {quoted(answer)}")
        found = None
        if self.contains_any:
            folded = _fold(answer)
            found = next((w for w in self.contains_any if _fold(w) in folded), None)
            if found is None:
                words = ", ".join(repr(w) for w in self.contains_any)
                return fail(f"expected the answer to contain one of {words}, got {quoted(answer)}")
        if guess.language is None:
            if guess.evidence[self.language] == 0 and max(guess.evidence.values()) > 0:
                # A tie among other languages, none of them the wanted one.
                return fail(f"expected {want}, but the answer reads as another language: {quoted(answer)}")
            if found is None:
                return fail(f"expected {want}, but cannot tell the language of {quoted(answer)}")
            return Score(True, f"too short to tell the language; contains {found!r} as expected", True)
        if guess.language != self.language:
            return fail(f"expected {want}, got {_LANG_NAMES[guess.language]}: {quoted(answer)}")
        ratio = guess.stop_ratio[self.language]
        if guess.words >= 8 and ratio < MIN_STOP_RATIO:
            return fail(
                f"expected {want}, but only {ratio:.0%} of the {guess.words} words are {want} "
                f"function words (garbled?): {quoted(answer)}"
            )
        extra = f", contains {found!r}" if found else ""
        return Score(True, f"answer is in {want}{extra}", True)
