"""What every detector shares: the :class:`Detector` protocol, the event type, and small helpers for
timestamps and plain words.

Apart so that each detector module depends on this and the run-length mathematics, never on another
detector.
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from watcher import i18n
from watcher.i18n import Said

MAD_TO_SIGMA = 1.4826
"""MAD × this is the standard deviation of a normal distribution (§5.2)."""

Event = Literal["alarm", "clear"] | None


class Detector(Protocol):
    """What the daemon needs from any detector in this module."""

    alarm: bool
    event: Event

    @property
    def warn(self) -> bool: ...

    def explain(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


# --------------------------------------------------------------------------------------------
# Small helpers for timestamps and plain words
# --------------------------------------------------------------------------------------------


def iso_time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def hhmm(at: datetime | None) -> str:
    if at is None:
        return Said("detect.unknown_time")
    text = at.strftime("%H:%M")
    if at.tzinfo is not None and at.utcoffset() == UTC.utcoffset(None):
        text += " UTC"
    return text


def word(text: str) -> str:
    """A detector's configured word (``probe runs``, ``wrong``) as a :class:`~watcher.i18n.Said` when
    the locales have it, so an alarm's reason can be said in the team's language; else as given."""
    return next((Said(f"detect.word.{k}") for k in WORDS if i18n.t("en", f"detect.word.{k}") == text), text)


WORDS = ("probe_runs", "checks", "canary_answers", "wrong", "probe_requests", "failed_error")


def one_in(p: float) -> str:
    return f"1 in {max(1, round(1.0 / p))}" if p > 0 else "none"


def round_up(p: float, step: float = 1e-4) -> float:
    """Design p0 on a 0.01-point grid, rounded up: stable cache keys, and the safe side (§A.7)."""
    return round(math.ceil(p / step - 1e-9) * step, 10)


def config_from(kind: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})
