"""Shared helpers for the source-parser tests: fixture paths and fuzzing strategies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

FIXTURES = Path(__file__).parent / "fixtures"


def read_fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def load_fixture_json(relative: str) -> Any:
    return json.loads(read_fixture(relative))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
"""Any JSON value (what a broken or hostile endpoint might send)."""

odd_scalars = st.sampled_from(
    [None, True, 0, -1, 10**30, 1.5, "", " ", "UNKNOWN_VALUE", "0001-01-01T00:00:00+01:00"]
    + [[], {}, [[]], {"a": 1}]
)


def mutate(data: st.DataObject, doc: Any, rate: float = 0.15) -> Any:
    """Copy ``doc`` with some subtrees swapped for odd values (drawn through hypothesis ``data``)."""
    if data.draw(st.floats(min_value=0, max_value=1)) < rate:
        return data.draw(odd_scalars | json_values)
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if data.draw(st.floats(min_value=0, max_value=1)) < rate / 2:
                continue  # drop the key
            out[k] = mutate(data, v, rate)
        return out
    if isinstance(doc, list):
        return [mutate(data, v, rate) for v in doc]
    return doc


MALFORMED_JSON = {
    "truncated": b'{"page": {"name": "x", "status": "UP"}, "activeIncidents": [',
    "html_error_page": b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
    "invalid_utf8": b'{"page": {"name": "\xff\xfe\xfa"}}',
    "deep_nesting": b"[" * 100_000 + b"]" * 100_000,
    "empty": b"",
    "not_json": b"hello",
}
