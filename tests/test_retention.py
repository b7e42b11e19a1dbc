"""Retention on a database with a year of synthetic rows: it shrinks, and what must stay stays.

The rows are synthetic (made here, in the store's own formats): a year of
observations from three sources, a year of probe results from two vendors, a
year of weekly incidents with their events, acknowledgements and outbox rows.
The pruning rules are also checked on PostgreSQL (a thinner year, written through
the store's own methods, on both backends: tests/store_backends.py); the file
shrinking is SQLite's alone.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import store_backends
from store_backends import RawSQLite

from watcher.alerts.model import Alert, AlertAction
from watcher.catalog import resolve
from watcher.config import Settings
from watcher.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from watcher.model import IncidentKind, IncidentStatus
from watcher.retention import prune, prune_async, pruned_counts
from watcher.store.sqlite import SQLiteStore
from watcher.web import ops
from watcher.web.context import WebContext

# the fixtures that run a test on SQLite and on PostgreSQL (see store_backends.py)
backend, store, pg_url = store_backends.backend, store_backends.store, store_backends.pg_url

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
SOURCES = ("openai/summary", "anthropic/summary", "gemini/incidents")
RETIRED = "mistral/summary"
"""A source no longer polled for 100 days: its newest observation must stay."""


def ts(dt: datetime, micro: bool = False) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds" if micro else "seconds")


def alert(iid: int) -> Alert:
    return Alert(
        incident_id=iid, vendor="openai", vendor_name="OpenAI", title="Errors", kind="outage", reason="r",
        state="open", status="investigating", action=AlertAction.OPENED,
    )


def build_year(store) -> dict:
    db = RawSQLite(store)
    summary = json.dumps(
        {"indicator": "none", "page": "Status", "components": {f"Component {i}": "operational" for i in range(12)},
         "maintenance_in_progress": []}
    )
    start = NOW - YEAR
    rows = []
    t = start
    while t < NOW:
        for s in SOURCES:
            rows.append((s, s.split("/")[0], ts(t), "snapshot", summary))
        if t < NOW - timedelta(days=100):
            rows.append((RETIRED, "mistral", ts(t), "snapshot", summary))
        t += timedelta(minutes=30)
    with store._tx():
        db.conn.executemany("INSERT INTO observations (source, vendor, at, kind, data) VALUES (?, ?, ?, ?, ?)", rows)
    probes = []
    t = start
    answer = "The answer is 42. " * 5
    while t < NOW:
        for v in ("openai", "anthropic"):
            probes.append((v, "chat", "m", ts(t, True), 1, 200, 0.4, 0.9, 12, 5, "sum", 1, answer, 0.0001, 1))
        t += timedelta(minutes=15)
    with store._tx():
        db.conn.executemany(
            "INSERT INTO probe_results (vendor, kind, model, at, ok, status, ttft_s, total_s, tokens_in, "
            "tokens_out, canary, passed, answer, cost, network_ok) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            probes,
        )
    return build_history(store, start)


def build_history(store, start: datetime) -> dict:
    """A year of weekly incidents with their events, acknowledgements and outbox rows (store methods only)."""
    facts = {"open": [], "resolved": [], "pending_old": None}
    for week in range(52):
        opened = start + timedelta(weeks=week, hours=3)
        still_open = week in (10, 51)  # one open for 41 weeks, one open this week
        inc = Incident(
            vendor="openai", title=f"Incident {week}", kind=IncidentKind.OUTAGE, reason="r",
            opened_at=opened, updated_at=opened + timedelta(hours=1), started_at=opened,
            state=IncidentState.OPEN if still_open else IncidentState.RESOLVED,
            status=IncidentStatus.INVESTIGATING if still_open else IncidentStatus.RESOLVED,
            resolved_at=None if still_open else opened + timedelta(hours=2),
        )
        inc.keys.add(f"inc-{week}")
        iid = store.save_incident(
            inc,
            [IncidentEvent(EventType.OPENED, opened, "opened"), IncidentEvent(EventType.RESOLVED, opened, "done")],
        )
        (facts["open"] if still_open else facts["resolved"]).append(iid)
        for n, (channel, target) in enumerate((("slack", "C1"), ("email", "a@example.com"), ("slack", "C2"))):
            nid = store.enqueue(
                incident_id=iid, action=AlertAction.OPENED, channel=channel, target=target, route="r",
                alert=alert(iid), now=opened,
            )
            store.claim(nid, opened)
            if n == 2:  # slack C2 fails twice more, then dies
                store.mark_retry(nid, opened, opened, "boom")
                store.claim(nid, opened)
                store.mark_dead(nid, opened, "dead")
            else:
                store.mark_delivered(nid, opened)
        if week == 5:  # a row still pending for an old, resolved incident: never pruned
            facts["pending_old"] = store.enqueue(
                incident_id=iid, action=AlertAction.RESOLVED, channel="email", target="b@example.com", route="r",
                alert=alert(iid), now=opened,
            )
        if week % 3 == 0:
            store.acknowledge(iid, "ana", opened + timedelta(minutes=5), None, "cli")
    return facts


def file_size(store) -> int:
    p = str(store.path)
    return sum(os.path.getsize(f) for f in (p, p + "-wal") if os.path.exists(f))


def counts(store) -> dict[str, int]:
    db = RawSQLite(store)
    return {
        t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        for t in ("observations", "probe_results", "notifications", "incidents", "incident_events", "acks", "audit")
    }


@pytest.fixture
def year(tmp_path):
    settings = Settings.model_validate({"watch": ["openai"], "storage": {"path": str(tmp_path / "w.db")}})
    store = SQLiteStore(settings.storage.path)
    facts = build_year(store)
    RawSQLite(store).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    yield settings, store, facts
    store.close()


def metric_counters(settings, store) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    ctx = WebContext(settings, store, resolve(settings), clock=lambda: NOW)
    out = {}
    for fam in text_string_to_metric_families(ops.metrics_text(ctx).decode()):
        for s in fam.samples:
            if s.name in ("watcher_deliveries_total", "watcher_delivery_failures_total", "watcher_notifications_dead_total"):
                out[(s.name, s.labels["channel"])] = s.value
    return out


def test_a_year_of_rows_is_pruned_to_the_retention_and_the_file_shrinks(year):
    settings, store, facts = year
    before_size = file_size(store)
    before = counts(store)
    before_metrics = metric_counters(settings, store)
    assert before["observations"] > 60_000 and before["probe_results"] > 60_000

    result = prune(store, settings, NOW)

    after = counts(store)
    after_size = file_size(store)
    db = RawSQLite(store)
    # observations: 30 days kept, plus the newest of a source no longer polled
    cut = ts(NOW - timedelta(days=30))
    assert db.execute("SELECT COUNT(*) FROM observations WHERE at < ?", [cut]).fetchone()[0] == 1
    assert db.execute("SELECT source FROM observations WHERE at < ?", [cut]).fetchone()[0] == RETIRED
    assert db.execute("SELECT COUNT(*) FROM observations WHERE at >= ?", [cut]).fetchone()[0] == 3 * 30 * 48
    assert result["observations"] == before["observations"] - after["observations"]
    # probe results: 90 days
    cut_p = ts(NOW - timedelta(days=90), True)
    assert db.execute("SELECT COUNT(*) FROM probe_results WHERE at < ?", [cut_p]).fetchone()[0] == 0
    assert after["probe_results"] == 2 * 90 * 96
    assert result["probe_results"] == before["probe_results"] - after["probe_results"]
    # notifications: delivered/dead past 180 days go, except an open incident's and pending ones
    cut_n = ts(NOW - timedelta(days=180), True)
    left_old = db.execute(
        "SELECT incident_id, state FROM notifications WHERE created_at < ? ORDER BY id", [cut_n]
    ).fetchall()
    open_old = facts["open"][0]
    assert {(iid, st) for iid, st in left_old} == {
        (open_old, "delivered"),
        (open_old, "dead"),
        (db.execute("SELECT incident_id FROM notifications WHERE id = ?", [facts["pending_old"]]).fetchone()[0], "pending"),
    }
    assert store.notifications(incident_id=open_old, limit=10), "the open incident keeps its targets"
    assert result["notifications"] == before["notifications"] - after["notifications"] > 0
    # kept forever
    for table in ("incidents", "incident_events", "acks", "audit"):
        assert after[table] == before[table], table
    assert store.alerted_targets(open_old), "updates of the open incident still reach who heard of it"
    # the file really shrank (WAL included), and later runs give space back in steps
    assert after_size < 0.4 * before_size, (before_size, after_size)
    print(f"database: {before_size / 1e6:.1f} MB before, {after_size / 1e6:.1f} MB after")
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the counters on /metrics never go backwards
    assert metric_counters(settings, store) == before_metrics
    assert pruned_counts(store)[("delivered", "slack")] > 0
    # nothing left to do
    assert prune(store, settings, NOW) == {
        "observations": 0, "probe_results": 0, "notifications": 0, "vacuumed_pages": 0
    }


def test_pruning_goes_in_short_batches_and_yields_to_the_event_loop(year):
    settings, store, _ = year
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    ticks = 0

    async def other_work(stop: asyncio.Event):
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def go():
        stop = asyncio.Event()
        task = asyncio.create_task(other_work(stop))
        result = await prune_async(store, settings, NOW, batch=1000, pause=0)
        stop.set()
        await task
        return result

    result = asyncio.run(go())
    store.conn.set_trace_callback(None)
    deletes = [s for s in statements if s.startswith("DELETE")]
    assert len(deletes) >= (result["observations"] + result["probe_results"]) // 1000
    assert statements.count("BEGIN IMMEDIATE") >= len(deletes), "one short transaction per batch"
    assert ticks >= len(deletes), "other tasks ran between batches"


def test_incremental_vacuum_after_the_first_compaction(year):
    settings, store, _ = year
    prune(store, settings, NOW)
    assert RawSQLite(store).execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    # a month later: another month of observations ages out, and the space goes back in steps
    later = NOW + timedelta(days=31)
    result = prune(store, settings, later)
    assert result["observations"] > 0
    assert result["vacuumed_pages"] > 0
    assert RawSQLite(store).execute("PRAGMA freelist_count").fetchone()[0] == 0


def test_an_in_memory_store_is_pruned_without_vacuum():
    settings = Settings.model_validate({"watch": ["openai"], "storage": {"path": ":memory:"}})
    store = SQLiteStore(":memory:")
    store.add_observation("openai/summary", "openai", NOW - timedelta(days=60), "snapshot", {})
    store.add_observation("openai/summary", "openai", NOW - timedelta(days=40), "snapshot", {})
    store.add_observation("openai/summary", "openai", NOW, "snapshot", {})
    assert prune(store, settings, NOW)["observations"] == 2
    store.close()


# -- on either backend ------------------------------------------------------------------------------

THIN = timedelta(hours=6)
"""One row per source (or vendor) every six hours: a year in a few thousand rows, written one by one."""
THIN_PROBE = dict(kind="chat", model="m", ok=True, ttft_s=0.4, total_s=0.9, tokens_in=12, tokens_out=5)
TABLES = ("observations", "probe_results", "notifications", "incidents", "incident_events", "acks", "audit")
NOTHING_PRUNED = dict.fromkeys(("observations", "probe_results", "notifications", "vacuumed_pages"), 0)


def build_thin_year(store) -> dict:
    """The year of :func:`build_year`, thinned out and written through the store's public methods."""
    start = NOW - YEAR
    t = start
    summary = {"indicator": "none", "page": "Status", "components": {"API": "operational"}}
    while t < NOW:
        for s in SOURCES:
            store.add_observation(s, s.split("/")[0], t, "snapshot", summary)
        if t < NOW - timedelta(days=100):
            store.add_observation(RETIRED, "mistral", t, "snapshot", summary)
        for v in ("openai", "anthropic"):
            store.add_probe_result({**THIN_PROBE, "vendor": v, "at": t})
        t += THIN
    return build_history(store, start)


def _aware(v) -> datetime:
    dt = v if isinstance(v, datetime) else datetime.fromisoformat(v)
    return dt.astimezone(UTC)


def select(backend, q: str) -> list[dict]:
    """Rows of a plain query (no parameters), read on a connection of the test's own."""
    if backend.kind == "sqlite":
        import sqlite3

        conn = sqlite3.connect(backend.spec)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(q)]
        finally:
            conn.close()
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(backend.spec, row_factory=dict_row) as conn:
        return conn.execute(q).fetchall()


def table_counts(backend) -> dict[str, int]:
    return {t: select(backend, f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in TABLES}


def test_old_rows_are_pruned_in_batches_and_what_must_stay_stays_on_either_backend(backend, store):
    settings = Settings.model_validate({"watch": ["openai"], "storage": {"path": backend.spec}})
    facts = build_thin_year(store)
    before = table_counts(backend)
    before_metrics = metric_counters(settings, store)
    ticks = 0

    async def go():
        stop = asyncio.Event()

        async def other_work():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other_work())
        result = await prune_async(store, settings, NOW, batch=100, pause=0)
        stop.set()
        await task
        return result

    result = asyncio.run(go())
    after = table_counts(backend)

    # observations: 30 days kept, plus the newest of a source no longer polled
    obs = [(r["source"], _aware(r["at"])) for r in select(backend, "SELECT source, at FROM observations")]
    cut = NOW - timedelta(days=30)
    assert [s for s, at in obs if at < cut] == [RETIRED]
    assert len([1 for _, at in obs if at >= cut]) == 3 * 30 * 4
    assert result["observations"] == before["observations"] - after["observations"] > 0
    # probe results: 90 days
    ats = [_aware(r["at"]) for r in select(backend, "SELECT at FROM probe_results")]
    assert min(ats) >= NOW - timedelta(days=90) and len(ats) == 2 * 90 * 4
    assert result["probe_results"] == before["probe_results"] - after["probe_results"] > 0
    # notifications: delivered/dead past 180 days go, except an open incident's and pending ones
    cut_n = NOW - timedelta(days=180)
    left_old = {
        (r["incident_id"], r["state"])
        for r in select(backend, "SELECT incident_id, state, created_at FROM notifications")
        if _aware(r["created_at"]) < cut_n
    }
    open_old = facts["open"][0]
    [pending] = [n for n in store.notifications(state="pending", limit=1000) if n.id == facts["pending_old"]]
    assert left_old == {(open_old, "delivered"), (open_old, "dead"), (pending.incident_id, "pending")}
    assert result["notifications"] == before["notifications"] - after["notifications"] > 0
    # kept forever
    for table in ("incidents", "incident_events", "acks", "audit"):
        assert after[table] == before[table], table
    assert store.alerted_targets(open_old), "updates of the open incident still reach who heard of it"
    # each batch was its own step: other tasks ran between them
    pruned = result["observations"] + result["probe_results"] + result["notifications"]
    assert ticks >= pruned // 100
    # the counters on /metrics never go backwards: what went is in meta
    assert metric_counters(settings, store) == before_metrics
    assert pruned_counts(store)[("delivered", "slack")] > 0
    assert store.size_stats()["rows"]["probe_results"] == 2 * 90 * 4
    # nothing left to do
    assert prune(store, settings, NOW, batch=100) == NOTHING_PRUNED


def test_on_postgres_the_newest_observation_of_a_source_stays_for_each_location(pg_url):
    from watcher.store.postgres import PostgresStore

    settings = Settings.model_validate({"watch": ["openai"], "storage": {"url": pg_url}})
    paris, tokyo = PostgresStore(pg_url, location="paris"), PostgresStore(pg_url, location="tokyo")
    try:
        for s in (paris, tokyo):
            for days in (90, 60):
                s.add_observation("openai/summary", "openai", NOW - timedelta(days=days), "snapshot", {})
        assert prune(paris, settings, NOW)["observations"] == 2
        assert paris.size_stats()["rows"]["observations"] == 2, "the newest of each location stays"
    finally:
        paris.close()
        tokyo.close()
