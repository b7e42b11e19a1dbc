"""How a canary's answer is scored: :class:`Score`, and the ``exact``, ``regex``, ``number`` and ``json``
checks, each a pydantic model whose ``score(answer)`` parses tolerantly and says in plain words what
it expected and got (docs/detection.md §4.1).

Apart from the canary files and their loading (:mod:`watcher.probes.canaries`) because scoring is pure
text work that the loader only selects among.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# typeshed has no stubs for re's parser; its public names (sre_parse) are deprecated since 3.11
from re import _constants as _sre_c  # type: ignore[attr-defined]
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from typing import Any, Literal

import jsonschema
import jsonschema.exceptions
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator


@dataclass(frozen=True, slots=True)
class Score:
    """The outcome of one check on one answer."""

    passed: bool
    """Right after tolerant parsing."""
    detail: str
    """Plain words, e.g. ``"expected 391, got 381"``."""
    format_ok: bool = False
    """Right *and* in exactly the asked format (no fence, no markdown, nothing around it)."""


def fail(detail: str) -> Score:
    return Score(False, detail, False)


def quoted(text: str, limit: int = 80) -> str:
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


def empty_answer(answer: str | None) -> bool:
    return answer is None or not answer.strip()


class AnswerCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def score(self, answer: str | None) -> Score:  # pragma: no cover - overridden
        raise NotImplementedError


class ExactCheck(AnswerCheck):
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
        if empty_answer(answer):
            return fail("empty answer")
        assert answer is not None
        accepted = (self.expected, *self.any_of)
        got = normalize(answer, case_sensitive=self.case_sensitive)
        norm = {normalize(a, case_sensitive=self.case_sensitive) for a in accepted}
        if got not in norm:
            want = " or ".join(repr(a) for a in accepted)
            return fail(f"expected {want}, got {quoted(answer)}")
        raw = answer.strip()
        fold = (lambda x: x) if self.case_sensitive else str.casefold
        exact = fold(raw) in {fold(a) for a in accepted}
        detail = f"got {quoted(answer)} as expected"
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


class RegexCheck(AnswerCheck):
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
        if empty_answer(answer):
            return fail("empty answer")
        assert answer is not None
        text = answer.strip()
        if len(text) > self.max_chars:
            return fail(f"answer too long to check ({len(text)} characters, limit {self.max_chars})")
        if self._reject is not None and (bad := self._reject.search(text)):
            return fail(f"answer contains {bad.group(0)!r}, which it must not: {quoted(answer)}")
        m = self._compiled.fullmatch(text) if self.match == "full" else self._compiled.search(text)
        if m is None:
            how = "match" if self.match == "full" else "contain a match for"
            return fail(f"expected the answer to {how} /{self.pattern}/, got {quoted(answer)}")
        return Score(True, f"{quoted(answer)} matches /{self.pattern}/", True)


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


class NumberCheck(AnswerCheck):
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
        if empty_answer(answer):
            return fail("empty answer")
        assert answer is not None
        found = extract_numbers(answer)
        if not found:
            return fail(f"expected {_fmt(self.expected)}, got no number in {quoted(answer)}")
        value, spelled = found[0] if self.pick == "first" else found[-1]
        diff = abs(value - self.expected)
        allowed = max(self.abs_tol, self.rel_tol * abs(self.expected))
        if diff > allowed:
            tol = f" (tolerance {_fmt(allowed)})" if allowed else ""
            return fail(f"expected {_fmt(self.expected)}, got {_fmt(value)}{tol}")
        alone = answer.strip() == spelled.strip()
        return Score(True, f"got {_fmt(value)} as expected", alone)


# --------------------------------------------------------------------------- json

_FENCE = re.compile(r"\A```[ \t]*(?:json\b)?\s*(?P<body>.*?)\s*```\Z", re.DOTALL | re.IGNORECASE)


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class JsonCheck(AnswerCheck):
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
        if empty_answer(answer):
            return fail("empty answer")
        assert answer is not None
        text = answer.strip()
        fenced = False
        if text.startswith("```"):
            m = _FENCE.match(text)
            if m is None:
                return fail(f"answer starts a code fence that does not close cleanly: {quoted(answer)}")
            if not self.allow_fence:
                return fail("answer is wrapped in a code fence, which this canary does not allow")
            text, fenced = m.group("body").strip(), True
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
            return fail(f"answer is not JSON ({msg}): {quoted(answer)}")
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(data))
        if error is not None:
            return fail(f"JSON does not fit the schema at {_json_path(error.absolute_path)}: {error.message}")
        return Score(
            True, "valid JSON that fits the schema" + (" (inside a code fence)" if fenced else ""), not fenced
        )
