"""Canary definitions, their checks, and the shipped default set."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest

from watcher.probes.canaries import (
    CHECK_TYPES,
    Canary,
    CanaryError,
    CanarySet,
    ExactCheck,
    JsonCheck,
    LanguageCheck,
    NumberCheck,
    RegexCheck,
    Score,
    detect_language,
    extract_numbers,
    load_canaries,
    merge,
    normalize,
)


def canary(check: dict, **kw) -> Canary:
    base = {"id": kw.pop("id", "c1"), "prompt": "p", "max_tokens": 10, "check": check}
    return Canary.model_validate(base | kw)


def number(expected, **kw) -> NumberCheck:
    return NumberCheck(type="number", expected=expected, **kw)


# ------------------------------------------------------------------ every check


@pytest.mark.parametrize(
    "check",
    [
        ExactCheck(type="exact", expected="x"),
        RegexCheck(type="regex", pattern="x"),
        NumberCheck(type="number", expected=1),
        JsonCheck(type="json", schema={"type": "object"}),
        LanguageCheck(type="language", language="fr"),
    ],
    ids=CHECK_TYPES,
)
@pytest.mark.parametrize("answer", ["", "   \n\t", None])
def test_empty_answer_fails_for_every_check(check, answer):
    assert check.score(answer) == Score(False, "empty answer", False)


# ------------------------------------------------------------------ exact


@pytest.mark.parametrize(
    "answer",
    [
        "Canberra",
        "canberra",
        "Canberra.",
        "**Canberra**",
        "*Canberra*.",
        '"Canberra"',
        "`Canberra`",
        "  Canberra\n",
        "« Canberra »",
        "_Canberra_!",
    ],
)
def test_exact_tolerates_formatting(answer):
    s = ExactCheck(type="exact", expected="Canberra").score(answer)
    assert s.passed, s.detail


def test_exact_format_ok_only_when_nothing_was_stripped():
    check = ExactCheck(type="exact", expected="Canberra")
    assert check.score("canberra").format_ok  # case alone does not count against the format
    assert not check.score("**Canberra**").format_ok
    assert not check.score("Canberra.").format_ok


@pytest.mark.parametrize("answer", ["Sydney", "The capital is Canberra.", "Canberra, Australia", "Can berra"])
def test_exact_rejects_wrong_or_padded_answers(answer):
    s = ExactCheck(type="exact", expected="Canberra").score(answer)
    assert not s.passed
    assert s.detail.startswith("expected 'Canberra', got ")


def test_exact_any_of_aliases():
    check = ExactCheck(type="exact", expected="USA", any_of=("United States", "United States of America"))
    assert check.score("the United States").passed is False
    assert check.score("United States of America.").passed
    assert check.score("usa").passed


def test_exact_case_sensitive():
    check = ExactCheck(type="exact", expected="LAUNCH", case_sensitive=True)
    assert check.score("**LAUNCH**").passed
    assert not check.score("Launch").passed


def test_normalize():
    assert normalize('  **"Hello,   World"**!  ') == "hello, world"
    assert normalize("Au", case_sensitive=True) == "Au"


# ------------------------------------------------------------------ number


@pytest.mark.parametrize(
    "text,value",
    [
        ("391", "391"),
        ("391\n", "391"),
        ("The answer is 391.", "391"),
        ("**4**", "4"),
        ("-3", "-3"),
        ("\u22123", "-3"),
        ("4.0", "4.0"),
        ("3,5", "3.5"),
        ("1,234.5", "1234.5"),
        ("1.234,5", "1234.5"),
        ("1 234,5", "1234.5"),
        ("1\u00a0234,5", "1234.5"),
        ("1\u202f234\u202f567", "1234567"),
        ("1'234", "1234"),
        ("110,791", "110791"),
        ("1,234", "1234"),  # one group after a comma: thousands (English)
        ("1.234", "1.234"),  # one group after a dot: decimal point (English)
        ("1.234.567", "1234567"),
        ("+7", "7"),
        ("0,125", "0.125"),
        ("0.5", "0.5"),
        ("x = 12", "12"),
    ],
)
def test_extract_first_number(text, value):
    assert extract_numbers(text)[0][0] == Decimal(value)


def test_extract_numbers_does_not_glue_separate_numbers():
    assert [v for v, _ in extract_numbers("2, 3 and 4")] == [2, 3, 4]
    assert [v for v, _ in extract_numbers("COVID-19")] == [19]
    assert extract_numbers("no digits here") == []


def test_number_check_passing_and_failing():
    check = number(391)
    assert check.score("391").passed
    assert check.score("391").format_ok
    s = check.score("The answer is 391.")
    assert s.passed and not s.format_ok
    assert check.score("**391**").passed
    s = check.score("381")
    assert not s.passed and s.detail == "expected 391, got 381"
    s = check.score("three hundred ninety-one")
    assert not s.passed and s.detail.startswith("expected 391, got no number in")


def test_number_check_decimal_comma_and_tolerance():
    check = number(1.75, abs_tol=0.001)
    assert check.score("1,75").passed
    assert check.score("1.7504").passed
    s = check.score("1.76")
    assert not s.passed and s.detail == "expected 1.75, got 1.76 (tolerance 0.001)"
    rel = number(1000, rel_tol=0.01)
    assert rel.score("1 009").passed
    assert not rel.score("1 011").passed


def test_number_check_exact_by_default_and_pick_last():
    assert not number(4).score("4.001").passed
    assert number(4).score("4.000").passed
    check = number(110791, pick="last")
    assert check.score("4817 × 23 = 110,791").passed
    assert not number(110791).score("4817 × 23 = 110,791").passed


# ------------------------------------------------------------------ regex


def test_regex_full_vs_search():
    full = RegexCheck(type="regex", pattern=r"\d{4}-\d{2}-\d{2}")
    search = RegexCheck(type="regex", pattern=r"\d{4}-\d{2}-\d{2}", match="search")
    assert full.score("2024-02-14\n").passed  # the answer is stripped first
    assert not full.score("It is 2024-02-14").passed
    assert search.score("It is 2024-02-14").passed
    assert not search.score("14 February").passed


def test_regex_ignore_case_and_reject():
    check = RegexCheck(
        type="regex", pattern=r"\bkill\b", match="search", ignore_case=True, reject=r"I'm sorry"
    )
    assert check.score("KILL -9 1234").passed
    s = check.score("I'm sorry, I won't tell you how to kill anything.")
    assert not s.passed and "must not" in s.detail


def test_regex_answer_length_is_limited_before_matching():
    check = RegexCheck(type="regex", pattern=r"a.*b", max_chars=50)
    s = check.score("a" * 49 + "b" * 10)
    assert not s.passed and "too long" in s.detail


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(?:x\d*)*y", r"(a|b*)+", r"((ab)*c)*"])
def test_regex_nested_unbounded_repetition_is_refused(pattern):
    with pytest.raises(CanaryError, match=r"canary 'c1': check\.pattern: .*repeats a repetition"):
        CanarySet.from_dict(
            {
                "canary": [
                    {
                        "id": "c1",
                        "prompt": "p",
                        "max_tokens": 5,
                        "check": {"type": "regex", "pattern": pattern},
                    }
                ]
            }
        )


@pytest.mark.parametrize(
    "pattern", [r"(?:[a-z]+\n){2}[a-z]+", r"(a++)+", r"(?>a+)+", r"\d+(?:\.\d+)?", r"(ab)+"]
)
def test_regex_safe_patterns_are_accepted(pattern):
    RegexCheck(type="regex", pattern=pattern)


# ------------------------------------------------------------------ json

SCHEMA = {
    "type": "object",
    "required": ["city", "country"],
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
}
STRICT = SCHEMA | {"additionalProperties": False}


def test_json_plain_and_fenced():
    check = JsonCheck(type="json", schema=SCHEMA)
    s = check.score('{"city": "Tokyo", "country": "Japan"}')
    assert s.passed and s.format_ok
    for fenced in [
        '```json\n{"city": "Tokyo", "country": "Japan"}\n```',
        '```\n{"city": "Tokyo", "country": "Japan"}```',
    ]:
        s = check.score(fenced)
        assert s.passed and not s.format_ok and "fence" in s.detail
    assert check.score('```JSON {"city": "Tokyo", "country": "Japan"} ```').passed
    no_fence = JsonCheck(type="json", schema=SCHEMA, allow_fence=False)
    assert not no_fence.score('```json\n{"city": "Tokyo", "country": "Japan"}\n```').passed


def test_json_extra_keys_depend_on_additional_properties():
    answer = '{"city": "Tokyo", "country": "Japan", "population": 14}'
    assert JsonCheck(type="json", schema=SCHEMA).score(answer).passed
    s = JsonCheck(type="json", schema=STRICT).score(answer)
    assert not s.passed and "population" in s.detail


def test_json_failures_say_why():
    check = JsonCheck(type="json", schema=SCHEMA)
    s = check.score('{"city": "Tokyo"}')
    assert not s.passed and "'country' is a required property" in s.detail
    s = check.score('{"city": 3, "country": "Japan"}')
    assert not s.passed and "$.city" in s.detail
    s = check.score('Here you go: {"city": "Tokyo", "country": "Japan"}')
    assert not s.passed and s.detail.startswith("answer is not JSON")
    s = check.score('```json\n{"city": "Tokyo"')
    assert not s.passed and "fence" in s.detail


# ------------------------------------------------------------------ language


@pytest.mark.parametrize(
    "text,lang",
    [
        ("Le ciel est bleu par temps clair.", "fr"),
        ("C'est une belle journée, n'est-ce pas ?", "fr"),
        ("The sky is blue on a clear day.", "en"),
        ("El cielo es azul cuando no hay nubes.", "es"),
        ("Der Himmel ist blau, wenn es klar ist.", "de"),
        ("Jetzt kaufen", "de"),
        ("Compra ahora", "es"),
        ("Bleu", None),
    ],
)
def test_detect_language(text, lang):
    assert detect_language(text).language == lang


def test_language_check():
    fr = LanguageCheck(type="language", language="fr")
    assert fr.score("Le ciel est bleu.").passed
    s = fr.score("The sky is blue.")
    assert not s.passed and s.detail.startswith("expected French, got English")
    s = fr.score("Bleu.")
    assert not s.passed and "cannot tell" in s.detail


def test_detect_language_handles_decomposed_accents():
    assert detect_language("Ca\u0300 et la\u0300").evidence["fr"] >= 1


def test_language_check_refuses_other_scripts():
    fr = LanguageCheck(type="language", language="fr")
    s = fr.score("Le ciel est bleu 天空")
    assert not s.passed and "CJK" in s.detail
    assert "THAI" in fr.score("Le ciel est สีฟ้า").detail


def test_language_check_with_expected_word():
    cta = LanguageCheck(type="language", language="fr", contains_any=("achet", "maintenant"))
    for ok in ["Achetez maintenant", "Achetez maintenant !", "Achète-le dès maintenant", "« Acheter »"]:
        assert cta.score(ok).passed, ok
    for bad in ["Buy now", "Compra ahora", "Achetez-le now", "Commandez vite"]:
        assert not cta.score(bad).passed, bad


def test_language_check_flags_garbled_text():
    fr = LanguageCheck(type="language", language="fr")
    s = fr.score("est zorblax quintor flamby grumpel vortix snaffle plimbo wuzzle")
    assert not s.passed and "garbled" in s.detail


# ------------------------------------------------------------------ definitions


def bad(table: dict, match: str):
    with pytest.raises(CanaryError, match=match):
        CanarySet.from_dict({"canary": [table]}, source="user.toml")


def test_invalid_definitions_name_canary_and_field():
    base = {"id": "c1", "prompt": "p", "max_tokens": 5}
    bad(
        base | {"check": {"type": "fuzzy"}},
        r"user\.toml: canary 'c1': check\.type: unknown check type 'fuzzy'",
    )
    bad(base | {"check": {"expected": "x"}}, r"canary 'c1': check\.type: missing")
    bad(
        base | {"check": {"type": "regex", "pattern": "(unclosed"}},
        r"canary 'c1': check\.pattern: invalid regular expression",
    )
    bad(
        base | {"check": {"type": "json", "schema": {"type": "banana"}}},
        r"canary 'c1': check\.schema: invalid JSON Schema",
    )
    bad(base | {"check": {"type": "number", "expected": "many"}}, r"canary 'c1': check\.expected")
    bad(
        base | {"check": {"type": "number", "expected": 1, "tolerance": 1}},
        r"canary 'c1': check\.tolerance: unknown field",
    )
    bad(base | {"check": {"type": "language", "language": "it"}}, r"canary 'c1': check\.language")
    bad(
        base | {"check": {"type": "exact", "expected": "**"}},
        r"canary 'c1': check\.expected: an accepted answer is empty",
    )
    bad(base | {"max_tokens": 1000, "check": {"type": "exact", "expected": "x"}}, r"canary 'c1': max_tokens")
    bad(
        {"prompt": "p", "max_tokens": 5, "check": {"type": "exact", "expected": "x"}},
        r"canary #1 \(no id\): id: required field missing",
    )
    bad(base | {"id": "Bad Id", "check": {"type": "exact", "expected": "x"}}, r"not a valid id")
    bad(base | {"chek": {"type": "exact", "expected": "x"}}, r"canary 'c1': .*chek: unknown field")


def test_duplicate_ids_are_refused():
    t = {"id": "dup", "prompt": "p", "max_tokens": 5, "check": {"type": "exact", "expected": "x"}}
    with pytest.raises(CanaryError, match=r"canary 'dup': id: duplicate id"):
        CanarySet.from_dict({"canary": [t, t]})


def test_unknown_top_level_key_is_refused():
    with pytest.raises(CanaryError, match="unknown top-level key"):
        CanarySet.from_dict({"canaries": []}, source="x.toml")


def test_load_from_file_and_errors(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(
        textwrap.dedent(
            """
            version = 3
            [[canary]]
            id = "mine"
            prompt = "2+2? Number only."
            max_tokens = 4
            check = { type = "number", expected = 4 }
            """
        )
    )
    s = load_canaries(p)
    assert s.version == "3" and s.ids == ("mine",) and s.source == str(p)
    assert s.get("mine").score("4").passed
    with pytest.raises(CanaryError, match="does not exist"):
        load_canaries(tmp_path / "nope.toml")
    p.write_text("[[canary]\n")
    with pytest.raises(CanaryError, match="not valid TOML"):
        load_canaries(p)


def test_fingerprint_changes_with_what_is_sent_or_scored():
    a = canary({"type": "exact", "expected": "x"})
    assert a.fingerprint == canary({"type": "exact", "expected": "x"}, reference="x").fingerprint
    assert a.fingerprint != canary({"type": "exact", "expected": "y"}).fingerprint
    assert a.fingerprint != canary({"type": "exact", "expected": "x"}, max_tokens=11).fingerprint


# ------------------------------------------------------------------ merging


def _set(*ids: str, disable=(), version="u") -> CanarySet:
    return CanarySet(
        tuple(canary({"type": "exact", "expected": i}, id=i) for i in ids), version, tuple(disable), "user"
    )


def test_merge_adds_overrides_and_disables():
    default = load_canaries()
    over = canary({"type": "number", "expected": 110791, "abs_tol": 1}, id="arith-mul")
    user = CanarySet(
        (over, canary({"type": "exact", "expected": "x"}, id="mine")), "7", ("syco-water",), "user"
    )
    merged = merge(default, user)
    assert merged.ids[0] == "arith-mul" and merged.get("arith-mul") is over
    assert merged.ids[-1] == "mine"
    assert "syco-water" not in merged
    assert len(merged) == len(default)  # one added, one dropped
    assert merged.version == f"{default.version}+7"


def test_merge_replace_and_disable_errors():
    default = load_canaries()
    assert merge(default, _set("a", "b"), replace=True).ids == ("a", "b")
    with pytest.raises(CanaryError, match="no canary has the id 'typo'"):
        merge(default, _set("a", disable=["typo"]))
    with pytest.raises(CanaryError, match="makes no sense"):
        merge(default, _set("a", disable=["arith-mul"]), replace=True)


# ------------------------------------------------------------------ the shipped set

SHIPPED = load_canaries()
GENERIC_WRONG = ["I'm sorry, but I can't help with that.", "asdf qwer zxcv", "42"]


def test_shipped_set_shape():
    assert 12 <= len(SHIPPED) <= 16
    assert SHIPPED.version
    cats = SHIPPED.categories()
    for needed in ("arithmetic", "fact", "format", "json", "language", "date"):
        assert needed in cats, needed
    types = {c.check.type for c in SHIPPED}
    assert types == set(CHECK_TYPES)
    for c in SHIPPED:
        assert c.max_tokens <= 30, c.id  # §4.1.3
        assert len(c.prompt) <= 400, c.id


def test_shipped_yes_no_items_are_balanced():
    yes_no = [
        c.check.expected.casefold()
        for c in SHIPPED
        if isinstance(c.check, ExactCheck) and c.check.expected.casefold() in ("yes", "no")
    ]
    assert yes_no.count("yes") == yes_no.count("no") >= 1


@pytest.mark.parametrize("c", SHIPPED.canaries, ids=SHIPPED.ids)
def test_shipped_reference_passes_and_wrong_answers_fail(c: Canary):
    assert c.reference is not None, f"{c.id} has no reference answer"
    s = c.score(c.reference)
    assert s.passed and s.format_ok, (c.id, s)
    assert c.wrong, f"{c.id} lists no wrong answers"
    for w in (*c.wrong, *GENERIC_WRONG):
        s = c.score(w)
        assert not s.passed, (c.id, w, s)
        assert s.detail


@pytest.mark.parametrize("c", SHIPPED.canaries, ids=SHIPPED.ids)
def test_shipped_reference_survives_common_formatting(c: Canary):
    """Trailing newline and surrounding spaces never turn a right answer wrong."""
    assert c.score(f"  {c.reference}\n").passed
