"""Is a failure seen from enough locations? The cluster's rule, shared by probes and HTTP checks.

Pure. Each location reports its latest view of one stream (a vendor's API, an HTTP
check); a failure is declared only when ``min_locations`` locations with an opinion
see it within the confirmation window. A failure seen from one location only is
that location's problem (its route, its DNS, its egress IP being rate-limited).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from watcher.i18n import Said


@dataclass(frozen=True, slots=True)
class Sighting:
    """One location's latest view of one vendor's API, from its saved detector state."""

    location: str
    at: datetime
    outage: bool
    since: datetime | None
    vendor: str = ""
    network_ok: bool = True
    """False: that location reached nothing at all, so it has no opinion on the vendor."""


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Which locations see a vendor's API down, and whether that is enough to declare an outage."""

    seeing: tuple[Sighting, ...]
    locations: tuple[str, ...]
    """Every location that reported on this vendor within the window."""
    needed: int
    local: tuple[str, ...] = field(default=())
    """Locations that see it down when that is not enough: their own problem."""

    @property
    def confirmed(self) -> bool:
        return len(self.seeing) >= self.needed

    def explain(self) -> str:
        names = ", ".join(s.location for s in self.seeing)
        return Said("detect.locations", n=len(self.seeing), of=len(self.locations), names=names)


def confirmation(
    seen: list[Sighting], now: datetime, *, window: float, min_locations: int | None
) -> Confirmation:
    """Pure: is an outage seen from enough locations within ``window`` seconds?

    Only locations with an opinion count: each one that probed the vendor within the
    window with its own network up. ``min_locations`` unset: 2 when more than one
    location has an opinion, else 1. Set: at most the number of locations with an
    opinion, so a cluster that lost locations (dead, or blind) still declares outages
    rather than going blind itself; a failure is local only when another location sees
    the API answer.
    """
    recent = [s for s in seen if s.network_ok and (now - s.at).total_seconds() <= window]
    locations = tuple(sorted({s.location for s in recent}))
    opinions = max(1, len(locations))
    needed = min_locations if min_locations is not None else (2 if opinions > 1 else 1)
    needed = max(1, min(needed, opinions))
    seeing = tuple(sorted((s for s in recent if s.outage), key=lambda s: s.location))
    conf = Confirmation(seeing, locations, needed)
    if not conf.confirmed:
        conf = replace(conf, local=tuple(s.location for s in seeing))
    return conf
