"""The SQLite store on a real file: schema, round trips, errors a user can act on."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from watcher.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from watcher.model import ComponentStatus, IncidentKind, IncidentStatus
from watcher.store.base import SourceRecord, StoreError
from watcher.store.sqlite import SCHEMA_VERSION, SQLiteStore

NOW = datetime(2026, 10, 7, 13, 0, tzinfo=UTC)


def sample(**kw) -> Incident:
    base = dict(
        vendor="openai",
        title="Elevated errors",
        kind=IncidentKind.DEGRADATION,
        reason="elevated errors",
        opened_at=NOW,
        updated_at=NOW,
        keys={"01ABC"},
        components=["API"],
        component_statuses={"API": ComponentStatus.PARTIAL_OUTAGE},
        bodies=["We are investigating."],
        seen_updates={"u1"},
        active_sources={"openai/summary"},
    )
    base.update(kw)
    return Incident(**base)


def test_new_file_is_created_in_wal_mode_with_current_schema(tmp_path):
    path = tmp_path / "sub" / "w.db"
    store = SQLiteStore(path)
    assert path.exists()
    assert store.schema_version == SCHEMA_VERSION
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"sources", "observations", "incidents", "incident_keys", "incident_events", "meta"} <= tables
    assert "idx_incidents_vendor_state" in indexes and "idx_observations_vendor_at" in indexes


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path):
    store = SQLiteStore(tmp_path / "w.db")
    iid = store.save_incident(sample(), [IncidentEvent(EventType.OPENED, NOW, "Elevated errors")])
    store.close()
    store = SQLiteStore(tmp_path / "w.db")
    inc = store.incident(iid)
    assert inc.title == "Elevated errors" and inc.keys == {"01ABC"}
    assert inc.component_statuses == {"API": ComponentStatus.PARTIAL_OUTAGE}
    assert inc.active_sources == {"openai/summary"}
    store.close()


def test_database_from_a_newer_watcher_is_refused_clearly(tmp_path):
    SQLiteStore(tmp_path / "w.db").close()
    with sqlite3.connect(tmp_path / "w.db") as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(StoreError, match="newer than this watcher"):
        SQLiteStore(tmp_path / "w.db")


def test_incident_round_trip_and_queries(tmp_path):
    store = SQLiteStore(tmp_path / "w.db")
    a = store.save_incident(sample(), [])
    b = store.save_incident(
        sample(
            vendor="anthropic",
            keys={"x1"},
            state=IncidentState.RESOLVED,
            resolved_at=NOW,
            status=IncidentStatus.RESOLVED,
        ),
        [],
    )
    assert [i.id for i in store.open_incidents()] == [a]
    assert [i.id for i in store.incidents(vendor="anthropic")] == [b]
    assert [i.id for i in store.incidents_by_keys("openai", ["01ABC", "nope"])] == [a]
    assert store.incidents_by_keys("anthropic", ["01ABC"]) == []
    store.close()


def test_same_update_event_is_stored_once(tmp_path):
    store = SQLiteStore(tmp_path / "w.db")
    inc = sample()
    ev = IncidentEvent(EventType.VENDOR_UPDATE, NOW, "We are investigating.", dedupe="k1")
    store.save_incident(inc, [ev])
    store.save_incident(inc, [ev])
    assert [e.event.type for e in store.events(inc.id)] == [EventType.VENDOR_UPDATE]
    store.close()


def test_source_record_round_trip(tmp_path):
    store = SQLiteStore(tmp_path / "w.db")
    rec = SourceRecord(
        "openai/summary",
        "openai",
        "statuspage",
        "https://x",
        last_polled_at=NOW,
        etag='"abc"',
        summary={"components": {"API": "operational"}},
        polls=3,
    )
    store.save_source(rec)
    got = store.source("openai/summary")
    assert got.etag == '"abc"' and got.summary == {"components": {"API": "operational"}}
    assert got.last_polled_at == NOW and got.polls == 3
    store.close()


def test_unusable_location_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create database"):
        SQLiteStore(tmp_path / "a-file" / "w.db")


def test_read_only_database_write_is_a_store_error(tmp_path):
    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    # the same file read-only under the store, as after a disk or permission problem
    store._pool.idle[:] = [sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)]
    with pytest.raises(StoreError, match="cannot save incident"):
        store.save_incident(sample(), [])
