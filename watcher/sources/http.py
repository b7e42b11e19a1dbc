"""Judge one answer of an ``http`` source: did the tool answer as expected, and how fast?

Pure, like the other sources; but an HTTP check measures a tool instead of reading
what its vendor says, so its output is a :class:`Verdict` (failed, slow, and the
cause in data, put into words in the team's language by :mod:`watcher.httpchecks`),
not a :class:`~watcher.model.Snapshot`.

A ``failed`` answer counts towards an outage (no answer, an unexpected status, a
missing keyword, a JSON condition that does not hold); a ``slow`` one, answered well
but above ``max_latency``, counts towards a degradation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watcher.catalog.checks import HttpCheck


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one check saw: an answer (status, body, time), or the fetch error instead."""

    at: datetime
    latency_s: float | None
    status: int | None = None
    body: bytes = b""
    error_kind: str | None = None
    error: str | None = None
    cert_not_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    failed: bool
    slow: bool
    cause: str
    """``ok``, ``no_answer``, ``status``, ``missing``, ``forbidden``, ``no_match``, ``bad_match``,
    ``not_json``, ``json`` or ``slow``."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What the words need: ``status``, ``latency``, ``word``, ``pattern``, ``condition``, ``detail``..."""
    cert_days_left: float | None = None


def judge(check: HttpCheck, m: Measurement) -> Verdict:
    cert_days = None
    if m.cert_not_after is not None:
        cert_days = (m.cert_not_after - m.at).total_seconds() / 86400
    base: dict[str, Any] = {"status": m.status, "latency": m.latency_s}

    def failed(cause: str, **facts: Any) -> Verdict:
        return Verdict(True, False, cause, {**base, **facts}, cert_days)

    if m.status is None:
        return failed("no_answer", error=m.error or m.error_kind or "no answer", kind=m.error_kind)
    if not check.status_expected(m.status):
        return failed("status")
    text = m.body.decode("utf-8", errors="replace") if m.body else ""
    if check.must_contain is not None and check.must_contain not in text:
        return failed("missing", word=check.must_contain)
    if check.must_not_contain is not None and check.must_not_contain in text:
        return failed("forbidden", word=check.must_not_contain)
    if check.must_match is not None and check.must_match.search(text) is None:
        return failed("no_match", pattern=check.must_match.pattern)
    if check.must_not_match is not None and check.must_not_match.search(text) is not None:
        return failed("bad_match", pattern=check.must_not_match.pattern)
    if check.json_conditions:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return failed("not_json")
        for cond in check.json_conditions:
            ok, detail = cond.holds(data)
            if not ok:
                return failed("json", condition=cond.text, detail=detail)
    if check.max_latency is not None and m.latency_s is not None and m.latency_s > check.max_latency:
        return Verdict(False, True, "slow", {**base, "max": check.max_latency}, cert_days)
    return Verdict(False, False, "ok", base, cert_days)
