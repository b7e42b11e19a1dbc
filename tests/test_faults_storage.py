"""Fault suite, storage: `watcher run` as a real process while its own database cannot be written.

Proves the issue's promise for outages of our own dependencies, end to end: with the
database file on a full disk (or made read-only) the daemon keeps watching, says what is
wrong on ``/healthz`` and in one clear log line (not a line or a traceback per poll), and
once the disk has room again it catches up: the outage the vendor posted meanwhile is
opened and alerted exactly once, nothing lost, nothing doubled, and its resolve follows.
The same holds when the disk fills while an alert is being sent (the sender waits until it
can record what it sent), and, once the fix proposed for the pipeline is in, when it fills
between the incident's write and the next write of the same poll.

SQLite only: every fault here is one of a database *file* (its disk, its permissions); the
PostgreSQL counterparts (server gone, read-only role, row locked) are in tests/test_ops.py
and tests/test_cluster_roles.py.

Every test runs ``python -m watcher run`` (tests/daemon_harness.py) against stand-ins on 127.0.0.1 only: the vendor
status page (tests/vendor_server.py) and the Slack Web API (tests/slack_server.py, which
the daemon reaches through ``slack.base_url``); polls every second.

How the faults are made (as root; CI runs as root):

- Full disk: the database lives on an 8 MB tmpfs of its own, mounted in a private mount
  namespace (``unshare -m``, as in tests/test_ops.py), that the test fills with a file
  until ENOSPC and later deletes. SQLite then fails for real with SQLITE_FULL. The test
  reaches the namespace's files through ``/proc/<pid>/root`` and queries the database
  from inside the namespace (``nsenter -m``).
- Read-only: the database file and its directory are chmod'ed 0444/0555 while the daemon
  runs without CAP_DAC_OVERRIDE (``setpriv``, as in tests/test_ops.py). A filesystem
  cannot be remounted read-only under a process that has files open for writing (the
  kernel answers EBUSY), and permissions are only checked when a file is opened, so the
  running daemon's own connection stays writable: that test pins what really happens then
  (watching and alerting go on, ``/healthz`` says 503 since the next start would fail).
- A write failing between two writes of one poll (the disk filling up at that moment)
  cannot be timed from outside: there the daemon runs with one store method made to fail
  once (:data:`FAIL_ONCE`, a tiny bootstrap around ``python -m watcher``).
"""

from __future__ import annotations

import errno
import io
import json
import logging
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import scenario
from daemon_harness import Daemon, anthropic_toml, free_port, route_toml, slack_toml, write_config
from test_ops import _as_ordinary_user, _unshare_mount_ok

from watcher import logs

CHANNEL = "C0STORE"
SUMMARY = "/claude/api/v2/summary.json"
OUTAGE = scenario.incident(("investigating", "All requests to the Claude API fail.", "2026-10-07T13:01:00Z"))
TMPFS_SIZE = "8m"

needs_tmpfs = pytest.mark.skipif(
    shutil.which("nsenter") is None or not _unshare_mount_ok(),
    reason="needs root (CAP_SYS_ADMIN), unshare and nsenter: a tmpfs in a private mount namespace",
)


class Watcher:
    """``watcher run`` in a subprocess, its database in ``<tmp>/db/w.db``, its stderr collected live."""

    def __init__(
        self, tmp_path: Path, vendor_server, slack_server, *, tmpfs: bool = False, prefix=(), boot=()
    ) -> None:
        self.dir = tmp_path / "db"
        self.dir.mkdir()
        self.tmpfs = tmpfs
        self.vendor = vendor_server
        self.slack = slack_server
        port = free_port()
        cfg = write_config(
            tmp_path / "w.toml",
            'watch = ["anthropic"]\n',
            f'[storage]\npath = "{self.dir / "w.db"}"\n',
            f"[poll]\ninterval = 1\ntimeout = 2\n[web]\nport = {port}\n",
            anthropic_toml(vendor_server.url(SUMMARY)),
            route_toml(CHANNEL, name="ops"),
            slack_toml(slack_server),
        )
        prefix = list(prefix)
        if tmpfs:  # sh execs the watcher: the process we hold is the watcher itself, in the namespace
            mount = f'mount -t tmpfs -o size={TMPFS_SIZE} tmpfs "$0" && exec "$@"'
            prefix = ["unshare", "-m", "sh", "-c", mount, str(self.dir), *prefix]
        self.daemon = Daemon(cfg, env={"WATCHER_SLACK__TOKEN": slack_server.token}, prefix=prefix, boot=boot)
        self.proc = self.daemon.proc
        self.until = self.daemon.until
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15, trust_env=False)

    @property
    def log(self) -> str:
        return self.daemon.log

    @property
    def files(self) -> Path:
        """The database directory as the daemon sees it (its tmpfs lives in its own mount namespace)."""
        if self.tmpfs:
            return Path(f"/proc/{self.proc.pid}/root") / str(self.dir).lstrip("/")
        return self.dir

    def health(self) -> tuple[int, dict] | None:
        try:
            r = self.http.get("/healthz")
        except httpx.HTTPError:
            return None
        return r.status_code, r.json()

    def healthy(self) -> bool:
        h = self.health()
        return h is not None and h[0] == 200

    def unhealthy(self) -> dict | None:
        h = self.health()
        return h[1] if h is not None and h[0] == 503 else None

    def polls(self) -> int:
        return self.vendor.hits[SUMMARY]

    def keeps_polling(self, n: int = 3) -> None:
        start = self.polls()
        self.until(lambda: self.polls() >= start + n)

    def posts(self) -> list:
        return self.slack.messages(CHANNEL)

    def fill_disk(self) -> None:
        with open(self.files / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC, e

    def free_disk(self) -> None:
        (self.files / "filler").unlink()

    def rows(self, sql: str) -> list[tuple]:
        """A read-only query of the daemon's database (on a tmpfs: from inside its mount namespace,
        since SQLite resolves the /proc/<pid>/root link back to our own, empty, directory)."""
        if not self.tmpfs:
            with sqlite3.connect(f"file:{self.dir / 'w.db'}?mode=ro", uri=True) as conn:
                return [tuple(r) for r in conn.execute(sql).fetchall()]
        query = "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1], uri=True); " + (
            "print(json.dumps(c.execute(sys.argv[2]).fetchall()))"
        )
        uri = f"file:{self.dir / 'w.db'}?mode=ro"
        out = subprocess.run(
            ["nsenter", "-t", str(self.proc.pid), "-m", sys.executable, "-c", query, uri, sql],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return [tuple(r) for r in json.loads(out.stdout)]

    def stop(self) -> int:
        self.http.close()
        return self.daemon.stop()


@pytest.fixture
def run(tmp_path, vendor_server, slack_server):
    """``run(**kw)`` starts a :class:`Watcher` on an operational page, its Slack channel ready;
    every one started is stopped at teardown."""
    slack_server.add_channel(CHANNEL)
    vendor_server.set(SUMMARY, scenario.operational())
    started: list[Watcher] = []

    def start(**kw) -> Watcher:
        w = Watcher(tmp_path, vendor_server, slack_server, **kw)
        started.append(w)
        w.until(lambda: w.polls() >= 2 and w.healthy())
        return w

    yield start
    for w in started:
        w.stop()


def _resolves_in_place(w: Watcher, msg) -> None:
    """The vendor resolves: the one Slack message of the incident turns to Resolved; no second message."""
    w.vendor.set(SUMMARY, scenario.operational())
    w.until(lambda: "Resolved" in w.slack.message(CHANNEL, msg.ts).all_text())
    assert len(w.posts()) == 1, [m.text for m in w.posts()]


@needs_tmpfs
def test_a_full_disk_keeps_watching_and_the_outage_seen_meanwhile_is_alerted_once_when_space_is_back(run):
    """Proves: with SQLITE_FULL on every write the process stays up and keeps polling, /healthz is
    503 naming the full disk, the log says so in one line, not per poll nor as tracebacks;
    nothing of the outage posted meanwhile is stored or sent, and since nothing of the poll was
    kept (not the page's new hash or ETag either) the first poll with room again opens the
    incident and alerts it exactly once; /healthz is 200 again; the resolve reaches Slack."""
    w = run(tmpfs=True)
    w.fill_disk()
    body = w.until(w.unhealthy)
    assert body["database"]["writable"] is False and body["database"]["problem"] == "disk_full", body
    assert any("disk holding the database is full" in r for r in body["reasons"]), body["reasons"]

    w.vendor.set(SUMMARY, OUTAGE)
    w.keeps_polling(3)  # the changed page, seen on every poll, and each poll fails to store it
    assert w.posts() == []
    assert w.unhealthy() is not None
    errors = [line for line in w.log.splitlines() if "watcher.pipeline" in line and "ERROR" in line]
    assert errors and all("database or disk is full" in line for line in errors), w.log
    assert all("anthropic/summary" in line and str(w.dir / "w.db") in line for line in errors), errors
    assert len(errors) <= 2, "one line per kind of failed write, not one per poll:\n" + "\n".join(errors)
    assert "Traceback" not in w.log

    w.free_disk()
    [msg] = w.until(w.posts)
    assert "Claude API unavailable" in msg.all_text()
    w.until(w.healthy)
    w.until(lambda: w.rows("SELECT action, state FROM notifications") == [("opened", "delivered")])
    w.keeps_polling(2)
    assert len(w.posts()) == 1, "alerted once, not once per poll that failed"
    assert w.rows("SELECT kind, state FROM incidents") == [("outage", "open")]
    assert w.rows("SELECT action, state FROM notifications") == [("opened", "delivered")]

    _resolves_in_place(w, msg)
    assert w.stop() == 0, w.log
    assert "Traceback" not in w.log


@needs_tmpfs
def test_a_disk_filling_up_while_an_alert_is_sent_loses_nothing_and_doubles_nothing(run):
    """Proves: when the disk fills while Slack is answering a post (the row already claimed), the
    post is neither repeated nor forgotten: the sender waits until the database takes the
    message's thread and its delivery, says so in the log, and the resolve then edits that same
    message (without the thread it would post a second one; with the row left claimed it would
    never go out at all)."""
    w = run(tmpfs=True)
    w.slack.slow("chat.postMessage", 2.0)
    w.vendor.set(SUMMARY, OUTAGE)
    w.until(lambda: any(r.answered_at is None for r in w.slack.calls("chat.postMessage")))
    w.fill_disk()  # while Slack takes its time answering
    [msg] = w.until(w.posts)
    w.until(lambda: "cannot record its Slack thread" in w.log)
    w.keeps_polling(2)
    assert len(w.posts()) == 1

    w.slack.slow("chat.postMessage", 0)
    w.free_disk()
    w.until(lambda: "its Slack thread recorded after" in w.log)
    w.until(w.healthy)
    w.until(lambda: w.rows("SELECT state FROM notifications") == [("delivered",)])
    assert w.rows("SELECT incident_id, channel, ts FROM slack_threads") == [(1, CHANNEL, msg.ts)]

    _resolves_in_place(w, msg)
    # the alert, then the resolve's thread reply (sent just after the edit: wait for it), and no more
    w.until(lambda: len(w.slack.calls("chat.postMessage")) >= 2)
    w.keeps_polling(1)
    assert len(w.slack.calls("chat.postMessage")) == 2
    assert w.stop() == 0, w.log
    assert "Traceback" not in w.log


def test_a_database_made_read_only_under_the_running_daemon_is_reported_and_alerts_go_out_once(run):
    """Proves: when the database file and its directory become read-only for the daemon's user
    while it runs, the daemon keeps watching, /healthz is 503 naming the read-only database (a
    restart would fail to open it), the outage posted meanwhile is alerted exactly once (SQLite
    checks permissions when a file is opened, so the connection the daemon holds still writes),
    /healthz is 200 again once the permissions are back, and the resolve reaches Slack."""
    prefix = _as_ordinary_user()
    if prefix is None:
        pytest.skip("running as root without setpriv: a chmod cannot stop this process")
    w = run(prefix=prefix)
    modes = {p: p.stat().st_mode & 0o777 for p in w.files.iterdir()}
    try:
        for p in modes:
            p.chmod(0o444)
        w.files.chmod(0o555)
        body = w.until(w.unhealthy)
        assert body["database"]["problem"] == "read_only", body["database"]
        assert any("read-only" in r for r in body["reasons"]), body["reasons"]

        w.vendor.set(SUMMARY, OUTAGE)
        w.keeps_polling(3)
        assert w.unhealthy() is not None
    finally:
        w.files.chmod(0o755)
        for p, mode in modes.items():
            p.chmod(mode)
    w.until(w.healthy)
    [msg] = w.until(w.posts)
    w.keeps_polling(2)
    assert len(w.posts()) == 1
    assert w.rows("SELECT kind, state FROM incidents") == [("outage", "open")]

    _resolves_in_place(w, msg)
    assert w.stop() == 0, w.log
    assert "Traceback" not in w.log


FAIL_ONCE = """
import runpy, sys
from pathlib import Path
from watcher.store.base import StoreError
from watcher.store.sqlite import SQLiteStore

armed, name = Path(sys.argv[1]), sys.argv[2]
del sys.argv[1:3]
real = getattr(SQLiteStore, name)

def fail_once(self, *args, **kwargs):
    if armed.exists():  # the disk is full for exactly this one write
        armed.unlink()
        raise StoreError(f"cannot {name} in {self.path}: database or disk is full")
    return real(self, *args, **kwargs)

setattr(SQLiteStore, name, fail_once)
runpy.run_module("watcher", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("write", ["save_source", "enqueue"])
def test_a_write_failing_after_the_incident_was_saved_still_alerts_it_exactly_once(run, tmp_path, write):
    """Proves: when the disk fills up in the middle of a poll, after the new incident was saved
    but before the poll's own record (``save_source``; ``add_observation`` is the same case) or
    the alert (``enqueue``) is, the outage is still alerted, exactly once, on a later poll."""
    boot = tmp_path / "fail_once.py"
    boot.write_text(FAIL_ONCE)
    armed = tmp_path / "armed"
    w = run(boot=(str(boot), str(armed), write))
    armed.touch()
    w.vendor.set(SUMMARY, OUTAGE)
    w.until(lambda: not armed.exists())  # the write failed once
    w.keeps_polling(3)
    assert len(w.posts()) == 1, f"{len(w.posts())} alerts for one outage:\n{w.log}"
    assert w.rows("SELECT kind, state FROM incidents") == [("outage", "open")]


def test_a_database_error_repeated_on_every_poll_is_logged_once_per_window_with_its_count():
    """Proves: the log filter `watcher run` installs writes a warning or error repeated word for
    word once per window (the test above sees it live), then once more with how many it held
    back; other messages and INFO lines pass untouched, in both log formats."""
    now = [0.0]
    out = {}
    formatters = {"human": logs.HumanFormatter("%(levelname)s %(message)s"), "json": logs.JsonFormatter()}
    for fmt, formatter in formatters.items():
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(logs.RepeatFilter(window=300, clock=lambda: now[0]))
        log = logging.getLogger(f"test.repeat.{fmt}")
        log.addHandler(handler)
        log.propagate = False
        log.setLevel(logging.INFO)
        now[0] = 0.0
        for _ in range(60):  # a poll a second for a minute, every one failing alike
            log.error("%s: database error: %s", "anthropic/summary", "database or disk is full")
            log.info("anthropic/summary polled")
            now[0] += 1
        log.error("openai/summary: database error: database or disk is full")
        now[0] = 400
        log.error("%s: database error: %s", "anthropic/summary", "database or disk is full")
        log.removeHandler(handler)
        out[fmt] = stream.getvalue().splitlines()
    human = out["human"]
    errors = [line for line in human if line.startswith("ERROR")]
    assert errors == [
        "ERROR anthropic/summary: database error: database or disk is full",
        "ERROR openai/summary: database error: database or disk is full",
        "ERROR anthropic/summary: database error: database or disk is full (repeated 59 times in the last 400s)",
    ]
    assert sum(line.startswith("INFO") for line in human) == 60
    last = json.loads(out["json"][-1])
    assert last["repeated"] == 59 and last["msg"].endswith("(repeated 59 times in the last 400s)")
