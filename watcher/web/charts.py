"""Server-rendered SVG sparklines: latency of our own probes over the last 24 hours.

Pure functions, no I/O and no JavaScript: :func:`bucketize` turns raw probe samples
into fixed time buckets (the median latency of each, and how many probes failed in
it), :func:`sparkline` draws those buckets as a small inline SVG. The JSON API
serves the same buckets, so a script sees what the chart shows.

The SVG holds only numbers we computed and text we escape; no vendor string is put
into it unescaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from statistics import median

WINDOW = timedelta(hours=24)
BUCKETS = 96  # 15 minutes each over 24 h


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    median_ms: float | None
    """Median latency of the successful probes in this bucket; None when none succeeded."""
    samples: int
    failures: int


def bucketize(
    samples: Iterable[tuple[datetime, float | None]],
    *,
    end: datetime,
    window: timedelta = WINDOW,
    buckets: int = BUCKETS,
) -> list[Bucket]:
    """``(at, latency_ms)`` samples (``None`` latency = a failed probe) → buckets with data, oldest first.

    Samples outside ``(end - window, end]`` are ignored. Buckets with no sample are left
    out (a gap in the line), so an empty list means "nothing measured in the window".
    """
    start = end - window
    step = window / buckets
    values: dict[int, list[float]] = {}
    counts: dict[int, int] = {}
    fails: dict[int, int] = {}
    for at, ms in samples:
        if at is None or not (start < at <= end):
            continue
        i = min(buckets - 1, int((at - start) / step))
        counts[i] = counts.get(i, 0) + 1
        if ms is None:
            fails[i] = fails.get(i, 0) + 1
        else:
            values.setdefault(i, []).append(float(ms))
    return [
        Bucket(
            start=start + step * i,
            median_ms=median(values[i]) if i in values else None,
            samples=counts[i],
            failures=fails.get(i, 0),
        )
        for i in sorted(counts)
    ]


@dataclass(frozen=True, slots=True)
class Summary:
    median_ms: float | None
    latest_ms: float | None
    samples: int
    failures: int

    def text(self) -> str:
        """One line a marketer reads: "typical 620 ms, now 580 ms; 2 of 40 probes failed"."""
        parts = []
        if self.median_ms is not None:
            parts.append(f"typical {format_ms(self.median_ms)}")
        if self.latest_ms is not None:
            parts.append(f"now {format_ms(self.latest_ms)}")
        out = ", ".join(parts) or "no successful probe"
        if self.failures:
            out += f"; {self.failures} of {self.samples} probes failed"
        return out


def summarize(series: list[Bucket]) -> Summary:
    meds = [b.median_ms for b in series if b.median_ms is not None]
    return Summary(
        median_ms=median(meds) if meds else None,
        latest_ms=meds[-1] if meds else None,
        samples=sum(b.samples for b in series),
        failures=sum(b.failures for b in series),
    )


def format_ms(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 10_000 else f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def sparkline(
    series: list[Bucket],
    *,
    end: datetime,
    window: timedelta = WINDOW,
    buckets: int = BUCKETS,
    width: int = 240,
    height: int = 44,
    label: str = "Response time over the last 24 hours",
) -> str | None:
    """The buckets as an inline SVG (a line of medians, red ticks where probes failed), or None if empty.

    ``window`` and ``buckets`` must be those given to :func:`bucketize`.

    x is time (``end - window`` on the left, ``end`` on the right), y is latency from 0 at
    the bottom to the highest median at the top. Consecutive buckets are joined; a
    missing bucket breaks the line, so an outage of our probes shows as a gap, not as
    a straight line drawn across it.
    """
    if not series:
        return None
    start = end - window
    pad_top, pad_bottom = 3, 6  # room for the failure ticks below the line
    plot_h = height - pad_top - pad_bottom
    step = window / buckets
    top = max((b.median_ms for b in series if b.median_ms is not None), default=0.0) or 1.0

    def x(at: datetime) -> float:
        return round(width * ((at - start) / window), 1)

    def y(ms: float) -> float:
        return round(pad_top + plot_h * (1 - ms / (top * 1.05)), 1)

    # Join buckets whose distance is the usual one between probes; a longer silence is a gap.
    with_data = [b for b in series if b.median_ms is not None]
    gaps = [(b.start - a.start) / step for a, b in zip(with_data, with_data[1:], strict=False)]
    usual = median(gaps) if gaps else 1.0
    longest = max(1.5, usual * 2.5)
    segments: list[list[tuple[float, float]]] = []
    prev: datetime | None = None
    for b in series:
        if b.median_ms is None:  # only failures in this bucket: break the line there
            prev = None
            continue
        pt = (x(b.start + step / 2), y(b.median_ms))
        if prev is not None and (b.start - prev) / step <= longest:
            segments[-1].append(pt)
        else:
            segments.append([pt])
        prev = b.start

    s = summarize(series)
    aria = f"{label}: {s.text()}"
    out = [
        f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(aria)}">',
        f"<title>{escape(aria)}</title>",
        f'<line x1="0" y1="{height - pad_bottom + 0.5}" x2="{width}" y2="{height - pad_bottom + 0.5}" '
        'stroke="#c9ced6" stroke-width="1"/>',
    ]
    for seg in segments:
        if len(seg) == 1:
            (px, py) = seg[0]
            out.append(f'<circle cx="{px}" cy="{py}" r="1.8" fill="currentColor"/>')
        else:
            pts = " ".join(f"{px},{py}" for px, py in seg)
            out.append(
                f'<polyline points="{pts}" fill="none" stroke="currentColor" stroke-width="1.6" '
                'stroke-linejoin="round" stroke-linecap="round"/>'
            )
    bw = max(1.5, round(width / buckets, 1))
    for b in series:
        if b.failures:
            out.append(
                f'<rect class="fail" x="{x(b.start)}" y="{height - 4}" width="{bw}" height="4" fill="#c62828"/>'
            )
    last = next((b for b in reversed(series) if b.median_ms is not None), None)
    if last is not None and last.median_ms is not None:
        out.append(
            f'<circle cx="{x(last.start + step / 2)}" cy="{y(last.median_ms)}" r="2.6" fill="currentColor"/>'
        )
    out.append("</svg>")
    return "".join(out)
