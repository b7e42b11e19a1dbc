"""Log output: one human line per event by default, one JSON object per line for log shippers.

JSON lines carry ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``msg`` and, on errors,
``exc``; journald and Docker keep them whole, and Loki/Elastic parse them without a
regex. Secrets never reach a log line in either format: they are not logged at all.

A warning or error that repeats word for word (same logger, level, message and
exception) is written once per :data:`REPEAT_WINDOW`: a full disk or a read-only
database fails every poll of every source, and the log must say so in one clear line,
not in thousands. The next copy after the window says how many were held back
(``(repeated 59 times in the last 300s)``; JSON: ``"repeated": 59``).
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

HUMAN = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
REPEAT_WINDOW = 300.0
"""Seconds during which an identical warning or error is written only once."""
_REPEAT_KEYS_MAX = 1000


def _repeat_note(record: logging.LogRecord) -> str:
    n = getattr(record, "repeated", 0)
    if not n:
        return ""
    return f" (repeated {n} time{'s' * (n != 1)} in the last {getattr(record, 'repeated_over', 0):.0f}s)"


class RepeatFilter(logging.Filter):
    """Holds back word-for-word repeats of a warning or error for ``window`` seconds.

    INFO and DEBUG lines always pass: they tell what changed, once. The first copy
    after the window passes with ``record.repeated`` (how many were held back) and
    ``record.repeated_over`` (seconds since the last written copy), which both
    formatters show.
    """

    def __init__(self, window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window = window
        self.clock = clock
        self._seen: dict[tuple, list] = {}
        """key → [when last written, copies held back since]"""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        key = (record.name, record.levelno, record.getMessage(), type(exc).__name__ if exc else "", str(exc))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            seen[1] += 1
            return False
        if seen is not None:
            if seen[1]:
                record.repeated = seen[1]
                record.repeated_over = now - seen[0]
            del self._seen[key]  # re-inserted last: the dict stays in the order lines were written
        self._seen[key] = [now, 0]
        if len(self._seen) > _REPEAT_KEYS_MAX:
            # Only the expired ones go, from the oldest: a storm of distinct lines (20,000 sources failing
            # at start) used to rebuild the whole dict at every line, 13 s of CPU in the first minute.
            expired = list(itertools.takewhile(lambda k: now - self._seen[k][0] >= self.window, self._seen))
            for k in expired:
                del self._seen[k]
        return True


class HumanFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record) + _repeat_note(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage() + _repeat_note(record),
        }
        repeated = getattr(record, "repeated", 0)  # set by the repeat filter on some records only
        if repeated:
            out["repeated"] = repeated
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level: str, fmt: str = "human") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(HumanFormatter(HUMAN, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
