"""From incident changes to queued notifications: route, mute, hold, build the Alert.

The engine decides *what* to tell *whom* and *when*; it writes notifications to
the outbox and sends nothing itself (:mod:`watcher.alerts.deliver` does). Its
rules:

- One notification per target per incident change (several events of one poll
  make one message that shows the latest state).
- A first alert goes to the routes that match, and to the Slack channels
  subscribed to the vendor and kind (``/watcher subscribe``, route name
  ``subscription``); later ones also to every target that already heard of the
  incident, so every alert that was sent gets its update and its resolve, even
  if routing, subscriptions or the kind changed since.
- A muted vendor (``watcher mute``, the Slack button, or a vendor maintenance in
  progress on the same components) gets no new or updated alerts; the resolve of
  an alert already sent still goes out, so nothing is left looking open. When a
  mute ends nothing queued during it is sent: no burst of stale alerts.
- Quiet hours hold a route's alerts and merge them per incident, sent when the
  hours end.
- History first seen already resolved (backfilled) is never alerted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from watcher import i18n
from watcher.alerts.alternatives import best_first, can_replace, latency_ms
from watcher.alerts.model import Alert, AlertAction, Alternative
from watcher.alerts.names import (
    plain_name as plain_name,  # re-exported: the web form and the CLI import it here
)
from watcher.alerts.oncall import rotation
from watcher.alerts.relevance import Relevance, judge
from watcher.alerts.routing import RoutedTarget, quiet_until, subscription_targets, targets_for
from watcher.catalog import VendorSpec
from watcher.config import Settings, read_secret
from watcher.incidents.correlate import Change
from watcher.incidents.model import EventType, Incident, MaintenancePhase
from watcher.incidents.wording import say_event, say_reason, say_title
from watcher.model import SELF_VENDOR, IncidentKind

log = logging.getLogger("watcher.alerts")

_UPDATE_EVENTS = {
    EventType.VENDOR_UPDATE,
    EventType.KIND_CHANGED,
    EventType.MAINTENANCE_STARTED,
    EventType.MERGED,
    EventType.REOPENED,
}
ESCALATING_KINDS = {IncidentKind.OUTAGE, IncidentKind.DEGRADATION, IncidentKind.HALLUCINATION_SPIKE}


def _human(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m = rem // 60
    if h and m:
        return f"{h}h {m}m"
    if h:
        return f"{h}h"
    return f"{max(m, 1)}m" if seconds >= 60 else f"{seconds}s"


def resolved_playbook(vendor_name: str, duration: str | None, locale: str) -> str:
    """What replaces the playbook once the incident is over: resume paused work, catch up."""
    from watcher.alerts.playbook import neutralise

    name = neutralise(vendor_name, limit=60)
    heading = i18n.t(locale, "resolved.heading", vendor_name=name, duration=duration or "?")
    return heading + "\n" + i18n.t(locale, "resolved.body", vendor_name=name).strip() + "\n"


@dataclass(slots=True)
class PlannedAlert:
    """One incident change's alert, worked out before the write transaction (:meth:`AlertEngine.plan_notify`)."""

    inc: Incident
    action: AlertAction
    now: datetime
    clear_ack: bool = False
    extra_targets: tuple[tuple[str, str], ...] = ()
    alert: Alert | None = None
    """None: nobody is told (no route, muted, nothing sent before); the ack may still end."""
    routed: list[tuple[RoutedTarget, datetime | None]] = field(default_factory=list)
    """The routes' targets, each with the end of its quiet hours (None: send now)."""
    previous: list[tuple[str, str, str]] = field(default_factory=list)
    """(channel, target, route) already told about the incident: they hear of every change."""
    note: str = ""
    """Why nothing is sent, for the log line written with the incident's id."""


class AlertWrites:
    """The writes of a plan: run inside the transaction that saves the incidents (ids known by then)."""

    def __init__(self, engine: AlertEngine, planned: list[PlannedAlert]):
        self.engine = engine
        self.planned = planned

    def __call__(self) -> int:
        return sum(self.engine.write(p) for p in self.planned)


class AlertEngine:
    def __init__(
        self,
        settings: Settings,
        store,
        vendors: list[VendorSpec],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_enqueue: Callable[[], None] | None = None,
    ):
        self.settings = settings
        self.store = store
        self.vendor_list = vendors
        self.vendors = {v.id: v for v in vendors}
        self.clock = clock
        self.on_enqueue = on_enqueue or (lambda: None)
        self._shared: tuple[object, bool, list] | None = None
        """(store's alert-state version, our own network incident open?, mutes): the same for every
        incident, so read once and again only when the version in the store's meta moves."""
        self.ack_secret = read_secret(
            settings.alerts.ack_secret, settings.alerts.ack_secret_file, "alerts.ack_secret"
        )

    # -- incident changes -------------------------------------------------------------

    def on_changes(self, changes: list[Change]) -> int:
        """Queue what these (already saved) incident changes call for; returns how many notifications.

        For callers whose incidents are written already. The pipeline instead calls
        :meth:`plan` before its write transaction and runs the plan inside it.
        """
        return self.plan(changes)()

    def plan(self, changes: list[Change]) -> AlertWrites:
        """Everything slow about the alerts these changes call for, before any write: routing, mutes,
        relevance, the other vendors' state and latency, the playbook (prompt library included).

        Reads only. The incidents may not be saved yet (a new one has no id): what
        needs the id (the alert's incident id, its acknowledge and board links) and
        every row is left to the returned :class:`AlertWrites`, which the caller runs
        once the incidents are saved, inside the same transaction: so the database's
        write lock is held for ids, links and rows only.
        """
        planned: list[PlannedAlert] = []
        if not self.settings.alerts.enabled:
            return AlertWrites(self, planned)
        batch = [ch.incident for ch in changes]
        for ch in changes:
            inc = ch.incident
            if inc.backfilled or not ch.events:
                continue
            types = {e.type for e in ch.events}
            clear_ack = False
            if EventType.RESOLVED in types:
                action = AlertAction.RESOLVED
                clear_ack = True
            elif EventType.OPENED in types:
                action = AlertAction.OPENED
            elif types & _UPDATE_EVENTS:
                action = AlertAction.UPDATED
                clear_ack = EventType.REOPENED in types
            else:
                continue
            text = "; ".join(
                self.event_words(e) for e in ch.events if e.type is not EventType.VENDOR_UPDATE
            )
            planned.append(self.plan_notify(inc, action, event_text=text, clear_ack=clear_ack, batch=batch))
        return AlertWrites(self, planned)

    def notify(
        self,
        inc: Incident,
        action: AlertAction,
        *,
        event_text: str = "",
        extra_targets: Sequence[tuple[str, str]] = (),
        notify_user: str | None = None,
    ) -> int:
        """Plan and write at once, for a saved incident (acknowledge, reminders, escalation)."""
        return self.write(
            self.plan_notify(
                inc, action, event_text=event_text, extra_targets=extra_targets, notify_user=notify_user
            )
        )

    def plan_notify(
        self,
        inc: Incident,
        action: AlertAction,
        *,
        event_text: str = "",
        extra_targets: Sequence[tuple[str, str]] = (),
        notify_user: str | None = None,
        clear_ack: bool = False,
        batch: Sequence[Incident] = (),
    ) -> PlannedAlert:
        """Who hears about this change of ``inc``, and the alert they get, with no write.

        ``batch``: the incidents being saved with this one (a maintenance that
        started in the same poll mutes it, as if it were saved already).
        ``clear_ack``: the change ends the acknowledgement (resolved, reopened).
        """
        now = self.clock()
        p = PlannedAlert(inc, action, now, clear_ack=clear_ack, extra_targets=tuple(extra_targets))
        muted = action is not AlertAction.RESOLVED and self._muted(inc, now, batch)
        rel = judge(self.vendors.get(inc.vendor), inc, self.settings.alerts.locale)
        routed = {
            rt.target.key: rt
            for rt in targets_for(
                self.settings.routes, inc.vendor, inc.kind.value, inc.components, inc.impact
            )
            if not (rel.quiet and rt.quiet_notices == "report")  # the weekly report lists it
        }
        for rt in self._subscribed(inc):
            routed.setdefault(rt.target.key, rt)  # a configured route naming the channel wins
        previous = self.store.alerted_targets(inc.id) if inc.id is not None else []
        p.previous = list(previous)
        if action is AlertAction.OPENED and not routed:
            p.note = "matches no route: stored, not alerted"
        if not routed and not previous and not extra_targets:
            return p
        if muted:
            p.note = f"{action} not alerted: {muted}"
            return p
        if action is not AlertAction.OPENED and not previous and action is not AlertAction.UPDATED:
            return p  # a resolve or ack for something nobody was told about
        alert = self.build_alert(inc, action, event_text=event_text, relevance=rel, acked=not clear_ack)
        if notify_user:
            alert = dataclasses.replace(alert, notify_user=notify_user)
        p.alert = alert
        told = {f"{c}:{t}" for c, t, _ in previous}
        for key, rt in routed.items():
            if action is AlertAction.RESOLVED and key not in told:
                continue  # never told them it opened: no resolve out of nowhere
            p.routed.append((rt, quiet_until(rt.quiet_hours, inc.kind.value, now)))
        return p

    def write(self, p: PlannedAlert) -> int:
        """Write one planned alert: the ack it ends, its outbox rows, the alert state. Only ids, links
        and rows: what is slow was done by :meth:`plan_notify`. Returns the rows written."""
        inc = p.inc
        if inc.id is None:
            raise ValueError("the incident must be saved before its alerts are written")
        if p.clear_ack:
            self.store.clear_ack(inc.id, self.clock())
        if p.note:
            log.info("%s: incident #%s (%s) %s", inc.vendor, inc.id, inc.kind, p.note)
        if p.alert is None:
            return 0
        alert = self._link(p.alert, inc.id, p.now)
        count = 0
        done: set[str] = set()

        def put(channel: str, target: str, route: str, not_before: datetime | None = None) -> None:
            nonlocal count
            self.store.enqueue(
                incident_id=inc.id,
                action=p.action,
                channel=channel,
                target=target,
                route=route,
                alert=alert,
                now=p.now,
                not_before=not_before,
            )
            done.add(f"{channel}:{target}")
            count += 1

        for rt, not_before in p.routed:
            put(rt.target.channel, rt.target.address, rt.route, not_before)
        for channel, target, route in p.previous:
            if f"{channel}:{target}" not in done:
                put(channel, target, route)
        for channel, target in p.extra_targets:
            if f"{channel}:{target}" not in done:
                put(channel, target, "oncall")
        if count and p.action is AlertAction.OPENED and self.store.alert_state(inc.id) is None:
            self.store.save_alert_state(inc.id, first_alert_at=p.now, escalation_level=0)
        if count:
            self.on_enqueue()
        return count

    def _link(self, alert: Alert, incident_id: int, now: datetime) -> Alert:
        """The alert with what needs the incident's id: the id, the signed acknowledge link, the board link."""
        from watcher.alerts.signing import ack_link

        a = self.settings.alerts
        ack_url = None
        if a.public_url and self.ack_secret:
            ack_url = ack_link(a.public_url, self.ack_secret, incident_id, a.ack_link_ttl, now=now.timestamp())
        board = f"{a.public_url.rstrip('/')}/incidents/{incident_id}" if a.public_url else None
        return dataclasses.replace(alert, incident_id=incident_id, ack_url=ack_url, incident_url=board)

    def _subscribed(self, inc: Incident):
        """Slack channels subscribed to this incident's vendor and kind with ``/watcher subscribe``."""
        return subscription_targets(self.store.subscriptions_for(inc.vendor), inc.vendor, inc.kind.value)

    def _shared_state(self, now: datetime) -> tuple[bool, list]:
        """Whether our own network incident is open, and the mutes: one small read while nothing changed."""
        version = self.store.alert_state_version()
        cached = self._shared
        if cached is None or cached[0] != version:
            self_down = bool(self.store.open_incidents(SELF_VENDOR))
            mutes = self.store.active_mutes(now)
            cached = self._shared = (version, self_down, mutes)
        return cached[1], cached[2]

    def _muted(self, inc: Incident, now: datetime, batch: Sequence[Incident] = ()) -> str | None:
        judged = inc.vendor != SELF_VENDOR and inc.kind in (IncidentKind.OUTAGE, IncidentKind.DEGRADATION)
        self_down, mutes = self._shared_state(now)
        if judged and self_down:
            return "our own network is down: vendors cannot be judged from here"
        for m in mutes:
            if m.until > now and m.vendor == inc.vendor:  # a cached mute may have run out since
                return f"vendor muted until {m.until:%Y-%m-%d %H:%M} UTC" + (
                    f" ({m.reason})" if m.reason else ""
                )
        if inc.is_maintenance:
            return None
        others = {o.id: o for o in self.store.open_incidents(inc.vendor)}
        for b in batch:  # being saved with this one: as they will be
            if b.vendor == inc.vendor and b is not inc:
                if b.is_open:
                    others[b.id if b.id is not None else -id(b)] = b
                elif b.id is not None:
                    others.pop(b.id, None)
        for other in others.values():
            if other.is_maintenance and other.phase is MaintenancePhase.IN_PROGRESS:
                covered = set(other.components)
                if covered and inc.components and set(inc.components) <= covered:
                    return f"during the vendor's maintenance '{other.title}' of the same components"
        return None

    # -- acknowledge / mute --------------------------------------------------------------

    def acknowledge(self, incident_id: int, by: str, reason: str | None = None, via: str = "cli") -> Incident:
        inc = self.store.incident(incident_id)
        if inc is None:
            raise LookupError(f"no incident #{incident_id}")
        if not inc.is_open:
            raise ValueError(f"incident #{incident_id} is already resolved")
        self.store.acknowledge(incident_id, by, self.clock(), reason, via)
        log.info("%s: incident #%s acknowledged by %s via %s", inc.vendor, incident_id, by, via)
        self.notify(
            inc,
            AlertAction.ACKNOWLEDGED,
            event_text=i18n.t(self.settings.alerts.locale, "events.acknowledged", who=by)
            + ((" : " if i18n.lang(self.settings.alerts.locale) == "fr" else ": ") + reason if reason else ""),
        )
        return inc

    def mute(self, vendor: str, seconds: float, reason: str | None, by: str | None) -> datetime:
        now = self.clock()
        until = now + timedelta(seconds=seconds)
        self.store.add_mute(vendor, until, reason, by, now)
        log.info("%s: muted until %s by %s", vendor, until.isoformat(timespec="minutes"), by or "?")
        return until

    # -- reminders and escalation ----------------------------------------------------------

    def tick(self) -> int:
        """Remind, then escalate, open alerted incidents nobody acknowledged. Returns messages queued."""
        oc = self.settings.oncall
        loc = self.settings.alerts.locale
        now = self.clock()
        queued = 0
        for inc in self._alerted_open():
            if inc.kind not in ESCALATING_KINDS or inc.is_maintenance or inc.backfilled:
                continue
            if judge(self.vendors.get(inc.vendor), inc).quiet:
                continue  # a quiet notice: nobody is chased about what the team does not use
            state = self.store.alert_state(inc.id)
            if not state or not state["first_alert_at"] or self.store.ack(inc.id) is not None:
                continue
            if self._muted(inc, now):
                continue
            age = (now - state["first_alert_at"]).total_seconds()
            people = rotation(oc, now)  # on call now first, then the next ones
            level = state["escalation_level"]
            if len(people) > level + 1 and age >= oc.escalate_after * (level + 1):
                nxt = people[level + 1]
                queued += self.notify(
                    inc,
                    AlertAction.ESCALATION,
                    event_text=i18n.t(loc, "events.escalated", who=nxt.name, duration=i18n.format_duration(age, loc)),
                    extra_targets=[("email", nxt.email)] if nxt.email else [],
                    notify_user=nxt.slack,
                )
                self.store.save_alert_state(inc.id, escalation_level=level + 1, escalated_at=now)
            elif age >= oc.remind_after and state["last_reminder_at"] is None:
                who = " " + i18n.t(loc, "events.on_call", who=people[0].name) if people else ""
                queued += self.notify(
                    inc,
                    AlertAction.REMINDER,
                    event_text=i18n.t(loc, "events.not_acknowledged", duration=i18n.format_duration(age, loc)) + who,
                    notify_user=people[0].slack if people else None,
                )
                self.store.save_alert_state(inc.id, last_reminder_at=now)
        return queued

    def _alerted_open(self) -> list[Incident]:
        """The open incidents somebody was alerted about, oldest first: with thousands of vendors each
        with an incident open, the tick reads the few that were alerted, not every one of them."""
        ids = self.store.alerted_open_incident_ids()
        found = [i for i in (self.store.incident(iid) for iid in ids) if i is not None and i.is_open]
        return sorted(found, key=lambda i: (i.opened_at is not None, i.opened_at or datetime.min, i.id or 0))

    # -- building the Alert ------------------------------------------------------------------

    def build_alert(
        self,
        inc: Incident,
        action: AlertAction,
        *,
        event_text: str = "",
        relevance: Relevance | None = None,
        acked: bool = True,
    ) -> Alert:
        """The alert for ``inc`` now. ``acked`` False: the change ends its acknowledgement (not shown).

        The id-dependent parts (incident id, acknowledge and board links) are filled
        when ``inc`` has an id; a plan made before the incident is saved gets them
        in :meth:`write` (:meth:`_link`).
        """
        from watcher.status import all_statuses

        now = self.clock()
        vendor = self.vendors.get(inc.vendor)
        rel = relevance or judge(vendor, inc, self.settings.alerts.locale)
        statuses = all_statuses(self.store, self.vendor_list, now)
        loc = self.settings.alerts.locale
        alternatives = best_first(
            Alternative(
                vendor=s.vendor.id,
                name=s.vendor.name,
                state=s.state.value,
                reason=s.reason_in(loc),  # the vendor-state line in the team's language
                latency_ms=latency_ms(self.store, s.vendor.id, now),
                note=s.vendor.comparison.get(loc) or s.vendor.comparison.get("en", ""),
                match=len(set(vendor.categories) & set(s.vendor.categories)) if vendor else 0,
            )
            for s in statuses
            if s.vendor.id != inc.vendor and can_replace(vendor, s.vendor)
        )
        ack = self.store.ack(inc.id) if inc.id is not None and acked else None
        started = inc.started_at or inc.opened_at
        duration = None
        if inc.resolved_at and started:
            duration = i18n.format_duration((inc.resolved_at - started).total_seconds(), loc)
        used_for: tuple[str, ...] = ()
        if inc.vendor in self.settings.vendors:
            used_for = tuple(self.settings.vendors[inc.vendor].used_for)
        a = self.settings.alerts
        if inc.is_open:
            playbook = self._playbook(inc, vendor, used_for, alternatives, now, rel)
        else:  # over: no "what to do now" in red, only how to get back to work
            playbook = resolved_playbook(vendor.name if vendor else inc.vendor, duration, loc)
        alert = Alert(
            incident_id=inc.id or 0,
            vendor=inc.vendor,
            vendor_name=vendor.name if vendor else inc.vendor,
            title=say_title(inc.title, loc),  # watcher's own titles (components alone) in the team's language
            kind=inc.kind.value,
            reason=self._reason(inc, loc),
            state=inc.state.value,
            status=inc.status.value,
            action=action,
            impact=inc.impact,
            components=tuple(inc.components),
            latest_update=inc.latest_update,
            event_text=event_text,
            url=inc.url,
            status_page=vendor.status_page if vendor else None,
            started_at=started.isoformat() if started else None,
            resolved_at=inc.resolved_at.isoformat() if inc.resolved_at else None,
            duration=duration,
            acknowledged_by=ack.by if ack else None,
            acknowledged_at=ack.at.isoformat() if ack else None,
            ack_reason=ack.reason if ack else None,
            playbook=playbook,
            alternatives=alternatives,
            is_maintenance=inc.is_maintenance,
            scheduled_for=inc.scheduled_for.isoformat() if inc.scheduled_for else None,
            scheduled_until=inc.scheduled_until.isoformat() if inc.scheduled_until else None,
            quiet=rel.quiet,
            scope=rel.scope,
            locale=loc,
            timezone=a.timezone,
        )
        return self._link(alert, inc.id, now) if inc.id is not None else alert

    @staticmethod
    def _reason(inc: Incident, loc: str) -> str:
        """Why it was classified so: the classifier's own words, in the team's language; one generic line
        in another language when they cannot be said in it (a detector's reason, older wording)."""
        said = say_reason(inc.reason, loc)
        if said != inc.reason or "events.reason" not in i18n.messages(i18n.lang(loc)):
            return said
        return i18n.t(loc, "events.reason", kind=i18n.t(loc, f"kind_lc.{inc.kind.value}"))

    def event_words(self, event) -> str:
        """One event in one line, in the team's language when it has words for that kind of event.

        Public: ``watcher demo`` prints the timeline in the same words as the alerts."""
        loc = self.settings.alerts.locale
        text = event.text.split("\n", 1)[0][:200]
        key = f"events.{event.type.value}"
        if key not in i18n.messages(i18n.lang(loc)):
            return say_event(event.type, text, loc)  # English as is; watcher's own words in the locale
        if event.type is EventType.OPENED:
            return say_title(text, loc)  # the vendor's title as is; watcher's own (components alone) translated
        if event.type is EventType.STATUS_CHANGED and "→" in text:
            old, new = (w.strip() for w in text.split("→", 1))
            old, new = (i18n.t(loc, f"status.{w}") if i18n.has(loc, f"status.{w}") else w for w in (old, new))
            return i18n.t(loc, key, old=old, new=new)
        if event.type is EventType.COMPONENTS_CHANGED:
            return say_event(event.type, text, loc)  # component names, or watcher's own title translated
        return i18n.t(loc, key)

    def _playbook(self, inc, vendor, used_for, alternatives, now, rel: Relevance) -> str:
        from watcher.alerts.playbook import PlaybookFacts, render_playbook

        a = self.settings.alerts
        facts = PlaybookFacts(
            vendor=inc.vendor,
            vendor_name=vendor.name if vendor else inc.vendor,
            kind=inc.kind.value,
            title=inc.title,
            status=inc.status.value,
            started_at=inc.started_at or inc.opened_at,
            components=tuple(inc.components),
            used_for=used_for,
            alternatives=alternatives,
            scheduled_for=inc.scheduled_for,
            scheduled_until=inc.scheduled_until,
            timezone=a.timezone,
            # the playbook follows the affected capability: a usage-page incident is no "failed requests"
            notice=(rel.quiet or not rel.core) and inc.kind in ESCALATING_KINDS and not inc.is_maintenance,
            scope=rel.scope,
        )
        try:
            return render_playbook(
                facts,
                locale=a.locale,
                overrides_dir=a.playbooks_dir,
                prompt_library=a.prompt_library,
                now=now,
            )
        except Exception:  # a broken override file must not stop the alert itself
            log.exception("playbook for %s/%s failed to render; alert sent without it", inc.vendor, inc.kind)
            return ""
