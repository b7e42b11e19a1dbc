"""``/metrics``: the figures to graph and alert on, built at scrape time.

``GET /metrics`` is Prometheus text, built at scrape time by a custom
collector that reads the store and ``ctx.runtime`` (no global registry: nothing
leaks between apps or tests). Counters that must survive retention come from
rows plus what :mod:`watcher.retention` recorded as pruned. Metric names are
listed in :data:`METRICS`.

Channel labels come from the channel registry (:mod:`watcher.alerts.channels`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from watcher.alerts.channels import registry
from watcher.web.context import WebContext

log = logging.getLogger("watcher.web.ops")

KINDS = ("outage", "degradation", "api_change", "hallucination_spike", "maintenance")
OUTBOX_STATES = ("pending", "sending", "delivered", "dead")
PROBE_LATENCY_WINDOW = timedelta(hours=1)
CANARY_WINDOW = timedelta(hours=24)

METRICS: dict[str, str] = {
    "watcher_start_time_seconds": "gauge: when this process started (Unix time)",
    "watcher_scheduler_running": "gauge: 1 while the poll scheduler runs",
    "watcher_process_polls_total": "counter: polls done by this process",
    "watcher_source_polls_total": "counter {vendor,source}: polls of a source (kept in the database)",
    "watcher_source_up": "gauge {vendor,source}: 1 when the last poll succeeded",
    "watcher_source_consecutive_failures": "gauge {vendor,source}: failed polls in a row",
    "watcher_source_last_success_timestamp_seconds": "gauge {vendor,source}",
    "watcher_source_last_success_age_seconds": "gauge {vendor,source}",
    "watcher_source_interval_seconds": "gauge {vendor,source}: configured poll interval",
    "watcher_source_poll_errors_total": "counter {vendor,source,kind}: failed polls by error kind (this process)",
    "watcher_poll_duration_seconds": "histogram {vendor,source}: fetch+parse+store time of a poll (this process)",
    "watcher_open_incidents": "gauge {vendor,kind}: open incidents",
    "watcher_outbox_notifications": "gauge {channel,state}: outbox rows by state",
    "watcher_outbox_oldest_due_age_seconds": "gauge: how long the oldest due, unsent notification has waited",
    "watcher_deliveries_total": "counter {channel}: notifications delivered (pruned rows included)",
    "watcher_delivery_failures_total": "counter {channel}: failed send attempts (pruned rows included)",
    "watcher_notifications_dead_total": "counter {channel}: notifications given up on (pruned rows included)",
    "watcher_probe_ttft_recent_seconds": "gauge {vendor,quantile}: first-token time of probes, last hour",
    "watcher_probe_ttft_last_seconds": "gauge {vendor}: first-token time of the latest successful probe",
    "watcher_probe_requests_recent": "gauge {vendor,result}: probe requests in the last 24 h",
    "watcher_canary_answers_recent": "gauge {vendor,result}: canary answers passed/failed in the last 24 h",
    "watcher_canary_pass_ratio": "gauge {vendor}: share of canary answers passed in the last 24 h",
    "watcher_probe_budget_spent_tokens": "gauge {vendor}: probe tokens spent today (UTC)",
    "watcher_probe_budget_spent_cost": "gauge {vendor}: probe cost spent today (UTC)",
    "watcher_probe_budget_limit_tokens": "gauge {vendor}: daily token limit",
    "watcher_probe_budget_limit_cost": "gauge {vendor}: daily cost limit",
    "watcher_db_size_bytes": "gauge: database file size (pages in use and free); PostgreSQL: watcher's tables",
    "watcher_db_free_bytes": "gauge: space in the database file free for reuse (SQLite only)",
    "watcher_db_rows": "gauge {table}: rows in the tables retention prunes",
    "watcher_scrape_errors": "gauge: parts of this scrape that failed (see the log)",
}


# -- metrics ------------------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``values`` sorted, non-empty."""
    if len(values) == 1:
        return values[0]
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


class StoreCollector(Collector):
    """Reads the store and ``ctx.runtime`` on every scrape."""

    def __init__(self, ctx: WebContext):
        self.ctx = ctx

    def describe(self):  # no names up front: registering must not query the database
        return []

    def collect(self):
        errors = 0
        for part in (
            self._process,
            self._sources,
            self._incidents,
            self._outbox,
            self._probes,
            self._database,
        ):
            try:
                yield from list(part())
            except Exception:  # one failing part must not hide the others
                errors += 1
                log.exception("metrics: %s failed", part.__name__)
        g = GaugeMetricFamily("watcher_scrape_errors", "Parts of this scrape that failed (see the log).")
        g.add_metric([], errors)
        yield g

    # each part returns a list of families (built fully before yielding, so a failure yields nothing)

    def _process(self):
        ctx, rt = self.ctx, self.ctx.runtime
        out = []
        g = GaugeMetricFamily("watcher_start_time_seconds", "When this watcher process started (Unix time).")
        g.add_metric([], ctx.started_at.timestamp())
        out.append(g)
        if rt.get("scheduler_running") is not None:
            g = GaugeMetricFamily("watcher_scheduler_running", "1 while the poll scheduler runs.")
            g.add_metric([], 1.0 if rt.get("scheduler_running") else 0.0)
            out.append(g)
        if rt.get("cluster"):
            g = GaugeMetricFamily(
                "watcher_cluster_leader",
                "1 while this instance leads its cluster (merges incidents and sends alerts), 0 as a follower.",
                labels=["instance", "location"],
            )
            g.add_metric([str(rt.get("instance")), str(rt.get("location"))], 1.0 if rt.get("leader") else 0.0)
            out.append(g)
        if rt.get("polls") is not None:
            c = CounterMetricFamily("watcher_process_polls", "Polls done by this process.")
            c.add_metric([], float(rt.get("polls") or 0))
            out.append(c)
        return out

    def _sources(self):
        ctx = self.ctx
        now = ctx.clock()
        specs = {s.key: s for v in ctx.vendors for s in v.sources}
        records = {r.key: r for r in ctx.store.sources() if r.key in specs}
        labels = ["vendor", "source"]
        polls = CounterMetricFamily(
            "watcher_source_polls", "Polls of a source (kept in the database).", labels=labels
        )
        up = GaugeMetricFamily("watcher_source_up", "1 when the source's last poll succeeded.", labels=labels)
        fails = GaugeMetricFamily(
            "watcher_source_consecutive_failures", "Failed polls of the source in a row.", labels=labels
        )
        last = GaugeMetricFamily(
            "watcher_source_last_success_timestamp_seconds",
            "Last successful poll (Unix time).",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "watcher_source_last_success_age_seconds",
            "Seconds since the last successful poll.",
            labels=labels,
        )
        interval = GaugeMetricFamily(
            "watcher_source_interval_seconds", "Configured seconds between polls.", labels=labels
        )
        for key, spec in sorted(specs.items()):
            lv = [spec.vendor, key]
            interval.add_metric(lv, float(spec.interval))
            rec = records.get(key)
            if rec is None:
                continue
            polls.add_metric(lv, float(rec.polls))
            up.add_metric(lv, 1.0 if rec.error is None and rec.last_success_at is not None else 0.0)
            fails.add_metric(lv, float(rec.failures))
            if rec.last_success_at is not None:
                last.add_metric(lv, rec.last_success_at.timestamp())
                age.add_metric(lv, max(0.0, (now - rec.last_success_at).total_seconds()))
        out = [polls, up, fails, last, age, interval]
        recorder = ctx.runtime.get("metrics")
        if recorder is not None:
            durations, errs, _ = recorder.snapshot()
            c = CounterMetricFamily(
                "watcher_source_poll_errors",
                "Failed polls by error kind (network, timeout, http, parse, ...), since this process started.",
                labels=["vendor", "source", "kind"],
            )
            for (vendor, source, kind), n in sorted(errs.items()):
                c.add_metric([vendor, source, kind], float(n))
            h = HistogramMetricFamily(
                "watcher_poll_duration_seconds",
                "Time of one poll: fetch, parse and store (the fetch dominates).",
                labels=labels,
            )
            for (vendor, source), hist in sorted(durations.items()):
                h.add_metric([vendor, source], hist.cumulative(), hist.total)
            out += [c, h]
        return out

    def _incidents(self):
        g = GaugeMetricFamily(
            "watcher_open_incidents", "Open incidents by vendor and kind.", labels=["vendor", "kind"]
        )
        counts: dict[tuple[str, str], int] = {(v.id, k): 0 for v in self.ctx.vendors for k in KINDS}
        for inc in self.ctx.store.open_incidents():
            key = (inc.vendor, inc.kind.value)
            counts[key] = counts.get(key, 0) + 1
        for (vendor, kind), n in sorted(counts.items()):
            g.add_metric([vendor, kind], float(n))
        return [g]

    def _outbox(self):
        from watcher.retention import pruned_counts

        store = self.ctx.store
        now = self.ctx.clock()
        depth = GaugeMetricFamily(
            "watcher_outbox_notifications", "Outbox rows by channel and state.", labels=["channel", "state"]
        )
        by: dict[tuple[str, str], int] = {(c, s): 0 for c in registry.names() for s in OUTBOX_STATES}
        delivered: dict[str, float] = dict.fromkeys(registry.names(), 0.0)
        dead: dict[str, float] = dict.fromkeys(registry.names(), 0.0)
        failures: dict[str, float] = dict.fromkeys(registry.names(), 0.0)
        for (channel, state), (n, attempts) in sorted(store.outbox_counts().items()):
            by[(channel, state)] = n
            delivered.setdefault(channel, 0.0)
            dead.setdefault(channel, 0.0)
            failures.setdefault(channel, 0.0)
            # every claim is an attempt; all but the successful one (delivered) or the one
            # in flight (sending) failed
            if state == "delivered":
                delivered[channel] += n
                failures[channel] += attempts - n
            elif state == "sending":
                failures[channel] += max(0, attempts - n)
            else:
                failures[channel] += attempts
                if state == "dead":
                    dead[channel] += n
        for (what, channel), n in pruned_counts(self.ctx.store).items():
            target = {"delivered": delivered, "dead": dead, "failures": failures}.get(what)
            if target is not None:
                target[channel] = target.get(channel, 0.0) + n
        for (channel, state), n in sorted(by.items()):
            depth.add_metric([channel, state], float(n))
        oldest = GaugeMetricFamily(
            "watcher_outbox_oldest_due_age_seconds",
            "How long the oldest due, unsent notification has waited (0 when none).",
        )
        due = store.oldest_unsent_due(now)
        wait = max(0.0, (now - due).total_seconds()) if due else 0.0
        oldest.add_metric([], wait)
        out = [depth, oldest]
        for name, doc, values in (
            ("watcher_deliveries", "Notifications delivered, by channel.", delivered),
            ("watcher_delivery_failures", "Failed send attempts, by channel (retried or not).", failures),
            ("watcher_notifications_dead", "Notifications given up on, by channel.", dead),
        ):
            c = CounterMetricFamily(name, doc, labels=["channel"])
            for channel, n in sorted(values.items()):
                c.add_metric([channel], float(n))
            out.append(c)
        return out

    def _probe_vendors(self) -> list[str]:
        watched = {v.id for v in self.ctx.vendors}
        p = self.ctx.settings.probes
        return sorted(vid for vid, ps in p.vendors.items() if ps.enabled and vid in watched)

    def _probes(self):
        ctx = self.ctx
        store = ctx.store
        now = ctx.clock()
        vendors = self._probe_vendors()
        if not vendors:
            return []
        ttft = GaugeMetricFamily(
            "watcher_probe_ttft_recent_seconds",
            "Time to first token of successful probes in the last hour, median and 90th percentile.",
            labels=["vendor", "quantile"],
        )
        last = GaugeMetricFamily(
            "watcher_probe_ttft_last_seconds",
            "Time to first token of the latest successful probe.",
            labels=["vendor"],
        )
        reqs = GaugeMetricFamily(
            "watcher_probe_requests_recent",
            "Probe requests in the last 24 hours.",
            labels=["vendor", "result"],
        )
        answers = GaugeMetricFamily(
            "watcher_canary_answers_recent",
            "Canary answers in the last 24 hours.",
            labels=["vendor", "result"],
        )
        ratio = GaugeMetricFamily(
            "watcher_canary_pass_ratio",
            "Share of canary answers passed in the last 24 hours.",
            labels=["vendor"],
        )
        since_latency = now - PROBE_LATENCY_WINDOW
        since_day = now - CANARY_WINDOW
        for vid in vendors:
            values = sorted(store.probe_ttfts(vid, since_latency))
            if values:
                ttft.add_metric([vid, "0.5"], _quantile(values, 0.5))
                ttft.add_metric([vid, "0.9"], _quantile(values, 0.9))
            latest = store.last_probe_ttft(vid)
            if latest is not None:
                last.add_metric([vid], latest)
            day = store.probe_summary(vid, since_day)
            ok_n, bad_n, passed, failed = day["ok"], day["failed"], day["passed"], day["wrong"]
            reqs.add_metric([vid, "ok"], float(ok_n))
            reqs.add_metric([vid, "failed"], float(bad_n))
            answers.add_metric([vid, "passed"], float(passed))
            answers.add_metric([vid, "failed"], float(failed))
            if passed + failed:
                ratio.add_metric([vid], passed / (passed + failed))
        out = [ttft, last, reqs, answers, ratio]
        out += self._budget(vendors, now)
        return out

    def _budget(self, vendors: list[str], now: datetime):
        p = self.ctx.settings.probes
        state = (self.ctx.store.budget_state("_all") or {}).get("vendors", {})
        today = now.astimezone(UTC).date().isoformat()
        spent_t = GaugeMetricFamily(
            "watcher_probe_budget_spent_tokens", "Probe tokens spent today (UTC day).", labels=["vendor"]
        )
        spent_c = GaugeMetricFamily(
            "watcher_probe_budget_spent_cost",
            "Probe cost spent today (UTC day), in the currency of the configured prices.",
            labels=["vendor"],
        )
        lim_t = GaugeMetricFamily(
            "watcher_probe_budget_limit_tokens", "Daily probe token limit.", labels=["vendor"]
        )
        lim_c = GaugeMetricFamily(
            "watcher_probe_budget_limit_cost", "Daily probe cost limit.", labels=["vendor"]
        )
        for vid in vendors:
            led = state.get(vid) or {}
            same_day = led.get("day") == today
            spent_t.add_metric([vid], float(led.get("spent_tokens", 0)) if same_day else 0.0)
            spent_c.add_metric([vid], float(led.get("spent_cost", 0)) if same_day else 0.0)
            ps = p.vendors[vid]
            lim_t.add_metric([vid], float(ps.daily_tokens))
            lim_c.add_metric([vid], float(ps.daily_cost))
        return [spent_t, spent_c, lim_t, lim_c]

    def _database(self):
        stats = self.ctx.store.size_stats()
        size = GaugeMetricFamily(
            "watcher_db_size_bytes",
            "Database size: the SQLite file (pages in use and free), or on PostgreSQL watcher's tables with "
            "their indexes (pg_total_relation_size).",
        )
        size.add_metric([], float(stats["size_bytes"]))
        freeb = GaugeMetricFamily(
            "watcher_db_free_bytes",
            "Space in the database file free for reuse (SQLite only: none on PostgreSQL).",
        )
        if stats.get("free_bytes") is not None:
            freeb.add_metric([], float(stats["free_bytes"]))
        rows = GaugeMetricFamily(
            "watcher_db_rows",
            "Rows in the tables that retention prunes, and incidents: counted after each prune, plus the ids "
            "given since (never a count of millions of rows at scrape time).",
            labels=["table"],
        )
        for table, n in stats["rows"].items():
            rows.add_metric([table], float(n))
        return [size, freeb, rows]


def metrics_text(ctx: WebContext) -> bytes:
    """The Prometheus exposition for ``ctx``, from a registry made for this call."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(ctx))
    return generate_latest(registry)
