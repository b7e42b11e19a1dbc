"""Exact run lengths on an integer lattice (Brook & Evans 1972, docs/detection.md §3.4), and the
Bernoulli CUSUM designs built on them.

The thresholds of both CUSUMs come from here: an in-control average run length computed exactly from
a Markov chain, so the false-alarm budget is kept by arithmetic rather than by simulation. Pure
functions, no detector state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

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
    h = smallest_threshold(arl, arl0_probes, hi)
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


def smallest_threshold(arl: Callable[[int], float], arl0: float, hi: int = 16) -> int:
    """The smallest integer threshold whose in-control run length ``arl(h)`` reaches ``arl0``: doubling
    from ``hi``, then bisection (``arl`` grows with ``h``)."""
    while arl(hi) < arl0:
        hi *= 2
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if arl(mid) >= arl0:
            hi = mid
        else:
            lo = mid
    return hi if arl(lo) < arl0 else lo
