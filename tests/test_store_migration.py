"""Databases written before the one schema open in place, and a new file opened by several processes at once
is migrated once (issue 14)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import sqlite_utils

from watcher.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from watcher.model import IncidentKind, IncidentStatus
from watcher.store.legacy import SQLITE_LAST, SQLITE_MIGRATIONS
from watcher.store.schema import SCHEMA_VERSION
from watcher.store.sqlite import SQLiteStore

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def legacy_file(path, version: int) -> None:
    """A file as the SQLite store before the one schema left it at ``version``, with a little data."""
    conn = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.table("meta").create({"key": str, "value": str}, pk="key")
    for n in range(version):
        SQLITE_MIGRATIONS[n](db)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", [str(version)])
    conn.execute(
        "INSERT INTO sources (key, vendor, type, url, last_polled_at, etag, polls, failures) "
        "VALUES ('openai/summary', 'openai', 'statuspage', 'https://status.openai.com', "
        "'2026-11-23T12:00:00+00:00', '\"abc\"', 7, 0)"
    )
    conn.execute(
        "INSERT INTO incidents (vendor, title, kind, reason, state, status, is_maintenance, backfilled, "
        "opened_at, components, component_statuses, active_sources, seen_updates, bodies, revision) VALUES "
        "('openai', 'Elevated errors', 'outage', 'r', 'open', 'investigating', 0, 0, "
        "'2026-11-23T12:00:00+00:00', '[]', '{}', '[]', '[]', '[]', 1)"
    )
    conn.execute("INSERT INTO incident_keys (vendor, key, incident_id) VALUES ('openai', '01ABC', 1)")
    conn.close()


@pytest.mark.parametrize("version", [1, 3, SQLITE_LAST])
def test_an_old_sqlite_file_is_migrated_in_place_and_keeps_its_data(tmp_path, version):
    path = tmp_path / "w.db"
    legacy_file(path, version)
    store = SQLiteStore(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        src = store.source("openai/summary")
        assert src is not None and (src.etag, src.polls, src.last_polled_at) == ('"abc"', 7, NOW)
        inc = store.incident(1)
        assert inc is not None and (inc.title, inc.keys, inc.opened_at) == ("Elevated errors", {"01ABC"}, NOW)
        # what only the new schema has works on the old file
        store.save_source(src)
        assert store.source_errors_by_location() == {"": (1, 0)}
        new = Incident(
            id=None, vendor="openai", title="Second", kind=IncidentKind.DEGRADATION, reason="r",
            state=IncidentState.OPEN, status=IncidentStatus.INVESTIGATING, opened_at=NOW, updated_at=NOW, keys={"02DEF"},
        )
        iid = store.save_incident(new, [IncidentEvent(EventType.OPENED, NOW, "opened")])
        assert [i.id for i in store.incidents_by_keys("openai", ["02DEF", "01ABC"])] == [1, iid]
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() is None
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


OPEN = """
import sys
from watcher.store.sqlite import SQLiteStore
s = SQLiteStore(sys.argv[1])
print(s.schema_version)
s.close()
"""


def test_processes_that_open_a_new_file_together_migrate_it_once(tmp_path):
    for round_ in range(10):
        path = tmp_path / f"w{round_}.db"
        procs = [
            subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for _ in range(3)
        ]
        results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
        assert [(out.strip(), code) for out, _err, code in results] == [(str(SCHEMA_VERSION), 0)] * 3, results
