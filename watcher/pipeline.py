"""One poll of one source, end to end: fetch → parse → reconcile incidents → store.

:meth:`Pipeline.poll` never raises: whatever goes wrong with one source becomes a
recorded, per-source error, and the other sources carry on. Unchanged documents
(304, or the same content hash) stop before any parsing, which keeps a poll of an
unchanged page nearly free.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx

from watcher.catalog import SourceSpec, VendorSpec
from watcher.config import Settings
from watcher.fetch import FetchError, fetch
from watcher.incidents.correlate import Change, Context, reconcile
from watcher.incidents.model import NOTIFIABLE, EventType
from watcher.model import ComponentStatus, Observation, Snapshot, component_keys
from watcher.sources import ParseError, SourceOptions, parser_for
from watcher.store.base import SourceRecord, StoreError
from watcher.store.roles import Store

if TYPE_CHECKING:  # imported on first use: most installs have no http sources
    from watcher.httpchecks import HttpChecker

log = logging.getLogger("watcher.pipeline")

_THREAD_PARSE_BYTES = 256 * 1024


@dataclass(slots=True)
class PollResult:
    observation: Observation
    changes: list[Change] = field(default_factory=list)


class Pipeline:
    """Holds what every poll needs: the store, the HTTP client, the vendor specs."""

    def __init__(
        self,
        store: Store,
        client: httpx.AsyncClient,
        settings: Settings,
        vendors: list[VendorSpec],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease=None,
        on_changes: Callable[[list[Change]], object] | None = None,
        plan_alerts: Callable[[list[Change]], Callable[[], object] | None] | None = None,
    ):
        self.store = store
        self.on_changes = on_changes
        self.plan_alerts = plan_alerts
        """Works out the alerts for incident changes *before* the transaction that saves them (routing,
        mutes, the other vendors' state, the playbook: reads and file scans, slow) and returns what to
        write inside it, once the incidents have their ids (:meth:`watcher.alerts.engine.AlertEngine.plan`).
        The transaction, and SQLite's write lock, then lasts for ids, links and rows only."""
        self.quiet_until: datetime | None = None
        """Until then a failing source is logged at debug only: the daemon sums the first round up in
        one report (33 "DNS cannot resolve" lines on an offline machine say less than one summary)."""
        """Called inside the transaction that saves the incidents, after them: both are written or
        neither is, so a write refused halfway (a full disk) cannot leave an incident stored whose
        alert was never queued. Prefer ``plan_alerts``, whose slow part runs before the transaction."""
        self.lease = lease
        """None or a solo lease: this instance alone, always the leader. A cluster lease: only
        while it leads does this instance merge what it sees into incidents."""
        self.shared = lease is not None and getattr(lease, "shared", True)
        self._fresh: set[str] = set()
        """Sources merged into incidents since this instance last became the leader."""
        self._fresh_epoch: int | None = None
        self.client = client
        self.settings = settings
        self.vendors = {v.id: v for v in vendors}
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._checker: HttpChecker | None = None
        """Runs the ``http`` sources (:class:`watcher.httpchecks.HttpChecker`), made on first use."""

    def _lock(self, vendor: str) -> asyncio.Lock:
        # Two sources of one vendor may finish together; their incident merges must not interleave.
        lock = self._locks.get(vendor)
        if lock is None:
            lock = self._locks[vendor] = asyncio.Lock()
        return lock

    async def poll(self, spec: SourceSpec) -> PollResult:
        try:
            return await self._poll(spec)
        except StoreError as e:
            log.error("%s: database error: %s", spec.key, e)
            return PollResult(
                Observation(spec.vendor, spec.key, self.clock(), error=str(e), error_kind="store")
            )
        except Exception as e:  # a bug in one parser or merge must not stop the daemon
            log.exception("%s: internal error while polling", spec.key)
            return PollResult(
                Observation(
                    spec.vendor, spec.key, self.clock(), error=f"internal error: {e!r}", error_kind="internal"
                )
            )

    def leading(self) -> bool:
        return self.lease is None or self.lease.leading

    def _must_merge(self, key: str, leading: bool) -> bool:
        """In a cluster, the first poll of each source after this instance becomes the leader parses
        and merges in full: what it stored as a follower was never merged, so "unchanged since my
        last poll" does not mean "already in the incidents"."""
        if not self.shared or not leading:
            return False
        epoch = getattr(self.lease, "epoch", None)
        if epoch != self._fresh_epoch:
            self._fresh.clear()
            self._fresh_epoch = epoch
        return key not in self._fresh

    async def reclassify_stored(self) -> int | None:
        """Once per classifier model, on the leader: re-read every stored incident with the shipped model.

        Each vendor is done under that vendor's merge lock, so a poll merging at the same time is not
        overwritten. Returns how many incidents changed kind; None when this model already did it.
        """
        from watcher.incidents.classify import classify, load_model
        from watcher.incidents.reclassify import META_KEY, reclassify

        version = load_model().version
        before = self.store.meta_get(META_KEY)
        if before == version:
            return None
        vendors = sorted({inc.vendor for inc in self.store.incidents(limit=1_000_000)})
        moved = 0
        for vendor in vendors:
            async with self._lock(vendor):
                moved += len(reclassify(self.store, vendor, version, classify, self.clock()))
        self.store.meta_set(META_KEY, version)
        if before is not None or moved:
            log.info(
                "classifier model %s (was %s): %d stored incident(s) reclassified",
                version,
                before or "none recorded",
                moved,
            )
        return moved

    async def _poll(self, spec: SourceSpec) -> PollResult:
        leading = self.leading()
        must_merge = self._must_merge(spec.key, leading)
        rec = self.store.fetch_state(spec.key) or SourceRecord(spec.key, spec.vendor, spec.type, spec.url)
        if rec.url != spec.url or rec.type != spec.type:  # config changed: forget validators
            rec.url, rec.type, rec.etag, rec.last_modified, rec.content_hash = (
                spec.url,
                spec.type,
                None,
                None,
                None,
            )
        poll = self.settings.poll
        started = self.clock()
        rec.polls += 1
        rec.last_polled_at = started
        if spec.type == "http":
            return await self._check(spec, rec, started, leading)
        try:
            res = await fetch(
                self.client,
                spec.url,
                timeout=poll.timeout,
                max_bytes=poll.max_bytes,
                etag=rec.etag if rec.content_hash and not must_merge else None,
                last_modified=rec.last_modified if rec.content_hash and not must_merge else None,
                private_redirects=poll.private_redirects,
            )
        except FetchError as e:
            return self._failed(rec, spec, e.kind, e.message, started)

        if res.not_modified:
            return self._unchanged(rec, spec, started)
        digest = hashlib.blake2b(res.body, digest_size=16).hexdigest()
        rec.final_url = res.url
        rec.etag, rec.last_modified = res.etag, res.last_modified
        if digest == rec.content_hash and rec.error is None and not must_merge:
            return self._unchanged(rec, spec, started)

        parse = parser_for(spec.type)
        opts = SourceOptions(
            base_url=self.vendors[spec.vendor].status_page if spec.vendor in self.vendors else None,
            product_ids=spec.product_ids,
            html_rules=spec.html,
        )
        try:
            if len(res.body) > _THREAD_PARSE_BYTES:
                snapshot = await asyncio.to_thread(parse, res.body, opts)
            else:
                snapshot = parse(res.body, opts)
        except ParseError as e:
            rec.etag = rec.last_modified = None  # refetch in full next time
            return self._failed(rec, spec, "parse", f"unreadable {spec.type} document: {e}", started)

        vendor = self.vendors.get(spec.vendor)
        counts = _counter(vendor, spec)
        changes: list[Change] = []
        if leading:
            changes = await self.apply(spec.vendor, spec.key, snapshot, started, counts, on_changes=self.on_changes)
            if self.shared:
                self._fresh.add(spec.key)

        if rec.error is not None:
            log.info("%s: recovered after %d failed poll(s) (%s)", spec.key, rec.failures, rec.error)
        rec.error = rec.error_kind = rec.error_since = None
        rec.failures = 0
        rec.content_hash = digest
        rec.last_success_at = started
        rec.last_change_at = started
        rec.summary, rec.summary_read = summarize(snapshot, counts), True
        self.store.add_observation(spec.key, spec.vendor, started, "snapshot", rec.summary)
        self.store.save_source(rec)
        return PollResult(Observation(spec.vendor, spec.key, started, snapshot=snapshot), changes)

    async def apply(
        self,
        vendor: str,
        source_key: str,
        snapshot: Snapshot,
        at: datetime,
        counts: Callable[[str], bool] = lambda name: True,
        *,
        on_changes: Callable[[list[Change]], object] | None = None,
    ) -> list[Change]:
        """Merge one snapshot into the vendor's incidents and save them: polls and probe findings alike.

        Only the leader merges (nothing happens on a follower): the incidents are the cluster's.
        """
        if not self.leading():
            return []
        async with self._lock(vendor):
            ctx = Context(vendor=vendor, source=source_key, now=at, counts_component=counts)
            keys = [r.key for group in (snapshot.incidents, snapshot.maintenances) for r in group or ()]
            known = {i.id: i for i in self.store.open_incidents(vendor)}
            for inc in self.store.incidents_by_keys(vendor, keys):
                known.setdefault(inc.id, inc)
            changes = reconcile(ctx, snapshot, known.values())
            if changes:
                # plan, then write: what is slow about the alerts is done before the write lock is taken
                writes = self.plan_alerts(changes) if self.plan_alerts is not None else None
                with self.store.transaction("save incidents and their alerts"):
                    for ch in changes:
                        self.store.save_incident(ch.incident, ch.events)
                    if writes is not None:
                        writes()
                    if on_changes is not None:
                        on_changes(changes)
            for ch in changes:
                _log_events(vendor, ch)
        return changes

    async def _check(self, spec: SourceSpec, rec: SourceRecord, started: datetime, leading: bool) -> PollResult:
        """An ``http`` source: a measurement of the tool itself, judged and counted by the checker."""
        if self._checker is None:
            from watcher.httpchecks import HttpChecker

            self._checker = HttpChecker(self.store, self.client, self.settings, self.vendors, cluster=self.shared)
        out = await self._checker.run(spec, started, leading=leading)
        changes: list[Change] = []
        if out.snapshot is not None and leading:
            counts = _counter(self.vendors.get(spec.vendor), spec)
            changes = await self.apply(
                spec.vendor, spec.key, out.snapshot, started, counts, on_changes=self.on_changes
            )
        if not out.measured:
            result = self._failed(rec, spec, "network", out.error or "our network is down", started)
            result.changes = changes
            return result
        if rec.error is not None:
            log.info("%s: recovered after %d failed poll(s) (%s)", spec.key, rec.failures, rec.error)
        rec.error = rec.error_kind = rec.error_since = None
        rec.failures = 0
        rec.last_success_at = started
        rec.summary, rec.summary_read = out.summary, True
        if out.changed:
            rec.last_change_at = started
            if out.summary is not None:  # a measured check always has one (HttpChecker.run)
                self.store.add_observation(spec.key, spec.vendor, started, "check", out.summary)
        self.store.save_source(rec)
        obs = Observation(spec.vendor, spec.key, started, snapshot=out.snapshot, changed=out.changed)
        return PollResult(obs, changes)

    def _unchanged(self, rec: SourceRecord, spec: SourceSpec, at: datetime) -> PollResult:
        recovered = rec.error is not None
        if recovered:
            log.info("%s: recovered after %d failed poll(s) (%s)", spec.key, rec.failures, rec.error)
        rec.error = rec.error_kind = rec.error_since = None
        rec.failures = 0
        rec.last_success_at = at
        if not recovered:
            self.store.touch_source(rec)  # one small write: the summary and content hash are as stored
        else:
            self.store.save_source(rec)
        return PollResult(Observation(spec.vendor, spec.key, at, changed=False))

    def _failed(
        self, rec: SourceRecord, spec: SourceSpec, kind: str, message: str, at: datetime
    ) -> PollResult:
        if rec.error != message:
            # only the unreachable kind is held for the summary: a broken document is news at once
            quiet = (
                self.quiet_until is not None
                and at < self.quiet_until
                and kind == "network"
            )
            log.log(logging.DEBUG if quiet else logging.WARNING, "%s: %s", spec.key, message)
            self.store.add_observation(spec.key, spec.vendor, at, "error", {"kind": kind, "error": message})
        if rec.error is None:
            rec.error_since = at
        rec.error, rec.error_kind = message, kind
        rec.failures += 1
        self.store.save_source(rec)
        return PollResult(Observation(spec.vendor, spec.key, at, error=message, error_kind=kind))


def _counter(vendor: VendorSpec | None, spec: SourceSpec) -> Callable[[str], bool]:
    ignored = {n.lower() for n in spec.ignore_components}

    def counts(name: str) -> bool:
        if name.lower() in ignored:
            return False
        return vendor.counts_component(name) if vendor is not None else True

    return counts


def summarize(snapshot: Snapshot, counts: Callable[[str], bool]) -> dict:
    """What the vendor status view needs from a snapshot: small, JSON-able."""
    comps = {}
    others = []  # filtered out: not evidence, but they explain the page's indicator
    for key, c in component_keys(snapshot.components or ()):
        if counts(key):
            comps[key] = c.status.value
        else:
            others.append(c.status)
    maint_now = [
        m.title for m in snapshot.maintenances or () if m.status.value in ("in_progress", "verifying")
    ]
    return {
        "indicator": snapshot.indicator,
        "page": snapshot.page_name,
        "components": comps if snapshot.components is not None else None,
        "maintenance_in_progress": maint_now,
        "filtered_worst": max(others, key=lambda st: st.severity).value if others else None,
    }


def _log_events(vendor: str, ch: Change) -> None:
    inc = ch.incident
    for ev in ch.events:
        if ev.type in NOTIFIABLE or ev.type is EventType.MERGED:
            text = (
                ev.text
                if ev.type is not EventType.VENDOR_UPDATE
                else (ev.text[:160] + "…" * (len(ev.text) > 160))
            )
            log.info(
                "%s: incident #%s [%s] %s: %s", vendor, inc.id, inc.kind, ev.type, text.replace("\n", " ")
            )


def worst_component(summary: dict | None) -> ComponentStatus | None:
    if not summary or not summary.get("components"):
        return None
    return max((ComponentStatus(s) for s in summary["components"].values()), key=lambda s: s.severity)
