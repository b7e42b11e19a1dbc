"""One run of an ``http`` source: fetch, judge, count, and say what was measured.

The pipeline hands ``http`` sources here instead of to a parser. A check measures
the tool itself, so the rules are the probes' ones, not a status page's:

- **Is it them or us?** A check that got no answer at all asks the control hosts
  (``probes.control_urls``) first; while none answers, our network is down and
  nothing is counted against the vendor (the source reads ``unknown: network
  unreachable``, as any source does).
- **Outage:** ``fail_after`` failed checks in a row (no answer, an unexpected status,
  a keyword missing, a JSON condition false); **degradation:** ``slow_after``
  answers in a row slower than ``max_latency``; either clears after
  ``recover_after`` good checks in a row (:class:`~watcher.detection.ConsecutiveRule`).
- **Several locations:** each instance keeps its own counts
  (``http:<vendor>/<source>@<location>``); the leader declares a failure only when
  ``cluster.min_locations`` locations see it (:func:`~watcher.detection.confirm.confirmation`).
- **Words:** the incident says what was measured, in the team's language
  (``alerts.locale``) and time zone: "app.jasper.ai answered 503 on 3 checks in a row
  from paris; first at 10:42".

Each check is also stored as a probe result (kind ``http``), so its latency is on
the board and in the playbook's list of alternatives like a probe's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from watcher.catalog import SourceSpec, VendorSpec
from watcher.catalog.checks import HttpCheck
from watcher.config import Settings
from watcher.connectivity import Connectivity, check_network
from watcher.detection import ConsecutiveRule
from watcher.detection.confirm import Sighting, confirmation
from watcher.fetch import FetchError, fetch
from watcher.model import IncidentKind, IncidentScope, IncidentStatus, Report, Snapshot, Update
from watcher.sources.http import Measurement, Verdict, judge

log = logging.getLogger("watcher.httpchecks")

NETWORK_CACHE = 30.0
_NO_ANSWER_KINDS = {"network", "connect", "timeout", "tls"}

_WORDS = {
    "en": {
        "ok": "answered {status} in {latency}",
        "no_answer": "did not answer ({error})",
        "status": "answered {status}",
        "missing": "answered {status} without “{word}” in the page",
        "forbidden": "answered {status} with “{word}” in the page",
        "no_match": "answered {status} with no match for /{pattern}/",
        "bad_match": "answered {status} matching /{pattern}/",
        "not_json": "answered {status} with a body that is not JSON",
        "json": "answered {status} but {condition} does not hold ({detail})",
        "slow": "took {latency} (threshold {max})",
        "streak": "{host} {what} on {n} checks in a row from {where}; first at {first}",
        "earlier": " (before that: {what})",
        "now": "Since {first}: {host} {what} (seen from {where})",
        "title_down": "{name}: {host} is not working for watcher's checks",
        "title_slow": "{name}: {host} is slow",
        "and": " and ",
        "cert": "its TLS certificate expires in {days} days",
    },
    "fr": {
        "ok": "a répondu {status} en {latency}",
        "no_answer": "n'a pas répondu ({error})",
        "status": "a répondu {status}",
        "missing": "a répondu {status} sans « {word} » dans la page",
        "forbidden": "a répondu {status} avec « {word} » dans la page",
        "no_match": "a répondu {status} sans correspondance pour /{pattern}/",
        "bad_match": "a répondu {status} en correspondant à /{pattern}/",
        "not_json": "a répondu {status} avec un corps qui n'est pas du JSON",
        "json": "a répondu {status} mais {condition} n'est pas vrai ({detail})",
        "slow": "a mis {latency} (seuil {max})",
        "streak": "{host} {what} à {n} vérifications de suite depuis {where} ; première à {first}",
        "earlier": " (auparavant : {what})",
        "now": "Depuis {first} : {host} {what} (vu de {where})",
        "title_down": "{name} : {host} ne fonctionne pas lors des vérifications de watcher",
        "title_slow": "{name} : {host} est lent",
        "and": " et ",
        "cert": "son certificat TLS expire dans {days} jours",
    },
}


def _seconds(value: float | None, loc: str) -> str:
    if value is None:
        return "?"
    text = f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    return text.replace(".", ",") if loc == "fr" else text


def describe(cause: str, facts: dict[str, Any], loc: str) -> str:
    """One measured answer in words (``answered 503``), in ``loc`` (``en`` or ``fr``)."""
    words = _WORDS.get(loc, _WORDS["en"])
    values = {k: v for k, v in facts.items() if v is not None}
    values["latency"] = _seconds(facts.get("latency"), loc)
    values["max"] = _seconds(facts.get("max"), loc)
    try:
        return words[cause].format(**values)
    except (KeyError, IndexError):
        return cause


@dataclass(slots=True)
class CheckOutcome:
    """What the pipeline records for one run of an ``http`` source."""

    measured: bool
    """False: our own network is down, nothing was judged (``error`` says why)."""
    error: str | None = None
    summary: dict[str, Any] | None = None
    snapshot: Snapshot | None = None
    """Findings to merge (the leader only); None: nothing to merge."""
    changed: bool = True
    """Whether the cause differs from the last check's (an observation is worth writing)."""


class HttpChecker:
    def __init__(
        self,
        store,
        client: httpx.AsyncClient,
        settings: Settings,
        vendors: dict[str, VendorSpec],
        *,
        cluster: bool,
    ):
        from watcher.store.leader import identity

        self.store = store
        self.client = client
        self.settings = settings
        self.vendors = vendors
        self.cluster = cluster
        self.location = identity(settings)[1]
        self.locale = settings.alerts.locale
        self.zone = ZoneInfo(settings.alerts.timezone)
        self._network: Connectivity | None = None
        self._cert_warned: dict[str, int] = {}

    def stream(self, spec: SourceSpec) -> str:
        return f"http:{spec.key}@{self.location}" if self.cluster else f"http:{spec.key}"

    # -- the run -----------------------------------------------------------------------------

    async def run(self, spec: SourceSpec, now: datetime, *, leading: bool) -> CheckOutcome:
        check = spec.check
        assert check is not None, "an http source always has its check"
        poll = self.settings.poll
        t0 = time.monotonic()
        try:
            res = await fetch(
                self.client,
                spec.url,
                timeout=poll.timeout,
                max_bytes=poll.max_bytes,
                method=check.method,
                headers=check.request_headers(),
                content=check.body.encode() if check.body is not None else None,
                error_statuses=True,
                want_cert=check.cert_expiry_days > 0,
            )
            m = Measurement(
                now, time.monotonic() - t0, res.status, res.body, cert_not_after=res.cert_not_after
            )
        except FetchError as e:
            m = Measurement(now, None, error_kind=e.kind, error=e.message)
        verdict = judge(check, m)
        state = self._load(spec, check)
        network_ok = True
        if verdict.cause == "no_answer" and m.error_kind in _NO_ANSWER_KINDS:
            conn = await self._network_check(now)
            network_ok = conn.ok
        state["seen"] = {"at": now.isoformat(), "location": self.location, "network_ok": network_ok}
        if not network_ok:
            self._save(spec, state, now)
            why = (
                f"our network is down ({self._network.detail if self._network else 'no control host answers'}): "
                f"nothing counted against {spec.vendor}"
            )
            # logged by the pipeline when it changes, like any source's error: not once a poll
            return CheckOutcome(
                False, error=why, snapshot=self._findings(spec, now) if leading and self.cluster else None
            )
        changed = self._count(state, verdict, now)
        cert_warning = self._cert(spec, verdict)
        self._record(spec, m, verdict)
        self._save(spec, state, now)
        text = describe(verdict.cause, verdict.facts, "en")
        down = state["_rules"]["down"]
        if verdict.failed and not down.alarm:  # counted, not yet an outage: say so
            text += f" ({down.fails_in_row} failed in a row; an outage needs {down.fail_n})"
        summary: dict[str, Any] = {
            "indicator": None,
            "page": None,
            "components": None,
            "maintenance_in_progress": [],
            "check": text + (f"; {cert_warning}" if cert_warning else ""),
            "failed": verdict.failed,
            "slow": verdict.slow,
            "latency_ms": round(m.latency_s * 1000) if m.latency_s is not None else None,
            "cert_days_left": round(verdict.cert_days_left, 1)
            if verdict.cert_days_left is not None
            else None,
        }
        return CheckOutcome(
            True, summary=summary, snapshot=self._findings(spec, now) if leading else None, changed=changed
        )

    async def _network_check(self, now: datetime) -> Connectivity:
        cached = self._network
        if cached is None or (now - cached.checked_at).total_seconds() >= NETWORK_CACHE or not cached.ok:
            p = self.settings.probes
            cached = self._network = await check_network(
                self.client, p.control_urls, now=now, timeout=min(5.0, p.timeout)
            )
        return cached

    # -- counting ----------------------------------------------------------------------------

    def _load(self, spec: SourceSpec, check: HttpCheck) -> dict[str, Any]:
        state = self.store.detector_state(self.stream(spec)) or {}
        rules = {}
        for name, n in (("down", check.fail_after), ("slow", check.slow_after)):
            try:
                rule = ConsecutiveRule.from_dict(state[name])
                if (rule.fail_n, rule.recover_m) != (n, check.recover_after):
                    raise ValueError("thresholds changed")
            except (KeyError, TypeError, ValueError):
                rule = ConsecutiveRule(n, check.recover_after, what="checks")
            rules[name] = rule
        state["_rules"] = rules
        state.setdefault("streak", [])
        state.setdefault("slow_streak", None)
        return state

    def _save(self, spec: SourceSpec, state: dict[str, Any], now: datetime) -> None:
        rules = state.pop("_rules")
        out = {**state, **{name: rule.to_dict() for name, rule in rules.items()}}
        self.store.save_detector_state(self.stream(spec), out, now)
        state["_rules"] = rules

    def _count(self, state: dict[str, Any], v: Verdict, now: datetime) -> bool:
        """Feed the verdict to both rules and keep the runs of causes the words need."""
        down, slow = state["_rules"]["down"], state["_rules"]["slow"]
        last = state.get("last_cause")
        state["last_cause"] = v.cause
        down.update(v.failed, now)
        if v.failed:
            streak = state["streak"] if down.fails_in_row > 1 or down.alarm else []
            facts = {k: v.facts.get(k) for k in ("status", "error", "word", "pattern", "condition", "detail")}
            if streak and streak[-1]["cause"] == v.cause and streak[-1]["facts"] == facts:
                streak[-1]["n"] += 1
            else:
                streak.append({"cause": v.cause, "facts": facts, "n": 1, "first": now.isoformat()})
            state["streak"] = streak[-5:]
        else:
            slow.update(v.slow, now)
            if v.slow:
                s = state["slow_streak"] if slow.fails_in_row > 1 or slow.alarm else None
                s = s or {"n": 0, "first": now.isoformat(), "max": v.facts.get("max"), "latency": []}
                s["n"] += 1
                s["latency"] = (s["latency"] + [v.facts.get("latency")])[-5:]
                state["slow_streak"] = s
        return last != v.cause

    # -- findings ----------------------------------------------------------------------------

    def _findings(self, spec: SourceSpec, now: datetime) -> Snapshot:
        """The vendor's failures seen by its HTTP checks: ours alone, or confirmed by enough locations.

        One report per vendor and kind, whichever of its checks see it (the app and the API down
        together are one event, one incident), so every check of the vendor lists the same report
        until none of them sees the failure any more.
        """
        vendor = self.vendors.get(spec.vendor)
        specs = [s for s in vendor.sources if s.type == "http"] if vendor is not None else [spec]
        states = {}
        for s in specs:
            if self.cluster:
                states[s.key] = self.store.detector_states(f"http:{s.key}@")
            else:
                states[s.key] = {self.stream(s): self.store.detector_state(self.stream(s)) or {}}
        # when each episode began, kept in the database: one key for the whole episode (one incident),
        # whichever checks and locations come and go, across restarts and leaders
        stream = f"http-episode:{spec.vendor}"
        episode = self.store.detector_state(stream) or {}
        before = dict(episode)
        reports: list[Report] = []
        for slot, kind in (("down", IncidentKind.OUTAGE), ("slow", IncidentKind.DEGRADATION)):
            failing = [(s, seeing) for s in specs if (seeing := self._seeing(s, slot, states[s.key], now))]
            if not failing or (slot == "slow" and reports):
                episode.pop(slot, None)
                continue
            if slot not in episode:
                starts = [
                    datetime.fromisoformat(st[slot]["outage_first_at"])
                    for _s, seeing in failing
                    for _l, st in seeing
                    if st[slot].get("outage_first_at")
                ]
                episode[slot] = min(starts, default=now).replace(microsecond=0).isoformat()
            since = datetime.fromisoformat(episode[slot])
            reports.append(self._report(spec.vendor, slot, kind, failing, since))
        if episode != before:
            self.store.save_detector_state(stream, episode, now)
        return Snapshot(incidents=tuple(reports), incident_scope=IncidentScope.ACTIVE)

    def _seeing(
        self, spec: SourceSpec, slot: str, states: dict[str, dict], now: datetime
    ) -> list[tuple[str, dict]]:
        """The (location, state) pairs that see this failure, when enough of them do."""
        by_location: dict[str, dict] = {}
        seen: list[Sighting] = []
        for stream, st in states.items():
            rule = st.get(slot) or {}
            try:
                at = datetime.fromisoformat(st["seen"]["at"])
                since = rule.get("outage_first_at")
                since_at = datetime.fromisoformat(since) if since else None
            except (KeyError, TypeError, ValueError):
                continue
            location = stream.partition("@")[2] or self.location
            by_location[location] = st
            seen.append(
                Sighting(
                    location,
                    at,
                    bool(rule.get("alarm")),
                    since_at,
                    spec.vendor,
                    st["seen"].get("network_ok") is not False,
                )
            )
        if not self.cluster:
            return [(loc, by_location[loc]) for loc in by_location if any(s.outage for s in seen)]
        c = self.settings.cluster
        window = c.confirm_window or 2 * spec.interval + c.failover_timeout
        conf = confirmation(seen, now, window=window, min_locations=c.min_locations)
        if conf.local and slot == "down":
            log.warning(
                "%s: failing from %s only: a local problem of that location, not declared",
                spec.key,
                ", ".join(conf.local),
            )
        if not conf.confirmed or not conf.seeing:
            return []
        return [(s.location, by_location[s.location]) for s in conf.seeing]

    def _report(
        self,
        vendor_id: str,
        slot: str,
        kind: IncidentKind,
        failing: list[tuple[SourceSpec, list[tuple[str, dict]]]],
        since: datetime,
    ) -> Report:
        w = _WORDS.get(self.locale, _WORDS["en"])
        vendor = self.vendors.get(vendor_id)
        key = f"http:{slot}:{since.isoformat(timespec='seconds')}"
        reasons: list[str] = []
        updates: list[Update] = []
        for spec, seeing in failing:
            reason, more = self._measured(spec, slot, seeing, key, since)
            reasons.append(reason)
            updates += more
        hosts = list(dict.fromkeys(httpx.URL(s.url).host or s.url for s, _seeing in failing))
        title = w["title_down" if slot == "down" else "title_slow"].format(
            name=vendor.name if vendor else vendor_id, host=w["and"].join(hosts)
        )
        reason = "; ".join(reasons)
        first_update = Update(id=key, status=IncidentStatus.INVESTIGATING, body=reasons[0], created_at=since)
        return Report(
            key=key,
            title=title,
            status=IncidentStatus.INVESTIGATING,
            kind=kind,
            reason=reason,
            started_at=since,
            url=failing[0][0].url,
            components=tuple(hosts),
            updates=(first_update, *updates),
        )

    def _measured(
        self, spec: SourceSpec, slot: str, seeing: list[tuple[str, dict]], key: str, since: datetime
    ) -> tuple[str, list[Update]]:
        """What one check measured, in words, and an update for each new cause during the outage."""
        loc = self.locale
        w = _WORDS.get(loc, _WORDS["en"])
        host = httpx.URL(spec.url).host or spec.url
        where = w["and"].join(location for location, _st in seeing)
        starts = [
            datetime.fromisoformat(st[slot]["outage_first_at"])
            for _l, st in seeing
            if st[slot].get("outage_first_at")
        ]
        first = min(starts).astimezone(self.zone).strftime("%H:%M") if starts else "?"
        st = seeing[0][1]
        updates = []
        if slot == "slow":
            s = st.get("slow_streak") or {"n": st[slot].get("fails_in_row", 0), "latency": [], "max": None}
            lat = max((x for x in s["latency"] if x is not None), default=None)
            what = describe("slow", {"latency": lat, "max": s.get("max")}, loc)
            return w["streak"].format(host=host, what=what, n=s["n"], where=where, first=first), []
        streak = st.get("streak") or []
        last = (
            streak[-1] if streak else {"cause": "status", "facts": {}, "n": st[slot].get("fails_in_row", 0)}
        )
        what = describe(last["cause"], last["facts"], loc)
        reason = w["streak"].format(host=host, what=what, n=last["n"], where=where, first=first)
        if len(streak) > 1:
            reason += w["earlier"].format(what=describe(streak[-2]["cause"], streak[-2]["facts"], loc))
        for seg in streak:
            seg_first = datetime.fromisoformat(seg["first"])
            if seg_first.replace(microsecond=0) <= since:
                continue  # the first cause of the episode is the incident itself
            body = w["now"].format(
                host=host,
                what=describe(seg["cause"], seg["facts"], loc),
                first=seg_first.astimezone(self.zone).strftime("%H:%M"),
                where=where,
            )
            updates.append(
                Update(
                    id=f"{key}:{spec.id}:{seg['first']}",
                    status=IncidentStatus.INVESTIGATING,
                    body=body,
                    created_at=seg_first,
                )
            )
        return reason, updates

    # -- side records ------------------------------------------------------------------------

    def _cert(self, spec: SourceSpec, v: Verdict) -> str | None:
        """A warning when the certificate expires within ``cert_expiry_days``: logged once a day, and
        shown with the source's state (an expired one fails the TLS handshake: that is an outage)."""
        days = v.cert_days_left
        limit = spec.check.cert_expiry_days if spec.check else 0
        if days is None or not limit or days > limit:
            self._cert_warned.pop(spec.key, None)
            return None
        whole = max(0, int(days))
        text = _WORDS["en"]["cert"].format(days=whole)
        if self._cert_warned.get(spec.key) != whole:  # once a day, not once a poll
            self._cert_warned[spec.key] = whole
            log.warning("%s: %s", spec.key, text)
        return text

    def _record(self, spec: SourceSpec, m: Measurement, v: Verdict) -> None:
        self.store.add_probe_result(
            {
                "vendor": spec.vendor,
                "kind": "http",
                "at": m.at,
                "ok": not v.failed,
                "status": m.status,
                "error_class": None if not v.failed else v.cause,
                "error": None if not v.failed else describe(v.cause, v.facts, "en")[:300],
                "total_s": m.latency_s,
                "detail": spec.id,
                "network_ok": True,
            }
        )
