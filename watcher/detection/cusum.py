"""The Bernoulli CUSUM on pass/fail outcomes (quality canaries, docs/detection.md §3.2; transport
errors, §A.4): its configuration and its stateful, serialisable detector.

Its threshold comes from :mod:`.runlength`; the alarm life cycle (raise, latch, clear on mirrored
evidence) is described in :mod:`watcher.detection`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from watcher.detection.base import Event, config_from, hhmm, iso_time, one_in, parse_time, round_up, word
from watcher.detection.runlength import BernoulliDesign, bernoulli_design, ucb1
from watcher.i18n import Listed, Said

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
        p0 = round_up(p0)
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
            "run_first_at": iso_time(self.run_first_at),
            "recent_failures": ring_fail,
            "recent_n": ring_n,
            "fails_in_row": self.fails_in_row,
            "alarm_at": iso_time(self.alarm_at),
            "alarm_reason": self.alarm_reason,
            "alarm_failures": self.alarm_failures,
            "alarm_n": self.alarm_n,
            "alarm_first_at": iso_time(self.alarm_first_at),
            "cleared_at": iso_time(self.cleared_at),
            "calibration_n": self.cal_n,
            "calibration_failures": self.cal_failures,
        }

    def explain(self) -> str:
        """Plain words for an alert, e.g. "12 of the last 40 canary answers wrong, baseline 1 in 50"."""
        cfg = self.config
        base = f"baseline {one_in(self.p0)}"
        parts: list[str] = []
        if self.alarm:  # an incident's reason: Said, so the alert says it in the team's language
            expected = self.alarm_n * self.p0
            why = (
                Said("detect.why_row", k=self.hard_fail_k)
                if self.alarm_reason == "consecutive"
                else Said("detect.why_expected", x=f"{expected:.1f}")
                if expected >= 0.1
                else Said("detect.why_tiny")
            )
            rate = (
                Said("detect.rate", n=max(1, round(1.0 / self.p0)))
                if self.p0 > 0
                else Said("detect.rate_none")
            )
            failed = word(cfg.failed_word)
            parts.append(
                Said(
                    "detect.alarm",
                    failures=self.alarm_failures,
                    n=self.alarm_n,
                    what=word(cfg.what),
                    failed=failed,
                    base=Said("detect.baseline", rate=rate),
                    why=why,
                    first=hhmm(self.alarm_first_at),
                    at=hhmm(self.alarm_at),
                )
            )
            if self.run_n > self.alarm_n:
                fail, n = self.recent_failures(10)
                parts.append(
                    Said(
                        "detect.since_first",
                        failures=self.run_failures,
                        n=self.run_n,
                        failed=failed,
                        last_n=n,
                        last_failures=fail,
                        failed2=failed,
                    )
                )
            to_clear = math.ceil((self.clear_level - self.r) / self.design.dn)
            parts.append(Said("detect.clears", n=to_clear))
            return Listed(parts, "detect.space")
        elif self.run_n:
            state = "Watching" if self.warn else "Normal"
            parts.append(
                f"{state}: {self.run_failures} of the last {self.run_n} {cfg.what} {cfg.failed_word} ({base}); "
                f"first seen {hhmm(self.run_first_at)}; {self.level:.0%} of the way to an alarm."
            )
        else:
            fail, n = self.recent_failures()
            if n:
                parts.append(f"Normal: {fail} of the last {n} {cfg.what} {cfg.failed_word} ({base}).")
            else:
                parts.append(f"No {cfg.what} yet ({base}).")
            if self.cleared_at is not None:
                parts.append(f"Last alarm cleared at {hhmm(self.cleared_at)}.")
        if self.calibrating:
            parts.append(
                f"Baseline still calibrating ({self.cal_n} of {cfg.calibration_min_samples} outcomes, "
                f"{self.calibration_days_done:.1f} of {cfg.calibration_days:g} days), "
                f"using the prior {one_in(self.p0)}."
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
        out.update({k: iso_time(getattr(self, k)) for k in self._TIMES})
        out["recent"] = [[iso_time(at), int(f)] for at, f in self.recent]
        out["design"] = {"p0": self.design.p0, "h": self.design.h, "up": self.design.up, "dn": self.design.dn}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: BernoulliConfig | None = None) -> BernoulliCusum:
        """Restore from :meth:`to_dict`. A different ``config`` (changed settings) is applied, with
        the statistics carried over in nats; without one the stored config is used."""
        stored = config_from(BernoulliConfig, data["config"])
        self = cls(stored, p0=data["p0"])
        for k in cls._STATE:
            setattr(self, k, data[k])
        for k in cls._TIMES:
            setattr(self, k, parse_time(data[k]))
        self.design = stored.design(self.p0)
        self.recent = deque(((parse_time(at), bool(f)) for at, f in data["recent"]), maxlen=stored.history)
        if config is not None and config != stored:
            old = self.design
            self.config = config
            self.recent = deque(self.recent, maxlen=config.history)
            if self.calibrating:
                self.p0 = config.prior_p0
            self._redesign(old)
        return self
