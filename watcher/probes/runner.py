"""One probe run for one vendor: network check, model list, canaries within budget, detectors, findings.

The run is the I/O edge of the probe stage; the judgement is in pure pieces it
feeds (:mod:`watcher.probes.canaries` scores answers, :mod:`watcher.detection`
holds the statistics, :mod:`watcher.probes.budget` keeps spending bounded). What
comes out is a :class:`~watcher.model.Snapshot` of *findings*, each a
:class:`~watcher.model.Report` with a measured kind, which the incident stage merges
with status-page evidence like any other source (``<vendor>/probe``).

Rules that keep it honest:

- **Is it them or us?** The local network check runs first. When no control host
  answers, nothing is counted against any vendor; a notice about watcher's own
  network is raised instead (vendor ``watcher``).
- **Our key is not their outage.** 401/403 are logged as our problem; 429 means
  we probe too much. Neither feeds a detector.
- **Streams:** transport failures (timeouts, refused, 5xx, overloaded, malformed)
  feed the error CUSUM and, once per run, the consecutive-failure outage rule;
  the time to first token of successful calls feeds the latency CUSUM; canary
  scores feed the quality CUSUM. A model we depend on vanishing from the list, a
  model-gone error, or Deprecation/Sunset headers are an ``api_change``.
- **Budget:** each canary's worst case is reserved before it is sent; when the
  day's tokens or money are spent, canaries stop until the next UTC day.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast, get_args

import httpx

from watcher.catalog import VendorSpec
from watcher.config import ProbeVendorSettings, Settings, read_secret
from watcher.connectivity import Connectivity, check_network
from watcher.detection import (
    BernoulliConfig,
    BernoulliCusum,
    ConsecutiveRule,
    LatencyConfig,
    LatencyCusum,
)
from watcher.i18n import Listed, Said
from watcher.model import IncidentKind, IncidentScope, IncidentStatus, Report, Snapshot, Update
from watcher.probes.budget import Budget, Remaining, VendorBudget
from watcher.probes.canaries import CanarySet, Score, load_canaries, merge
from watcher.probes.clients import ApiSpec, Format, ProbeResult, chat, list_models

log = logging.getLogger("watcher.probes")

TRANSPORT = {"timeout", "connect", "dns", "tls", "network", "vendor_error", "overloaded", "malformed"}
"""Failures that say the vendor's API is not serving: they count against it."""
NOT_THEIRS = {"auth", "rate_limited", "bad_request"}
"""Our key, our request rate, our request: never counted against the vendor."""
NETWORK_CACHE = 30.0
CHANGELOG_EVERY = 3600.0
CHANGELOG_WINDOW_DAYS = 90
_RETIRE = re.compile(
    r"\b(deprecat\w*|retir\w*|sunset\w*|shut(?:ting)?\s+down|discontinu\w*|end[- ]of[- ]life|remov\w*)\b",
    re.IGNORECASE,
)
DEFAULT_HEADERS: dict[str, tuple[tuple[str, str], ...]] = {"anthropic": (("anthropic-version", "2023-06-01"),)}


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One vendor we probe with our own key."""

    vendor: VendorSpec
    api: ApiSpec
    model: str | None
    models_in_use: tuple[str, ...]
    settings: ProbeVendorSettings


def probe_targets(settings: Settings, vendors: list[VendorSpec]) -> list[ProbeTarget]:
    """The watched vendors with probing configured: a key, a base URL and a wire format."""
    out: list[ProbeTarget] = []
    if not settings.probes.enabled:
        return out
    for v in vendors:
        ps = settings.probes.vendors.get(v.id)
        if ps is None or not ps.enabled:
            continue
        key = read_secret(ps.key, ps.key_file, f"probes.vendors.{v.id}.key")
        base = ps.base_url or v.api_base
        fmt = ps.format or v.api_format
        if not key or not base or not fmt or fmt not in get_args(Format):
            log.warning(
                "%s: probes configured but %s: not probed",
                v.id,
                f"no API key (set WATCHER_PROBES__VENDORS__{v.id.upper()}__KEY)"
                if not key
                else f"no API base URL or wire format (set probes.vendors.{v.id}.base_url and .format)",
            )
            continue
        api = ApiSpec(
            vendor=v.id,
            format=cast(Format, fmt),  # checked just above
            base_url=base,
            key=key,
            headers=DEFAULT_HEADERS.get(fmt, ()),
        )
        models_in_use = tuple(dict.fromkeys([*([ps.model] if ps.model else []), *ps.models_in_use]))
        out.append(ProbeTarget(v, api, ps.model, models_in_use, ps))
    return out


@dataclass(slots=True)
class Checked:
    """One request of a run, with the canary it asked and its score (chat only)."""

    result: ProbeResult
    canary: str | None = None
    score: Score | None = None
    cost: Decimal | None = None


@dataclass(slots=True)
class RunOutcome:
    vendor: str
    at: datetime
    network: Connectivity
    checked: list[Checked] = field(default_factory=list)
    snapshot: Snapshot | None = None
    """Findings to merge into incidents; None when the network is down (nothing was judged)."""
    fast: bool = False
    """A detector is in warning: probe at the fast cadence (variable sampling)."""
    budget: Remaining | None = None
    notes: list[str] = field(default_factory=list)


class VendorDetectors:
    """The detectors of one vendor, and the start of each open finding (for stable incident keys)."""

    def __init__(self, settings: Settings, target: ProbeTarget):
        p = settings.probes
        common = {
            "arl0_days": p.arl0_days,
            "interval_s": p.interval,
            "fast_interval_s": min(p.fast_interval, p.interval),
            "calibration_days": p.calibration_days,
        }
        self.quality = BernoulliCusum(
            BernoulliConfig.quality(
                design_p1=p.design_p1,
                prior_p0=p.prior_p0,
                probes_per_interval=max(1, p.canaries_per_run),
                **common,
            )
        )
        self.errors = BernoulliCusum(
            BernoulliConfig.errors(probes_per_interval=1 + max(0, p.canaries_per_run), **common)
        )
        self.outage = ConsecutiveRule(p.fail_consecutive, p.recover_consecutive, what="probe runs")
        self.latency = LatencyCusum(LatencyConfig(interval_s=p.interval))
        self.api_reasons: list[str] = []
        self.since: dict[str, str] = {}
        self.canary_index = 0
        self.auth_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "quality": self.quality.to_dict(),
            "errors": self.errors.to_dict(),
            "outage": self.outage.to_dict(),
            "latency": self.latency.to_dict(),
            "api_reasons": self.api_reasons,
            "since": self.since,
            "canary_index": self.canary_index,
            "auth_error": self.auth_error,
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore saved state; a part that no longer loads (config changed) starts afresh."""
        for name, restore in (
            ("quality", lambda d: BernoulliCusum.from_dict(d, self.quality.config)),
            ("errors", lambda d: BernoulliCusum.from_dict(d, self.errors.config)),
            ("outage", ConsecutiveRule.from_dict),
            ("latency", lambda d: LatencyCusum.from_dict(d, self.latency.config)),
        ):
            if name in data:
                try:
                    setattr(self, name, restore(data[name]))
                except Exception as e:  # a changed detector config must not stop probing
                    log.warning("detector state %s could not be restored (%s): starting afresh", name, e)
        self.api_reasons = list(data.get("api_reasons") or [])
        self.since = dict(data.get("since") or {})
        self.canary_index = int(data.get("canary_index") or 0)
        self.auth_error = data.get("auth_error")


def retirements(reports, models: tuple[str, ...], now: datetime) -> list[str]:
    """Changelog entries of the last 90 days that name a model in use and a retirement word."""
    out = []
    for r in reports:
        when = r.updated_at or r.started_at
        if when is not None and (now - when).days > CHANGELOG_WINDOW_DAYS:
            continue
        text = " ".join([r.title, r.extra_text, *(u.body for u in r.updates)])
        if not _RETIRE.search(text):
            continue
        named = [m for m in models if re.search(rf"(?<![\w.-]){re.escape(m)}(?![\w.-])", text, re.IGNORECASE)]
        for m in named:
            out.append(f"the vendor's changelog announces the retirement of {m}: {r.title[:120]}")
    return out


def finding(slot: str, kind: IncidentKind, title: str, reason: str, since: datetime) -> Report:
    """One probe finding as a report on the vendor's API; its key holds the slot and start, so it
    stays the same incident run after run."""
    key = f"probe:{slot}:{since.isoformat(timespec='seconds')}"
    return Report(
        key=key,
        title=title,
        status=IncidentStatus.INVESTIGATING,
        kind=kind,
        reason=reason,
        started_at=since,
        components=("API",),
        updates=(
            Update(
                id=key,
                status=IncidentStatus.INVESTIGATING,
                body=Said("probe_title.seen", reason=reason),
                created_at=since,
            ),
        ),
    )


def _cut_short(error: str | None) -> bool:
    """A stream that stopped early or grew too big is a transport failure, not a new shape."""
    e = (error or "").lower()
    return "ended before" in e or "exceeds" in e or "not valid utf-8" in e


def _models_missing(target: ProbeTarget, models: tuple[str, ...]) -> list[str]:
    have = set(models)
    # Gemini lists "models/x" already stripped by the client; compare exact ids
    return [m for m in target.models_in_use if m not in have]


class ProbeRunner:
    def __init__(
        self,
        settings: Settings,
        store,
        vendors: list[VendorSpec],
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        canaries: CanarySet | None = None,
        location: str | None = None,
    ):
        self.settings = settings
        self.store = store
        self.location = location
        """Set in a cluster: each location keeps its own detector state (``probe:<vendor>@<location>``)."""
        self.client = client
        self.clock = clock
        self.targets = {t.vendor.id: t for t in probe_targets(settings, vendors)}
        p = settings.probes
        if canaries is None:
            canaries = load_canaries()
            if p.canaries_file:
                canaries = merge(canaries, load_canaries(p.canaries_file), replace=p.replace_default_canaries)
        self.canaries = canaries
        policies = budget_policies(self.targets.values())
        self.budget = Budget(policies)
        saved = store.budget_state("_all")
        if saved:
            try:
                self.budget = Budget.from_dict(saved, policies, None)
            except Exception as e:  # a budget that does not load restarts the day's count
                log.warning("probe budget state could not be restored (%s): counting from zero", e)
        self.detectors: dict[str, VendorDetectors] = {}
        for vid, t in self.targets.items():
            d = VendorDetectors(settings, t)
            state = store.detector_state(self.stream(vid))
            if state:
                d.load(state)
            self.detectors[vid] = d
        self._network: Connectivity | None = None
        self._changelog: dict[str, tuple[datetime, list[str]]] = {}

    def stream(self, vendor_id: str) -> str:
        return f"probe:{vendor_id}" if self.location is None else f"probe:{vendor_id}@{self.location}"

    def _reload_budget(self) -> None:
        """In a cluster the budget is the leader's, and the leader changes: start from what was spent."""
        saved = self.store.budget_state("_all")
        if saved:
            try:
                self.budget = Budget.from_dict(saved, budget_policies(self.targets.values()), None)
            except Exception as e:
                log.warning("probe budget state could not be restored (%s): keeping this instance's", e)

    # -- the network ---------------------------------------------------------------------

    async def network(self, *, fresh: bool = False) -> Connectivity:
        now = self.clock()
        cached = self._network
        if not fresh and cached is not None and (now - cached.checked_at).total_seconds() < NETWORK_CACHE:
            return cached
        p = self.settings.probes
        self._network = await check_network(self.client, p.control_urls, now=now, timeout=min(5.0, p.timeout))
        return self._network

    def network_snapshot(self, conn: Connectivity, since: datetime | None) -> Snapshot:
        """Findings for watcher itself: one open notice while our network is down."""
        if conn.ok:
            return Snapshot(incidents=(), incident_scope=IncidentScope.ACTIVE)
        start = since or conn.checked_at
        key = f"network:{start.isoformat(timespec='seconds')}"
        return Snapshot(
            incidents=(
                Report(
                    key=key,
                    title="watcher's own network is down: vendors cannot be checked from here",
                    status=IncidentStatus.INVESTIGATING,
                    kind=IncidentKind.OUTAGE,
                    reason=conn.detail,
                    started_at=start,
                    updates=(
                        Update(
                            id=key, status=IncidentStatus.INVESTIGATING, body=conn.detail, created_at=start
                        ),
                    ),
                ),
            ),
            incident_scope=IncidentScope.ACTIVE,
        )

    # -- one vendor -------------------------------------------------------------------------

    async def run(self, vendor_id: str, *, billed: bool = True) -> RunOutcome:
        """One run. ``billed=False`` (a cluster follower): the free model-list call only, no canary
        prompts, and the shared budget is left alone."""
        target = self.targets[vendor_id]
        if billed and self.location is not None:
            self._reload_budget()
        det = self.detectors[vendor_id]
        now = self.clock()
        conn = await self.network()
        out = RunOutcome(vendor_id, now, conn)
        timeout = self.settings.probes.timeout

        models = await list_models(self.client, target.api, timeout=timeout)
        out.checked.append(Checked(models))
        if target.model and billed:
            for canary in self._next_canaries(det):
                est = self.budget.estimate(vendor_id, canary, target.model)
                reservation = self.budget.reserve(vendor_id, est, self.clock())
                if reservation is None:
                    out.notes.append("daily probe budget reached: canaries wait for the next UTC day")
                    break
                res = await chat(
                    self.client,
                    target.api,
                    target.model,
                    canary.prompt,
                    max_tokens=canary.max_tokens,
                    temperature=0.0,
                    timeout=timeout,
                    system=canary.system,
                )
                if res.error_class in ("connect", "dns") or (
                    res.status is None and not res.ok and res.ttfb_s is None
                ):
                    self.budget.cancel(reservation, self.clock())  # it never reached the vendor
                    cost = Decimal(0)
                else:
                    if self.budget.settle(reservation, res.input_tokens, res.output_tokens, now=self.clock()):
                        out.notes.append("a vendor returned more tokens than asked: probing stops for today")
                    cost = reservation.estimate.price.cost(res.input_tokens or 0, res.output_tokens or 0)
                score = canary.score(res.text) if res.ok else None
                out.checked.append(Checked(res, canary.id, score, cost))
        out.budget = self.budget.remaining(vendor_id, self.clock())
        changelog = await self._changelog_reasons(target, now)

        network_ok = conn.ok or any(c.result.ok for c in out.checked)
        if not network_ok:
            out.notes.append(
                f"our network is down ({conn.detail}): nothing counted against {target.vendor.name}"
            )
        else:
            self._judge(target, det, out, changelog)
            out.snapshot = self._findings(target, det, now)
            out.fast = det.quality.warn or det.latency.warn
        self._record(out, network_ok)
        state = det.to_dict()
        # what the leader needs to confirm an outage across locations (see ProbeService.confirm)
        state["seen"] = {"at": now.isoformat(), "location": self.location, "network_ok": network_ok}
        self.store.save_detector_state(self.stream(vendor_id), state, now)
        if billed:
            self.store.save_budget_state("_all", self.budget.to_dict(), now)
        return out

    def _next_canaries(self, det: VendorDetectors):
        n = self.settings.probes.canaries_per_run
        pool = list(self.canaries)
        if not pool or n <= 0:
            return []
        picked = [pool[(det.canary_index + i) % len(pool)] for i in range(min(n, len(pool)))]
        det.canary_index = (det.canary_index + len(picked)) % len(pool)
        return picked

    async def _changelog_reasons(self, target: ProbeTarget, now: datetime) -> list[str]:
        """Retirements of a model in use announced in the vendor's changelog feeds (read hourly)."""
        feeds = target.settings.changelog_feeds
        if not feeds or not target.models_in_use:
            return []
        cached = self._changelog.get(target.vendor.id)
        if cached is not None and (now - cached[0]).total_seconds() < CHANGELOG_EVERY:
            return cached[1]
        from watcher.fetch import FetchError, fetch
        from watcher.sources import feeds as feed_parser
        from watcher.sources.base import ParseError

        reasons: list[str] = []
        for url in feeds:
            try:
                res = await fetch(
                    self.client,
                    url,
                    timeout=self.settings.poll.timeout,
                    max_bytes=self.settings.poll.max_bytes,
                    private_redirects=self.settings.poll.private_redirects,
                )
                snap = feed_parser.parse(res.body)
            except (FetchError, ParseError) as e:
                log.warning("%s: changelog feed %s unreadable: %s", target.vendor.id, url, e)
                continue
            reasons += retirements(snap.incidents or (), target.models_in_use, now)
        self._changelog[target.vendor.id] = (now, reasons)
        return reasons

    def _judge(self, target: ProbeTarget, det: VendorDetectors, out: RunOutcome, changelog=()) -> None:
        at = out.at
        served = False
        failed_transport = False
        auth = None
        api: list[str] = []
        ttfts: list[float] = []
        for c in out.checked:
            r = c.result
            if r.ok:
                served = True
                det.errors.update(False, at)
            elif r.error_class == "malformed" and r.status == 200 and not _cut_short(r.error):
                # a complete 200 we cannot parse: the response shape changed (or the vendor broke
                # it); an API change to tell people about, not an outage
                served = True
                api.append(f"the API's answer no longer has the shape we parse ({(r.error or '')[:120]})")
            elif r.error_class in TRANSPORT:
                failed_transport = True
                det.errors.update(True, at)
            elif r.error_class == "auth":
                auth = r.error
            elif r.error_class == "model_gone" and r.model:
                api.append(f"model {r.model} is gone ({(r.error or '')[:120]})")
            if r.deprecation:
                api.append(f"the API announces a deprecation (Deprecation: {r.deprecation[:60]})")
            if r.sunset:
                api.append(f"the API announces a shutdown date (Sunset: {r.sunset[:60]})")
            if c.score is not None:
                det.quality.update(not c.score.passed, at)
            if r.ok and r.kind == "chat" and r.ttft_s and math.isfinite(r.ttft_s) and r.ttft_s > 0:
                ttfts.append(r.ttft_s)
        if ttfts:
            # one value per run (its median): the latency threshold is designed for one probe per
            # interval, and calls of one run are not independent samples
            ttfts.sort()
            det.latency.update(ttfts[len(ttfts) // 2], at)
        if out.checked and out.checked[0].result.ok and out.checked[0].result.models is not None:
            for m in _models_missing(target, out.checked[0].result.models):
                api.append(f"model {m}, which the team uses, is no longer listed")
        if served or failed_transport:
            was_out = det.outage.alarm
            det.outage.update(failed_transport and not served, at)
            if was_out and not det.outage.alarm:
                # the hard outage explains the failures the error CUSUM banked: once the API
                # answers again (M good runs), it starts afresh instead of lingering as a
                # "degradation" built from the outage's own errors
                det.errors.reset()
        if auth != det.auth_error:
            if auth:
                log.error(
                    "%s: our API key was rejected (%s): probes cannot judge this vendor",
                    target.vendor.id,
                    auth,
                )
            elif det.auth_error:
                log.info("%s: our API key works again", target.vendor.id)
            det.auth_error = auth
        api += list(changelog)
        det.api_reasons = list(dict.fromkeys(api))

    def _findings(self, target: ProbeTarget, det: VendorDetectors, now: datetime) -> Snapshot:
        name = target.vendor.name
        reports: list[Report] = []

        def report(slot: str, kind: IncidentKind, title: str, reason: str) -> None:
            since = det.since.setdefault(slot, now.isoformat(timespec="seconds"))
            reports.append(finding(slot, kind, title, reason, datetime.fromisoformat(since)))

        if det.outage.alarm:
            report(
                "availability",
                IncidentKind.OUTAGE,
                Said("probe_title.outage", name=name),
                det.outage.explain(),
            )
        elif det.errors.alarm or det.latency.alarm:
            why = Listed([d.explain() for d in (det.errors, det.latency) if d.alarm], "detect.sep")
            report(
                "availability",
                IncidentKind.DEGRADATION,
                Said("probe_title.degradation", name=name),
                why,
            )
        else:
            det.since.pop("availability", None)
        if det.quality.alarm:
            report(
                "quality",
                IncidentKind.HALLUCINATION_SPIKE,
                Said("probe_title.quality", name=name),
                det.quality.explain(),
            )
        else:
            det.since.pop("quality", None)
        if det.api_reasons:
            report(
                "api",
                IncidentKind.API_CHANGE,
                f"{name} API changed: " + det.api_reasons[0],
                "; ".join(det.api_reasons),
            )
        else:
            det.since.pop("api", None)
        return Snapshot(incidents=tuple(reports), incident_scope=IncidentScope.ACTIVE)

    def _record(self, out: RunOutcome, network_ok: bool) -> None:
        for c in out.checked:
            r = c.result
            self.store.add_probe_result(
                {
                    "vendor": out.vendor,
                    "kind": r.kind,
                    "model": r.model,
                    "at": r.started_at,
                    "ok": r.ok,
                    "status": r.status,
                    "error_class": r.error_class,
                    "error": r.error,
                    "ttfb_s": r.ttfb_s,
                    "ttft_s": r.ttft_s,
                    "total_s": r.total_s,
                    "tokens_in": r.input_tokens,
                    "tokens_out": r.output_tokens,
                    "tokens_per_s": r.tokens_per_s,
                    "canary": c.canary,
                    "passed": None if c.score is None else c.score.passed,
                    "detail": None if c.score is None else c.score.detail,
                    "answer": (r.text or "")[:500] if r.kind == "chat" else None,
                    "cost": float(c.cost) if c.cost is not None else None,
                    "network_ok": network_ok,
                }
            )

    def interval_for(self, outcome: RunOutcome | None) -> float:
        p = self.settings.probes
        return min(p.fast_interval, p.interval) if outcome is not None and outcome.fast else p.interval


def budget_policies(targets) -> dict[str, VendorBudget]:
    """Each probed vendor's daily limits and prices, from its settings."""
    return {
        t.vendor.id: VendorBudget(
            daily_tokens=t.settings.daily_tokens,
            daily_cost=Decimal(str(t.settings.daily_cost)),
            default_price=_price(t.settings),
        )
        for t in targets
    }


def _price(ps: ProbeVendorSettings):
    from watcher.probes.budget import Price

    return Price(Decimal(str(ps.price_in)), Decimal(str(ps.price_out)))
