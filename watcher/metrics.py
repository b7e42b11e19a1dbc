"""What only the running process can count: poll errors and poll durations.

Everything else on ``/metrics`` is read from the database at scrape time
(:mod:`watcher.web.ops`): poll counts, open incidents, the outbox, deliveries,
probe latencies, canary answers, spending. Two facts are not in the database in
countable form, so the daemon records them here as polls finish:

- how many polls of a source failed, by error kind (the store keeps only the
  current streak of failures, reset by the next success);
- how long each poll took (fetch, parse and store; the fetch dominates).

One :class:`PollMetrics` per daemon (never a module global, so tests and two
daemons in one process do not share counts); the daemon puts it in
``WebContext.runtime["metrics"]`` and the collector reads it. Counters restart at
zero with the process, as Prometheus expects of counters.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

POLL_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds. The last finite bucket is above the default fetch timeout (10 s)."""


@dataclass(slots=True)
class Histogram:
    """Cumulative-ready bucket counts (non-cumulative inside; :meth:`cumulative` adds them up)."""

    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        value = max(0.0, float(value))
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for le, c in zip((*[_fmt(b) for b in self.buckets], "+Inf"), self.counts, strict=True):
            running += c
            out.append((le, running))
        return out


def _fmt(b: float) -> str:
    return repr(float(b))


class PollMetrics:
    """Poll outcomes of this process, per source. Thread-safe (cheap lock), but used from one loop."""

    def __init__(self, buckets: tuple[float, ...] = POLL_BUCKETS):
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self.durations: dict[tuple[str, str], Histogram] = {}
        """(vendor, source key) → poll duration histogram."""
        self.errors: dict[tuple[str, str, str], int] = {}
        """(vendor, source key, error kind) → failed polls."""
        self.polls: dict[tuple[str, str], int] = {}

    def observe_poll(self, vendor: str, source: str, seconds: float, error_kind: str | None = None) -> None:
        """One finished poll: its duration, and its error kind when it failed."""
        key = (vendor, source)
        with self._lock:
            h = self.durations.get(key)
            if h is None:
                h = self.durations[key] = Histogram(self.buckets)
            h.observe(seconds)
            self.polls[key] = self.polls.get(key, 0) + 1
            if error_kind is not None:
                ekey = (vendor, source, error_kind or "unknown")
                self.errors[ekey] = self.errors.get(ekey, 0) + 1

    def observe_result(self, result, seconds: float) -> None:
        """Convenience for the daemon: a :class:`watcher.pipeline.PollResult` and its duration."""
        obs = result.observation
        self.observe_poll(obs.vendor, obs.source_id, seconds, None if obs.ok else (obs.error_kind or "unknown"))

    def snapshot(self) -> tuple[dict, dict, dict]:
        """Copies (durations, errors, polls) for a scrape."""
        with self._lock:
            durations = {
                k: Histogram(h.buckets, list(h.counts), h.total, h.n) for k, h in self.durations.items()
            }
            return durations, dict(self.errors), dict(self.polls)
