"""Probe runs into incidents: the glue the daemon and `watcher probe` share.

A :class:`ProbeService` runs a vendor's probes, merges the findings into the
vendor's incidents through the pipeline (source ``<vendor>/probe``), and keeps
the notice about watcher's own network (vendor ``watcher``) open exactly while no
control host answers. Alerts are the caller's ``on_changes`` (the alert engine).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from watcher.incidents.correlate import Change
from watcher.model import SELF_VENDOR
from watcher.probes.connectivity import Connectivity
from watcher.probes.runner import ProbeRunner, RunOutcome

log = logging.getLogger("watcher.probes")


class ProbeService:
    def __init__(self, runner: ProbeRunner, pipeline, on_changes: Callable[[list[Change]], object]):
        self.runner = runner
        self.pipeline = pipeline
        self.on_changes = on_changes
        self.network_down_since: datetime | None = None
        self.last: dict[str, RunOutcome] = {}

    async def check_network(self) -> Connectivity:
        conn = await self.runner.network(fresh=True)
        await self._network_state(conn)
        return conn

    async def _network_state(self, conn: Connectivity) -> None:
        if conn.ok and self.network_down_since is None and not self.runner.store.open_incidents(SELF_VENDOR):
            return  # nothing to close: the usual case, no write
        if not conn.ok and self.network_down_since is None:
            self.network_down_since = conn.checked_at
            log.error("our network is down: %s (vendor outage alerts wait until it is back)", conn.detail)
        elif conn.ok and self.network_down_since is not None:
            log.info("our network is back after %s", conn.checked_at - self.network_down_since)
            self.network_down_since = None
        snapshot = self.runner.network_snapshot(conn, self.network_down_since)
        changes = await self.pipeline.apply(SELF_VENDOR, f"{SELF_VENDOR}/network", snapshot, conn.checked_at)
        if changes:
            self.on_changes(changes)

    async def probe(self, vendor: str) -> RunOutcome:
        out = await self.runner.run(vendor)
        self.last[vendor] = out
        for note in out.notes:
            log.info("%s: %s", vendor, note)
        if out.snapshot is not None:
            changes = await self.pipeline.apply(vendor, f"{vendor}/probe", out.snapshot, out.at)
            if changes:
                self.on_changes(changes)
        if out.snapshot is None or out.network.ok:
            # a vendor that answered while the control hosts did not (a firewall that blocks
            # them, say) proves the network works: no notice either way then
            await self._network_state(out.network)
        return out
