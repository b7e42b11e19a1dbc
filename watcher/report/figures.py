"""The weekly report's figures: how each vendor did over one week, read from the store (no I/O else).

:func:`build_report` is pure over the store (reads only; the same store and week
give the same report). What each figure means is in :mod:`watcher.report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

DOWN_KINDS = ("outage", "degradation")


# -- the report ---------------------------------------------------------------------------------


@dataclass(slots=True)
class IncidentLine:
    id: int
    title: str
    kind: str
    started_at: datetime
    resolved_at: datetime | None
    acknowledged_by: str | None = None

    @property
    def duration(self) -> timedelta | None:
        return self.resolved_at - self.started_at if self.resolved_at else None


@dataclass(slots=True)
class VendorReport:
    vendor: str
    name: str
    window_seconds: float
    outage_seconds: float = 0.0
    degraded_seconds: float = 0.0
    down_seconds: float = 0.0
    """Outage and degradation merged (what availability is computed from)."""
    incidents_by_kind: dict[str, int] = field(default_factory=dict)
    incidents: list[IncidentLine] = field(default_factory=list)
    open_at_end: int = 0
    tta: list[float] = field(default_factory=list)
    """Seconds from first alert to first acknowledgement, one per acknowledged incident alerted this week."""
    unacknowledged: int = 0
    ttr: list[float] = field(default_factory=list)
    """Seconds from start to resolve, one per incident resolved this week."""
    ttft_median: float | None = None
    ttft_prev_median: float | None = None
    ttft_samples: int = 0
    canary_passed: int = 0
    canary_total: int = 0
    probe_requests: int = 0
    tokens: int = 0
    cost: float = 0.0

    @property
    def availability(self) -> float:
        """Percent of the week with no outage or degradation."""
        if self.window_seconds <= 0:
            return 100.0
        return max(0.0, 100.0 * (1 - self.down_seconds / self.window_seconds))

    @property
    def canary_accuracy(self) -> float | None:
        return 100.0 * self.canary_passed / self.canary_total if self.canary_total else None

    @property
    def latency_change(self) -> float | None:
        """Percent change of the median first-token time against the week before."""
        if self.ttft_median is None or not self.ttft_prev_median:
            return None
        return 100.0 * (self.ttft_median - self.ttft_prev_median) / self.ttft_prev_median

    def tta_stats(self) -> tuple[float | None, float | None]:
        return _median_p90(self.tta)

    def ttr_stats(self) -> tuple[float | None, float | None]:
        return _median_p90(self.ttr)

    @property
    def quiet(self) -> bool:
        """Nothing to tell: no incident, no downtime, nothing measured."""
        return not (
            self.incidents
            or self.down_seconds
            or self.open_at_end
            or self.probe_requests
            or self.ttr
            or self.tta
        )


@dataclass(slots=True)
class Report:
    start: datetime
    end: datetime
    timezone: str
    generated_at: datetime
    vendors: list[VendorReport]
    locale: str = "en"
    """``alerts.locale``: the language of the report (``watcher/locales/<locale>``)."""

    @property
    def total_incidents(self) -> int:
        return sum(len(v.incidents) for v in self.vendors)


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _median_p90(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return _quantile(values, 0.5), _quantile(values, 0.9)


def _union_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    total = 0.0
    run: tuple[datetime, datetime] | None = None
    """The merged interval being built: (start, end)."""
    for a, b in sorted(intervals):
        if run is None or a > run[1]:
            if run is not None:
                total += (run[1] - run[0]).total_seconds()
            run = (a, b)
        elif b > run[1]:
            run = (run[0], b)
    if run is not None:
        total += (run[1] - run[0]).total_seconds()
    return total


def _median(values: list[float]) -> float | None:
    return _quantile(values, 0.5) if values else None


def build_report(store, vendors, settings, start: datetime, end: datetime) -> Report:
    """The report for ``[start, end)`` over every vendor in ``vendors`` (reads the store, writes nothing)."""
    if end <= start:
        raise ValueError("the report window must end after it starts")
    window = (end - start).total_seconds()
    out: list[VendorReport] = []
    for v in vendors:
        vr = VendorReport(v.id, v.name, window)
        incidents = store.incidents(vendor=v.id, limit=1_000_000)
        down: dict[str, list[tuple[datetime, datetime]]] = {k: [] for k in DOWN_KINDS}
        for inc in incidents:
            began = inc.started_at or inc.opened_at
            ended = inc.resolved_at
            kind = inc.kind.value
            if began >= end:
                continue
            # availability: the part of the incident inside the week
            if kind in DOWN_KINDS:
                a, b = max(began, start), min(ended or end, end)
                if b > a:
                    down[kind].append((a, b))
            if inc.is_open and began < end:
                vr.open_at_end += 1
            ack = store.first_ack(inc.id) if inc.id is not None else None
            if start <= began < end:
                vr.incidents_by_kind[kind] = vr.incidents_by_kind.get(kind, 0) + 1
                vr.incidents.append(
                    IncidentLine(inc.id or 0, inc.title, kind, began, ended, ack[1] if ack else None)
                )
            if kind == "maintenance" or inc.is_maintenance:
                continue
            if ended is not None and start <= ended < end:
                vr.ttr.append(max(0.0, (ended - began).total_seconds()))
            state = store.alert_state(inc.id) if inc.id is not None else None
            first_alert = state and state.get("first_alert_at")
            if first_alert and start <= first_alert < end:
                if ack is not None:
                    vr.tta.append(max(0.0, (ack[0] - first_alert).total_seconds()))
                else:
                    vr.unacknowledged += 1
        vr.outage_seconds = _union_seconds(down["outage"])
        vr.degraded_seconds = _union_seconds(down["degradation"])
        vr.down_seconds = _union_seconds(down["outage"] + down["degradation"])
        vr.incidents.sort(key=lambda i: (i.started_at, i.id))
        _probe_figures(store, vr, v.id, start, end)
        out.append(vr)
    return Report(start, end, settings.report.timezone, datetime.now(UTC), out, settings.alerts.locale)


def _probe_figures(store, vr: VendorReport, vendor: str, start: datetime, end: datetime) -> None:
    span = end - start
    this = store.probe_ttfts(vendor, start, end)
    prev = store.probe_ttfts(vendor, start - span, start)
    vr.ttft_median, vr.ttft_prev_median, vr.ttft_samples = _median(this), _median(prev), len(this)
    s = store.probe_summary(vendor, start, end)
    vr.probe_requests, vr.canary_passed, vr.canary_total = s["requests"], s["passed"], s["answered"]
    vr.tokens, vr.cost = s["tokens"], s["cost"]
