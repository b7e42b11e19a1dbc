"""``/healthz`` and ``/metrics`` over real HTTP, on a real store.

``/metrics`` is parsed with prometheus-client's own parser and every figure is
checked against what was put in the store. ``/healthz`` is made unhealthy the
ways it happens on a server: the database file and its directory made
read-only, a full disk, another process holding the database locked, and
sources that stopped answering.

About read-only as root: root ignores file permissions (CAP_DAC_OVERRIDE), so a
chmod alone proves nothing when the tests run as root, as in many containers.
The read-only test therefore runs the watcher side in a child process; as root,
that child is started through util-linux ``setpriv`` with CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH dropped from its bounding set, so it obeys permissions like
the unprivileged ``watcher`` user of the systemd unit (DynamicUser) or the
Docker image. The child opens the store, answers ``/healthz`` (200), makes its
own database file and directory read-only with chmod, and answers again (503,
``read_only``). (Dropping to uid ``nobody`` instead fails where the interpreter
lives under /root.) The full-disk test mounts a tiny tmpfs in a private mount
namespace (``unshare -m``) and is skipped where that is not permitted.

Every test that takes ``world`` runs on SQLite and on PostgreSQL (a fresh schema,
tests/store_backends.py); the file-only failures (read-only, full disk, locked by another
process) are SQLite's alone; PostgreSQL's own failures are made real too: the server
going away under a running store (a TCP proxy on 127.0.0.1 that the test cuts),
another session holding the health row locked, and a role whose new sessions are
read-only (as after a failover to a standby).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import store_backends
from prometheus_client.parser import text_string_to_metric_families
from tcp_proxy import TcpProxy

from watcher import health
from watcher.alerts.model import Alert, AlertAction
from watcher.catalog import resolve
from watcher.config import Settings
from watcher.incidents.model import Incident, IncidentState
from watcher.metrics import PollMetrics
from watcher.model import IncidentKind, IncidentStatus
from watcher.store.base import SourceRecord
from watcher.store.sqlite import SQLiteStore
from watcher.web import ops
from watcher.web.app import create_app, make_server
from watcher.web.context import WebContext

# the fixtures that run a test on SQLite and on PostgreSQL (see store_backends.py)
backend, pg_url = store_backends.backend, store_backends.pg_url

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


class Served:
    """The app under uvicorn in a thread, on a free 127.0.0.1 port."""

    def __init__(self, app):
        self.server = make_server(app, "127.0.0.1", 0)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15, trust_env=False)
        return self.http

    def __exit__(self, *exc) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)


def settings_for(tmp_path, **extra) -> Settings:
    base = {
        "watch": ["anthropic", "openai"],
        "storage": {"path": str(tmp_path / "w.db")},
        "probes": {"vendors": {"openai": {"model": "gpt-4o-mini", "daily_tokens": 20000, "daily_cost": 0.5}}},
    }
    base.update(extra)
    return Settings.model_validate(base)


def summary_specs(vendors):
    return {v.id: next(s for s in v.sources if s.id == "summary") for v in vendors}


def save(store, spec, *, ok_at: datetime | None, polls: int = 1, failures: int = 0, error: str | None = None):
    store.save_source(
        SourceRecord(
            spec.key,
            spec.vendor,
            spec.type,
            spec.url,
            last_polled_at=NOW - timedelta(seconds=5),
            last_success_at=ok_at,
            error=error,
            error_kind="timeout" if error else None,
            polls=polls,
            failures=failures,
        )
    )


def fresh_sources(store, vendors, at: datetime = NOW) -> None:
    for v in vendors:
        for s in v.sources:
            save(store, s, ok_at=at - timedelta(seconds=20))


def incident(store, vendor: str, kind: IncidentKind, *, open_: bool = True, title: str = "Errors") -> int:
    inc = Incident(
        vendor=vendor,
        title=title,
        kind=kind,
        reason="test",
        opened_at=NOW - timedelta(hours=2),
        updated_at=NOW - timedelta(hours=1),
        state=IncidentState.OPEN if open_ else IncidentState.RESOLVED,
        status=IncidentStatus.INVESTIGATING if open_ else IncidentStatus.RESOLVED,
        resolved_at=None if open_ else NOW - timedelta(hours=1),
    )
    inc.keys.add(f"k-{vendor}-{kind}-{open_}-{title}")
    return store.save_incident(inc, [])


def alert(iid: int) -> Alert:
    return Alert(
        incident_id=iid,
        vendor="anthropic",
        vendor_name="Anthropic",
        title="Errors",
        kind="outage",
        reason="test",
        state="open",
        status="investigating",
        action=AlertAction.OPENED,
    )


def enqueue(store, iid: int, channel: str, target: str, at: datetime) -> int:
    return store.enqueue(
        incident_id=iid, action=AlertAction.OPENED, channel=channel, target=target, route="r", alert=alert(iid), now=at
    )


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(got, name: str, **labels) -> float:
    return got[(name, frozenset(labels.items()))]


def world_on(tmp_path, store, settings) -> WebContext:
    return WebContext(
        settings, store, resolve(settings), started_at=NOW - timedelta(days=1), clock=lambda: NOW, runtime={}
    )


@pytest.fixture
def world(tmp_path, backend):
    """The web context on each store: SQLite on a file, PostgreSQL in a fresh schema."""
    ctx = world_on(tmp_path, backend.open(), settings_for(tmp_path, storage=backend.storage))
    yield ctx
    ctx.store.close()


@pytest.fixture
def sqlite_world(tmp_path):
    """The web context on a SQLite file, for what only a file can do (another process locking it)."""
    settings = settings_for(tmp_path)
    ctx = world_on(tmp_path, SQLiteStore(settings.storage.path), settings)
    yield ctx
    ctx.store.close()


def app_for(ctx):
    return create_app(None, signing_secret=None, ack_secret=None, extra_routes=ops.routes(ctx))


# -- /metrics -------------------------------------------------------------------------------------


def test_metrics_are_prometheus_text_with_the_figures_from_the_store_and_the_process(world, backend):
    ctx, store = world, world.store
    specs = summary_specs(ctx.vendors)
    save(store, specs["anthropic"], ok_at=NOW - timedelta(seconds=30), polls=120)
    save(store, specs["openai"], ok_at=NOW - timedelta(hours=2), polls=80, failures=3, error="timed out")

    incident(store, "anthropic", IncidentKind.OUTAGE)
    incident(store, "anthropic", IncidentKind.DEGRADATION, title="Slow")
    incident(store, "anthropic", IncidentKind.OUTAGE, open_=False, title="Old")
    iid = incident(store, "openai", IncidentKind.API_CHANGE)

    t = NOW - timedelta(minutes=30)
    a = enqueue(store, iid, "slack", "C1", t)  # delivered at the first try
    store.claim(a, t)
    store.mark_delivered(a, t)
    b = enqueue(store, iid, "slack", "C2", t)  # two failures, then delivered
    for _ in range(2):
        store.claim(b, t)
        store.mark_retry(b, t, t, "Slack is having trouble")
    store.claim(b, t)
    store.mark_delivered(b, t)
    c = enqueue(store, iid, "email", "a@example.com", t)  # dead after 4 tries
    for _ in range(3):
        store.claim(c, t)
        store.mark_retry(c, t, t, "cannot reach SMTP")
    store.claim(c, t)
    store.mark_dead(c, t, "gave up")
    enqueue(store, iid, "email", "b@example.com", NOW - timedelta(minutes=7))  # due 7 min ago, unsent

    for i, ttft in enumerate([0.2, 0.4, 0.6, 0.8, 1.0]):
        store.add_probe_result(
            {"vendor": "openai", "kind": "chat", "at": NOW - timedelta(minutes=10 + i), "ok": True, "ttft_s": ttft,
             "canary": "sum", "passed": i != 0, "tokens_in": 10, "tokens_out": 5}
        )
    store.add_probe_result({"vendor": "openai", "kind": "chat", "at": NOW - timedelta(hours=3), "ok": True, "ttft_s": 9.0})
    store.add_probe_result({"vendor": "openai", "kind": "chat", "at": NOW - timedelta(minutes=3), "ok": False,
                            "error_class": "timeout"})
    store.save_budget_state(
        "_all",
        {"format": 1, "vendors": {"openai": {"day": NOW.date().isoformat(), "spent_tokens": 1234,
                                             "spent_cost": "0.0123", "stopped": False, "overruns": 0}}},
        NOW,
    )

    recorder = PollMetrics()
    recorder.observe_poll("openai", "openai/summary", 0.07)
    recorder.observe_poll("openai", "openai/summary", 3.0, "timeout")
    recorder.observe_poll("openai", "openai/summary", 12.0, "timeout")
    recorder.observe_poll("anthropic", "anthropic/summary", 0.3)
    ctx.runtime.update(scheduler_running=True, polls=42, metrics=recorder)

    with Served(app_for(ctx)) as http:
        resp = http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    got = samples(resp.text)

    assert value(got, "watcher_scheduler_running") == 1
    assert value(got, "watcher_process_polls_total") == 42
    assert value(got, "watcher_start_time_seconds") == (NOW - timedelta(days=1)).timestamp()
    assert value(got, "watcher_source_polls_total", vendor="anthropic", source="anthropic/summary") == 120
    assert value(got, "watcher_source_polls_total", vendor="openai", source="openai/summary") == 80
    assert value(got, "watcher_source_up", vendor="openai", source="openai/summary") == 0
    assert value(got, "watcher_source_up", vendor="anthropic", source="anthropic/summary") == 1
    assert value(got, "watcher_source_consecutive_failures", vendor="openai", source="openai/summary") == 3
    assert value(got, "watcher_source_last_success_age_seconds", vendor="openai", source="openai/summary") == 7200
    assert value(got, "watcher_source_poll_errors_total", vendor="openai", source="openai/summary", kind="timeout") == 2
    h = {"vendor": "openai", "source": "openai/summary"}
    assert value(got, "watcher_poll_duration_seconds_count", **h) == 3
    assert value(got, "watcher_poll_duration_seconds_sum", **h) == pytest.approx(15.07)
    assert value(got, "watcher_poll_duration_seconds_bucket", le="0.1", **h) == 1
    assert value(got, "watcher_poll_duration_seconds_bucket", le="5.0", **h) == 2
    assert value(got, "watcher_poll_duration_seconds_bucket", le="+Inf", **h) == 3

    assert value(got, "watcher_open_incidents", vendor="anthropic", kind="outage") == 1
    assert value(got, "watcher_open_incidents", vendor="anthropic", kind="degradation") == 1
    assert value(got, "watcher_open_incidents", vendor="openai", kind="api_change") == 1
    assert value(got, "watcher_open_incidents", vendor="openai", kind="outage") == 0

    assert value(got, "watcher_outbox_notifications", channel="slack", state="delivered") == 2
    assert value(got, "watcher_outbox_notifications", channel="email", state="dead") == 1
    assert value(got, "watcher_outbox_notifications", channel="email", state="pending") == 1
    assert value(got, "watcher_outbox_oldest_due_age_seconds") == pytest.approx(420, abs=1)
    assert value(got, "watcher_deliveries_total", channel="slack") == 2
    assert value(got, "watcher_deliveries_total", channel="email") == 0
    assert value(got, "watcher_delivery_failures_total", channel="slack") == 2
    assert value(got, "watcher_delivery_failures_total", channel="email") == 4
    assert value(got, "watcher_notifications_dead_total", channel="email") == 1

    assert value(got, "watcher_probe_ttft_recent_seconds", vendor="openai", quantile="0.5") == pytest.approx(0.6)
    assert value(got, "watcher_probe_ttft_recent_seconds", vendor="openai", quantile="0.9") == pytest.approx(0.92)
    assert value(got, "watcher_probe_ttft_last_seconds", vendor="openai") == pytest.approx(0.2)
    assert value(got, "watcher_probe_requests_recent", vendor="openai", result="ok") == 6
    assert value(got, "watcher_probe_requests_recent", vendor="openai", result="failed") == 1
    assert value(got, "watcher_canary_answers_recent", vendor="openai", result="passed") == 4
    assert value(got, "watcher_canary_answers_recent", vendor="openai", result="failed") == 1
    assert value(got, "watcher_canary_pass_ratio", vendor="openai") == pytest.approx(0.8)
    assert value(got, "watcher_probe_budget_spent_tokens", vendor="openai") == 1234
    assert value(got, "watcher_probe_budget_spent_cost", vendor="openai") == pytest.approx(0.0123)
    assert value(got, "watcher_probe_budget_limit_tokens", vendor="openai") == 20000
    assert value(got, "watcher_db_rows", table="probe_results") == 7
    assert value(got, "watcher_db_rows", table="notifications") == 4
    assert value(got, "watcher_db_rows", table="incidents") == 4
    assert value(got, "watcher_db_size_bytes") > 0
    if backend.kind == "sqlite":
        assert value(got, "watcher_db_free_bytes") >= 0
    else:  # no free-page figure on PostgreSQL: the family is there, without a sample
        assert not any(name == "watcher_db_free_bytes" for name, _ in got)
        assert "# TYPE watcher_db_free_bytes gauge" in resp.text
    assert value(got, "watcher_scrape_errors") == 0


def test_metrics_say_whether_this_instance_leads_its_cluster(world):
    ctx = world
    with Served(app_for(ctx)) as http:
        alone = samples(http.get("/metrics").text)
        assert not [k for k in alone if k[0] == "watcher_cluster_leader"], "no cluster gauge on a lone instance"
        ctx.runtime.update(cluster=True, instance="b", location="virginia", leader=False)
        follower = samples(http.get("/metrics").text)
        ctx.runtime["leader"] = True
        leader = samples(http.get("/metrics").text)
    assert value(follower, "watcher_cluster_leader", instance="b", location="virginia") == 0
    assert value(leader, "watcher_cluster_leader", instance="b", location="virginia") == 1


def test_metrics_of_two_apps_do_not_mix(tmp_path, backend):
    """No global registry: each app reports its own store and runtime (two databases)."""
    out = []
    for n in (1, 2):
        d = tmp_path / str(n)
        other = backend if n == 1 else backend.another(d)
        settings = settings_for(d, storage=other.storage)
        store = other.open()
        vendors = resolve(settings)
        for _ in range(n):
            incident(store, "openai", IncidentKind.OUTAGE, title=f"t{_}")
        ctx = WebContext(settings, store, vendors, clock=lambda: NOW, runtime={"polls": n})
        out.append(samples(ops.metrics_text(ctx).decode()))
        store.close()
    assert value(out[0], "watcher_open_incidents", vendor="openai", kind="outage") == 1
    assert value(out[1], "watcher_open_incidents", vendor="openai", kind="outage") == 2
    assert value(out[0], "watcher_process_polls_total") == 1
    assert value(out[1], "watcher_process_polls_total") == 2


# -- /healthz --------------------------------------------------------------------------------------


def test_healthz_is_200_with_every_check_when_all_is_well(world, backend):
    fresh_sources(world.store, world.vendors)
    world.runtime.update(scheduler_running=True, polls=9)
    with Served(app_for(world)) as http:
        resp = http.get("/healthz")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] is True and body["reasons"] == []
    assert body["process"]["up"] is True
    assert body["scheduler"] == {"running": True, "polls": 9}
    assert body["database"]["writable"] is True
    if backend.kind == "sqlite":
        assert body["database"]["backend"] == "sqlite" and body["database"]["free_bytes"] > 0
    else:
        assert body["database"]["backend"] == "postgresql" and body["database"]["server"] == pg_server()
    assert body["sources"]["stale"] == 0
    item = next(i for i in body["sources"]["items"] if i["source"] == "openai/summary")
    assert item["age_seconds"] == 20 and item["stale"] is False
    # the check really wrote: the row is there
    assert world.store.meta_get(ops.HEALTH_META_KEY) == NOW.isoformat(timespec="seconds")


def test_healthz_shows_each_source_age_and_one_stale_source_is_not_unhealthy(world):
    fresh_sources(world.store, world.vendors)
    specs = summary_specs(world.vendors)
    save(world.store, specs["openai"], ok_at=NOW - timedelta(hours=3), error="timed out", failures=40)
    with Served(app_for(world)) as http:
        resp = http.get("/healthz")
    assert resp.status_code == 200, resp.text
    items = {i["source"]: i for i in resp.json()["sources"]["items"]}
    assert items["openai/summary"]["stale"] is True
    assert items["openai/summary"]["age_seconds"] == 3 * 3600
    assert items["openai/summary"]["error"] == "timed out"
    assert items["anthropic/summary"]["stale"] is False
    assert resp.json()["sources"]["stale"] == 1


def test_healthz_is_503_when_every_source_is_stale(world):
    fresh_sources(world.store, world.vendors, at=NOW - timedelta(hours=1))
    with Served(app_for(world)) as http:
        resp = http.get("/healthz")
    assert resp.status_code == 503
    [reason] = resp.json()["reasons"]
    assert "no source has answered for 3620s" in reason


def test_healthz_gives_a_fresh_start_time_to_poll(world):
    world.started_at = NOW - timedelta(seconds=30)  # nothing polled yet, but just started
    with Served(app_for(world)) as http:
        assert http.get("/healthz").status_code == 200
    world.started_at = NOW - timedelta(hours=2)
    with Served(app_for(world)) as http:
        resp = http.get("/healthz")
    assert resp.status_code == 503
    assert "no source has answered ever" in resp.json()["reasons"][0]


def test_healthz_is_503_when_the_scheduler_stopped(world):
    fresh_sources(world.store, world.vendors)
    world.runtime["scheduler_running"] = False
    with Served(app_for(world)) as http:
        resp = http.get("/healthz")
    assert resp.status_code == 503
    assert resp.json()["reasons"] == ["scheduler is not running: nothing is being polled"]


def test_healthz_does_not_hang_on_a_database_locked_by_another_process(sqlite_world, monkeypatch):
    """SQLite only: a file locked by another process (PostgreSQL's row lock is tested further down)."""
    world = sqlite_world
    monkeypatch.setattr(health, "DB_BUSY_TIMEOUT", 0.5)  # the checks live in watcher.health
    fresh_sources(world.store, world.vendors)
    other = sqlite3.connect(str(world.store.path), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # an admin's sqlite3 shell in the middle of a write
    try:
        with Served(app_for(world)) as http:
            t0 = time.monotonic()
            resp = http.get("/healthz")
            took = time.monotonic() - t0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert resp.status_code == 503
    db = resp.json()["database"]
    assert db["writable"] is False and db["problem"] == "locked"
    assert took < 3, f"/healthz took {took:.1f}s"
    assert "another process holds the database locked" in resp.json()["reasons"][0]


CHILD = textwrap.dedent(
    """
    import json, os, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from starlette.testclient import TestClient
    from watcher.catalog import resolve
    from watcher.config import Settings
    from watcher.store.base import SourceRecord
    from watcher.store.sqlite import SQLiteStore
    from watcher.web import ops
    from watcher.web.app import create_app
    from watcher.web.context import WebContext

    d = Path(sys.argv[1])
    action = sys.argv[2]
    settings = Settings.model_validate({"watch": ["openai"], "storage": {"path": str(d / "w.db")}})
    store = SQLiteStore(settings.storage.path)
    vendors = resolve(settings)
    now = datetime.now(UTC)
    for v in vendors:
        for s in v.sources:
            store.save_source(SourceRecord(s.key, s.vendor, s.type, s.url, last_success_at=now, polls=1))
    ctx = WebContext(settings, store, vendors, runtime={"scheduler_running": True})
    client = TestClient(create_app(None, signing_secret=None, ack_secret=None, extra_routes=ops.routes(ctx)))

    def ask():
        r = client.get("/healthz")
        return {"status": r.status_code, "body": r.json()}

    out = {"before": ask()}
    if action == "read-only":
        for p in d.iterdir():
            p.chmod(0o444)
        d.chmod(0o555)
    elif action == "fill":
        ops.MIN_FREE_BYTES = int(sys.argv[3])
        try:
            with open(d / "filler", "wb") as f:
                while True:
                    f.write(b"\\0" * 65536)
                    f.flush()
        except OSError:
            pass
    out["after"] = ask()
    print(json.dumps(out))
    """
)


def run_child(args: list[str], **kw) -> dict:
    proc = subprocess.run(
        [*args], capture_output=True, text=True, timeout=60, cwd=str(ROOT), **kw
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _as_ordinary_user() -> list[str] | None:
    """A command prefix under which the child obeys file permissions, or None if none works here.

    Not root: nothing to do. Root: drop the capabilities that let root ignore
    permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the child's bounding
    set with util-linux ``setpriv``; the child stays uid 0 (it can still run the
    interpreter under /root) but a 0444 file or a 0555 directory now stops it,
    as it stops the ``watcher`` user of the systemd unit or the Docker image.
    """
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None:
        return None
    d = Path(tempfile.mkdtemp(prefix="watcher-cap-", dir="/tmp"))
    try:
        d.chmod(0o555)
        probe = subprocess.run([*prefix, "sh", "-c", f'touch "{d}/x"'], capture_output=True)
        return prefix if probe.returncode != 0 else None
    finally:
        d.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)


def test_healthz_is_503_when_the_database_file_and_its_directory_are_made_read_only():
    """SQLite only: file permissions (PostgreSQL's read-only case is a read-only role, below)."""
    prefix = _as_ordinary_user()
    if prefix is None:
        pytest.skip("running as root without setpriv: a chmod cannot stop this process")
    d = Path(tempfile.mkdtemp(prefix="watcher-ro-", dir="/tmp"))
    script = d.parent / (d.name + ".py")
    script.write_text(CHILD)
    try:
        out = run_child([*prefix, sys.executable, str(script), str(d), "read-only"])
    finally:
        d.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)
        script.unlink()
    assert out["before"]["status"] == 200, out["before"]
    after = out["after"]
    assert after["status"] == 503, after
    db = after["body"]["database"]
    assert db["writable"] is False
    assert db["problem"] == "read_only", db
    assert "read-only" in after["body"]["reasons"][0]


def _unshare_mount_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
         "mount -t tmpfs -o size=64k tmpfs /tmp"],
        capture_output=True,
    )
    return probe.returncode == 0


def test_healthz_is_503_when_the_disk_is_full():
    """SQLite only (a file on a full disk): a 4 MB tmpfs of its own, filled up while watcher runs on it.

    SQLite itself may still take a tiny write on a full disk (it reuses WAL
    frames after a checkpoint), so the check also looks at the free space next to
    the file: less than ``MIN_FREE_BYTES`` is unhealthy before the next
    checkpoint or migration fails.
    """
    if not _unshare_mount_ok():
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (needs CAP_SYS_ADMIN)")
    d = Path(tempfile.mkdtemp(prefix="watcher-full-", dir="/tmp"))
    script = d.parent / (d.name + ".py")
    script.write_text(CHILD)
    try:
        out = run_child(
            ["unshare", "-m", "sh", "-c",
             f'mount -t tmpfs -o size=4m tmpfs "{d}" && '
             f'exec "{sys.executable}" "{script}" "{d}" fill {ops.MIN_FREE_BYTES}']
        )
    finally:
        shutil.rmtree(d, ignore_errors=True)
        script.unlink()
    assert out["before"]["status"] == 200, out["before"]
    after = out["after"]
    assert after["status"] == 503, after
    assert after["body"]["database"]["problem"] == "disk_full", after["body"]["database"]
    assert after["body"]["database"]["free_bytes"] < ops.MIN_FREE_BYTES
    assert "disk holding the database is full" in after["body"]["reasons"][0]


def test_sqlite_errors_are_told_apart(tmp_path):
    """The real errors SQLite raises map to the problems /healthz names."""
    from watcher.store.maintenance import sqlite_problem
    conn = sqlite3.connect(str(tmp_path / "x.db"), isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("PRAGMA max_page_count = 2")  # the database may not grow: SQLITE_FULL, as on a full disk
    with pytest.raises(sqlite3.OperationalError) as full:
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 4000,)] * 10)
    assert sqlite_problem(full.value) == "disk_full"
    ro = sqlite3.connect(f"file:{tmp_path / 'x.db'}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as readonly:
        ro.execute("INSERT INTO t VALUES (1)")
    assert sqlite_problem(readonly.value) == "read_only"
    conn.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(str(tmp_path / "x.db"), timeout=0.05)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("INSERT INTO t VALUES (1)")
    assert sqlite_problem(locked.value) == "locked"
    conn.execute("ROLLBACK")
    gone = ops.check_database_sync(tmp_path / "missing" / "w.db", NOW)
    assert gone.problem == "cannot_open" and not gone.writable


# -- /healthz on PostgreSQL ----------------------------------------------------------------------


def pg_world(tmp_path, url: str) -> WebContext:
    from watcher.store.postgres import PostgresStore

    settings = settings_for(tmp_path, storage={"url": url})
    store = PostgresStore(url)
    vendors = resolve(settings)
    fresh_sources(store, vendors)
    runtime = {"scheduler_running": True}
    return WebContext(settings, store, vendors, started_at=NOW - timedelta(days=1), clock=lambda: NOW, runtime=runtime)


def pg_server() -> str:
    """``host:port`` of the test PostgreSQL server."""
    from watcher.store.postgres import server_address

    return server_address(store_backends.PG_BASE_URL)


def with_netloc(url: str, netloc: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(netloc=netloc))


def test_healthz_is_503_naming_postgres_unreachable_when_the_server_goes_away(pg_url, tmp_path):
    """The store was opened and working; then the server vanished (a TCP proxy, cut). No password is shown."""
    host, port = pg_server().rsplit(":", 1)
    with TcpProxy(int(port), host) as proxy:
        url = with_netloc(pg_url, f"postgres:s3cret@127.0.0.1:{proxy.port}")
        ctx = pg_world(tmp_path, url)
        try:
            with Served(app_for(ctx)) as http:
                ok = http.get("/healthz")
                proxy.cut()
                t0 = time.monotonic()
                gone = http.get("/healthz")
                took = time.monotonic() - t0
        finally:
            ctx.store.close()
    assert ok.status_code == 200, ok.text
    assert ok.json()["database"]["server"] == f"127.0.0.1:{proxy.port}"
    assert gone.status_code == 503, gone.text
    db = gone.json()["database"]
    assert db["writable"] is False and db["problem"] == "unreachable", db
    assert f"PostgreSQL at 127.0.0.1:{proxy.port} is unreachable" in db["error"]
    reasons = gone.json()["reasons"]
    assert any("PostgreSQL does not answer" in r for r in reasons), reasons
    assert any(r.startswith("cannot read sources from the database") for r in reasons), reasons
    assert "s3cret" not in gone.text and "s3cret" not in ok.text
    assert took < 8, f"/healthz took {took:.1f}s"


def test_healthz_stays_200_when_the_stores_postgres_connection_is_terminated(pg_url, tmp_path):
    """A connection killed by the server (pg_terminate_backend, a restart) is reopened: not unhealthy."""
    import psycopg

    ctx = pg_world(tmp_path, pg_url)
    try:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [ctx.store._conn.info.backend_pid])
        with Served(app_for(ctx)) as http:
            resp = http.get("/healthz")
    finally:
        ctx.store.close()
    assert resp.status_code == 200, resp.text
    assert resp.json()["sources"]["fresh"] == resp.json()["sources"]["total"] > 0


def test_healthz_does_not_hang_on_a_postgres_row_locked_by_another_session(pg_url, tmp_path, monkeypatch):
    import psycopg

    monkeypatch.setattr(health, "DB_BUSY_TIMEOUT", 0.5)  # the checks live in watcher.health
    ctx = pg_world(tmp_path, pg_url)
    try:
        with Served(app_for(ctx)) as http:
            assert http.get("/healthz").status_code == 200  # the health row exists now
            with psycopg.connect(pg_url) as other:  # an admin's psql in the middle of a transaction
                other.execute("SELECT * FROM meta WHERE key = %s FOR UPDATE", [ops.HEALTH_META_KEY])
                t0 = time.monotonic()
                resp = http.get("/healthz")
                took = time.monotonic() - t0
                other.rollback()
            assert http.get("/healthz").status_code == 200, "healthy again once the lock is gone"
    finally:
        ctx.store.close()
    assert resp.status_code == 503, resp.text
    db = resp.json()["database"]
    assert db["writable"] is False and db["problem"] == "locked", db
    assert took < 3, f"/healthz took {took:.1f}s"
    assert "pg_stat_activity" in resp.json()["reasons"][0]


def test_healthz_is_503_read_only_when_postgres_refuses_writes(tmp_path):
    """New sessions of watcher's role become read-only (what a failover to a standby does to it)."""
    import uuid

    import psycopg

    store_backends.need_postgres()
    base = store_backends.PG_BASE_URL
    role, schema = "w_ro_" + uuid.uuid4().hex[:10], "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
    try:
        url = store_backends.schema_url(schema, with_netloc(base, f"{role}@{pg_server()}"))
        ctx = pg_world(tmp_path, url)
        try:
            with Served(app_for(ctx)) as http:
                ok = http.get("/healthz")
                with psycopg.connect(base, autocommit=True) as admin:
                    admin.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
                resp = http.get("/healthz")
        finally:
            ctx.store.close()
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            admin.execute(f"DROP ROLE IF EXISTS {role}")
    assert ok.status_code == 200, ok.text
    assert resp.status_code == 503, resp.text
    db = resp.json()["database"]
    assert db["writable"] is False and db["problem"] == "read_only", db
    assert "read-only transaction" in db["error"]
    assert "standby" in resp.json()["reasons"][0]
