"""Canary prompts with known answers, and the pure functions that score the answers.

A canary is a tiny prompt whose right answer is checked by code, never by another
model (docs/detection.md §4.1). Each canary carries one *check*; ``check.score(answer)``
returns a :class:`Score`: whether the answer is right after tolerant parsing
(``passed``), whether its format was exactly right as well (``format_ok``, scored
as a separate outcome per §4.1.4), and a plain-words ``detail`` such as
``"expected 391, got 381"``.

Check types (the ``type`` key of a canary's ``check`` table):

``exact``
    The answer equals ``expected`` (or one of ``any_of``) after normalising both:
    Unicode NFKC, surrounding whitespace, markdown emphasis (``*``, ``_``, `````,
    ``~``), quotes (``" ' “ ” ‘ ’ « »``) and trailing punctuation (``. ! ? , ; : …``)
    are stripped from both ends, inner whitespace is collapsed, and case is folded
    unless ``case_sensitive = true``. ``format_ok`` means the stripped answer was
    already an accepted form, with nothing stripped but case.
``regex``
    ``pattern`` must match the stripped answer: the whole of it with
    ``match = "full"`` (the default, :func:`re.fullmatch`), anywhere in it with
    ``match = "search"`` (:func:`re.search`). Optional ``reject``: a second pattern
    that must *not* be found anywhere (always case-insensitive), e.g. refusal
    phrases. Patterns are compiled once, at load. Answers longer than
    ``max_chars`` (default 2000) fail without matching, and patterns with nested
    unbounded repetition such as ``(a+)+`` are refused at load, because that is
    what makes backtracking catastrophic (a heuristic, not a proof; possessive
    quantifiers and atomic groups are accepted).
``number``
    The first number in the answer (``pick = "last"`` for the last) equals
    ``expected`` within ``abs_tol`` or ``rel_tol`` (as :func:`math.isclose`; both
    default to 0: exact). See :func:`extract_numbers` for the accepted spellings.
    ``format_ok`` means the answer was the number alone.
``json``
    The answer parses as JSON (a ```` ```json ```` fence around it is tolerated
    unless ``allow_fence = false``; prose around it is not) and validates against
    the JSON Schema in ``schema`` (checked with :mod:`jsonschema` at load, draft
    2020-12 unless the schema names another). ``format_ok`` means there was no fence.
``language``
    The answer is written in ``language`` (``fr``, ``en``, ``es`` or ``de``) by the
    heuristic in :func:`detect_language`, contains no letters outside the Latin
    script (the Aug 2025 wrong-script incident), and, if ``contains_any`` is given,
    contains one of those strings (compared without case or accents, as
    substrings: ``"achet"`` matches "Achetez" and "achète").

An empty answer always fails with ``"empty answer"``.

Canary sets are TOML: ``version``, an array of ``[[canary]]`` tables, and, in a
user's set only, ``disable = ["id", ...]`` to drop shipped canaries.
:func:`load_canaries` reads one (the shipped ``canaries.toml`` when given no
path) and :func:`merge` lays a user's set over the default.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from re import _constants as _sre_c
from re import _parser as _sre_parse
from typing import Annotated, Any, Literal

import jsonschema
import jsonschema.exceptions
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

CHECK_TYPES = ("exact", "regex", "number", "json", "language")
LANGUAGES = ("fr", "en", "es", "de")
MAX_TOKENS_LIMIT = 256
"""Largest ``max_tokens`` a canary may ask for; §4.1.3 wants ≤ 30 for all but the latency canary."""

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class CanaryError(ValueError):
    """An invalid canary set; the message names the file, the canary and the field."""


@dataclass(frozen=True, slots=True)
class Score:
    """The outcome of one check on one answer."""

    passed: bool
    """Right after tolerant parsing."""
    detail: str
    """Plain words, e.g. ``"expected 391, got 381"``."""
    format_ok: bool = False
    """Right *and* in exactly the asked format (no fence, no markdown, nothing around it)."""


def _fail(detail: str) -> Score:
    return Score(False, detail, False)


def _show(text: str, limit: int = 80) -> str:
    """An answer quoted for a detail line, shortened."""
    one = " ".join(text.split())
    if len(one) > limit:
        one = one[: limit - 1] + "…"
    return repr(one)


# --------------------------------------------------------------------------- exact

_EMPHASIS = "*_`~"
_QUOTES = "\"'“”‘’«»„‚‹›"
_TRAILING_PUNCT = ".!?,;:…。！？"


def normalize(text: str, *, case_sensitive: bool = False) -> str:
    """The comparable form of a short answer (see the ``exact`` check above)."""
    s = unicodedata.normalize("NFKC", text)
    while True:
        before = s
        s = s.strip()
        s = s.strip(_EMPHASIS)
        s = s.strip(_QUOTES)
        s = s.rstrip(_TRAILING_PUNCT)
        if s == before:
            break
    s = " ".join(s.split())
    return s if case_sensitive else s.casefold()


def _empty(answer: str | None) -> bool:
    return answer is None or not answer.strip()


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def score(self, answer: str | None) -> Score:  # pragma: no cover - overridden
        raise NotImplementedError


class ExactCheck(_Check):
    type: Literal["exact"]
    expected: str = Field(min_length=1)
    any_of: tuple[str, ...] = ()
    """More accepted answers (aliases), normalised the same way."""
    case_sensitive: bool = False

    @field_validator("expected", "any_of")
    @classmethod
    def _not_blank(cls, v: Any) -> Any:
        items = v if isinstance(v, tuple) else (v,)
        if any(not normalize(x) for x in items):
            raise ValueError(
                "an accepted answer is empty after normalising (only spaces, quotes or punctuation)"
            )
        return v

    def score(self, answer: str | None) -> Score:
        if _empty(answer):
            return _fail("empty answer")
        assert answer is not None
        accepted = (self.expected, *self.any_of)
        got = normalize(answer, case_sensitive=self.case_sensitive)
        norm = {normalize(a, case_sensitive=self.case_sensitive) for a in accepted}
        if got not in norm:
            want = " or ".join(repr(a) for a in accepted)
            return _fail(f"expected {want}, got {_show(answer)}")
        raw = answer.strip()
        fold = (lambda x: x) if self.case_sensitive else str.casefold
        exact = fold(raw) in {fold(a) for a in accepted}
        detail = f"got {_show(answer)} as expected"
        if not exact:
            detail += " (after stripping formatting)"
        return Score(True, detail, exact)


# --------------------------------------------------------------------------- regex


def _nested_unbounded(pattern: str) -> bool:
    """Whether the pattern repeats, without bound, something that itself repeats without bound."""
    parsed = _sre_parse.parse(pattern)
    repeats = (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT)
    safe = (_sre_c.POSSESSIVE_REPEAT, _sre_c.ATOMIC_GROUP)

    def children(av: Any) -> Iterator[Any]:
        if isinstance(av, _sre_parse.SubPattern):
            yield av
        elif isinstance(av, tuple | list):
            for x in av:
                yield from children(x)

    def walk(sub: Any, inside: bool) -> bool:
        for op, av in sub:
            if op in safe:
                continue
            if op in repeats:
                _lo, hi, body = av
                unbounded = hi == _sre_c.MAXREPEAT
                if unbounded and inside:
                    return True
                if walk(body, inside or unbounded):
                    return True
                continue
            if any(walk(child, inside) for child in children(av)):
                return True
        return False

    return walk(parsed, False)


class RegexCheck(_Check):
    type: Literal["regex"]
    pattern: str = Field(min_length=1)
    match: Literal["full", "search"] = "full"
    """``full``: the whole stripped answer must match; ``search``: a match anywhere."""
    ignore_case: bool = False
    reject: str | None = None
    """A pattern that must not be found anywhere in the answer (case-insensitive)."""
    max_chars: int = Field(default=2000, ge=1, le=100_000)

    _compiled: re.Pattern[str] = PrivateAttr()
    _reject: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("pattern", "reject")
    @classmethod
    def _valid_pattern(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"invalid regular expression {v!r}: {e}") from None
        if _nested_unbounded(v):
            raise ValueError(
                f"regular expression {v!r} repeats a repetition without bound (like (a+)+), which can "
                "backtrack for ever; bound the outer repeat, or use a possessive quantifier (*+, ++) "
                "or an atomic group (?>...)"
            )
        return v

    def model_post_init(self, _ctx: Any) -> None:
        self._compiled = re.compile(self.pattern, re.IGNORECASE if self.ignore_case else 0)
        self._reject = re.compile(self.reject, re.IGNORECASE) if self.reject else None

    def score(self, answer: str | None) -> Score:
        if _empty(answer):
            return _fail("empty answer")
        assert answer is not None
        text = answer.strip()
        if len(text) > self.max_chars:
            return _fail(f"answer too long to check ({len(text)} characters, limit {self.max_chars})")
        if self._reject is not None and (bad := self._reject.search(text)):
            return _fail(f"answer contains {bad.group(0)!r}, which it must not: {_show(answer)}")
        m = self._compiled.fullmatch(text) if self.match == "full" else self._compiled.search(text)
        if m is None:
            how = "match" if self.match == "full" else "contain a match for"
            return _fail(f"expected the answer to {how} /{self.pattern}/, got {_show(answer)}")
        return Score(True, f"{_show(answer)} matches /{self.pattern}/", True)


# --------------------------------------------------------------------------- number

_GROUP_SEPS = ",.'\u00a0\u202f\u2009 "
_NUMBER = re.compile(
    r"(?<![\w.,])"
    r"(?P<sign>[-+\u2212])?"
    r"(?P<int>[1-9]\d{0,2}(?P<sep>[,.'\u00a0\u202f\u2009 ])\d{3}(?!\d)(?:(?P=sep)\d{3}(?!\d))*|\d+)"
    r"(?:(?P<dec>[.,])(?P<frac>\d+))?"
)


def extract_numbers(text: str) -> list[tuple[Decimal, str]]:
    """Every number in ``text``, in order, as ``(value, the text it was read from)``.

    Accepted: ``391``, ``-3`` (also with U+2212 minus), ``4.0``, ``3,5`` (decimal
    comma), ``1,234.5`` and ``1.234,5`` and ``1 234,5`` / ``1'234`` (thousands
    grouped by comma, dot, space, no-break or thin space, or apostrophe).
    Ambiguous single groups are read the English way: ``1,234`` is 1234 and
    ``1.234`` is 1.234; ``0,125`` is 0.125 (no group starts with 0). Not accepted: number words, exponents, fractions like 3/4
    (read as 3 then 4). A minus glued to a word (``COVID-19``) is not a sign.
    """
    out: list[tuple[Decimal, str]] = []
    for m in _NUMBER.finditer(text):
        int_part, sep, dec, frac = m.group("int"), m.group("sep"), m.group("dec"), m.group("frac")
        if sep and dec == sep:
            # "1,234,5": the last separator cannot be both grouping and decimal; keep the grouped part.
            dec = frac = None
        if sep == "." and not dec and int_part.count(".") == 1:
            digits = int_part  # "1.234": English decimal point
        else:
            digits = int_part.translate({ord(c): None for c in _GROUP_SEPS}) if sep else int_part
            if dec and frac:
                digits += "." + frac
        neg = m.group("sign") in ("-", "\u2212")
        try:
            value = Decimal(digits)
        except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
            continue
        end = m.end() if (dec and frac) else m.end("int")
        out.append((-value if neg else value, text[m.start() : end]))
    return out


def _fmt(d: Decimal) -> str:
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    return format(d.normalize(), "f")


class NumberCheck(_Check):
    type: Literal["number"]
    expected: Decimal
    abs_tol: Decimal = Field(default=Decimal(0), ge=0)
    rel_tol: Decimal = Field(default=Decimal(0), ge=0)
    pick: Literal["first", "last"] = "first"
    """Which number in the answer is the answer."""

    @field_validator("expected")
    @classmethod
    def _finite(cls, v: Decimal) -> Decimal:
        if not v.is_finite():
            raise ValueError("expected must be a finite number")
        return v

    def score(self, answer: str | None) -> Score:
        if _empty(answer):
            return _fail("empty answer")
        assert answer is not None
        found = extract_numbers(answer)
        if not found:
            return _fail(f"expected {_fmt(self.expected)}, got no number in {_show(answer)}")
        value, spelled = found[0] if self.pick == "first" else found[-1]
        diff = abs(value - self.expected)
        allowed = max(self.abs_tol, self.rel_tol * abs(self.expected))
        if diff > allowed:
            tol = f" (tolerance {_fmt(allowed)})" if allowed else ""
            return _fail(f"expected {_fmt(self.expected)}, got {_fmt(value)}{tol}")
        alone = answer.strip() == spelled.strip()
        return Score(True, f"got {_fmt(value)} as expected", alone)


# --------------------------------------------------------------------------- json

_FENCE = re.compile(r"\A```[ \t]*(?:json\b)?\s*(?P<body>.*?)\s*```\Z", re.DOTALL | re.IGNORECASE)


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class JsonCheck(_Check):
    type: Literal["json"]
    json_schema: dict[str, Any] = Field(alias="schema")
    allow_fence: bool = True
    """Accept an answer wrapped in a ```` ``` ```` / ```` ```json ```` fence (scored ``format_ok = False``)."""

    _validator: Any = PrivateAttr()

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        vcls = jsonschema.validators.validator_for(v, default=jsonschema.Draft202012Validator)
        try:
            vcls.check_schema(v)
        except jsonschema.exceptions.SchemaError as e:
            where = _json_path(e.absolute_path)
            raise ValueError(f"invalid JSON Schema at {where}: {e.message}") from None
        return v

    def model_post_init(self, _ctx: Any) -> None:
        vcls = jsonschema.validators.validator_for(self.json_schema, default=jsonschema.Draft202012Validator)
        self._validator = vcls(self.json_schema)

    def score(self, answer: str | None) -> Score:
        if _empty(answer):
            return _fail("empty answer")
        assert answer is not None
        text = answer.strip()
        fenced = False
        if text.startswith("```"):
            m = _FENCE.match(text)
            if m is None:
                return _fail(f"answer starts a code fence that does not close cleanly: {_show(answer)}")
            if not self.allow_fence:
                return _fail("answer is wrapped in a code fence, which this canary does not allow")
            text, fenced = m.group("body").strip(), True
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
            return _fail(f"answer is not JSON ({msg}): {_show(answer)}")
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(data))
        if error is not None:
            return _fail(
                f"JSON does not fit the schema at {_json_path(error.absolute_path)}: {error.message}"
            )
        return Score(
            True, "valid JSON that fits the schema" + (" (inside a code fence)" if fenced else ""), not fenced
        )


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


class LanguageCheck(_Check):
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
        if _empty(answer):
            return _fail("empty answer")
        assert answer is not None
        want = _LANG_NAMES[self.language]
        guess = detect_language(answer)
        if guess.foreign_script:
            return _fail(
                f"expected {want}, but the answer has {guess.foreign_script} letters: {_show(answer)}"
            )
        if guess.words == 0:
            return _fail(f"expected {want}, got no words: {_show(answer)}")
        found = None
        if self.contains_any:
            folded = _fold(answer)
            found = next((w for w in self.contains_any if _fold(w) in folded), None)
            if found is None:
                words = ", ".join(repr(w) for w in self.contains_any)
                return _fail(f"expected the answer to contain one of {words}, got {_show(answer)}")
        if guess.language is None:
            if guess.evidence[self.language] == 0 and max(guess.evidence.values()) > 0:
                # A tie among other languages, none of them the wanted one.
                return _fail(f"expected {want}, but the answer reads as another language: {_show(answer)}")
            if found is None:
                return _fail(f"expected {want}, but cannot tell the language of {_show(answer)}")
            return Score(True, f"too short to tell the language; contains {found!r} as expected", True)
        if guess.language != self.language:
            return _fail(f"expected {want}, got {_LANG_NAMES[guess.language]}: {_show(answer)}")
        ratio = guess.stop_ratio[self.language]
        if guess.words >= 8 and ratio < MIN_STOP_RATIO:
            return _fail(
                f"expected {want}, but only {ratio:.0%} of the {guess.words} words are {want} "
                f"function words (garbled?): {_show(answer)}"
            )
        extra = f", contains {found!r}" if found else ""
        return Score(True, f"answer is in {want}{extra}", True)


Check = Annotated[
    ExactCheck | RegexCheck | NumberCheck | JsonCheck | LanguageCheck, Field(discriminator="type")
]


# --------------------------------------------------------------------------- canaries


class Canary(BaseModel):
    """One canary prompt and how to score its answer. Temperature and the like are the caller's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    prompt: str = Field(min_length=1)
    system: str | None = None
    max_tokens: int = Field(ge=1, le=MAX_TOKENS_LIMIT)
    check: Check
    category: str = ""
    """Free label (arithmetic, fact, format, language, ...) so a confirmation can ask for two categories."""
    reference: str | None = None
    """A right answer; used by the tests and ``watcher probe --dry-run``, never sent."""
    wrong: tuple[str, ...] = ()
    """Answers that must fail; used by the tests, never sent."""

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"{v!r} is not a valid id: use 1-64 lowercase letters, digits, '-', '_' or '.'")
        return v

    def score(self, answer: str | None) -> Score:
        return self.check.score(answer)

    @property
    def fingerprint(self) -> str:
        """A short hash of what is sent and how it is scored: a change means re-calibrating (§4.5)."""
        payload = {
            "prompt": self.prompt,
            "system": self.system,
            "max_tokens": self.max_tokens,
            "check": self.check.model_dump(mode="json", by_alias=True),
        }
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(raw).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class CanarySet:
    """An ordered set of canaries with unique ids."""

    canaries: tuple[Canary, ...]
    version: str = ""
    disable: tuple[str, ...] = ()
    """Ids of default canaries that a user's set drops (see :func:`merge`)."""
    source: str = "<memory>"

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for c in self.canaries:
            if c.id in seen:
                raise CanaryError(
                    f"{self.source}: canary {c.id!r}: id: duplicate id (each canary needs its own)"
                )
            seen.add(c.id)

    def __iter__(self) -> Iterator[Canary]:
        return iter(self.canaries)

    def __len__(self) -> int:
        return len(self.canaries)

    def __contains__(self, cid: object) -> bool:
        return any(c.id == cid for c in self.canaries)

    def get(self, cid: str) -> Canary:
        for c in self.canaries:
            if c.id == cid:
                return c
        raise KeyError(cid)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.canaries)

    def categories(self) -> dict[str, tuple[str, ...]]:
        """Canary ids by category."""
        out: dict[str, list[str]] = {}
        for c in self.canaries:
            out.setdefault(c.category, []).append(c.id)
        return {k: tuple(v) for k, v in out.items()}

    @property
    def fingerprint(self) -> str:
        """A short hash over every canary's fingerprint, in order."""
        raw = "\n".join(f"{c.id}:{c.fingerprint}" for c in self.canaries).encode()
        return hashlib.sha256(raw).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<memory>") -> CanarySet:
        """Build from parsed TOML: ``version``, ``[[canary]]`` tables and optionally ``disable``."""
        unknown = sorted(set(data) - {"version", "canary", "disable"})
        if unknown:
            raise CanaryError(
                f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))} "
                "(expected version, [[canary]] and disable)"
            )
        raw = data.get("canary", [])
        if not isinstance(raw, list) or not all(isinstance(t, Mapping) for t in raw):
            raise CanaryError(f"{source}: 'canary' must be an array of tables ([[canary]])")
        disable = data.get("disable", [])
        if not isinstance(disable, list) or not all(isinstance(x, str) for x in disable):
            raise CanaryError(f"{source}: 'disable' must be a list of canary ids")
        version = data.get("version", "")
        if not isinstance(version, str | int):
            raise CanaryError(f"{source}: 'version' must be a string or an integer")
        canaries = tuple(_parse_canary(t, i, source) for i, t in enumerate(raw, 1))
        return cls(canaries, str(version), tuple(disable), source)


def _parse_canary(table: Mapping[str, Any], index: int, source: str) -> Canary:
    cid = table.get("id")
    who = f"canary {cid!r}" if isinstance(cid, str) and cid else f"canary #{index} (no id)"
    check = table.get("check")
    if isinstance(check, Mapping):
        ctype = check.get("type")
        if ctype is None:
            raise CanaryError(f"{source}: {who}: check.type: missing (one of {', '.join(CHECK_TYPES)})")
        if ctype not in CHECK_TYPES:
            raise CanaryError(
                f"{source}: {who}: check.type: unknown check type {ctype!r} (one of {', '.join(CHECK_TYPES)})"
            )
    try:
        return Canary.model_validate(dict(table))
    except ValidationError as e:
        raise CanaryError(f"{source}: {who}: " + "; ".join(_explain(err) for err in e.errors())) from None


def _explain(err: Mapping[str, Any]) -> str:
    loc = list(err.get("loc", ()))
    if len(loc) >= 2 and loc[0] == "check" and loc[1] in CHECK_TYPES:
        del loc[1]  # the union tag pydantic inserts
    where = ".".join(str(p) for p in loc) or "(canary)"
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field (a typo?)"
    elif err.get("type") == "missing":
        msg = "required field missing"
    return f"{where}: {msg}"


DEFAULT_RESOURCE = "canaries.toml"


def load_canaries(path: Path | str | None = None) -> CanarySet:
    """Read a canary set from TOML; with no path, the shipped default set."""
    if path is None:
        source = f"watcher/probes/{DEFAULT_RESOURCE}"
        raw = resources.files("watcher.probes").joinpath(DEFAULT_RESOURCE).read_text("utf-8")
    else:
        p = Path(path)
        source = str(p)
        try:
            raw = p.read_text("utf-8")
        except FileNotFoundError:
            raise CanaryError(f"canary file {p} does not exist") from None
        except OSError as e:
            raise CanaryError(f"canary file {p} cannot be read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as e:
        raise CanaryError(f"{source}: not valid TOML: {e}") from None
    return CanarySet.from_dict(data, source)


def merge(default: CanarySet, user: CanarySet, replace: bool = False) -> CanarySet:
    """The set to run: the user's alone if ``replace``, else the default with the user's laid over it.

    Laying over: a user canary with a default's id replaces it in place, new ids are
    appended in the user's order, and ids in ``user.disable`` are dropped (naming
    an id that is in neither set is an error, as it is almost always a typo).
    """
    if replace:
        if user.disable:
            raise CanaryError(
                f"{user.source}: 'disable' makes no sense when the user set replaces the default"
            )
        return CanarySet(user.canaries, user.version, (), user.source)
    known = set(default.ids) | set(user.ids)
    for cid in user.disable:
        if cid not in known:
            raise CanaryError(f"{user.source}: disable: no canary has the id {cid!r}")
    drop = set(user.disable)
    mine = {c.id: c for c in user.canaries}
    out = [mine.get(c.id, c) for c in default.canaries]
    out += [c for c in user.canaries if c.id not in default]
    version = f"{default.version}+{user.version}" if user.version else default.version
    return CanarySet(
        tuple(c for c in out if c.id not in drop), version, (), f"{default.source} + {user.source}"
    )
