"""Change detectors for watcher's own probe streams: pure, deterministic, serialisable.

This package sits below :mod:`watcher.incidents`: probes and HTTP checks (which measure) use it to
decide when measurements amount to a failure, and they must not import the incident stage that
comes after them. :mod:`.confirm` holds the cluster's rule (a failure seen from enough locations).

Everything here follows docs/detection.md (section numbers below refer to it). No I/O, no
clock, no randomness: the caller feeds outcomes with the time they were measured, and can
persist any detector with ``to_dict()`` / ``from_dict()`` and get identical behaviour back.

What is here, and why:

* :class:`BernoulliCusum`: a one-sided Bernoulli CUSUM on pass/fail outcomes (quality canaries,
  §3.2; and transport errors, §A.4). Page's CUSUM is the rule with the smallest worst-case
  delay at a given false-alarm rate (Lorden 1971, Moustakides 1986, §3.3), so the only ways to
  go faster are better probes or more of them, not a cleverer threshold. It runs on an integer
  lattice (a wrong answer adds ``up``, a right one takes away ``dn``) so that its in-control
  average run length is computed *exactly* from a Markov chain (§3.4) and the threshold is
  derived from the configured false-alarm budget, never hard-coded.
* :class:`ConsecutiveRule`: "N failures in a row open, M successes in a row close", for hard
  outages on the transport stream (§A.4). Simple on purpose: people understand it.
* :class:`LatencyCusum`: a winsorised robust CUSUM on seasonal z-scores of log latency
  (§5.2-5.3). Median and MAD per hour of day (or hour of week) so a few stalls do not move the
  baseline; z clipped at ±3 so one stall cannot raise an alarm alone. Its threshold comes from
  the same kind of exact lattice chain, fed with the empirical distribution of the learning
  data's own z-scores.

Alarm life cycle, shared by both CUSUMs:

1. **Raise** when the statistic reaches the threshold (or, for the Bernoulli CUSUM, after ``k``
   failures in a row: the hard-failure rule of §0, which the CUSUM implies when ``k`` is derived
   and which stays true if someone configures a smaller ``k``).
2. **Latch.** While alarmed the statistic is capped at the threshold (it keeps moving, so the
   dashboard still shows a level, but cannot bank unbounded evidence).
3. **Clear** when a *mirrored* CUSUM, started at 0 at the alarm and accumulating the evidence
   that the stream is back at its baseline (the same increments with the sign flipped), reaches
   ``clear_fraction`` of the threshold (default one half). The statistic then restarts at 0.
   Why this rule: it clears on evidence, not on a timer, so it is as quick as the data allows
   after a real fix (e.g. 31 clean canaries in a row at p0 = 5 %); a single failure knocks the
   evidence back by a whole ``up`` step, so an alarm on a borderline stream does not toggle on
   each probe. Falsely clearing while the stream is still at p1 needs the same kind of
   excursion as a false alarm at h/2 (about e^{h/2} ≈ 30 times rarer than a clear under p0).
   Restarting at 0 (not at h/2, the "fast initial response" of §3.2) keeps false re-alarms
   after a genuine recovery as rare as any other false alarm; a real incident that continues
   never clears in the first place, so it needs no quick re-detection.

Units: every statistic is an integer on its detector's lattice (``.s``, ``.h``); ``.level`` is
the fraction of the threshold, and the design objects give the conversion to nats (or z units).
"""

from __future__ import annotations

from typing import Any

from watcher.detection.base import MAD_TO_SIGMA, Detector, Event
from watcher.detection.consecutive import ConsecutiveRule
from watcher.detection.cusum import BernoulliConfig, BernoulliCusum
from watcher.detection.latency import (
    LatencyBaseline,
    LatencyConfig,
    LatencyCusum,
    fit_latency_baseline,
    latency_threshold,
)
from watcher.detection.runlength import (
    BernoulliDesign,
    DelayStats,
    bernoulli_arl,
    bernoulli_delay,
    bernoulli_design,
    bernoulli_llr_weights,
    bernoulli_threshold,
    lattice_arl,
    ucb1,
)

__all__ = [
    "BernoulliConfig",
    "BernoulliCusum",
    "BernoulliDesign",
    "ConsecutiveRule",
    "DelayStats",
    "Detector",
    "LatencyBaseline",
    "LatencyConfig",
    "LatencyCusum",
    "bernoulli_arl",
    "bernoulli_delay",
    "bernoulli_design",
    "bernoulli_llr_weights",
    "bernoulli_threshold",
    "detector_from_dict",
    "fit_latency_baseline",
    "lattice_arl",
    "latency_threshold",
    "ucb1",
    "MAD_TO_SIGMA",
    "Event",
]


def detector_from_dict(data: dict[str, Any]) -> BernoulliCusum | ConsecutiveRule | LatencyCusum:
    """Restore any detector of this module from its ``to_dict()`` output."""
    kinds: dict[str, Any] = {
        "bernoulli_cusum": BernoulliCusum,
        "consecutive": ConsecutiveRule,
        "latency_cusum": LatencyCusum,
    }
    try:
        kind = kinds[data["type"]]
    except KeyError:
        raise ValueError(f"unknown detector type {data.get('type')!r}") from None
    return kind.from_dict(data)
