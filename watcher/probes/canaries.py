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

The checks themselves live in :mod:`watcher.probes.answer_checks` (exact, regex, number, json) and
:mod:`watcher.probes.language` (language); this module holds canaries, canary sets and their files,
and re-exports the checks' names.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from watcher.probes.answer_checks import (
    ExactCheck,
    JsonCheck,
    NumberCheck,
    RegexCheck,
    Score,
    extract_numbers,
    normalize,
)
from watcher.probes.language import LANGUAGES, LanguageCheck, LanguageGuess, detect_language

__all__ = [
    "CHECK_TYPES",
    "LANGUAGES",
    "MAX_TOKENS_LIMIT",
    "CanaryError",
    "Score",
    "normalize",
    "extract_numbers",
    "detect_language",
    "LanguageGuess",
    "ExactCheck",
    "RegexCheck",
    "NumberCheck",
    "JsonCheck",
    "LanguageCheck",
    "Check",
    "Canary",
    "CanarySet",
    "load_canaries",
    "merge",
    "DEFAULT_RESOURCE",
]

CHECK_TYPES = ("exact", "regex", "number", "json", "language")
MAX_TOKENS_LIMIT = 256
"""Largest ``max_tokens`` a canary may ask for; §4.1.3 wants ≤ 30 for all but the latency canary."""

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class CanaryError(ValueError):
    """An invalid canary set; the message names the file, the canary and the field."""


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
