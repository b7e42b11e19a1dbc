"""Issue 18 in the store: /metrics counts rows without counting them, the outbox index arrives by a
migration of existing databases, and retention keeps a file bounded under steady inserts.

Behaviour only: how fast is measured by bench/history.py and bench/scale.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import store_backends

from watcher.store.schema import BASE_VERSION, SCHEMA_VERSION

backend, store = store_backends.backend, store_backends.store

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _index_names(store) -> set[str]:
    if store.backend == "sqlite":
        q = "SELECT name FROM sqlite_master WHERE type = 'index'"
    else:
        q = "SELECT indexname AS name FROM pg_indexes WHERE schemaname = current_schema()"
    return {r["name"] for r in store.run("indexes", lambda c: c.execute(q).fetchall())}


def test_a_database_at_the_base_version_gets_the_outbox_index_in_place(backend):
    s = backend.open()
    s.add_observation("openai/summary", "openai", NOW, "snapshot", {"indicator": "none"})
    assert "idx_notifications_channel_state" in _index_names(s)
    # as a database written by the previous release left it: the base schema, version 6
    s.run(
        "undo",
        lambda c: (
            c.execute("DROP INDEX idx_notifications_channel_state"),
            c.execute(f"UPDATE schema_version SET version = {BASE_VERSION}"),
            c.commit() if backend.kind == "postgres" else None,
        ),
    )
    assert s.schema_version == BASE_VERSION
    s.close()
    s = backend.open()
    try:
        assert s.schema_version == SCHEMA_VERSION > BASE_VERSION
        assert "idx_notifications_channel_state" in _index_names(s)
        assert s.size_stats()["rows"]["observations"] == 1, "the data stays"
        assert s.outbox_counts() == {}
    finally:
        s.close()


def test_row_counts_stay_exact_through_inserts_and_prunes(store):
    def rows(table: str) -> int:
        return int(store.run("count", lambda c: c.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()["n"]))

    assert store.size_stats()["rows"] == {"observations": 0, "probe_results": 0, "notifications": 0, "incidents": 0}
    for day in range(10, 0, -1):
        for src in ("openai/summary", "openai/history", "anthropic/summary"):
            store.add_observation(src, src.split("/")[0], NOW - timedelta(days=day), "snapshot", {})
    assert store.size_stats()["rows"]["observations"] == rows("observations") == 30
    pruned = sum(store.prune("observations", NOW - timedelta(days=4), batch=7))
    assert pruned == 3 * 6
    assert store.size_stats()["rows"]["observations"] == rows("observations") == 12
    for src in ("openai/summary", "anthropic/summary"):  # inserted after the count: the ids since are added
        store.add_observation(src, src.split("/")[0], NOW, "snapshot", {})
    assert store.size_stats()["rows"]["observations"] == rows("observations") == 14
    assert store.recount("observations") == 14


def test_retention_keeps_the_file_bounded_under_steady_inserts(tmp_path):
    """A year in miniature: every day the same number of observations, retention at 10 days; once
    the first window is full the file stops growing (freed pages are reused or given back)."""
    from watcher.config import Settings
    from watcher.retention import prune
    from watcher.store.sqlite import SQLiteStore

    settings = Settings.model_validate({"watch": ["openai"], "retention": {"observations_days": 10}})
    s = SQLiteStore(tmp_path / "w.db")
    page = {"indicator": "minor", "components": {f"Component {i}": "operational" for i in range(20)}}
    sizes = []
    try:
        start = NOW - timedelta(days=40)
        for day in range(40):
            at = start + timedelta(days=day)
            with s.transaction("a day of polls"):
                for k in range(300):
                    s.add_observation(f"v{k % 30}/summary", f"v{k % 30}", at + timedelta(minutes=k), "snapshot", page)
            prune(s, settings, at + timedelta(days=1))
            sizes.append(s.size_stats()["size_bytes"])
        rows = s.size_stats()["rows"]["observations"]
    finally:
        s.close()
    assert rows <= 11 * 300, rows
    settled = sizes[12]
    assert max(sizes[12:]) <= settled * 1.1, sizes
    assert sizes[-1] < 4 * sizes[5], sizes


def test_a_poll_reads_and_saves_a_source_without_its_summary(store):
    from watcher.store.base import SourceRecord

    store.save_source(
        SourceRecord("openai/summary", "openai", "statuspage", "https://x", etag='"a"', summary={"indicator": "minor"})
    )
    rec = store.fetch_state("openai/summary")
    assert rec is not None and rec.summary is None and not rec.summary_read and rec.etag == '"a"'
    rec.error, rec.failures = "refused", 1
    store.save_source(rec)  # a failed poll: the summary stays as stored
    got = store.source("openai/summary")
    assert got is not None and got.summary == {"indicator": "minor"} and got.error == "refused" and got.summary_read
    rec.summary, rec.summary_read = {"indicator": "none"}, True
    store.save_source(rec)
    assert store.source("openai/summary").summary == {"indicator": "none"}
    assert store.fetch_state("nope") is None
