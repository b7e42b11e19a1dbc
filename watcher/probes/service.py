"""Probe runs into incidents: the glue the daemon and `watcher probe` share.

A :class:`ProbeService` runs a vendor's probes, merges the findings into the
vendor's incidents through the pipeline (source ``<vendor>/probe``), and keeps
the notice about watcher's own network (vendor ``watcher``) open exactly while no
control host answers. Alerts are the caller's ``on_changes`` (the alert engine).

In a cluster (several watchers on one PostgreSQL database) every instance probes
from its own location, but only the leader merges findings into incidents. A
probe-detected outage is declared only when enough *locations* see it within the
confirmation window (:func:`confirmation`): a failure seen from one location only
is that location's problem (its route to the vendor, its DNS, its egress IP being
rate-limited) and is logged and shown by ``watcher cluster``, never paged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watcher.connectivity import Connectivity
from watcher.detection.confirm import Confirmation, Sighting, confirmation
from watcher.i18n import Said
from watcher.model import SELF_VENDOR, IncidentKind, IncidentScope, Report, Snapshot
from watcher.probes.runner import ProbeRunner, RunOutcome, finding

if TYPE_CHECKING:  # only to type the caller's callback: probes never call into the incident stage
    from watcher.incidents.correlate import Change

log = logging.getLogger("watcher.probes")

_UNKNOWN_NETWORK = Connectivity(ok=True, checked_at=datetime.min.replace(tzinfo=UTC), detail="not checked here")


def sightings(states: dict[str, dict[str, Any]], vendor: str | None = None) -> list[Sighting]:
    """Each location's latest view from the detector states ``probe:<vendor>@<location>``:
    of ``vendor`` only, or of every vendor (each :class:`Sighting` names its vendor).

    A location whose own network was down is included with ``network_ok`` False: it has no
    opinion on the vendor (:func:`confirmation` leaves it out), but ``watcher cluster`` shows it.
    """
    out = []
    for stream, st in states.items():
        name, sep, location = stream.partition("@")
        if not sep or not name.startswith("probe:") or (vendor is not None and name != f"probe:{vendor}"):
            continue
        seen = st.get("seen") or {}
        try:
            at = datetime.fromisoformat(seen["at"])
        except (KeyError, TypeError, ValueError):
            continue
        outage = st.get("outage") or {}
        since = outage.get("outage_first_at") or outage.get("opened_at")
        try:
            since_at = datetime.fromisoformat(since) if since else None
        except (TypeError, ValueError):
            since_at = None
        out.append(
            Sighting(
                location,
                at,
                bool(outage.get("alarm")),
                since_at,
                vendor=name.removeprefix("probe:"),
                network_ok=seen.get("network_ok") is not False,
            )
        )
    return out


class ProbeService:
    def __init__(
        self,
        runner: ProbeRunner,
        pipeline,
        on_changes: Callable[[list[Change]], object],
        *,
        cluster=None,
    ):
        self.runner = runner
        self.pipeline = pipeline
        self.on_changes = on_changes
        self.cluster = cluster
        """A :class:`ClusterView` in a cluster; None alone (every finding is merged as it is)."""
        self.network_down_since: datetime | None = None
        self.last: dict[str, RunOutcome] = {}
        self._local: dict[str, tuple[str, ...]] = {}
        self._decided: dict[str, bool] = {}
        self._since: dict[str, datetime] = {}
        self._own: dict[str, Snapshot] = {}
        """Each vendor's last findings of our own, kept while our network is down."""

    async def check_network(self) -> Connectivity:
        conn = await self.runner.network(fresh=True)
        await self._network_state(conn)
        return conn

    def leading(self) -> bool:
        return self.pipeline.leading()

    async def _network_state(self, conn: Connectivity) -> None:
        if self.cluster is not None:
            # in a cluster one location's network trouble is its own, the leader's included: the
            # other locations keep watching; logged here, seen in `watcher cluster`, not paged
            if not conn.ok and self.network_down_since is None:
                self.network_down_since = conn.checked_at
                log.error("our network is down at this location: %s", conn.detail)
            elif conn.ok and self.network_down_since is not None:
                self.network_down_since = None
                log.info("our network is back at this location")
            return
        if conn.ok and self.network_down_since is None and not self.runner.store.open_incidents(SELF_VENDOR):
            return  # nothing to close: the usual case, no write
        if not conn.ok and self.network_down_since is None:
            self.network_down_since = conn.checked_at
            log.error("our network is down: %s (vendor outage alerts wait until it is back)", conn.detail)
        elif conn.ok and self.network_down_since is not None:
            log.info("our network is back after %s", conn.checked_at - self.network_down_since)
            self.network_down_since = None
        snapshot = self.runner.network_snapshot(conn, self.network_down_since)
        await self.pipeline.apply(
            SELF_VENDOR, f"{SELF_VENDOR}/network", snapshot, conn.checked_at, on_changes=self.on_changes
        )

    async def probe(self, vendor: str) -> RunOutcome:
        leading = self.leading()
        out = await self.runner.run(vendor, billed=leading)
        self.last[vendor] = out
        for note in out.notes:
            log.info("%s: %s", vendor, note)
        if out.snapshot is not None:
            self._own[vendor] = out.snapshot
        if leading and (out.snapshot is not None or self.cluster is not None):
            # blind here (our network down), the leader still merges what the other locations see
            await self._merge(vendor, out)
        if out.snapshot is None or out.network.ok:
            # a vendor that answered while the control hosts did not (a firewall that blocks
            # them, say) proves the network works: no notice either way then
            await self._network_state(out.network)
        return out

    async def _merge(self, vendor: str, out: RunOutcome, states=None) -> None:
        snapshot = out.snapshot
        if self.cluster is not None:
            # our own findings, or the last we had while blind (unknown is not "all clear")
            base = snapshot or self._own.get(vendor) or Snapshot(incidents=(), incident_scope=IncidentScope.ACTIVE)
            snapshot = self.confirm(vendor, base, out.at, states)
        if snapshot is None:
            return
        # the alerts are queued in the transaction that saves the incidents (see Pipeline.apply)
        await self.pipeline.apply(vendor, f"{vendor}/probe", snapshot, out.at, on_changes=self.on_changes)

    async def reconfirm(self, now: datetime) -> None:
        """The leader, between its own runs: merge again where the locations' sightings changed the
        verdict (an outage now confirmed, or no longer seen), for every vendor any location probes,
        whether or not the leader can probe it itself."""
        if self.cluster is None or not self.leading():
            return
        states = self.runner.store.detector_states("probe:")
        vendors = {s.vendor for s in sightings(states)} | set(self.last)
        for vendor in sorted(vendors):
            conf = self._confirmation(vendor, now, states)
            if conf.confirmed != self._decided.get(vendor, False):
                out = self.last.get(vendor)
                base = replace(out, at=now) if out is not None else RunOutcome(vendor, now, _UNKNOWN_NETWORK)
                await self._merge(vendor, base, states)

    def _confirmation(self, vendor: str, now: datetime, states=None) -> Confirmation:
        if states is None:
            states = self.runner.store.detector_states(f"probe:{vendor}@")
        c = self.cluster
        return confirmation(sightings(states, vendor), now, window=c.window, min_locations=c.min_locations)

    def confirm(self, vendor: str, snapshot: Snapshot, now: datetime, states=None) -> Snapshot:
        """The leader's findings with the outage decided by every location's view, not its own alone."""
        conf = self._confirmation(vendor, now, states)
        self._decided[vendor] = conf.confirmed
        before = self._local.get(vendor, ())
        if conf.local != before:
            if conf.local:
                log.warning(
                    "%s: API not answering from %s only (%d of %d locations, %d needed): a local problem "
                    "of that location, not declared as a vendor outage",
                    vendor,
                    ", ".join(conf.local),
                    len(conf.seeing),
                    len(conf.locations),
                    conf.needed,
                )
            elif conf.confirmed:
                log.warning("%s: API now %s: declared an outage", vendor, conf.explain())
            else:
                log.info("%s: no location sees its API down any more", vendor)
            self._local[vendor] = conf.local
        reports = [
            r for r in snapshot.incidents or () if not (r.kind is IncidentKind.OUTAGE and r.key.startswith("probe:"))
        ]
        if conf.confirmed and conf.seeing:
            reports.insert(0, self._outage_report(vendor, conf, now))
        else:
            self._since.pop(vendor, None)
        return replace(snapshot, incidents=tuple(reports))

    def _outage_report(self, vendor: str, conf: Confirmation, now: datetime) -> Report:
        if vendor not in self._since:  # one key for the whole episode, whichever locations come and go
            starts = [s.since for s in conf.seeing if s.since is not None]
            self._since[vendor] = (min(starts) if starts else now).replace(microsecond=0)
        since = self._since[vendor]
        target = self.runner.targets.get(vendor)
        name = target.vendor.name if target is not None else vendor
        reason = Said("detect.confirmed", explain=conf.explain(), since=f"{since:%H:%M} UTC")
        title = Said("probe_title.outage", name=name)
        return finding("availability", IncidentKind.OUTAGE, title, reason, since)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the probe service needs to know of the cluster: how many locations must agree, and when."""

    window: float
    min_locations: int | None


def default_window(probe_interval: float, failover_timeout: float) -> float:
    return 2 * probe_interval + failover_timeout


__all__ = ["ClusterView", "Confirmation", "ProbeService", "Sighting", "confirmation", "sightings"]
