"""Which people hear about which incident, and when: pure functions over the config.

A route matches on vendor, component and kind (``*`` wildcards). An incident that
names no component matches any component filter: the vendor did not say, and
silence is worse than a broad alert. Quiet hours hold a route's alerts until the
window ends (it may cross midnight, in the route's own time zone). Channels
subscribed from Slack (``/watcher subscribe``) are extra targets on top of the
routes (:func:`subscription_targets`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

from watcher.config import QuietHours, RouteSettings


@dataclass(frozen=True, slots=True)
class Target:
    """One place a notification goes: a registered channel's name and its address there
    (``slack`` channel id, ``email`` address, ``apprise`` URL, ...)."""

    channel: str
    address: str

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.address}"


@dataclass(frozen=True, slots=True)
class RoutedTarget:
    target: Target
    route: str
    quiet_hours: QuietHours | None
    quiet_notices: str = "send"
    """The route's ``quiet_notices``: "send" or "report" (incidents the team does not use: report only)."""


def _match(value: str, patterns: list[str]) -> bool:
    low = value.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


IMPACT_RANK = {"none": 0, "maintenance": 0, "minor": 1, "major": 2, "critical": 3}


def route_matches(
    route: RouteSettings, vendor: str, kind: str, components: list[str], impact: str | None = None
) -> bool:
    if not _match(vendor, route.vendors):
        return False
    if kind not in route.kinds:
        return False
    rank = IMPACT_RANK.get((impact or "").lower())
    if rank is not None and rank < IMPACT_RANK[route.min_impact]:
        return False  # an unrated incident (feeds, our own probes) is not filtered out: silence is worse
    if components and route.components != ["*"]:
        return any(_match(c, route.components) for c in components)
    return True


def route_targets(route: RouteSettings) -> list[Target]:
    """Every target a route names, channel by channel in the registry's order (Slack, email, Apprise, ...)."""
    from watcher.alerts.channels import registry

    return [Target(ch.name, address) for ch in registry.channels() for address in ch.route_targets(route)]


def targets_for(
    routes: list[RouteSettings], vendor: str, kind: str, components: list[str], impact: str | None = None
) -> list[RoutedTarget]:
    """Every target of every matching route, each once (the first route that names it wins)."""
    seen: dict[str, RoutedTarget] = {}
    for route in routes:
        if not route_matches(route, vendor, kind, components, impact):
            continue
        for t in route_targets(route):
            seen.setdefault(t.key, RoutedTarget(t, route.name, route.quiet_hours, route.quiet_notices))
    return list(seen.values())


SUBSCRIPTION_ROUTE = "subscription"
"""The route name of targets that come from ``/watcher subscribe`` rather than the config."""


def subscription_targets(subscriptions, vendor: str, kind: str) -> list[RoutedTarget]:
    """The Slack channels subscribed (from Slack) to this vendor (or ``*``) and this kind, each once.

    ``subscriptions`` are :class:`watcher.store.subscriptions.Subscription` rows; they
    have no component, impact or quiet-hours filter: a channel asked for this vendor.
    """
    seen: dict[str, RoutedTarget] = {}
    for sub in subscriptions:
        if sub.matches(vendor, kind):
            t = Target("slack", sub.channel)
            seen.setdefault(t.key, RoutedTarget(t, SUBSCRIPTION_ROUTE, None))
    return list(seen.values())


def quiet_until(q: QuietHours | None, kind: str, now: datetime) -> datetime | None:
    """When a held alert may go out, or None when it may go out now."""
    if q is None or q.start == q.end or kind in q.kinds_allowed:
        return None
    tz = ZoneInfo(q.timezone)
    local = now.astimezone(tz)
    t = local.timetz().replace(tzinfo=None)
    crosses_midnight = q.start > q.end  # e.g. 22:00 → 07:00
    inside = (t >= q.start or t < q.end) if crosses_midnight else (q.start <= t < q.end)
    if not inside:
        return None
    end_day = local.date()
    if q.start > q.end and t >= q.start:
        end_day += timedelta(days=1)
    return _local(end_day, q.end, tz).astimezone(UTC)


def _local(day, at: dt_time, tz: ZoneInfo) -> datetime:
    """A wall-clock time on a day in ``tz``; a time skipped by a DST jump moves forward to a real one."""
    naive = datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz)
    # Round-trip through UTC: a non-existent local time (spring forward) comes back shifted.
    back = aware.astimezone(UTC).astimezone(tz)
    if back.replace(tzinfo=None) != naive:
        aware = (aware + timedelta(hours=1)).astimezone(UTC).astimezone(tz)
    return aware
