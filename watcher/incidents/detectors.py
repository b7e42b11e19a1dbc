"""Change detectors for watcher's own probe streams: pure, deterministic, serialisable.

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

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, Protocol

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
]

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
# Exact run lengths on an integer lattice (Brook & Evans 1972, §3.4)
# --------------------------------------------------------------------------------------------


def _solve_dense(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting for the small systems below."""
    n = len(a)
    m = [row[:] + [rhs] for row, rhs in zip(a, b, strict=True)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        pivot_row = m[col]
        for r in range(col + 1, n):
            f = m[r][col] / pivot_row[col]
            if f:
                m[r] = [x - f * y for x, y in zip(m[r], pivot_row, strict=True)]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def _banded_run_lengths(h: int, steps: Sequence[tuple[int, float]], costs: Sequence[float]) -> list[float]:
    """Expected cost to absorption from each state 0..h-1 of a lattice CUSUM, by banded elimination.

    State i moves to ``max(0, i + d)`` with probability ``prob`` for each ``(d, prob)`` in
    ``steps``; reaching ``>= h`` is the alarm. Solves ``(I - Q) L = costs``. ``I - Q`` is a
    banded M-matrix (lower bandwidth = largest downward step, upper = largest upward step; the
    floor at 0 stays inside the band), so elimination without pivoting is stable. Cost
    O(h · lo · hi): fine for the latency lattice (~80 states), slow for the Bernoulli one, which
    uses :func:`_bernoulli_run_lengths` and keeps this as its fallback and cross-check.
    """
    lo = max(0, -min(d for d, _ in steps))
    hi = max(0, max(d for d, _ in steps))
    width = lo + hi + 1
    band = [[0.0] * width for _ in range(h)]
    for i in range(h):
        row = band[i]
        row[lo] += 1.0
        for d, prob in steps:
            j = i + d
            if j >= h:
                continue
            row[max(j, 0) - i + lo] -= prob
    rhs = list(costs)
    for i in range(h):
        pivot_row = band[i]
        pivot = pivot_row[lo]
        seg = pivot_row[lo : lo + hi + 1]
        for r in range(i + 1, min(h, i + lo + 1)):
            row = band[r]
            off = i - r + lo
            f = row[off]
            if f == 0.0:
                continue
            f /= pivot
            row[off : off + hi + 1] = [x - f * y for x, y in zip(row[off : off + hi + 1], seg, strict=True)]
            rhs[r] -= f * rhs[i]
    out = [0.0] * h
    for i in range(h - 1, -1, -1):
        row = band[i]
        acc = rhs[i]
        for c in range(i + 1, min(h, i + hi + 1)):
            acc -= row[c - i + lo] * out[c]
        out[i] = acc / row[lo]
    return out


def _bernoulli_run_lengths(
    up: int, dn: int, h: int, p: float, warn: int | None = None, fast_cost: float = 1.0
) -> list[float]:
    """Expected run length (in cost units) from every state of the Bernoulli lattice CUSUM.

    A failure (probability ``p``) moves i → i + up, or to the alarm if that is ≥ h; a pass
    moves i → max(0, i − dn). Each step taken *from* state i costs 1, or ``fast_cost`` when
    i ≥ ``warn`` (variable sampling, §A.5: the time until the next probe). Exact, not simulated.

    Method: the row of state i links L(i − dn) to L(i) and L(i + up), so starting from the top
    ``dn`` states as unknowns the rows can be walked downwards, carrying every L(j) as an
    affine function of those unknowns; the ``dn`` rows that touch the floor at 0 then close a
    small dn × dn system. O(h · dn), about a millisecond for h ≈ 600, against O(h · dn · up)
    for banded elimination. The walk divides by 1 − p, which is harmless for the in-control
    stream (p small) and is checked by the residual; a bad residual falls back to elimination.
    """
    q = 1.0 - p
    n = dn
    warn = h if warn is None else warn
    if h > n and q >= 0.5:
        zero = [0.0] * (n + 1)
        rows: list[list[float]] = [zero] * (h + up)
        for k in range(n):
            v = [0.0] * (n + 1)
            v[k + 1] = 1.0
            rows[h - n + k] = v
        inv_q = 1.0 / q
        for i in range(h - 1, n - 1, -1):
            v = [(a - p * b) * inv_q for a, b in zip(rows[i], rows[i + up], strict=True)]
            v[0] -= (fast_cost if i >= warn else 1.0) * inv_q
            rows[i - n] = v
        mat = []
        rhs = []
        for i in range(n):
            row = [a - p * b - q * z for a, b, z in zip(rows[i], rows[i + up], rows[0], strict=True)]
            mat.append(row[1:])
            rhs.append((fast_cost if i >= warn else 1.0) - row[0])
        x = _solve_dense(mat, rhs)
        values = [v[0] + sum(c * xx for c, xx in zip(v[1:], x, strict=True)) for v in rows[:h]]
        scale = max(values)
        worst = 0.0
        for i in range(h):
            nxt = values[i + up] if i + up < h else 0.0
            resid = values[i] - (fast_cost if i >= warn else 1.0) - p * nxt - q * values[max(0, i - dn)]
            worst = max(worst, abs(resid))
        if math.isfinite(scale) and worst <= 1e-9 * max(scale, 1.0):
            return values
    costs = [fast_cost if i >= warn else 1.0 for i in range(h)]
    return _banded_run_lengths(h, [(up, p), (-dn, q)], costs)


def lattice_arl(h: int, steps: Sequence[tuple[int, float]]) -> float:
    """Exact average run length from 0 of the lattice CUSUM ``S = max(0, S + d)``, alarm at ``S ≥ h``."""
    return _banded_run_lengths(h, steps, [1.0] * h)[0]


def bernoulli_llr_weights(p0: float, p1: float, scale: int = 10) -> tuple[int, int]:
    """Integer increments ``(up, dn)``: a failure adds ``up``, a pass takes away ``dn``.

    §3.2: pick the unit u = |ln((1 − p1)/(1 − p0))| / dn so a pass is exactly −dn, with dn
    starting at ``scale`` and raised until gcd(up, dn) = 1, and up = round(ln(p1/p0) / u).
    (If no dn up to 2 × scale works, dn stays at ``scale`` and up moves to the nearest coprime
    integer: a common factor would make the lattice coarser than it looks.)
    With dn ≈ 10 the rounding of ``up`` moves the log-likelihood ratio by under 1 %, and the
    state stays a small integer whose run-length distribution is exactly computable.
    p0 = 5 %, p1 = 15 % gives (99, 10); p0 = 2 % gives (156, 11).
    """
    up, dn, _unit = _weights(p0, p1, scale)
    return up, dn


@lru_cache(maxsize=1024)
def _weights(p0: float, p1: float, scale: int) -> tuple[int, int, float]:
    if not 0.0 < p0 < p1 < 1.0:
        raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
    if scale < 1:
        raise ValueError("scale must be ≥ 1")
    a = math.log(p1 / p0)
    b = math.log((1.0 - p1) / (1.0 - p0))
    for dn in range(scale, 2 * scale + 1):
        unit = -b / dn
        up = max(1, round(a / unit))
        if math.gcd(up, dn) == 1:
            return up, dn, unit
    # a/|b| is within rounding of an integer, so every dn in range shares a factor with its up
    # (p0 = 3.12 %, p1 = 15 %: a/|b| = 12.005). Keep dn = scale and take the nearest coprime up.
    unit = -b / scale
    ideal = a / unit
    up = min(
        (c for c in range(max(1, int(ideal) - scale), int(ideal) + scale + 2) if math.gcd(c, scale) == 1),
        key=lambda c: abs(c - ideal),
    )
    return up, scale, unit


@dataclass(frozen=True)
class BernoulliDesign:
    """A Bernoulli CUSUM designed for p0 → p1 at a false-alarm budget; every figure exact.

    ``h`` is the integer threshold on the lattice (``h_nats = h · unit``). ``arl0`` is the exact
    in-control average run length from a fresh start, in base probe slots (probes at the base
    cadence; with variable sampling a probe taken at the fast cadence counts ``fast_ratio``);
    ``arl0_probes`` counts probes. ``warn_level``: the statistic at which the stream is
    "watching" and, with variable sampling, probed at the fast cadence.
    """

    p0: float
    p1: float
    up: int
    dn: int
    unit: float
    h: int
    warn_level: int
    fast_ratio: float
    arl0: float
    arl0_probes: float

    @property
    def h_nats(self) -> float:
        return self.h * self.unit

    @property
    def k_consecutive(self) -> int:
        """Failures in a row that always reach h from any state (7 at p0 = 5 %, 4 at 2 %)."""
        return -(-self.h // self.up)

    @property
    def reference_rate(self) -> float:
        """k* of §3.2: the failure rate per probe above which the statistic drifts upwards."""
        return self.dn / (self.up + self.dn)

    @property
    def excess_to_alarm(self) -> float:
        """h/r of §3.2: wrong answers above k* per probe, since the last quiet point, that alarm."""
        return self.h / (self.up + self.dn)

    @property
    def probes_per_slot(self) -> float:
        """In-control probes per base slot: 1 at a fixed cadence, a bit more with VSI (§A.5)."""
        return self.arl0_probes / self.arl0


@lru_cache(maxsize=512)
def bernoulli_design(
    p0: float,
    p1: float,
    arl0_probes: float,
    scale: int = 10,
    warn_fraction: float = 0.25,
    fast_ratio: float = 1.0,
) -> BernoulliDesign:
    """The smallest integer threshold whose exact in-control ARL is at least ``arl0_probes``.

    ``arl0_probes`` is the budget in probes at the base cadence (90 days × 288 = 25,920 for one
    probe every 5 minutes). With ``fast_ratio`` < 1 (variable sampling: fast interval / base
    interval) the chain weighs each step by the time it takes, M = (I − Q)⁻¹ d (§A.5), so the
    *wall-clock* false-alarm rate is the one budgeted; the threshold rises a little to pay for
    the extra probes. Bisection over h, each step an exact solve (§3.4). About 15–40 ms;
    cached, so a fleet of streams sharing a design pays once.
    """
    if arl0_probes <= 1:
        raise ValueError("arl0_probes must be > 1")
    if not 0.0 < warn_fraction <= 1.0:
        raise ValueError("warn_fraction must be in (0, 1]")
    if not 0.0 < fast_ratio <= 1.0:
        raise ValueError("fast_ratio must be in (0, 1]")
    up, dn, unit = _weights(p0, p1, scale)
    vsi = fast_ratio < 1.0

    def warn_of(h: int) -> int:
        return max(1, math.ceil(warn_fraction * h))

    def arl(h: int) -> float:
        if vsi:
            return _bernoulli_run_lengths(up, dn, h, p0, warn_of(h), fast_ratio)[0]
        return _bernoulli_run_lengths(up, dn, h, p0)[0]

    hi = max(dn + 1, math.ceil(math.log(arl0_probes) / unit))
    while arl(hi) < arl0_probes:
        hi *= 2
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if arl(mid) >= arl0_probes:
            hi = mid
        else:
            lo = mid
    h = hi if arl(lo) < arl0_probes else lo
    warn = warn_of(h)
    if vsi:
        arl_time = _bernoulli_run_lengths(up, dn, h, p0, warn, fast_ratio)[0]
        arl_count = _bernoulli_run_lengths(up, dn, h, p0)[0]
    else:
        arl_time = arl_count = _bernoulli_run_lengths(up, dn, h, p0)[0]
    return BernoulliDesign(p0, p1, up, dn, unit, h, warn, fast_ratio, arl_time, arl_count)


def bernoulli_threshold(p0: float, p1: float, arl0_probes: float, scale: int = 10) -> int:
    """Integer threshold h (lattice units) with exact in-control ARL ≥ ``arl0_probes`` (fixed cadence).

    p0 = 5 %, p1 = 15 %, 25,920 probes → 611 (6.80 nats, ARL0 26,148), as in §3.5.
    """
    return bernoulli_design(p0, p1, arl0_probes, scale).h


def bernoulli_arl(design: BernoulliDesign, p: float, *, time: bool = False) -> float:
    """Exact zero-state average run length of ``design`` when the true failure rate is ``p``.

    ``time=True`` weighs steps by the sampling interval (base slots) as the design does.
    Uses elimination for large p, where the fast recursion is not stable.
    """
    cost = design.fast_ratio if time else 1.0
    return _bernoulli_run_lengths(design.up, design.dn, design.h, p, design.warn_level, cost)[0]


@dataclass(frozen=True)
class DelayStats:
    """Exact detection delay of a Bernoulli CUSUM, counted in probes from the first bad one.

    ``mean_slots``: mean wall-clock delay in base probe slots from a change that falls
    uniformly between two probes (so half an interval less than ``mean`` at a fixed cadence,
    §3.1), including the fast cadence of variable sampling when the design has it.
    ``false_alarm_before``: the chance of a false alarm in the ν quiet probes before the change
    (such runs are excluded, as in the conditional delay of §3.1).
    """

    mean: float
    median: int
    p90: int
    mean_slots: float
    false_alarm_before: float


def _step_distribution(pi: list[float], up: int, dn: int, h: int, p: float) -> tuple[list[float], float]:
    """One probe: the state distribution after it (alarm removed) and the mass that alarmed."""
    q = 1.0 - p
    tail = [q * x for x in pi[dn + 1 :]]
    nxt = [q * sum(pi[: dn + 1]), *tail, *([0.0] * (h - 1 - len(tail)))]
    if up < h:
        nxt = nxt[:up] + [a + p * b for a, b in zip(nxt[up:], pi, strict=False)]
    alarmed = p * sum(pi[max(0, h - up) :])
    return nxt, alarmed


def bernoulli_delay(
    design: BernoulliDesign, p1: float, nu: int = 2016, *, max_probes: int = 100_000
) -> DelayStats:
    """Exact conditional (steady-state) delay of §3.1: the change comes after ``nu`` quiet probes.

    The state distribution after ``nu`` in-control probes with no alarm (π_ν = e₀Q₀^ν,
    normalised) is propagated under ``p1`` until the alarm mass is exhausted; mean, median and
    p90 come from that exact distribution. ``nu=0`` gives the zero-state figures.
    For tests, benchmarks and documentation: a few hundred milliseconds, not for the hot path.
    """
    up, dn, h = design.up, design.dn, design.h
    pi = [0.0] * h
    pi[0] = 1.0
    survived = 1.0
    for _ in range(nu):
        nxt, alarmed = _step_distribution(pi, up, dn, h, design.p0)
        total = 1.0 - alarmed
        survived *= total
        nxt = [x / total for x in nxt]
        converged = max(abs(a - b) for a, b in zip(nxt, pi, strict=True)) < 1e-13
        pi = nxt
        if converged:
            # the conditioned distribution has settled; the survival keeps shrinking geometrically
            remaining = nu - _ - 1
            survived *= total**remaining
            break
    costs = [design.fast_ratio if i >= design.warn_level else 1.0 for i in range(h)]
    start_slot = sum(c * x for c, x in zip(costs, pi, strict=True))
    alive = 1.0
    mean = 0.0
    slots = 0.0
    cdf = 0.0
    median = p90 = 0
    t = 0
    while alive > 1e-10 and t < max_probes:
        slots += sum(c * x for c, x in zip(costs, pi, strict=True))
        pi, alarmed = _step_distribution(pi, up, dn, h, p1)
        t += 1
        alive -= alarmed
        mean += t * alarmed
        cdf += alarmed
        if not median and cdf >= 0.5:
            median = t
        if not p90 and cdf >= 0.9:
            p90 = t
    return DelayStats(mean, median, p90, slots - 0.5 * start_slot, 1.0 - survived)


def ucb1(failures: int, n: int, floor: float = 0.005) -> float:
    """The design p0 of §A.7 and §6 (``p0_estimate = "ucb1"``): estimate + 1 standard error.

    A p0 one point too low makes false alarms four times as frequent (table A.7); designing
    with an upper bound trades a little delay for that safety. ``floor`` keeps a stream that
    never failed in calibration from getting a design on which one failure is an incident.
    """
    if n <= 0:
        raise ValueError("no samples")
    est = failures / n
    return max(floor, est + math.sqrt(est * (1.0 - est) / n))


# --------------------------------------------------------------------------------------------
# Small helpers for timestamps and plain words
# --------------------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _hhmm(at: datetime | None) -> str:
    if at is None:
        return "an unknown time"
    text = at.strftime("%H:%M")
    if at.tzinfo is not None and at.utcoffset() == UTC.utcoffset(None):
        text += " UTC"
    return text


def _one_in(p: float) -> str:
    return f"1 in {max(1, round(1.0 / p))}" if p > 0 else "none"


def _round_up(p: float, step: float = 1e-4) -> float:
    """Design p0 on a 0.01-point grid, rounded up: stable cache keys, and the safe side (§A.7)."""
    return round(math.ceil(p / step - 1e-9) * step, 10)


# --------------------------------------------------------------------------------------------
# Bernoulli CUSUM
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BernoulliConfig:
    """Settings of one pass/fail stream (§6 ``[detect.quality]`` / ``[detect.errors]``).

    ``interval_s`` × ``probes_per_interval`` fix the probe rate that turns ``arl0_days`` into a
    budget in probes (90 days at 5 canaries every 5 minutes is 129,600 probes; at one canary
    every 5 minutes, the doc's rate, 25,920). ``fast_interval_s``: the variable-sampling cadence
    while ``warn``; the threshold is then tuned on wall-clock time. ``None`` for a fixed cadence.
    ``hard_fail_consecutive``: failures in a row that always alarm; ``None`` derives it from the
    design (⌈h/up⌉, which the CUSUM already implies). ``what``/``failed_word`` are for explain().
    """

    design_p1: float = 0.15
    arl0_days: float = 90.0
    interval_s: float = 300.0
    probes_per_interval: int = 1
    fast_interval_s: float | None = 60.0
    warn_fraction: float = 0.25
    prior_p0: float = 0.02
    p0_floor: float = 0.005
    calibration_days: float = 14.0
    calibration_min_samples: int = 2000
    hard_fail_consecutive: int | None = None
    clear_fraction: float = 0.5
    scale: int = 10
    history: int = 64
    what: str = "canary answers"
    failed_word: str = "wrong"

    def __post_init__(self) -> None:
        if not 0.0 < self.prior_p0 < self.design_p1 < 1.0:
            raise ValueError("need 0 < prior_p0 < design_p1 < 1")
        if not 0.0 < self.p0_floor < self.design_p1:
            raise ValueError("need 0 < p0_floor < design_p1")
        if self.interval_s <= 0 or self.probes_per_interval < 1 or self.arl0_days <= 0:
            raise ValueError("interval_s, probes_per_interval and arl0_days must be positive")
        if self.fast_interval_s is not None and not 0 < self.fast_interval_s <= self.interval_s:
            raise ValueError("fast_interval_s must be in (0, interval_s]")
        if not 0.0 < self.clear_fraction <= 1.0:
            raise ValueError("clear_fraction must be in (0, 1]")
        if self.hard_fail_consecutive is not None and self.hard_fail_consecutive < 1:
            raise ValueError("hard_fail_consecutive must be ≥ 1")

    @classmethod
    def quality(cls, **overrides: Any) -> BernoulliConfig:
        """Canary answers: p0 learned (prior 2 %), design p1 = 15 % (§6 ``[detect.quality]``)."""
        return cls(**overrides)

    @classmethod
    def errors(cls, **overrides: Any) -> BernoulliConfig:
        """Transport failures (5xx, timeout, connect; never 429): p0 ≈ 0.5 %, design 5 % (§A.4)."""
        base: dict[str, Any] = {
            "design_p1": 0.05,
            "prior_p0": 0.005,
            "p0_floor": 0.005,
            "what": "probe requests",
            "failed_word": "failed (error or timeout)",
        }
        base.update(overrides)
        return cls(**base)

    @property
    def arl0_probes(self) -> float:
        """The false-alarm budget in probes at the base cadence."""
        return self.arl0_days * 86400.0 / self.interval_s * self.probes_per_interval

    @property
    def fast_ratio(self) -> float:
        return 1.0 if self.fast_interval_s is None else self.fast_interval_s / self.interval_s

    def design(self, p0: float) -> BernoulliDesign:
        """The exact design for baseline ``p0`` (rounded up to 0.01 points, then cached).

        The design shift is at least a doubling (p1 ≥ 2 p0): a stream whose baseline has crept
        up to near ``design_p1`` cannot tell that shift from noise inside the budget (and its
        lattice would have thousands of states). §4.1 says to repair such a canary; meanwhile it
        is watched for a doubling of its failure rate.
        """
        p0 = _round_up(p0)
        if not 0.0 < p0 < 0.5:
            raise ValueError(f"p0 must be in (0, 0.5), got {p0}")
        return bernoulli_design(
            p0,
            max(self.design_p1, round(2.0 * p0, 10)),
            self.arl0_probes,
            self.scale,
            self.warn_fraction,
            self.fast_ratio,
        )


class BernoulliCusum:
    """One-sided Bernoulli CUSUM for one pass/fail stream, with calibration and plain words.

    ``update(failed, at=...)`` returns whether the stream is in alarm after this outcome;
    ``event`` says whether this very outcome raised (``"alarm"``) or cleared (``"clear"``) it.
    Before the baseline p0 is calibrated (``calibration_days`` and ``calibration_min_samples``
    both reached, every outcome counted, so an incident during calibration can only make the
    design *less* sensitive, the safe side of §A.7), the design uses ``prior_p0`` and
    ``calibrating`` is true; on completion p0 becomes :func:`ucb1` of the counts and the
    statistic is carried over in nats.
    """

    def __init__(self, config: BernoulliConfig | None = None, *, p0: float | None = None) -> None:
        self.config = config or BernoulliConfig()
        self.calibrating = p0 is None
        self.p0 = self.config.prior_p0 if p0 is None else max(p0, self.config.p0_floor)
        self.design = self.config.design(self.p0)
        self._reset_state()
        self.cal_n = 0
        self.cal_failures = 0
        self.cal_first_at: datetime | None = None
        self.cal_last_at: datetime | None = None
        self.n = 0
        self.failures = 0
        self.alarms = 0
        self.last_at: datetime | None = None
        self.recent: deque[tuple[datetime | None, bool]] = deque(maxlen=self.config.history)

    def _reset_state(self) -> None:
        self.s = 0
        self.r = 0
        self.alarm = False
        self.event: Event = None
        self.fails_in_row = 0
        self.passes_in_row = 0
        self.run_n = 0
        self.run_failures = 0
        self.run_first_at: datetime | None = None
        self.alarm_at: datetime | None = None
        self.alarm_reason: str | None = None
        self.alarm_n = 0
        self.alarm_failures = 0
        self.alarm_first_at: datetime | None = None
        self.cleared_at: datetime | None = None

    # ---- the statistic -------------------------------------------------------------------

    @property
    def h(self) -> int:
        """Alarm threshold on the lattice (same units as ``s``)."""
        return self.design.h

    @property
    def level(self) -> float:
        """How far towards an alarm the statistic is, 0..1 (capped at 1 while alarmed)."""
        return min(1.0, self.s / self.design.h)

    @property
    def warn(self) -> bool:
        """Above ``warn_fraction`` of h, or alarmed: probe at the fast cadence (VSI, §A.5).

        Fast probing during an alarm buys a quicker all-clear; it is not part of the in-control
        budget, which the design accounts for below the alarm only.
        """
        return self.alarm or self.s >= self.design.warn_level

    @property
    def hard_fail_k(self) -> int:
        """Failures in a row that always raise the alarm (configured, or ⌈h/up⌉ of the design)."""
        return self.config.hard_fail_consecutive or self.design.k_consecutive

    @property
    def clear_level(self) -> int:
        return max(1, math.ceil(self.config.clear_fraction * self.design.h))

    def reset(self) -> None:
        """Back to a fresh start (statistic 0, no alarm); the baseline and history are kept."""
        self._reset_state()

    def update(self, failed: bool, at: datetime | None = None) -> bool:
        """Feed one outcome (``True``: the canary failed). Returns whether the stream is alarmed."""
        d = self.design
        self.event = None
        self.n += 1
        self.recent.append((at, failed))
        if at is not None:
            self.last_at = at
        if failed:
            self.failures += 1
            self.s += d.up
            self.fails_in_row += 1
            self.passes_in_row = 0
        else:
            self.s = self.s - d.dn if self.s > d.dn else 0
            self.passes_in_row += 1
            self.fails_in_row = 0
        if self.s == 0:
            self.run_n = self.run_failures = 0
            self.run_first_at = None
        else:
            if self.run_n == 0:
                self.run_first_at = at
            self.run_n += 1
            self.run_failures += failed
        if not self.alarm:
            if self.s >= d.h or self.fails_in_row >= self.hard_fail_k:
                self._raise(at, "cusum" if self.s >= d.h else "consecutive")
        else:
            if self.s > d.h:
                self.s = d.h
            self.r = max(0, self.r - d.up) if failed else self.r + d.dn
            if self.r >= self.clear_level:
                self._clear(at)
        if self.calibrating:
            self._calibrate(failed, at)
        return self.alarm

    def _raise(self, at: datetime | None, reason: str) -> None:
        self.alarm = True
        self.event = "alarm"
        self.alarms += 1
        self.alarm_at = at
        self.alarm_reason = reason
        self.alarm_n = self.run_n
        self.alarm_failures = self.run_failures
        self.alarm_first_at = self.run_first_at
        self.cleared_at = None
        self.r = 0
        self.s = min(self.s, self.design.h)

    def _clear(self, at: datetime | None) -> None:
        self.alarm = False
        self.event = "clear"
        self.cleared_at = at
        self.s = self.r = 0
        self.run_n = self.run_failures = 0
        self.run_first_at = None

    # ---- calibration -----------------------------------------------------------------------

    def _calibrate(self, failed: bool, at: datetime | None) -> None:
        self.cal_n += 1
        self.cal_failures += failed
        if at is not None:
            if self.cal_first_at is None:
                self.cal_first_at = at
            self.cal_last_at = at
        if self.cal_n >= self.config.calibration_min_samples and self.calibration_days_done >= (
            self.config.calibration_days
        ):
            self.set_baseline(ucb1(self.cal_failures, self.cal_n, self.config.p0_floor))

    @property
    def calibration_days_done(self) -> float:
        """Days of calibration data: the timestamps' span plus one interval (n probes every 5 minutes
        cover n × 5 minutes), or the count at the base cadence when no timestamps are given."""
        if self.cal_first_at is not None and self.cal_last_at is not None:
            span = (self.cal_last_at - self.cal_first_at).total_seconds() + self.config.interval_s
            return span / 86400.0
        per_day = 86400.0 / self.config.interval_s * self.config.probes_per_interval
        return self.cal_n / per_day

    def set_baseline(self, p0: float) -> None:
        """Use ``p0`` (floored) as the calibrated baseline; the statistics carry over in nats."""
        old = self.design
        self.p0 = max(p0, self.config.p0_floor)
        self.calibrating = False
        self._redesign(old)

    def _redesign(self, old: BernoulliDesign) -> None:
        new = self.config.design(self.p0)
        self.design = new
        if new == old:
            return
        ratio = old.unit / new.unit
        self.s = min(round(self.s * ratio), new.h if self.alarm else new.h - 1)
        self.r = min(round(self.r * ratio), self.clear_level - 1)
        if self.s == 0:
            self.run_n = self.run_failures = 0
            self.run_first_at = None

    # ---- words -------------------------------------------------------------------------------

    def recent_failures(self, n: int | None = None) -> tuple[int, int]:
        """(failures, outcomes) among the last ``n`` outcomes kept in the ring (all if None)."""
        items = list(self.recent)[-n:] if n else list(self.recent)
        return sum(f for _, f in items), len(items)

    def facts(self) -> dict[str, Any]:
        """The numbers behind :meth:`explain`, for a dashboard."""
        d = self.design
        ring_fail, ring_n = self.recent_failures()
        return {
            "state": "alarm" if self.alarm else ("watching" if self.warn else "normal"),
            "calibrating": self.calibrating,
            "p0": self.p0,
            "p1": d.p1,
            "s": self.s,
            "h": d.h,
            "level": self.level,
            "run_failures": self.run_failures,
            "run_n": self.run_n,
            "run_first_at": _iso(self.run_first_at),
            "recent_failures": ring_fail,
            "recent_n": ring_n,
            "fails_in_row": self.fails_in_row,
            "alarm_at": _iso(self.alarm_at),
            "alarm_reason": self.alarm_reason,
            "alarm_failures": self.alarm_failures,
            "alarm_n": self.alarm_n,
            "alarm_first_at": _iso(self.alarm_first_at),
            "cleared_at": _iso(self.cleared_at),
            "calibration_n": self.cal_n,
            "calibration_failures": self.cal_failures,
        }

    def explain(self) -> str:
        """Plain words for an alert, e.g. "12 of the last 40 canary answers wrong, baseline 1 in 50"."""
        cfg = self.config
        base = f"baseline {_one_in(self.p0)}"
        parts: list[str] = []
        if self.alarm:
            expected = self.alarm_n * self.p0
            why = (
                f"including {self.hard_fail_k} in a row"
                if self.alarm_reason == "consecutive"
                else f"about {expected:.1f} expected"
                if expected >= 0.1
                else "under 0.1 expected"
            )
            parts.append(
                f"Alarm: {self.alarm_failures} of the last {self.alarm_n} {cfg.what} {cfg.failed_word} "
                f"({base}, {why}); first seen {_hhmm(self.alarm_first_at)}, alarm at {_hhmm(self.alarm_at)}."
            )
            if self.run_n > self.alarm_n:
                fail, n = self.recent_failures(10)
                parts.append(
                    f"Since the first: {self.run_failures} of {self.run_n} {cfg.failed_word}; "
                    f"last {n}: {fail} {cfg.failed_word}."
                )
            to_clear = math.ceil((self.clear_level - self.r) / self.design.dn)
            parts.append(f"Clears after at least {to_clear} more in a row without a failure.")
        elif self.run_n:
            state = "Watching" if self.warn else "Normal"
            parts.append(
                f"{state}: {self.run_failures} of the last {self.run_n} {cfg.what} {cfg.failed_word} ({base}); "
                f"first seen {_hhmm(self.run_first_at)}; {self.level:.0%} of the way to an alarm."
            )
        else:
            fail, n = self.recent_failures()
            if n:
                parts.append(f"Normal: {fail} of the last {n} {cfg.what} {cfg.failed_word} ({base}).")
            else:
                parts.append(f"No {cfg.what} yet ({base}).")
            if self.cleared_at is not None:
                parts.append(f"Last alarm cleared at {_hhmm(self.cleared_at)}.")
        if self.calibrating:
            parts.append(
                f"Baseline still calibrating ({self.cal_n} of {cfg.calibration_min_samples} outcomes, "
                f"{self.calibration_days_done:.1f} of {cfg.calibration_days:g} days), "
                f"using the prior {_one_in(self.p0)}."
            )
        return " ".join(parts)

    # ---- persistence -------------------------------------------------------------------------

    _STATE = (
        "s",
        "r",
        "alarm",
        "fails_in_row",
        "passes_in_row",
        "run_n",
        "run_failures",
        "alarm_reason",
        "alarm_n",
        "alarm_failures",
        "cal_n",
        "cal_failures",
        "n",
        "failures",
        "alarms",
        "calibrating",
        "p0",
    )
    _TIMES = (
        "run_first_at",
        "alarm_at",
        "alarm_first_at",
        "cleared_at",
        "cal_first_at",
        "cal_last_at",
        "last_at",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state; :meth:`from_dict` restores a detector that behaves identically."""
        out: dict[str, Any] = {"type": "bernoulli_cusum", "version": 1, "config": asdict(self.config)}
        out.update({k: getattr(self, k) for k in self._STATE})
        out.update({k: _iso(getattr(self, k)) for k in self._TIMES})
        out["recent"] = [[_iso(at), int(f)] for at, f in self.recent]
        out["design"] = {"p0": self.design.p0, "h": self.design.h, "up": self.design.up, "dn": self.design.dn}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: BernoulliConfig | None = None) -> BernoulliCusum:
        """Restore from :meth:`to_dict`. A different ``config`` (changed settings) is applied, with
        the statistics carried over in nats; without one the stored config is used."""
        stored = _config_from(BernoulliConfig, data["config"])
        self = cls(stored, p0=data["p0"])
        for k in cls._STATE:
            setattr(self, k, data[k])
        for k in cls._TIMES:
            setattr(self, k, _parse(data[k]))
        self.design = stored.design(self.p0)
        self.recent = deque(((_parse(at), bool(f)) for at, f in data["recent"]), maxlen=stored.history)
        if config is not None and config != stored:
            old = self.design
            self.config = config
            self.recent = deque(self.recent, maxlen=config.history)
            if self.calibrating:
                self.p0 = config.prior_p0
            self._redesign(old)
        return self


def _config_from(kind: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})


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
        if self.alarm:
            return (
                f"Outage: {self.failures_while_open} {self.what} failed since {_hhmm(self.outage_first_at)} "
                f"({self.fail_n} in a row open it); it closes after {self.recover_m} successes in a row "
                f"(now {self.passes_in_row})."
            )
        if self.closed_at is not None and self.fails_in_row == 0:
            return f"Recovered at {_hhmm(self.closed_at)} after {self.recover_m} successes in a row."
        return f"No outage: {self.fails_in_row} failed in a row (an outage needs {self.fail_n})."

    _STATE = ("fail_n", "recover_m", "what", "alarm", "fails_in_row", "passes_in_row", "failures_while_open")
    _TIMES = ("first_fail_at", "opened_at", "outage_first_at", "closed_at")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "consecutive", "version": 1}
        out.update({k: getattr(self, k) for k in self._STATE})
        out.update({k: _iso(getattr(self, k)) for k in self._TIMES})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConsecutiveRule:
        self = cls(data["fail_n"], data["recover_m"], what=data["what"])
        for k in cls._STATE:
            setattr(self, k, data[k])
        for k in cls._TIMES:
            setattr(self, k, _parse(data[k]))
        return self


# --------------------------------------------------------------------------------------------
# Latency: winsorised robust CUSUM on seasonal z-scores of log latency
# --------------------------------------------------------------------------------------------

Season = Literal["none", "hour_of_day", "hour_of_week"]


@dataclass(frozen=True)
class LatencyConfig:
    """Settings of one latency stream (§6 ``[detect.latency]``).

    ``higher_is_worse=False`` for throughput (tokens/s): the rule is applied to −ln y.
    ``season="hour_of_week"`` uses hour-of-week buckets once the learning data spans
    ``hour_of_week_after_days`` (28), falling back to hour of day, then to all hours, whenever a
    bucket has fewer than ``min_bucket_samples``. ``grid``: lattice step in z units; the CUSUM
    runs on integers so its false-alarm rate is computed exactly (rounding z to 0.1 σ costs
    nothing measurable). ``min_scale``: floor on the robust scale in log units (1 %), so a stream
    with quantised timings cannot get a zero MAD.
    """

    metric: str = "TTFT"
    unit: str = "s"
    higher_is_worse: bool = True
    design_slowdown: float = 1.5
    winsor: float = 3.0
    arl0_days: float = 90.0
    interval_s: float = 300.0
    probes_per_interval: int = 1
    season: Season = "hour_of_day"
    hour_of_week_after_days: float = 28.0
    learn_days: float = 14.0
    learn_min_samples: int = 1000
    min_bucket_samples: int = 30
    grid: float = 0.1
    min_scale: float = 0.01
    arl0_margin: float = 1.4
    warn_fraction: float = 0.25
    clear_fraction: float = 0.5
    history: int = 24

    def __post_init__(self) -> None:
        if self.design_slowdown <= 1.0:
            raise ValueError("design_slowdown must be > 1")
        if self.winsor <= 0 or self.grid <= 0 or self.grid > self.winsor:
            raise ValueError("need 0 < grid ≤ winsor")
        if self.season not in ("none", "hour_of_day", "hour_of_week"):
            raise ValueError(f"unknown season {self.season!r}")
        if not 0.0 < self.clear_fraction <= 1.0 or not 0.0 < self.warn_fraction <= 1.0:
            raise ValueError("clear_fraction and warn_fraction must be in (0, 1]")

    @property
    def arl0_probes(self) -> float:
        return self.arl0_days * 86400.0 / self.interval_s * self.probes_per_interval


def _median(sorted_values: Sequence[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else 0.5 * (sorted_values[mid - 1] + sorted_values[mid])


def _robust(values: Iterable[float], min_scale: float) -> tuple[float, float]:
    """(median, 1.4826 × MAD), the scale floored: location and scale that a few stalls cannot move."""
    xs = sorted(values)
    med = _median(xs)
    mad = _median(sorted(abs(x - med) for x in xs))
    return med, max(MAD_TO_SIGMA * mad, min_scale)


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo is not None else at


def _hour_keys(at: datetime) -> tuple[int, int]:
    """(hour of day, hour of week) in UTC; naive datetimes are taken as UTC."""
    at = _utc(at)
    return at.hour, at.weekday() * 24 + at.hour


@dataclass(frozen=True)
class LatencyBaseline:
    """Robust seasonal baseline of log latency: (median, scale) per bucket, plus the threshold.

    ``buckets`` maps "h<hour>" (hour of day) and "w<hour of week>" to (median, scale) in log
    units; buckets with too few samples are absent and fall back. ``sigma`` is the pooled robust
    scale of the seasonal residuals (σ_robust of §5.3), which sets the reference ``k`` in z units.
    ``k_steps``/``h`` are the lattice reference and threshold; ``arl0`` is the exact in-control
    ARL of that lattice under the learning data's own (winsorised, rounded) z distribution,
    assuming independent probes (the caveat of §5.3: replay real data and check autocorrelation).
    """

    global_median: float
    global_scale: float
    sigma: float
    buckets: dict[str, tuple[float, float]]
    use_week: bool
    n: int
    k_steps: int
    h: int
    arl0: float
    grid: float

    def location(self, at: datetime) -> tuple[float, float]:
        """(median, scale) of log latency expected at ``at``."""
        hod, how = _hour_keys(at)
        if self.use_week:
            found = self.buckets.get(f"w{how}")
            if found is not None:
                return found
        found = self.buckets.get(f"h{hod}")
        if found is not None:
            return found
        return self.global_median, self.global_scale

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["buckets"] = {k: list(v) for k, v in self.buckets.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyBaseline:
        data = dict(data)
        data["buckets"] = {k: (float(v[0]), float(v[1])) for k, v in data["buckets"].items()}
        return cls(**data)


def latency_threshold(z_steps: Sequence[int], k_steps: int, arl0_probes: float) -> tuple[int, float]:
    """Smallest lattice threshold h with exact in-control ARL ≥ ``arl0_probes``; returns (h, ARL).

    ``z_steps``: in-control z-scores already winsorised and rounded to the grid (integers);
    their empirical distribution minus ``k_steps`` gives the increments. Bisection over h with
    an exact banded solve at each step (~80 states: a fraction of a second).
    """
    if not z_steps:
        raise ValueError("no z samples")
    counts: dict[int, int] = {}
    for z in z_steps:
        counts[z - k_steps] = counts.get(z - k_steps, 0) + 1
    total = len(z_steps)
    steps = sorted((d, c / total) for d, c in counts.items())
    if max(d for d, _ in steps) <= 0:
        raise ValueError("the reference k is at or above the winsor limit: the CUSUM can never rise")
    cache: dict[int, float] = {}

    def arl(h: int) -> float:
        if h not in cache:
            cache[h] = lattice_arl(h, steps)
        return cache[h]

    hi = 16
    while arl(hi) < arl0_probes:
        hi *= 2
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if arl(mid) >= arl0_probes:
            hi = mid
        else:
            lo = mid
    h = hi if arl(lo) < arl0_probes else lo
    return h, arl(h)


def _buckets_of(
    rows: Sequence[tuple[datetime, int, int, float]], cfg: LatencyConfig
) -> dict[str, tuple[float, float]]:
    by: dict[str, list[float]] = {}
    if cfg.season != "none":
        for _, hod, how, y in rows:
            by.setdefault(f"h{hod}", []).append(y)
            if cfg.season == "hour_of_week":
                by.setdefault(f"w{how}", []).append(y)
    return {k: _robust(v, cfg.min_scale) for k, v in by.items() if len(v) >= cfg.min_bucket_samples}


def _cross_fitted_z_steps(
    rows: Sequence[tuple[datetime, int, int, float]], cfg: LatencyConfig, use_week: bool
) -> list[int]:
    """z-scores of the learning data, each scored against a baseline that did not see it.

    In-sample z-scores are optimistic: a bucket median estimated from ~170 values is off by
    about 0.1 σ, and that error is in every later z of the bucket. Measured on the doc's model,
    thresholds from in-sample z gave a false alarm every ~58 days instead of 90. Two-fold
    cross-fitting by calendar day (even days scored with a baseline from odd days and the other
    way round) puts that estimation error into the distribution the threshold is computed from.
    Each half has half the data, so the error is if anything overstated: the safe side.
    """
    folds: tuple[list, list] = ([], [])
    for row in rows:
        folds[_day_index(row[0]) % 2].append(row)
    if not folds[0] or not folds[1]:
        folds = (list(rows[0::2]), list(rows[1::2]))
    z_steps = []
    for fit_rows, score_rows in ((folds[1], folds[0]), (folds[0], folds[1])):
        g_med, g_scale = _robust((r[3] for r in fit_rows), cfg.min_scale)
        half = LatencyBaseline(
            g_med, g_scale, g_scale, _buckets_of(fit_rows, cfg), use_week, 0, 0, 0, 0.0, cfg.grid
        )
        for at, _, _, y in score_rows:
            med, scale = half.location(at)
            z = max(-cfg.winsor, min(cfg.winsor, (y - med) / scale))
            z_steps.append(round(z / cfg.grid))
    return z_steps


def _day_index(at: datetime) -> int:
    return _utc(at).toordinal()


def fit_latency_baseline(
    samples: Iterable[tuple[datetime, float]], config: LatencyConfig | None = None
) -> LatencyBaseline:
    """Learn the seasonal baseline and the threshold from (time, latency) samples.

    Latencies must be positive (seconds, or tokens/s with ``higher_is_worse=False``). Median and
    MAD per bucket, so the baseline is robust to outliers: up to half the values of a bucket can
    be stalls before its median moves far. Exclude incident periods from ``samples`` (§4.5).
    """
    cfg = config or LatencyConfig()
    sign = 1.0 if cfg.higher_is_worse else -1.0
    rows = []
    for at, value in samples:
        if not value > 0 or not math.isfinite(value):
            raise ValueError(f"latency must be positive and finite, got {value!r}")
        hod, how = _hour_keys(at)
        rows.append((at, hod, how, sign * math.log(value)))
    if len(rows) < 2:
        raise ValueError("need at least 2 samples")
    g_med, g_scale = _robust((r[3] for r in rows), cfg.min_scale)
    span_days = (max(r[0] for r in rows) - min(r[0] for r in rows)).total_seconds() / 86400.0
    buckets = _buckets_of(rows, cfg)
    use_week = cfg.season == "hour_of_week" and span_days >= cfg.hour_of_week_after_days
    partial = LatencyBaseline(g_med, g_scale, g_scale, buckets, use_week, len(rows), 0, 0, 0.0, cfg.grid)
    residuals = []
    for at, _, _, y in rows:
        med, _scale = partial.location(at)
        residuals.append(y - med)
    sigma = max(MAD_TO_SIGMA * _median(sorted(abs(r) for r in residuals)), cfg.min_scale)
    z_steps = _cross_fitted_z_steps(rows, cfg, use_week)
    k = 0.5 * math.log(cfg.design_slowdown) / sigma
    k_steps = max(1, round(k / cfg.grid))
    k_steps = min(k_steps, round(cfg.winsor / cfg.grid) - 1)
    h, arl0 = latency_threshold(z_steps, k_steps, cfg.arl0_probes * cfg.arl0_margin)
    return replace(partial, sigma=sigma, k_steps=k_steps, h=h, arl0=arl0)


class LatencyCusum:
    """Winsorised robust CUSUM on seasonal z-scores of log latency (§5.3), with learning.

    ``update(value, at)``: one successful probe's latency (failed probes go to the error
    stream). Until a baseline exists the samples are kept (compactly) and the detector is
    ``learning``; once ``learn_days`` and ``learn_min_samples`` are both reached, the baseline is
    fitted and the threshold computed. A caller with history can skip that with
    :meth:`fit` (or pass ``baseline=``). Then, per probe::

        z = (±ln y − median_b) / scale_b          b = the probe's season bucket
        S = max(0, S + round(clip(z, −w, w) / grid) − k)      alarm when S ≥ h

    and the same latch/clear life cycle as :class:`BernoulliCusum`.
    """

    def __init__(self, config: LatencyConfig | None = None, baseline: LatencyBaseline | None = None) -> None:
        self.config = config or LatencyConfig()
        self.baseline = baseline
        # learning samples, compact because the daemon persists them every run: seconds after
        # ``_learn_t0`` and the value to 6 significant digits (as stored, so a restored detector
        # fits exactly the same baseline)
        self._learn_t0: datetime | None = None
        self._learning: list[tuple[int, float]] = []
        self._reset_state()
        self.n = 0
        self.alarms = 0
        self.last_at: datetime | None = None
        self.recent: deque[tuple[datetime, float, float]] = deque(maxlen=self.config.history)

    def _reset_state(self) -> None:
        self.s = 0
        self.r = 0
        self.alarm = False
        self.event: Event = None
        self.run_n = 0
        self.run_first_at: datetime | None = None
        self.alarm_at: datetime | None = None
        self.alarm_n = 0
        self.alarm_first_at: datetime | None = None
        self.alarm_ratio = 1.0
        self.cleared_at: datetime | None = None

    def reset(self) -> None:
        """Statistic back to 0, no alarm; the baseline and history are kept."""
        self._reset_state()

    @property
    def learning(self) -> bool:
        return self.baseline is None

    @property
    def h(self) -> int:
        return self.baseline.h if self.baseline else 0

    @property
    def level(self) -> float:
        return min(1.0, self.s / self.baseline.h) if self.baseline else 0.0

    @property
    def warn(self) -> bool:
        if self.baseline is None:
            return False
        return self.alarm or self.s >= max(1, math.ceil(self.config.warn_fraction * self.baseline.h))

    def fit(self, samples: Iterable[tuple[datetime, float]]) -> None:
        """(Re)learn the baseline from history; the current statistic is kept."""
        self.baseline = fit_latency_baseline(samples, self.config)
        self._learning = []
        self._learn_t0 = None

    def update(self, value: float, at: datetime) -> bool:
        """Feed one latency (seconds, or tokens/s for throughput). Returns whether alarmed."""
        self.event = None
        if not value > 0 or not math.isfinite(value):
            raise ValueError(f"latency must be positive and finite, got {value!r}")
        self.n += 1
        self.last_at = at
        if self.baseline is None:
            if self._learn_t0 is None:
                self._learn_t0 = at
            offset = round((at - self._learn_t0).total_seconds())
            self._learning.append((offset, float(f"{value:.6g}")))
            if (
                len(self._learning) >= self.config.learn_min_samples
                and offset + self.config.interval_s >= self.config.learn_days * 86400.0
            ):
                t0 = self._learn_t0
                self.fit((t0 + timedelta(seconds=o), v) for o, v in self._learning)
            return False
        b = self.baseline
        cfg = self.config
        med, scale = b.location(at)
        y = math.log(value) if cfg.higher_is_worse else -math.log(value)
        z = (y - med) / scale
        w = cfg.winsor
        step = round((w if z > w else -w if z < -w else z) / cfg.grid) - b.k_steps
        self.recent.append((at, value, math.exp(med if cfg.higher_is_worse else -med)))
        self.s = self.s + step if self.s + step > 0 else 0
        if self.s == 0:
            self.run_n = 0
            self.run_first_at = None
        else:
            if self.run_n == 0:
                self.run_first_at = at
            self.run_n += 1
        if not self.alarm:
            if self.s >= b.h:
                self.alarm = True
                self.event = "alarm"
                self.alarms += 1
                self.alarm_at = at
                self.alarm_n = self.run_n
                self.alarm_first_at = self.run_first_at
                self.alarm_ratio = self._run_ratio()
                self.cleared_at = None
                self.r = 0
                self.s = b.h
        else:
            if self.s > b.h:
                self.s = b.h
            self.r = self.r - step if self.r - step > 0 else 0
            if self.r >= max(1, math.ceil(cfg.clear_fraction * b.h)):
                self.alarm = False
                self.event = "clear"
                self.cleared_at = at
                self.s = self.r = 0
                self.run_n = 0
                self.run_first_at = None
        return self.alarm

    def _run_ratio(self, n: int | None = None) -> float:
        """Median of observed / usual over the last ``n`` probes (the current run by default)."""
        n = n or self.run_n or len(self.recent)
        items = list(self.recent)[-n:]
        if not items:
            return 1.0
        return _median(sorted(v / e for _, v, e in items))

    def explain(self) -> str:
        cfg = self.config
        if self.baseline is None:
            days = 0.0
            if self._learning:
                days = self._learning[-1][0] / 86400.0
            return (
                f"{cfg.metric}: learning the baseline ({len(self._learning)} of {cfg.learn_min_samples} "
                f"probes, {days:.1f} of {cfg.learn_days:g} days)."
            )
        worse = "slower" if cfg.higher_is_worse else "lower"
        if self.recent:
            at, value, expected = self.recent[-1]
            now = f"latest {value:.3g} {cfg.unit} against a usual {expected:.3g} {cfg.unit} at this hour"
        else:
            now = "no probe yet"
        if self.alarm:
            items = min(self.alarm_n, len(self.recent)) or 1
            return (
                f"Alarm: {cfg.metric} {self.alarm_ratio:.1f}× the usual value for the hour "
                f"(median of the last {items} probes) since {_hhmm(self.alarm_first_at)}, alarm at "
                f"{_hhmm(self.alarm_at)}; {now}."
            )
        if self.run_n:
            items = min(self.run_n, len(self.recent))
            state = "Watching" if self.warn else "Normal"
            return (
                f"{state}: {cfg.metric} {self._run_ratio():.2f}× the usual value over the last {items} "
                f"probes, {worse} since {_hhmm(self.run_first_at)}; {self.level:.0%} of the way to an "
                f"alarm; {now}."
            )
        cleared = f" Last alarm cleared at {_hhmm(self.cleared_at)}." if self.cleared_at else ""
        return f"Normal: {cfg.metric} {now}.{cleared}"

    _STATE = ("s", "r", "alarm", "run_n", "alarm_n", "alarm_ratio", "n", "alarms")
    _TIMES = ("run_first_at", "alarm_at", "alarm_first_at", "cleared_at", "last_at")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "latency_cusum", "version": 1, "config": asdict(self.config)}
        out.update({k: getattr(self, k) for k in self._STATE})
        out.update({k: _iso(getattr(self, k)) for k in self._TIMES})
        out["baseline"] = self.baseline.to_dict() if self.baseline else None
        out["learning"] = {"t0": _iso(self._learn_t0), "samples": [list(x) for x in self._learning]}
        out["recent"] = [[at.isoformat(), v, e] for at, v, e in self.recent]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: LatencyConfig | None = None) -> LatencyCusum:
        """Restore from :meth:`to_dict`. A changed ``config`` applies from the next baseline fit."""
        stored = _config_from(LatencyConfig, data["config"])
        baseline = LatencyBaseline.from_dict(data["baseline"]) if data["baseline"] else None
        self = cls(config or stored, baseline)
        for k in cls._STATE:
            setattr(self, k, data[k])
        for k in cls._TIMES:
            setattr(self, k, _parse(data[k]))
        learning = data["learning"]
        if isinstance(learning, list):  # the first format: [[iso time, value], ...]
            for t, v in learning:
                when = datetime.fromisoformat(t)
                if self._learn_t0 is None:
                    self._learn_t0 = when
                self._learning.append((round((when - self._learn_t0).total_seconds()), float(v)))
        else:
            self._learn_t0 = _parse(learning["t0"])
            self._learning = [(int(o), float(v)) for o, v in learning["samples"]]
        self.recent = deque(
            ((datetime.fromisoformat(t), float(v), float(e)) for t, v, e in data["recent"]),
            maxlen=self.config.history,
        )
        return self


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
