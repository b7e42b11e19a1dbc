"""The read model behind the status board and the JSON API: what each page shows, as plain data.

Both :mod:`watcher.web.board` (HTML) and :mod:`watcher.web.api` (JSON) read the
store through these functions only, so the page and the API never disagree. Values
stay typed here (datetimes, enums, store rows); each front end formats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher import i18n
from watcher.incidents import wording
from watcher.incidents.model import Incident, MaintenancePhase
from watcher.model import SELF_VENDOR, VendorState
from watcher.status import VendorStatus, all_statuses
from watcher.web import charts

HISTORY_DAYS = 7

STATE_ORDER: dict[str, int] = {  # VendorState is a StrEnum: its members are these strings
    VendorState.OUTAGE: 0,
    VendorState.DEGRADED: 1,
    VendorState.MAINTENANCE: 2,
    VendorState.UNKNOWN: 3,
    VendorState.OPERATIONAL: 4,
}

KIND_LABELS = {
    "outage": "Outage",
    "degradation": "Degraded",
    "api_change": "API change",
    "hallucination_spike": "Wrong answers",
    "maintenance": "Maintenance",
}

STATE_LABELS = {
    "operational": "Working",
    "degraded": "Degraded",
    "outage": "Down",
    "maintenance": "Maintenance",
    "unknown": "No data",
}

DELIVERY_LABELS = {
    "pending": "waiting to send",
    "sending": "sending",
    "delivered": "delivered",
    "dead": "failed",
    "held": "held for quiet hours",
    "retrying": "retrying",
}


def human_duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``1h 5m``, ``2d 3h``."""
    if seconds is None:
        return ""
    s = int(max(0, seconds))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    if d:
        return f"{d}d {h}h" if h else f"{d}d"
    if h:
        return f"{h}h {m}m" if m else f"{h}h"
    return f"{m}m" if m else f"{s}s"


# -- vendors ------------------------------------------------------------------------------------


@dataclass(slots=True)
class VendorView:
    status: VendorStatus
    muted_until: datetime | None = None
    mute_reason: str | None = None
    latency: list[charts.Bucket] = field(default_factory=list)
    latency_summary: charts.Summary | None = None

    @property
    def id(self) -> str:
        return self.status.vendor.id

    @property
    def name(self) -> str:
        return self.status.vendor.name

    @property
    def state(self) -> str:
        return self.status.state.value


def vendor_names(ctx) -> dict[str, str]:
    names = {v.id: v.name for v in ctx.vendors}
    names.setdefault(SELF_VENDOR, "watcher (this server)")
    return names


def vendors(ctx, now: datetime, *, with_latency: bool = True) -> list[VendorView]:
    """Every watched vendor, in the configured order."""
    mutes: dict[str, Any] = {}  # vendor -> the store's mute row
    for m in ctx.store.active_mutes(now):
        mutes.setdefault(m.vendor, m)
    out = []
    for st in all_statuses(ctx.store, ctx.vendors, now):
        m = mutes.get(st.vendor.id)
        view = VendorView(st, m.until if m else None, m.reason if m else None)
        if with_latency:
            view.latency = charts.bucketize(latency_samples(ctx.store, st.vendor.id, now), end=now)
            view.latency_summary = charts.summarize(view.latency) if view.latency else None
        out.append(view)
    return out


def by_severity(views: list[VendorView]) -> list[VendorView]:
    """Worst first (outage, degraded, maintenance, no data, working); the configured order within each."""
    return sorted(views, key=lambda v: STATE_ORDER.get(v.status.state, 9))


def latency_samples(store, vendor: str, now: datetime) -> list[tuple[datetime, float | None]]:
    """``(at, ms)`` of our own probes of ``vendor`` over the last 24 h; ``ms`` None for a failed probe.

    Chat probes' first-token time when there are any, else the model list's total time.
    A failure counts only when it is the vendor's (timeouts, 5xx, refused...), not our
    key, our rate or our own network.
    """
    from watcher.probes.runner import TRANSPORT

    since = now - charts.WINDOW
    rows = _probe_rows(store, vendor, since)
    if not rows:
        return []
    has_chat = any(r["kind"] == "chat" and r["ok"] and r["ttft_s"] for r in rows)
    out: list[tuple[datetime, float | None]] = []
    for r in rows:
        try:
            at = _aware(datetime.fromisoformat(r["at"]))
        except (TypeError, ValueError):
            continue
        if r["ok"]:
            if has_chat and r["kind"] != "chat":
                continue  # one measure per chart: first-token time when we have it
            secs = r["ttft_s"] if has_chat else (r["total_s"] or r["ttfb_s"])
            if secs:
                out.append((at, secs * 1000))
        elif r["error_class"] in TRANSPORT and r["network_ok"] != 0:
            out.append((at, None))
    return out


def _probe_rows(store, vendor: str, since: datetime) -> list[dict[str, Any]]:
    """The vendor's probe results after ``since``, oldest first."""
    return store.probe_results_since(vendor, since)


# -- incidents ----------------------------------------------------------------------------------


@dataclass(slots=True)
class IncidentView:
    incident: Incident
    vendor_name: str
    ack: Any = None
    """:class:`watcher.store.outbox.Ack` or None."""
    now: datetime | None = None

    @property
    def id(self) -> int:
        iid = self.incident.id
        assert iid is not None, "views are built from stored incidents, which have ids"
        return iid

    @property
    def started(self) -> datetime | None:
        return self.incident.started_at or self.incident.opened_at

    @property
    def age_s(self) -> float | None:
        if self.started is None or self.now is None:
            return None
        return (self.now - self.started).total_seconds()

    @property
    def duration_s(self) -> float | None:
        if self.incident.resolved_at is None or self.started is None:
            return None
        return (self.incident.resolved_at - self.started).total_seconds()

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.incident.kind.value, self.incident.kind.value)

    def title_in(self, locale: str | None) -> str:
        """The title: the vendor's as written; one watcher wrote (components alone) in ``locale``."""
        return wording.say_title(self.incident.title, locale)

    def reason_in(self, locale: str | None) -> str:
        """Why it is classified so, in ``locale`` (a detector's own reason stays as it was written)."""
        return wording.say_reason(self.incident.reason, locale)


def _views(ctx, incidents: list[Incident], now: datetime) -> list[IncidentView]:
    names = vendor_names(ctx)
    acks = ctx.store.acks(i.id for i in incidents if i.id is not None)
    return [IncidentView(i, names.get(i.vendor, i.vendor), acks.get(i.id), now) for i in incidents]


def open_incidents(ctx, now: datetime) -> list[IncidentView]:
    """Open incidents that are not maintenance, outages first, then newest first."""
    rank = {"outage": 0, "degradation": 1, "hallucination_spike": 2, "api_change": 3}
    incs = [i for i in ctx.store.open_incidents() if not i.is_maintenance]
    incs.sort(key=lambda i: i.opened_at or now, reverse=True)
    incs.sort(key=lambda i: rank.get(i.kind.value, 9))
    return _views(ctx, incs, now)


def maintenances(ctx, now: datetime) -> list[IncidentView]:
    """Vendor maintenance in progress or planned, soonest first."""
    incs = [
        i
        for i in ctx.store.open_incidents()
        if i.is_maintenance and i.phase is not MaintenancePhase.COMPLETED
    ]
    incs.sort(key=lambda i: i.scheduled_for or i.started_at or i.opened_at or now)
    return _views(ctx, incs, now)


def history(ctx, now: datetime, days: float = HISTORY_DAYS) -> list[IncidentView]:
    """Incidents resolved in the last ``days`` days (maintenance left out), most recent first."""
    cutoff = now - timedelta(days=days)
    found = ctx.store.resolved_since(cutoff, limit=1000)
    incs = [
        i
        for i in found
        if not i.is_open and not i.is_maintenance and i.resolved_at and i.resolved_at >= cutoff
    ]
    incs.sort(key=lambda i: i.resolved_at, reverse=True)
    return _views(ctx, incs, now)


def incidents(
    ctx,
    now: datetime,
    *,
    state: str = "all",
    vendor: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[IncidentView]:
    """For the API: incidents filtered by state (open, resolved, all), vendor, kind and start time."""
    if state == "open":
        incs = ctx.store.open_incidents(vendor)
        incs.sort(key=lambda i: i.started_at or i.opened_at or now, reverse=True)
    else:
        incs = ctx.store.incidents(vendor=vendor, limit=limit if since is None and kind is None else 5000)
        if state == "resolved":
            incs = [i for i in incs if not i.is_open]
    if kind:
        incs = [i for i in incs if i.kind.value == kind]
    if since is not None:
        incs = [i for i in incs if (i.started_at or i.opened_at) and (i.started_at or i.opened_at) >= since]
    return _views(ctx, incs[:limit], now)


# -- one incident -------------------------------------------------------------------------------


@dataclass(slots=True)
class TimelineEntry:
    at: datetime | None
    type: str
    """``event``, ``alert`` or ``ack``."""
    label: str
    text: str = ""
    source: str | None = None
    status: str | None = None
    """Vendor status word (events) or delivery state (alerts)."""
    detail: str = ""


@dataclass(slots=True)
class IncidentDetail:
    view: IncidentView
    events: list = field(default_factory=list)
    """:class:`watcher.store.base.StoredEvent` list, oldest first."""
    notifications: list = field(default_factory=list)
    """:class:`watcher.store.outbox.Notification` list, oldest first."""
    playbook: str = ""
    playbook_sent: bool = False
    """True when the playbook is the one the latest alert carried; False when built for this page."""
    signals: list[str] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)


MAX_ID = 2**63 - 1
"""Largest id a store can hold (SQLite and PostgreSQL integers are 64-bit signed)."""


def valid_id(incident_id) -> bool:
    """Whether ``incident_id`` could name an incident: 1 to 2^63 - 1 (larger ones overflow the store)."""
    return isinstance(incident_id, int) and 0 < incident_id <= MAX_ID


def incident_detail(ctx, incident_id: int, now: datetime, locale: str | None = None) -> IncidentDetail | None:
    """One incident with its timeline; the timeline's words in ``locale`` (default: ``alerts.locale``),
    its times in ``alerts.timezone``."""
    if not valid_id(incident_id):
        return None
    inc = ctx.store.incident(incident_id)
    if inc is None:
        return None
    [view] = _views(ctx, [inc], now)
    events = list(ctx.store.events(incident_id))
    notes = list(reversed(ctx.store.notifications(incident_id=incident_id, limit=1000)))
    playbook, sent = "", False
    for n in reversed(notes):
        if n.alert.playbook:
            playbook, sent = n.alert.playbook, True
            break
    if not playbook and ctx.engine is not None:
        playbook = _built_playbook(ctx.engine, inc)
    signals = sorted({e.event.source for e in events if e.event.source} | set(inc.active_sources))
    return IncidentDetail(
        view=view,
        events=events,
        notifications=notes,
        playbook=playbook,
        playbook_sent=sent,
        signals=signals,
        timeline=timeline(
            events, notes, view.ack, locale or _setting(ctx, "locale"), _setting(ctx, "timezone")
        ),
    )


def _setting(ctx, name: str) -> str | None:
    alerts = getattr(getattr(ctx, "settings", None), "alerts", None)
    value = getattr(alerts, name, None)
    return value if isinstance(value, str) else None


def _built_playbook(engine, inc: Incident) -> str:
    """The playbook this incident would be sent with now (it matched no route, so none was sent)."""
    from watcher.alerts.model import AlertAction

    try:
        return engine.build_alert(inc, AlertAction.UPDATED).playbook
    except Exception:  # the page must show even if a playbook override is broken
        return ""


def timeline(
    events: list, notifications: list, ack, locale: str | None = None, timezone: str | None = None
) -> list[TimelineEntry]:
    """Every vendor update and signal, every alert sent with its delivery state, and the ack, by time.

    Labels and watcher's own words in ``locale``; the vendor's words (titles, updates) as written.
    """
    loc = i18n.lang(locale)
    out: list[tuple[datetime, int, TimelineEntry]] = []
    for n, se in enumerate(events):
        ev = se.event
        out.append(
            (
                _aware(ev.at),
                n,
                TimelineEntry(
                    at=ev.at,
                    type="event",
                    label=i18n.t(loc, f"board.event.{ev.type.value}")
                    if i18n.has(loc, f"board.event.{ev.type.value}")
                    else str(ev.type),
                    text=wording.say_event(ev.type, ev.text or "", loc),
                    source=ev.source,
                    status=ev.status,
                ),
            )
        )
    for n, note in enumerate(notifications):
        action = note.action.value
        out.append(
            (
                _aware(note.created_at),
                10_000 + n,
                TimelineEntry(
                    at=note.created_at,
                    type="alert",
                    label=i18n.t(
                        loc,
                        "board.tl.alert_to",
                        action=i18n.t(loc, f"board.action.{action}")
                        if i18n.has(loc, f"board.action.{action}")
                        else action,
                        channel=channel_label(note.channel, loc),
                        target=note.target,
                    ),
                    text=note.alert.event_text or "",
                    status=delivery_state(note),
                    detail=delivery_detail(note, loc, timezone),
                ),
            )
        )
    if ack is not None:
        text = i18n.t(loc, "board.tl.ack_by", who=ack.by, via=ack.via)
        if ack.reason:
            text = i18n.t(loc, "board.tl.ack_reason", text=text, reason=ack.reason)
        out.append(
            (
                _aware(ack.at),
                20_000,
                TimelineEntry(at=ack.at, type="ack", label=i18n.t(loc, "board.tl.acknowledged"), text=text),
            )
        )
    out.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in out]


def channel_label(channel: str, locale: str | None = None) -> str:
    """The channel's name for people, in the team's language, from the channel registry (an unknown one as it is)."""
    from watcher.alerts.channels import registry

    return registry.label(channel, locale or "en")


def delivery_state(note) -> str:
    if note.state == "pending" and note.held:
        return "held"
    if note.state == "pending" and note.attempts:
        return "retrying"
    return note.state


def delivery_detail(note, locale: str | None = None, timezone: str | None = None) -> str:
    """How the delivery went, in one line. Without ``locale`` (the JSON API): English, times in UTC."""
    if locale is None:
        return _delivery_detail_en(note)
    loc = i18n.lang(locale)

    def when(dt: datetime) -> str:
        return i18n.format_time(dt, loc, timezone)

    if note.state == "delivered" and note.delivered_at:
        return i18n.t(loc, "board.tl.delivered_at", when=when(note.delivered_at))
    error = note.last_error or i18n.t(loc, "board.tl.unknown_error")
    if note.state == "dead":
        tries = i18n.t(
            loc, "board.tl.attempt_1" if note.attempts == 1 else "board.tl.attempt_n", n=note.attempts
        )
        return i18n.t(loc, "board.tl.gave_up", tries=tries, error=error)
    if note.state == "pending" and note.held:
        return i18n.t(loc, "board.tl.held_until", when=when(note.not_before))
    if note.state == "pending" and note.attempts:
        return i18n.t(
            loc,
            "board.tl.attempt_failed",
            n=note.attempts,
            error=note.last_error or "?",
            when=when(note.not_before),
        )
    key = f"board.delivery.{note.state}"
    return i18n.t(loc, key) if i18n.has(loc, key) else note.state


def _delivery_detail_en(note) -> str:
    if note.state == "delivered" and note.delivered_at:
        return f"delivered {note.delivered_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if note.state == "dead":
        tries = f"{note.attempts} attempt" + ("s" if note.attempts != 1 else "")
        return f"gave up after {tries}: {note.last_error or 'unknown error'}"
    if note.state == "pending" and note.held:
        return f"held for quiet hours until {note.not_before.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if note.state == "pending" and note.attempts:
        return (
            f"attempt {note.attempts} failed: {note.last_error or '?'}; next try "
            f"{note.not_before.astimezone(UTC):%H:%M} UTC"
        )
    return DELIVERY_LABELS.get(note.state, note.state)


# -- helpers --------------------------------------------------------------------------------------


def _aware(dt: datetime | None) -> datetime:
    if dt is None:
        return datetime.min.replace(tzinfo=UTC)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def last_poll(store) -> datetime | None:
    """When any source was last polled (None before the first poll)."""
    times = [r.last_polled_at for r in store.sources() if r.last_polled_at]
    return max(times) if times else None


CHANGE_WORDS = {
    "ack": "acknowledged",
    "mute": "muted",
    "unmute": "unmuted",
    "subscribe": "subscribed",
    "unsubscribe": "unsubscribed",
}


def recent_changes(store, limit: int = 10) -> list[dict[str, Any]]:
    """Who changed what, newest first: acknowledgements, mutes and Slack subscriptions (the audit log)."""
    rows = store.audit_log(limit)
    out = []
    for r in rows:
        out.append(
            {
                "at": _aware(datetime.fromisoformat(r["at"])) if r.get("at") else None,
                "who": r.get("who") or "?",
                "what": CHANGE_WORDS.get(r.get("what") or "", r.get("what") or ""),
                "detail": r.get("detail") or "",
            }
        )
    return out
