"""The fast JSON depth check (issue 18) says exactly what the character-by-character one says."""

from __future__ import annotations

import random
import time

import pytest

from watcher.sources.base import MAX_JSON_DEPTH, ParseError, _check_depth, _check_depth_slow


def _verdict(check, text: str) -> str:
    try:
        check(text)
        return "ok"
    except ParseError as e:
        return str(e)


def test_same_verdict_as_the_reference_on_random_and_edge_documents():
    rng = random.Random(18)
    alphabet = '[]{}"\\ a,:\n'
    edges = ["[" * (MAX_JSON_DEPTH + 1), '"' + "[" * 300, '\\"' + "[" * 300, "[" * 150 + '"\\"' + "[" * 60, ""]
    for _ in range(5000):
        t = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        for text in (t, "[" * (MAX_JSON_DEPTH - 1) + t + "]" * 5, *edges):
            assert _verdict(_check_depth, text) == _verdict(_check_depth_slow, text), repr(text)


def test_linear_on_an_unterminated_string_full_of_escaped_quotes():
    text = '"' + '\\"' * 500_000 + "[" * 300
    t = time.process_time()
    _check_depth(text)  # all inside one (unterminated) string: no nesting at all
    assert time.process_time() - t < 1.0


def test_too_deep_is_refused():
    with pytest.raises(ParseError, match="nested deeper"):
        _check_depth("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
