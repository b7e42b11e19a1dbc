"""Change detectors: exact thresholds, simulated behaviour, persistence and plain words.

Exact figures come from docs/detection.md (§3.5 worked example, §A.1, §A.4, §A.5). Every
simulation uses a fixed seed, so each assertion is deterministic; the margins are the ones a
fresh seed would need, so the tests say something about the detector and not about one seed.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from watcher.detection import (
    BernoulliConfig,
    BernoulliCusum,
    ConsecutiveRule,
    LatencyConfig,
    LatencyCusum,
    bernoulli_arl,
    bernoulli_delay,
    bernoulli_design,
    bernoulli_llr_weights,
    bernoulli_threshold,
    detector_from_dict,
    fit_latency_baseline,
    lattice_arl,
    ucb1,
)

GAMMA = 25_920  # 90 days × 288 probes a day (one probe every 5 minutes)
T0 = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
FIXED = BernoulliConfig(fast_interval_s=None)  # fixed 5-minute cadence: the doc's exact tables


def at(i: int, minutes: float = 5) -> datetime:
    return T0 + timedelta(minutes=minutes * i)


# ---- exact design ----------------------------------------------------------------------------


def test_llr_weights_are_the_docs_integer_lattice():
    assert bernoulli_llr_weights(0.05, 0.15) == (99, 10)
    # dn = 10 gives up = 142, not coprime with 10, so dn moves to 11
    assert bernoulli_llr_weights(0.02, 0.15) == (156, 11)
    with pytest.raises(ValueError):
        bernoulli_llr_weights(0.2, 0.15)


def test_threshold_matches_the_worked_example_exactly():
    d = bernoulli_design(0.05, 0.15, GAMMA)
    assert d.h == 611 == bernoulli_threshold(0.05, 0.15, GAMMA)
    assert d.h_nats == pytest.approx(6.80, abs=0.005)
    assert d.arl0 == pytest.approx(26_148, abs=1)
    assert bernoulli_arl(replace(d, h=610), 0.05) < GAMMA  # 611 is the smallest that meets the budget
    assert d.k_consecutive == 7
    assert d.reference_rate == pytest.approx(0.092, abs=0.001)
    assert d.excess_to_alarm == pytest.approx(5.6, abs=0.05)

    d2 = bernoulli_design(0.02, 0.15, GAMMA)
    assert (d2.h, round(d2.h_nats, 2), d2.k_consecutive) == (552, 7.14, 4)
    assert d2.arl0 >= GAMMA > bernoulli_arl(replace(d2, h=551), 0.02)


def test_fast_recursion_agrees_with_banded_elimination():
    d = bernoulli_design(0.05, 0.15, GAMMA)
    banded = lattice_arl(d.h, [(d.up, 0.05), (-d.dn, 0.95)])
    assert banded == pytest.approx(d.arl0, rel=1e-9)


def test_exact_delays_match_the_docs_tables():
    d = bernoulli_design(0.05, 0.15, GAMMA)
    assert bernoulli_arl(d, 0.15) == pytest.approx(88.7, abs=0.05)  # zero-state ARL1
    at15 = bernoulli_delay(d, 0.15)
    assert (round(at15.mean, 1), at15.median, at15.p90) == (83.9, 73, 150)
    at30 = bernoulli_delay(d, 0.30)
    assert (round(at30.mean, 1), at30.median, at30.p90) == (25.5, 24, 40)
    d2 = bernoulli_design(0.02, 0.15, GAMMA)
    assert bernoulli_delay(d2, 0.15).mean == pytest.approx(37.2, abs=0.05)
    assert bernoulli_delay(d2, 0.30).mean == pytest.approx(14.4, abs=0.05)


def test_variable_sampling_design_keeps_the_wall_clock_budget():
    for p0, probes_per_hour in ((0.05, 13.3), (0.02, 12.9)):  # table A.5
        fixed = FIXED.design(p0)
        vsi = BernoulliConfig().design(p0)
        assert vsi.h > fixed.h
        assert vsi.arl0 >= GAMMA  # in base 5-minute slots, i.e. wall-clock
        assert 12 * vsi.probes_per_slot == pytest.approx(probes_per_hour, abs=0.05)
        assert vsi.warn_level == math.ceil(0.25 * vsi.h)


def test_error_stream_design_matches_table_a4():
    d = BernoulliConfig.errors(fast_interval_s=None).design(0.005)
    assert d.h_nats == pytest.approx(6.08, abs=0.01)
    assert d.k_consecutive == 3  # the CUSUM itself alarms on 3 errors in a row
    assert bernoulli_delay(d, 0.02).mean_slots * 5 / 60 == pytest.approx(35, abs=0.5)  # hours


def test_probe_rate_sets_the_budget():
    assert FIXED.arl0_probes == GAMMA
    assert replace(FIXED, probes_per_interval=5).arl0_probes == 5 * GAMMA


def test_designs_are_cached():
    bernoulli_design.cache_clear()
    FIXED.design(0.0312)
    FIXED.design(0.03115)  # rounds up to the same 0.01-point grid value
    info = bernoulli_design.cache_info()
    assert (info.hits, info.misses) == (1, 1)


# ---- Bernoulli CUSUM behaviour ---------------------------------------------------------------


def test_in_control_stream_raises_no_more_false_alarms_than_budgeted():
    rng = random.Random(20250303)
    det = BernoulliCusum(FIXED, p0=0.02)
    n = 200_000
    alarms = 0
    for _ in range(n):
        det.update(rng.random() < 0.02)
        if det.event == "alarm":
            alarms += 1
            det.reset()
    expected = n / det.design.arl0  # 7.6 over 200k probes (renewal after each alarm)
    assert expected == pytest.approx(7.6, abs=0.1)
    assert alarms <= 16  # the Poisson(7.6) 99.7 % quantile


def _delays(det_factory, p0: float, p1: float, runs: int, nu: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    out = []
    while len(out) < runs:
        det = det_factory()
        quiet = True
        for _ in range(nu):
            if det.update(rng.random() < p0):
                quiet = False  # a false alarm before the change: excluded, as in §3.1
                break
        if not quiet:
            continue
        t = 0
        while True:
            t += 1
            if det.update(rng.random() < p1):
                out.append(t)
                break
    return out


def test_shift_from_2_to_30_percent_is_detected_as_fast_as_the_exact_cusum():
    exact = bernoulli_delay(FIXED.design(0.02), 0.30)
    assert exact.mean == pytest.approx(14.4, abs=0.05)  # the doc's figure
    delays = _delays(lambda: BernoulliCusum(FIXED, p0=0.02), 0.02, 0.30, runs=200, nu=2016, seed=7)
    assert abs(statistics.mean(delays) - exact.mean) <= 0.10 * exact.mean
    assert abs(statistics.median(delays) - exact.median) <= max(1, 0.10 * exact.median)


def test_gross_failure_alarms_within_the_hard_failure_count():
    det = BernoulliCusum(FIXED, p0=0.05)
    for i in range(6):
        assert not det.update(True, at(i))
    assert det.update(True, at(6))
    assert det.event == "alarm" and det.alarm_reason == "cusum"


def test_configured_hard_failure_rule_alarms_before_the_cusum_would():
    det = BernoulliCusum(replace(FIXED, hard_fail_consecutive=3), p0=0.05)
    det.update(True)
    det.update(True)
    assert not det.alarm
    assert det.update(True)
    assert det.alarm_reason == "consecutive" and det.s < det.h


def test_alarm_clears_after_evidence_of_recovery_and_restarts_at_zero():
    det = BernoulliCusum(FIXED, p0=0.05)
    for i in range(7):
        det.update(True, at(i))
    assert det.alarm and det.s == det.h
    needed = math.ceil(det.clear_level / det.design.dn)  # 31 clean answers at p0 = 5 %
    assert needed == 31
    assert "Clears after at least 31 more in a row without a failure" in det.explain()
    for i in range(needed - 1):
        assert det.update(False, at(7 + i))
    assert not det.update(False, at(7 + needed))
    assert det.event == "clear" and det.s == 0 and det.r == 0


def test_a_continuing_incident_stays_one_alarm_and_clears_after_the_fix():
    rng = random.Random(11)
    det = BernoulliCusum(FIXED, p0=0.02)
    i = 0
    while not det.update(rng.random() < 0.30):
        i += 1
    events = []
    for _ in range(500):  # the incident goes on
        det.update(rng.random() < 0.30)
        events.append(det.event)
    assert det.alarm and events.count("clear") == 0
    probes_to_clear = 0
    while det.alarm and probes_to_clear < 200:  # fixed
        det.update(rng.random() < 0.02)
        probes_to_clear += 1
    assert probes_to_clear < 100
    later = []
    for _ in range(5000):
        det.update(rng.random() < 0.02)
        later.append(det.event)
    assert later.count("alarm") == 0


def _transitions(det: BernoulliCusum, outcomes: list[bool]) -> list[tuple[int, str]]:
    events = []
    for i, failed in enumerate(outcomes):
        det.update(failed)
        if det.event:
            events.append((i, det.event))
    return events


def test_recovery_does_not_flap_on_a_borderline_stream():
    design = FIXED.design(0.05)
    p = design.reference_rate  # the rate at which the statistic has no drift: the worst case
    rng = random.Random(5)
    outcomes = [rng.random() < p for _ in range(100_000)]
    events = _transitions(BernoulliCusum(FIXED, p0=0.05), outcomes)
    raised = sum(e == "alarm" for _, e in events)
    episodes = [b - a for (a, ea), (b, _) in zip(events, events[1:], strict=False) if ea == "alarm"]
    gaps = [b - a for (a, ea), (b, _) in zip(events, events[1:], strict=False) if ea == "clear"]
    # the naive rule: statistic capped at h, alarmed exactly while it is at h
    s, naive_raised, was = 0, 0, False
    for failed in outcomes:
        s = min(design.h, max(0, s + (design.up if failed else -design.dn)))
        naive_raised += s >= design.h and not was
        was = s >= design.h
    assert raised <= naive_raised / 5
    assert raised <= 100_000 / 400  # about one alarm every 1.5 days of probes, on a stream at 2 × p0
    assert min(episodes) >= 31  # the evidence needed to clear: 31 clean answers in a row at least
    assert min(gaps) >= 12 and statistics.median(gaps) >= 200  # never re-alarms within the hour


# ---- calibration -----------------------------------------------------------------------------


def test_ucb1_is_estimate_plus_one_standard_error_with_a_floor():
    assert ucb1(200, 4032) == pytest.approx(200 / 4032 + math.sqrt(0.0496 * 0.9504 / 4032), rel=1e-3)
    assert ucb1(0, 4032) == 0.005
    assert ucb1(0, 4032, floor=0.001) == 0.001


def test_stream_uses_the_prior_until_calibrated_then_its_own_baseline():
    cfg = replace(FIXED, calibration_days=1, calibration_min_samples=200)
    det = BernoulliCusum(cfg)
    assert det.calibrating and det.p0 == 0.02
    assert "calibrating" in det.explain()
    for i in range(287):  # one day at 5 minutes is 288 probes; 15 failures spread evenly
        det.update(i % 19 == 0, at(i))
    assert det.calibrating
    det.update(False, at(287))
    assert not det.calibrating
    assert det.p0 == pytest.approx(ucb1(16, 288))
    assert det.design == cfg.design(det.p0)
    assert "calibrating" not in det.explain()


def test_calibration_needs_both_the_days_and_the_samples():
    det = BernoulliCusum(replace(FIXED, calibration_days=1, calibration_min_samples=500))
    for i in range(400):
        det.update(False, at(i))
    assert det.calibration_days_done > 1 and det.calibrating
    for i in range(400, 500):
        det.update(False, at(i))
    assert not det.calibrating and det.p0 == 0.005  # the floor: it never failed


# ---- persistence -----------------------------------------------------------------------------


def test_state_round_trips_mid_stream_with_identical_future_behaviour():
    rng = random.Random(99)
    cfg = replace(BernoulliConfig(), calibration_days=1, calibration_min_samples=100)
    det = BernoulliCusum(cfg)
    i = 0
    for _ in range(400):  # calibration completes, then an incident starts
        det.update(rng.random() < (0.03 if i < 300 else 0.4), at(i))
        i += 1
    assert det.alarms >= 1 and not det.calibrating
    copy = BernoulliCusum.from_dict(json.loads(json.dumps(det.to_dict())))
    assert copy.to_dict() == det.to_dict()
    for _ in range(3000):
        failed = rng.random() < (0.4 if i < 500 else 0.03)
        a, b = det.update(failed, at(i)), copy.update(failed, at(i))
        assert (a, det.event, det.s, det.r, det.warn) == (b, copy.event, copy.s, copy.r, copy.warn)
        i += 1
    assert copy.explain() == det.explain()
    assert copy.to_dict() == det.to_dict()


def test_changed_settings_carry_the_statistic_over_in_nats():
    det = BernoulliCusum(FIXED, p0=0.05)
    for failed in (True, True, False, True):
        det.update(failed)
    before = det.s * det.design.unit
    moved = BernoulliCusum.from_dict(det.to_dict(), replace(FIXED, design_p1=0.2))
    assert moved.design.p1 == 0.2
    assert moved.s * moved.design.unit == pytest.approx(before, abs=moved.design.unit)


def test_detector_from_dict_restores_every_kind():
    for det in (BernoulliCusum(FIXED, p0=0.02), ConsecutiveRule(), LatencyCusum()):
        assert type(detector_from_dict(json.loads(json.dumps(det.to_dict())))) is type(det)
    with pytest.raises(ValueError):
        detector_from_dict({"type": "nope"})


# ---- plain words -----------------------------------------------------------------------------


def test_explain_gives_the_counts_the_baseline_and_the_times():
    det = BernoulliCusum(FIXED, p0=0.02)  # up 156, dn 11, h 552
    start = datetime(2025, 3, 3, 10, 30, tzinfo=UTC)
    for i in range(12):
        det.update(False, start + timedelta(minutes=i))
    assert det.explain().startswith("Normal: 0 of the last 12 canary answers wrong (baseline 1 in 50)")
    first = datetime(2025, 3, 3, 10, 42, tzinfo=UTC)
    # S: 156, 312, 301, 457, 446, 435, 591 ≥ 552
    for j, failed in enumerate([True, True, False, True, False, False]):
        det.update(failed, first + timedelta(minutes=5 * j))
    assert "Watching: 3 of the last 6 canary answers wrong" in det.explain()
    assert det.update(True, first + timedelta(minutes=30))
    text = det.explain()
    assert "4 of the last 7 canary answers wrong (baseline 1 in 50" in text
    assert "first seen 10:42 UTC" in text and "alarm at 11:12 UTC" in text


def test_explain_says_when_a_run_of_failures_raised_the_alarm():
    det = BernoulliCusum(replace(FIXED, hard_fail_consecutive=2), p0=0.05)
    det.update(True, at(0))
    det.update(True, at(1))
    assert "2 in a row" in det.explain()


def test_error_stream_explains_itself_in_its_own_words():
    det = BernoulliCusum(BernoulliConfig.errors(), p0=0.005)
    for i in range(3):
        det.update(True, at(i))
    assert det.alarm
    assert "3 of the last 3 probe requests failed (error or timeout)" in det.explain()


# ---- consecutive rule ------------------------------------------------------------------------


def test_consecutive_rule_opens_on_n_failures_and_closes_on_m_successes():
    rule = ConsecutiveRule(fail_n=3, recover_m=2)
    seq = [True, True, False, True, True]
    assert not any(rule.update(f, at(i)) for i, f in enumerate(seq))
    assert rule.update(True, at(5)) and rule.event == "alarm"
    assert "since 00:15 UTC" in rule.explain()  # the run began with the failure at i = 3
    assert rule.update(False, at(6))
    assert rule.update(True, at(7))  # one success then a failure: still open
    assert rule.update(False, at(8))
    assert not rule.update(False, at(9)) and rule.event == "clear"
    assert "Recovered at 00:45 UTC" in rule.explain()


def test_consecutive_rule_never_opens_on_alternating_outcomes():
    rule = ConsecutiveRule(fail_n=2, recover_m=2)
    assert not any(rule.update(i % 2 == 0) for i in range(1000))


def test_consecutive_rule_round_trips():
    rule = ConsecutiveRule()
    for i, f in enumerate([True, True, True, False]):
        rule.update(f, at(i))
    copy = ConsecutiveRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert copy.to_dict() == rule.to_dict()
    assert copy.update(False, at(5)) == rule.update(False, at(5)) is False


# ---- latency ---------------------------------------------------------------------------------


def _t3(rng: random.Random) -> float:
    g = rng.gauss
    return g(0, 1) / math.sqrt((g(0, 1) ** 2 + g(0, 1) ** 2 + g(0, 1) ** 2) / 3)


def _ttft(rng: random.Random, i: int, *, amp: float = 0.2, mult: float = 1.0) -> tuple[datetime, float]:
    """The doc's latency model (§5.3): daily cycle, t3 noise, 0.5 % stalls at ×10."""
    y = math.log(0.8) + amp * math.sin(2 * math.pi * (i % 288) / 288) + 0.2 * _t3(rng)
    if rng.random() < 0.005:
        y += math.log(10)
    return at(i), math.exp(y) * mult


@pytest.fixture(scope="module")
def learned():
    rng = random.Random(42)
    return [_ttft(rng, i) for i in range(4032)], fit_latency_baseline(_ttft(rng, i) for i in range(4032))


def test_latency_learns_from_14_days_then_monitors():
    rng = random.Random(1)
    det = LatencyCusum()
    for i in range(4031):
        det.update(_ttft(rng, i)[1], at(i))
    assert det.learning and "learning the baseline" in det.explain()
    det.update(_ttft(rng, 4031)[1], at(4031))
    b = det.baseline
    assert b is not None and not det.learning
    assert b.sigma == pytest.approx(0.227, abs=0.02)  # the doc's σ_robust
    assert b.k_steps == 9  # k ≈ ½ ln 1.5 / σ ≈ 0.9
    assert 6.5 <= b.h * b.grid <= 9.0  # the doc's simulated model needed h = 7.8
    assert b.arl0 >= LatencyConfig().arl0_probes


def test_latency_doubling_is_detected_within_minutes(learned):
    _, base = learned
    rng = random.Random(2)
    delays = []
    for _ in range(30):
        det = LatencyCusum(baseline=base)
        start = 4032 + 2016 + rng.randrange(288)
        for i in range(4032, start):
            det.update(_ttft(rng, i)[1], at(i))
        det.reset()  # delays count from a quiet detector, as in the doc's conditional delay
        for i in range(start, start + 200):
            if det.update(_ttft(rng, i, mult=2.0)[1], at(i)):
                delays.append(i - start + 1)
                break
    assert len(delays) == 30
    assert statistics.median(delays) <= 7  # the doc: 5 / 5 / 7 probes (mean / median / p90)


def test_stable_seasonal_stream_is_not_alarmed_but_a_global_baseline_would_be():
    rng = random.Random(3)
    history = [_ttft(rng, i, amp=0.4) for i in range(4032)]
    week = [_ttft(rng, i, amp=0.4) for i in range(4032, 4032 + 2016)]
    seasonal = LatencyCusum(baseline=fit_latency_baseline(history))
    assert not any(seasonal.update(v, t) or seasonal.event for t, v in week)
    flat_cfg = LatencyConfig(season="none")
    flat = LatencyCusum(flat_cfg, fit_latency_baseline(history, flat_cfg))
    raised = 0
    for t, v in week:
        flat.update(v, t)
        raised += flat.event == "alarm"
    assert raised >= 3  # a daily peak looks like a slowdown without the seasonal baseline


def test_latency_baseline_is_robust_to_outliers(learned):
    history, _ = learned
    clean = fit_latency_baseline(history)
    rng = random.Random(4)
    dirty = list(history)
    for idx in rng.sample(range(len(dirty)), 40):  # 1 % of probes stall at ×100
        t, v = dirty[idx]
        dirty[idx] = (t, v * 100)
    noisy = fit_latency_baseline(dirty)
    for key, (med, scale) in clean.buckets.items():
        assert noisy.buckets[key][0] == pytest.approx(med, abs=0.05)
        assert noisy.buckets[key][1] == pytest.approx(scale, rel=0.15)
    assert noisy.sigma == pytest.approx(clean.sigma, rel=0.05)
    assert noisy.global_median == pytest.approx(clean.global_median, abs=0.02)
    # a mean would have moved by 1 % × ln 100 ≈ 0.046 in every bucket, and the sd by a factor ~2


def test_thin_hour_buckets_fall_back_to_all_hours():
    rng = random.Random(6)
    samples = [(at(i), math.exp(0.3 * rng.gauss(0, 1))) for i in range(500)]
    samples += [(T0 + timedelta(days=5, hours=3, minutes=i), 5.0) for i in range(5)]  # thin extra
    base = fit_latency_baseline(samples, LatencyConfig(min_bucket_samples=25))
    assert "h23" not in base.buckets or len(base.buckets) <= 24
    thin = datetime(2025, 3, 10, 23, 30, tzinfo=UTC)
    counts = {}
    for t, _ in samples:
        counts[t.hour] = counts.get(t.hour, 0) + 1
    assert all((f"h{h}" in base.buckets) == (c >= 25) for h, c in counts.items())
    if f"h{thin.hour}" not in base.buckets:
        assert base.location(thin) == (base.global_median, base.global_scale)


def test_hour_of_week_buckets_after_28_days():
    rng = random.Random(8)
    samples = [(at(i, 60), math.exp(0.1 * rng.gauss(0, 1))) for i in range(24 * 29)]
    week_cfg = LatencyConfig(season="hour_of_week", min_bucket_samples=4, learn_min_samples=100)
    assert fit_latency_baseline(samples, week_cfg).use_week
    assert not fit_latency_baseline(samples[: 24 * 20], week_cfg).use_week


def test_throughput_alarms_when_it_drops(learned):
    history, _ = learned
    cfg = LatencyConfig(metric="output tokens/s", unit="tok/s", higher_is_worse=False)
    tps = [(t, 80.0 / v) for t, v in history]  # same noise, read as a rate
    faster = LatencyCusum(cfg, fit_latency_baseline(tps, cfg))
    slower = LatencyCusum(cfg, faster.baseline)
    rng = random.Random(9)
    for i in range(4032, 4032 + 100):
        t, v = _ttft(rng, i)
        faster.update(80.0 / v * 2, t)
        slower.update(80.0 / v / 2, t)
    assert faster.alarms == 0 and slower.alarms == 1


def test_latency_explain_and_round_trip(learned):
    _, base = learned
    rng = random.Random(10)
    det = LatencyCusum(baseline=base)
    for i in range(4032, 4032 + 300):
        det.update(_ttft(rng, i)[1], at(i))
    assert det.explain().startswith(("Normal: TTFT", "Watching: TTFT"))
    for i in range(4332, 4400):
        if det.update(_ttft(rng, i, mult=3.0)[1], at(i)):
            break
    text = det.explain()
    assert text.startswith("Alarm: TTFT") and "× the usual value" in text and "since" in text
    assert det.alarm_ratio > 2
    copy = LatencyCusum.from_dict(json.loads(json.dumps(det.to_dict())))
    for k in range(i + 1, i + 400):
        t, v = _ttft(rng, k)
        assert copy.update(v, t) == det.update(v, t)
        assert (copy.s, copy.r, copy.event) == (det.s, det.r, det.event)
    assert copy.to_dict() == det.to_dict()
    assert det.cleared_at is not None  # the slowdown ended; the alarm cleared on its own


def test_latency_learning_state_round_trips():
    rng = random.Random(12)
    det = LatencyCusum(LatencyConfig(learn_days=1, learn_min_samples=200))
    for i in range(250):
        det.update(_ttft(rng, i)[1], at(i))
    copy = LatencyCusum.from_dict(json.loads(json.dumps(det.to_dict())))
    for i in range(250, 300):
        v = _ttft(rng, i)[1]
        det.update(v, at(i))
        copy.update(v, at(i))
    assert det.baseline is not None and copy.baseline == det.baseline


def test_latency_learning_state_in_the_first_format_still_loads():
    rng = random.Random(13)
    det = LatencyCusum(LatencyConfig(learn_days=1, learn_min_samples=200))
    for i in range(100):
        det.update(_ttft(rng, i)[1], at(i))
    data = det.to_dict()
    t0 = datetime.fromisoformat(data["learning"]["t0"])
    data["learning"] = [[(t0 + timedelta(seconds=o)).isoformat(), v] for o, v in data["learning"]["samples"]]
    assert LatencyCusum.from_dict(data).to_dict() == det.to_dict()
