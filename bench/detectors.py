"""Benchmark the change detectors against docs/detection.md: false alarms and detection delay.

Usage: python bench/detectors.py [--quick] [--workers 2] [--seed 1]

Prints tables (this is a script, not a test):

1. Exact designs (Markov chain, no simulation): thresholds, in-control ARL, and how long
   computing a design takes (the daemon does it at start-up).
2. Quality canaries at the doc's rate, one canary every 5 minutes (12 probes/h/stream):
   CUSUM, CUSUM with variable sampling (1-minute cadence while warning), the literal naive
   rule "3 of the last 10 wrong", and a naive "c of the last W" rule matched to the CUSUM's
   false-alarm budget as closely as its integers allow. False alarms per 90 days (measured,
   and exact where the chain gives it) and delay (median / p90 / mean, probes and minutes) for
   2 % → 15 %, 2 % → 30 %, 5 % → 30 %, against the exact CUSUM figures.
3. The same at the issue's rate, 5 canaries every 5 minutes (60 probes/h/stream, all five in
   one run), where the false-alarm budget is 90 days = 129,600 probes.
4. The latency CUSUM on the doc's simulated TTFT model (§5.3): false alarms per 90 days and
   delay for TTFT × 1.25 (full run only), × 1.5 and × 2.

Method (as §3.1/§3.7): false alarms are counted with a restart after each alarm, and the rate
is probes (or wall-clock time) watched per alarm. Delays: the change comes after 2,016 quiet
probes (7 days at 12/h; 1.4 days at 60/h, which is ample for the statistic to settle: the
exact figures do not change past a few hundred probes), runs with an earlier false alarm are
dropped, the delay counts the first bad probe, and the change falls uniformly between two
probe runs for the wall-clock figure. Every number is measured by running the detectors of
watcher/detection/ itself; a target that is missed is printed as MISSED.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import statistics
import sys
import time
import zlib
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcher.detection import (  # noqa: E402
    BernoulliConfig,
    BernoulliCusum,
    LatencyConfig,
    LatencyCusum,
    bernoulli_delay,
    bernoulli_design,
    fit_latency_baseline,
)

BUDGET_DAYS = 90
INTERVAL_MIN = 5.0
FAST_RATIO = 0.2  # 60 s against 300 s
NU = 2016
SHIFTS = ((0.02, 0.15), (0.02, 0.30), (0.05, 0.30))
DOC = {  # §0 / §3.7 / §A.5: exact CUSUM mean delay in probes, and VSI wall-clock, at 12 probes/h
    (0.02, 0.15): "37.2 (VSI 1.5 h)",
    (0.02, 0.30): "14.4 (VSI 31 min)",
    (0.05, 0.30): "25.5 (VSI 53 min)",
}


# ---- detectors -------------------------------------------------------------------------------


class NaiveWindow:
    """The strawman: alarm when at least ``c`` of the last ``w`` canaries failed."""

    def __init__(self, c: int, w: int) -> None:
        self.c, self.w = c, w
        self.window: deque[bool] = deque(maxlen=w)
        self.count = 0
        self.event: str | None = None
        self.warn = False

    def update(self, failed: bool) -> bool:
        if len(self.window) == self.w:
            self.count -= self.window[0]
        self.window.append(failed)
        self.count += failed
        alarm = self.count >= self.c
        self.event = "alarm" if alarm else None
        return alarm

    def reset(self) -> None:
        self.window.clear()
        self.count = 0

    def clone(self) -> NaiveWindow:
        return copy.deepcopy(self)


def naive_arl(p0: float, c: int, w: int) -> float:
    """Approximate in-control ARL of "c of the last w": one over the rate of up-crossings.

    An alarm starts when the newest probe fails, the one leaving the window passed and exactly
    c − 1 of the w − 1 in between failed. Checked against the doc's simulation: 1.2 d vs 1.3 d
    (3 of 10, p0 = 5 %) and 14.2 d vs 14.6 d (p0 = 2 %). The bench measures the real rate.
    """
    rate = p0 * (1 - p0) * math.comb(w - 1, c - 1) * p0 ** (c - 1) * (1 - p0) ** (w - c)
    return 1.0 / rate


def matched_naive(p0: float, gamma: float, windows: range = range(2, 73)) -> tuple[int, int]:
    """The (c, w) whose approximate ARL is closest (in ratio) to ``gamma``; w ≤ 72 (6 hours) by default."""
    best = None
    for c in range(2, 13):
        for w in windows:
            if w < c:
                continue
            score = abs(math.log(naive_arl(p0, c, w) / gamma))
            if best is None or score < best[0]:
                best = (score, c, w)
    assert best is not None
    return best[1], best[2]


def make(spec: tuple) -> object:
    kind, p0, m = spec[0], spec[1], spec[2]
    if kind == "naive":
        return NaiveWindow(spec[3], spec[4])
    cfg = BernoulliConfig(fast_interval_s=60.0 if kind == "vsi" else None, probes_per_interval=m)
    return BernoulliCusum(cfg, p0=p0)


def clone(det: object) -> object:
    """A copy to run one shift from; the CUSUM goes through to_dict/from_dict, as the daemon's DB would."""
    if isinstance(det, BernoulliCusum):
        return BernoulliCusum.from_dict(det.to_dict())
    return det.clone()


# ---- simulation tasks (run in worker processes) ----------------------------------------------


def task_false_alarms(spec: tuple, runs: int, seed: int) -> tuple[int, float, int]:
    """(alarms, wall-clock in base intervals, probes) for ``runs`` probe runs at p0."""
    kind, p0, m = spec[0], spec[1], spec[2]
    rng = random.Random(seed)
    rand = rng.random
    det = make(spec)
    update = det.update
    alarms = 0
    elapsed = 0.0
    for _ in range(runs):
        elapsed += FAST_RATIO if (kind == "vsi" and det.warn) else 1.0
        for _ in range(m):
            update(rand() < p0)
            if det.event == "alarm":
                alarms += 1
                det.reset()
    return alarms, elapsed, runs * m


def task_delays(spec: tuple, shifts: tuple[float, ...], runs: int, seed: int) -> dict:
    """Delays (probes, minutes) after NU quiet probes, for each p1 in ``shifts``."""
    kind, p0, m = spec[0], spec[1], spec[2]
    rng = random.Random(seed)
    rand = rng.random
    out: dict = {p1: ([], []) for p1 in shifts}
    dropped = 0
    for _ in range(runs):
        det = make(spec)
        quiet = True
        for _ in range(NU // m):
            for _ in range(m):
                det.update(rand() < p0)
                if det.event == "alarm":
                    if kind == "naive":
                        det.reset()  # its state is only the last w probes: restart rather than drop
                    else:
                        quiet = False
        if not quiet:
            dropped += 1
            continue
        for p1 in shifts:
            d = clone(det)
            wait = FAST_RATIO if (kind == "vsi" and d.warn) else 1.0
            elapsed = wait * (1.0 - rand())  # the change falls uniformly inside the coming interval
            probes = 0
            while True:
                hit = False
                for _ in range(m):
                    probes += 1
                    d.update(rand() < p1)
                    if d.event == "alarm":
                        hit = True
                        break
                if hit or probes > 200_000:
                    break
                elapsed += FAST_RATIO if (kind == "vsi" and d.warn) else 1.0
            out[p1][0].append(probes)
            out[p1][1].append(elapsed * INTERVAL_MIN)
    out["dropped"] = dropped
    return out


T0 = datetime(2025, 1, 6, tzinfo=UTC)


def _ttft(rng: random.Random, i: int, mult: float = 1.0) -> tuple[datetime, float]:
    """§5.3's model: ln 0.8 s + 0.20 sin(2π time of day) + 0.20 t3 noise, plus 0.5 % stalls at ×10."""
    g = rng.gauss
    t3 = g(0, 1) / math.sqrt((g(0, 1) ** 2 + g(0, 1) ** 2 + g(0, 1) ** 2) / 3)
    y = math.log(0.8) + 0.2 * math.sin(2 * math.pi * (i % 288) / 288) + 0.2 * t3
    if rng.random() < 0.005:
        y += math.log(10)
    return T0 + timedelta(minutes=5 * i), math.exp(y) * mult


def task_latency(seed: int, fa_probes: int, delay_runs: int, mults: tuple[float, ...]) -> dict:
    """One stream: learn 14 days, watch ``fa_probes`` for false alarms, then delay runs."""
    rng = random.Random(seed)
    base = fit_latency_baseline([_ttft(rng, i) for i in range(4032)])
    det = LatencyCusum(baseline=base)
    alarms = 0
    i = 4032
    for i in range(4032, 4032 + fa_probes):
        t, v = _ttft(rng, i)
        det.update(v, t)
        if det.event == "alarm":
            alarms += 1
            det.reset()
    delays: dict = {mult: [] for mult in mults}
    dropped = 0
    for _ in range(delay_runs):
        det = LatencyCusum(baseline=base)
        start = i + NU + rng.randrange(288)  # 7 quiet days, then the change at a random time of day
        quiet = True
        for j in range(i, start):
            t, v = _ttft(rng, j)
            det.update(v, t)
            quiet = quiet and det.event != "alarm"
        if not quiet:
            dropped += 1
            i = start
            continue
        snapshot = det.to_dict()
        for mult in mults:
            d = LatencyCusum.from_dict(snapshot)
            for k in range(start, start + 20_000):
                t, v = _ttft(rng, k, mult)
                d.update(v, t)
                if d.event == "alarm":
                    delays[mult].append(k - start + 1)
                    break
        i = start
    return {
        "alarms": alarms,
        "probes": fa_probes,
        "delays": delays,
        "dropped": dropped,
        "h": base.h * base.grid,
    }


# ---- reporting -------------------------------------------------------------------------------


def q(values: list[float], frac: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(frac * len(s)) - 1))]


def fa_text(alarms: int, elapsed_intervals: float) -> tuple[str, str]:
    """(false alarms per 90 days ± 1σ, days between false alarms)."""
    per = elapsed_intervals / (BUDGET_DAYS * 288)
    rate = alarms / per
    err = math.sqrt(max(alarms, 1)) / per
    days = (elapsed_intervals / 288) / alarms if alarms else float("inf")
    return f"{rate:5.2f} ± {err:4.2f}", ("no alarm" if not alarms else f"{days:7.1f} d")


def seed_of(args: argparse.Namespace, spec: tuple, k: int) -> int:
    """Independent, reproducible seeds per detector and chunk."""
    return zlib.crc32(repr((args.seed, spec, k)).encode())


def within(measured: float, exact: float, tol: float = 0.10, slack: float = 0.0) -> bool:
    return abs(measured - exact) <= max(tol * exact, slack)


def section_quality(m: int, args: argparse.Namespace, pool: ProcessPoolExecutor) -> list[str]:
    gamma = BUDGET_DAYS * 288 * m
    rate = 12 * m
    missed: list[str] = []
    fa_runs = args.fa_runs if m == 1 else args.fa_runs * 2 // m  # twice the probes at 60/h: 5× fewer alarms
    print(
        f"\n== Quality canaries: {m} canar{'y' if m == 1 else 'ies'} every 5 minutes = {rate} probes/h/stream; "
        f"budget 1 false alarm per {BUDGET_DAYS} days = {gamma:,} probes =="
    )
    specs = []
    for p0 in (0.02, 0.05):
        c10, _ = matched_naive(p0, gamma, range(10, 11))
        c, w = matched_naive(p0, gamma)
        specs += [
            (("cusum", p0, m), "CUSUM (LLR, design 15 %)"),
            (("vsi", p0, m), "CUSUM + VSI (1 min while warn)"),
            (("naive", p0, m, 3, 10), "naive 3 of last 10 (as issued)"),
            (("naive", p0, m, c10, 10), f"naive {c10} of last 10 (c matched)"),
            (("naive", p0, m, c, w), f"naive {c} of last {w} (c, w matched)"),
        ]
    fa_jobs = {
        spec: [
            pool.submit(task_false_alarms, spec, fa_runs // args.chunks, seed_of(args, spec, k))
            for k in range(args.chunks)
        ]
        for spec, _ in specs
    }
    delay_jobs = {}
    for spec, _ in specs:
        shifts = tuple(p1 for p0, p1 in SHIFTS if p0 == spec[1])
        runs = args.delay_runs // args.chunks
        delay_jobs[spec] = [
            pool.submit(task_delays, spec, shifts, runs, seed_of(args, spec, 100 + k))
            for k in range(args.chunks)
        ]

    print(
        f"\n{'p0':>4}  {'detector':<32}{'threshold':>18}{'FA / 90 d (measured)':>23}{'one per':>11}{'exact/approx one per':>22}"
    )
    fa_result = {}
    for spec, label in specs:
        alarms = elapsed = 0.0
        for fut in fa_jobs[spec]:
            a, e, _n = fut.result()
            alarms += a
            elapsed += e
        fa_result[spec] = (alarms, elapsed)
        kind, p0 = spec[0], spec[1]
        if kind == "naive":
            threshold = f"{spec[3]} of {spec[4]}"
            approx = naive_arl(p0, spec[3], spec[4]) / (288 * m)
            ref = f"≈{approx:8.1f} d (approx)"
        else:
            d = bernoulli_design(p0, 0.15, gamma, 10, 0.25, FAST_RATIO if kind == "vsi" else 1.0)
            threshold = f"h={d.h} ({d.h_nats:.2f} nats)"
            ref = f"{d.arl0 / (288 * m):8.1f} d (exact)"
        rate_txt, days_txt = fa_text(int(alarms), elapsed)
        print(f"{p0:4.0%}  {label:<32}{threshold:>18}{rate_txt:>23}{days_txt:>11}{ref:>22}")

    print(
        f"\n{'shift':>10}  {'detector':<34}{'delay probes med / p90 / mean':>30}{'minutes med / p90 / mean':>27}"
        f"{'exact CUSUM: med / p90 / mean':>32}  verdict"
    )
    print(
        f"{'':>12}(CUSUM rows: exact chain for that design, and its mean minutes; naive rows: the exact CUSUM designed for\n"
        f"{'':>12} the naive rule's own measured false-alarm rate, §3.7's fair comparison, and naive mean ÷ that CUSUM's mean)"
    )
    for p0, p1 in SHIFTS:
        fixed = bernoulli_design(p0, 0.15, gamma)
        vsi = bernoulli_design(p0, 0.15, gamma, 10, 0.25, FAST_RATIO)
        exact = {"cusum": bernoulli_delay(fixed, p1, NU), "vsi": bernoulli_delay(vsi, p1, NU)}
        for spec, label in specs:
            if spec[1] != p0:
                continue
            probes: list[int] = []
            minutes: list[float] = []
            for fut in delay_jobs[spec]:
                res = fut.result()
                probes += res[p1][0]
                minutes += res[p1][1]
            shift = f"{p0:.0%}→{p1:.0%}"
            if not probes:
                print(f"{shift:>10}  {label:<34}  no run reached the change without a false alarm")
                continue
            med, mean = statistics.median(probes), statistics.mean(probes)
            p_txt = f"{med:5.1f} / {q(probes, 0.9):4.0f} / {mean:5.1f}"
            m_txt = f"{statistics.median(minutes):5.0f} / {q(minutes, 0.9):4.0f} / {statistics.mean(minutes):5.0f}"
            if spec[0] in exact:
                e = exact[spec[0]]
                exact_txt = f"{e.median:3d} / {e.p90:3d} / {e.mean:5.1f}"
                ok = within(med, e.median, slack=1.0) and within(mean, e.mean)
                if m == 1:
                    ok = ok and within(statistics.mean(minutes), e.mean_slots * INTERVAL_MIN)
                    exact_txt += f" ({e.mean_slots * INTERVAL_MIN:3.0f} min)"
                verdict = "OK (within 10 %)" if ok else "MISSED (> 10 % off)"
                if not ok:
                    missed.append(
                        f"{rate}/h {label} {shift}: median or mean not within 10 % of the exact chain"
                    )
            else:
                alarms, elapsed = fa_result[spec]
                arl = elapsed * m / max(alarms, 1)
                same = bernoulli_delay(bernoulli_design(p0, 0.15, arl), p1, NU)
                ratio = mean / same.mean
                exact_txt = f"{same.median:3d} / {same.p90:3d} / {same.mean:5.1f}"
                verdict = f"naive ×{ratio:.2f}"
                if "matched" in label:
                    if ratio >= 1.15:
                        verdict += ": CUSUM well ahead"
                    else:
                        verdict += ": MISSED, no clear lead"
                        missed.append(
                            f"{rate}/h {shift}: CUSUM not well ahead of {label} (naive ×{ratio:.2f})"
                        )
            print(f"{shift:>10}  {label:<34}{p_txt:>30}{m_txt:>27}{exact_txt:>32}  {verdict}")
        if m == 1:
            print(f"{'':>12}doc (exact mean, probes): {DOC[(p0, p1)]}")
    return missed


def section_latency(args: argparse.Namespace, pool: ProcessPoolExecutor) -> list[str]:
    mults = (1.25, 1.5, 2.0) if not args.quick else (1.5, 2.0)
    print(
        "\n== Latency CUSUM (TTFT), the doc's model (§5.3): daily ±22 % cycle, t3 noise, 0.5 % stalls ×10; "
        "each stream learns 14 days; 12 probes/h =="
    )
    jobs = [
        pool.submit(task_latency, args.seed * 100 + s, args.lat_fa_probes, args.lat_delay_runs, mults)
        for s in range(args.lat_streams)
    ]
    results = [j.result() for j in jobs]
    alarms = sum(r["alarms"] for r in results)
    probes = sum(r["probes"] for r in results)
    hs = [r["h"] for r in results]
    rate_txt, days_txt = fa_text(alarms, probes)
    missed = []
    print(
        f"{'':2}threshold h from the exact lattice chain on cross-fitted z-scores × margin "
        f"{LatencyConfig().arl0_margin}: h = {min(hs):.1f} … {max(hs):.1f} (median {statistics.median(hs):.1f}; doc 7.78)"
    )
    print(
        f"{'':2}false alarms per 90 days: {rate_txt} (one per {days_txt.strip()}; {alarms} in {probes:,} probes; doc 94.8 d)"
    )
    if alarms and (probes / alarms) / 288 < 0.8 * BUDGET_DAYS:
        missed.append("latency false-alarm rate above budget")
    doc = {1.25: "47.1 / 37 / 92", 1.5: "10.4 / 9 / 17", 2.0: "5.1 / 5 / 7"}
    print(
        f"{'':2}{'slowdown':<10}{'delay probes mean / median / p90':>34}{'minutes (median)':>18}{'doc':>18}{'runs':>6}"
    )
    for mult in mults:
        d = [x for r in results for x in r["delays"][mult]]
        txt = f"{statistics.mean(d):5.1f} / {statistics.median(d):4.0f} / {q(d, 0.9):4.0f}"
        print(
            f"{'':2}{f'×{mult}':<10}{txt:>34}{statistics.median(d) * INTERVAL_MIN - 2.5:>18.0f}{doc[mult]:>18}{len(d):>6}"
        )
    return missed


def section_designs() -> None:
    print("== Exact designs (Markov chain, §3.4); design p1 = 15 % (quality), 5 % (errors) ==")
    print(
        f"{'stream':<34}{'up/dn':>9}{'h':>6}{'nats':>7}{'k in a row':>11}{'ARL0 days':>11}{'probes/h':>10}{'ms':>8}"
    )
    for label, p0, p1, m, fast in (
        ("quality p0 2 %, 1 per 5 min", 0.02, 0.15, 1, 1.0),
        ("quality p0 2 %, 1 per 5 min, VSI", 0.02, 0.15, 1, FAST_RATIO),
        ("quality p0 5 %, 1 per 5 min", 0.05, 0.15, 1, 1.0),
        ("quality p0 5 %, 1 per 5 min, VSI", 0.05, 0.15, 1, FAST_RATIO),
        ("quality p0 2 %, 5 per 5 min", 0.02, 0.15, 5, 1.0),
        ("quality p0 2 %, 5 per 5 min, VSI", 0.02, 0.15, 5, FAST_RATIO),
        ("quality p0 5 %, 5 per 5 min", 0.05, 0.15, 5, 1.0),
        ("errors p0 0.5 %, 1 per 5 min", 0.005, 0.05, 1, 1.0),
    ):
        bernoulli_design.cache_clear()
        start = time.perf_counter()
        d = bernoulli_design(p0, p1, BUDGET_DAYS * 288 * m, 10, 0.25, fast)
        ms = (time.perf_counter() - start) * 1000
        print(
            f"{label:<34}{f'{d.up}/{d.dn}':>9}{d.h:>6}{d.h_nats:>7.2f}{d.k_consecutive:>11}"
            f"{d.arl0 / (288 * m):>11.1f}{12 * m * d.probes_per_slot:>10.2f}{ms:>8.1f}"
        )
    bernoulli_design.cache_clear()
    start = time.perf_counter()
    cfg = BernoulliConfig()
    for i in range(50):
        cfg.design(0.005 + 0.001 * i)
    print(
        f"50 streams with distinct p0 (0.5 % … 5.4 %), VSI designs, cold cache: {time.perf_counter() - start:.2f} s "
        "(streams sharing a rounded p0 share the cached design)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs: about a fifth of the time")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.fa_runs, args.delay_runs, args.chunks = 400_000, 600, 2
        args.lat_streams, args.lat_fa_probes, args.lat_delay_runs = 10, 20_000, 6
    else:
        args.fa_runs, args.delay_runs, args.chunks = 6_000_000, 1000, 4
        args.lat_streams, args.lat_fa_probes, args.lat_delay_runs = 40, 60_000, 6
    start = time.perf_counter()
    section_designs()
    missed: list[str] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        missed += section_quality(1, args, pool)
        missed += section_quality(5, args, pool)
        missed += section_latency(args, pool)
    print(f"\nseed {args.seed}, {'quick' if args.quick else 'full'} run, {time.perf_counter() - start:.0f} s")
    if missed:
        print("TARGETS MISSED:")
        for line in missed:
            print(f"  - {line}")
        if all("well ahead" in line for line in missed):
            print(
                "  Every CUSUM delay matches its exact chain. The misses are lead over a matched window that ties:\n"
                "  as docs/detection.md §3.7 found, a window can tie the CUSUM on the shift it happens to suit,\n"
                "  but the same window is far behind on another shift, and the right size is unknown in advance."
            )
    else:
        print(
            "All targets met: CUSUM median and mean delays within 10 % of the exact chain; CUSUM ahead of the matched naive rule."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
