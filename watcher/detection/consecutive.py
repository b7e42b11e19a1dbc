"""The consecutive-failure rule for hard outages on the transport stream (docs/detection.md §A.4):
N failures in a row open, M successes in a row close.

Simple on purpose, so that people understand why an outage opened; kept apart from the CUSUMs because
it shares none of their mathematics.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watcher.detection.base import Event, hhmm, iso_time, parse_time, word
from watcher.i18n import Said

# --------------------------------------------------------------------------------------------
# Consecutive-failure rule (hard outages)
# --------------------------------------------------------------------------------------------


class ConsecutiveRule:
    """N failures in a row open the alarm; M successes in a row close it (§A.4, ``[detect.errors]``).

    For hard outages on the transport stream, counted after the client's one immediate retry;
    the caller leaves 429s out. The hysteresis (open on N, close on M, counters reset by the
    opposite outcome) means a stream alternating pass/fail never opens and an open alarm never
    closes on a single lucky probe.
    """

    def __init__(self, fail_n: int = 3, recover_m: int = 2, *, what: str = "probe requests") -> None:
        if fail_n < 1 or recover_m < 1:
            raise ValueError("fail_n and recover_m must be ≥ 1")
        self.fail_n = fail_n
        self.recover_m = recover_m
        self.what = what
        self.reset()

    def reset(self) -> None:
        self.alarm = False
        self.event: Event = None
        self.fails_in_row = 0
        self.passes_in_row = 0
        self.first_fail_at: datetime | None = None
        self.opened_at: datetime | None = None
        self.outage_first_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.failures_while_open = 0

    @property
    def warn(self) -> bool:
        return self.alarm or self.fails_in_row > 0

    def update(self, failed: bool, at: datetime | None = None) -> bool:
        self.event = None
        if failed:
            if self.fails_in_row == 0:
                self.first_fail_at = at
            self.fails_in_row += 1
            self.passes_in_row = 0
            if self.alarm:
                self.failures_while_open += 1
            elif self.fails_in_row >= self.fail_n:
                self.alarm = True
                self.event = "alarm"
                self.opened_at = at
                self.outage_first_at = self.first_fail_at
                self.closed_at = None
                self.failures_while_open = self.fails_in_row
        else:
            self.passes_in_row += 1
            self.fails_in_row = 0
            if self.alarm and self.passes_in_row >= self.recover_m:
                self.alarm = False
                self.event = "clear"
                self.closed_at = at
        return self.alarm

    def explain(self) -> str:
        if self.alarm:  # an incident's reason: Said, so the alert says it in the team's language
            return Said(
                "detect.outage",
                failures=self.failures_while_open,
                what=word(self.what),
                since=hhmm(self.outage_first_at),
                n=self.fail_n,
                m=self.recover_m,
                passes=self.passes_in_row,
            )
        if self.closed_at is not None and self.fails_in_row == 0:
            return f"Recovered at {hhmm(self.closed_at)} after {self.recover_m} successes in a row."
        return f"No outage: {self.fails_in_row} failed in a row (an outage needs {self.fail_n})."

    _STATE = ("fail_n", "recover_m", "what", "alarm", "fails_in_row", "passes_in_row", "failures_while_open")
    _TIMES = ("first_fail_at", "opened_at", "outage_first_at", "closed_at")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "consecutive", "version": 1}
        out.update({k: getattr(self, k) for k in self._STATE})
        out.update({k: iso_time(getattr(self, k)) for k in self._TIMES})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConsecutiveRule:
        self = cls(data["fail_n"], data["recover_m"], what=data["what"])
        for k in cls._STATE:
            setattr(self, k, data[k])
        for k in cls._TIMES:
            setattr(self, k, parse_time(data[k]))
        return self
