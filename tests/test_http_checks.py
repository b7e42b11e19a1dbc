"""HTTP checks (type = "http"): a tool with no status API, watched by asking the tool itself.

Real HTTP servers on 127.0.0.1 stand in for the tools; the daemon runs as a real
process (`watcher run`), and the smaller tests drive the real pipeline on a real
SQLite file. Nothing inside watcher is mocked.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import scenario
import store_backends
from daemon_harness import free_port, start_daemon, wait_for

from watcher.catalog import resolve
from watcher.catalog.checks import parse_condition
from watcher.config import ConfigError, load_settings
from watcher.fetch import make_client
from watcher.pipeline import Pipeline
from watcher.store.sqlite import SQLiteStore

backend = store_backends.backend  # the tests that take it run on SQLite and on PostgreSQL
CHANNEL = "C0MKTG"
APP = "/jasper/app"
OPENAI = "/openai/api/v2/summary.json"
JASPER_LINE = "Marketing content quality, brand voice and integrations"


# -- the settings ------------------------------------------------------------------------------


def test_json_conditions_are_a_small_safe_language():
    body = {"status": {"indicator": "none"}, "data": [{"id": "gpt"}], "latency_ms": 120}
    assert parse_condition('status.indicator == "none"').holds(body) == (True, "")
    assert parse_condition("data[0].id exists").holds(body)[0]
    assert parse_condition("data[0].id").holds(body)[0]
    assert parse_condition("latency_ms < 500").holds(body)[0]
    assert parse_condition('status.indicator != "major"').holds(body)[0]
    assert parse_condition('status.indicator == "major"').holds(body) == (False, 'status.indicator is "none"')
    assert parse_condition("data[3].id exists").holds(body) == (False, "data[3].id is missing")
    assert parse_condition("status < 3").holds(body)[1].endswith("not a number")
    for bad in ("__import__('os')", "a ==", "a == nope", 'a < "x"', "a exists b", "== 1"):
        with pytest.raises(ValueError):
            parse_condition(bad)


def _settings(tmp_path: Path, text: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "w.toml"
    cfg.write_text(text)
    return load_settings(cfg)


@pytest.mark.parametrize(
    ("setting", "key", "words"),
    [
        ('must_match = "(a"', "vendors.acme.sources.app.must_match", "RE2"),
        ('must_match = "(\\\\w)\\\\1"', "vendors.acme.sources.app.must_match", "backreferences"),
        ("json_condition = 'status = 1'", "vendors.acme.sources.app.json_condition", "expected =="),
        ("expect_status = [700]", "vendors.acme.sources.app.expect_status", "status code"),
        ('method = "DELETE"', "vendors.acme.sources.app.method", "GET, HEAD, POST"),
        ('api_key_env = "WATCHER_TEST_UNSET_KEY"', "vendors.acme.sources.app.api_key_env", "not set"),
        (
            'headers = { Authorization = "Bearer x" }',
            "vendors.acme.sources.app.headers.Authorization",
            "api_key_env",
        ),
        ("fail_after = 0", "vendors.acme.sources.app.fail_after", "whole number"),
        ('method = "HEAD"\nmust_contain = "x"', "vendors.acme.sources.app.must_contain", "HEAD"),
    ],
)
def test_invalid_check_settings_name_the_key(tmp_path, setting, key, words):
    settings = _settings(
        tmp_path,
        f"""
[vendors.acme]
name = "Acme"
[vendors.acme.sources.app]
type = "http"
url = "https://app.acme.example/"
{setting}
""",
    )
    with pytest.raises(ConfigError) as e:
        resolve(settings)
    assert str(e.value).startswith(key + ":"), str(e.value)
    assert words in str(e.value)


def test_http_settings_on_another_source_type_are_refused(tmp_path):
    settings = _settings(tmp_path, '[vendors.openai.sources.summary]\nmust_contain = "x"\n')
    with pytest.raises(ConfigError, match=r'^vendors\.openai\.sources\.summary\.must_contain: only .*"http"'):
        resolve(settings)


def test_watcher_run_refuses_a_bad_check_at_start(tmp_path):
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f"""
watch = ["jasper"]
[storage]
path = "{tmp_path / "w.db"}"
[vendors.jasper.sources.app]
json_condition = "status.indicator === 1"
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "vendors.jasper.sources.app.json_condition" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_default_catalog_has_no_vendor_without_a_source(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "without a source" not in proc.stdout
    assert "no machine-readable status source" not in proc.stdout
    for vid in ("jasper", "copyai", "writesonic", "rytr", "midjourney", "canva", "notion"):
        assert f"  {vid} " in proc.stdout


# -- the whole path, through `watcher run` ---------------------------------------------------------


def _events(db: Path, incident_id: int) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT type, text FROM incident_events WHERE incident_id = ? ORDER BY id", [incident_id]
        ).fetchall()


def _incidents(db: Path, vendor: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT id, kind, state, title, reason FROM incidents WHERE vendor = ? ORDER BY id", [vendor]
            ).fetchall()
    except sqlite3.OperationalError:
        return []


def test_a_jasper_stand_in_goes_down_loses_its_keyword_slows_and_recovers(
    vendor_server, slack_server, tmp_path
):
    slack_server.add_channel(CHANNEL)
    page = "<html><title>Jasper</title><body>Welcome to Jasper</body></html>"
    vendor_server.set(APP, page, content_type="text/html")
    vendor_server.set(OPENAI, scenario.operational())
    vendor_server.set("/control", b"ok")
    db = tmp_path / "w.db"
    cfg = tmp_path / "w.toml"
    web_port = free_port()
    cfg.write_text(
        f"""
watch = ["openai", "jasper"]
[storage]
path = "{db}"
[poll]
interval = 1
timeout = 3
[web]
port = {web_port}
[cluster]
location = "paris"
[probes]
control_urls = ["{vendor_server.url("/control")}"]
[vendors.openai.sources.summary]
url = "{vendor_server.url(OPENAI)}"
[vendors.openai.sources.incidents]
enabled = false
[vendors.openai.sources.feed]
enabled = false
[vendors.jasper.sources.app]
url = "{vendor_server.url(APP)}"
interval = 1
must_contain = "Welcome to Jasper"
max_latency = 0.6
fail_after = 2
recover_after = 2
slow_after = 2
[vendors.jasper.sources.api]
enabled = false
[[routes]]
name = "marketing"
slack_channels = ["{CHANNEL}"]
[slack]
base_url = "{slack_server.api_url}"
"""
    )
    proc = start_daemon(cfg, env={"WATCHER_SLACK__TOKEN": slack_server.token})
    try:
        # healthy: Jasper measured, then OpenAI goes down and its alert offers Jasper, with its line
        wait_for(lambda: vendor_server.hits[APP] >= 3, proc)
        vendor_server.set(
            OPENAI,
            scenario.incident(
                ("investigating", "ChatGPT is unavailable for all users.", "2026-10-07T13:01:00Z"),
                name="ChatGPT unavailable",
            ),
        )
        [msg] = wait_for(lambda: slack_server.messages(CHANNEL), proc)
        text = msg.all_text()
        assert "ChatGPT unavailable" in text
        switch = text[text.index("Switch to") :]
        assert "Jasper" in switch and "operational" in switch and " ms" in switch
        assert JASPER_LINE in switch, switch
        vendor_server.set(OPENAI, scenario.operational())
        wait_for(lambda: all(i[2] == "resolved" for i in _incidents(db, "openai")), proc)

        # 503: an outage that says what was measured, from where, since when
        vendor_server.set(APP, "<html>Service Unavailable</html>", status=503, content_type="text/html")
        [(outage_id, kind, state, title, reason)] = wait_for(lambda: _incidents(db, "jasper"), proc)
        assert (kind, state) == ("outage", "open")
        assert "127.0.0.1" in title and title.startswith("Jasper")
        assert "answered 503 on 2 checks in a row from paris; first at " in reason
        wait_for(
            lambda: any("127.0.0.1 is not working" in m.all_text() for m in slack_server.messages(CHANNEL)),
            proc,
        )

        # 200 without the keyword: still the same outage, updated with the new finding
        vendor_server.set(APP, "<html>Please log in</html>", content_type="text/html")
        wait_for(
            lambda: any("without “Welcome to Jasper”" in t for _ty, t in _events(db, outage_id)),
            proc,
        )
        assert [i[0] for i in _incidents(db, "jasper")] == [outage_id]
        reason = wait_for(lambda: (r := _incidents(db, "jasper")[0][4]) and "without" in r and r, proc)
        assert "(before that: answered 503)" in reason

        # slow but right: the outage resolves after 2 good checks, a degradation opens after 2 slow ones
        vendor_server.set(APP, page, content_type="text/html", delay=1.0)
        slow = wait_for(
            lambda: [i for i in _incidents(db, "jasper") if i[1] == "degradation" and i[2] == "open"],
            proc,
            timeout=30,
        )
        assert _incidents(db, "jasper")[0][2] == "resolved"
        assert (
            "took 1.0 s" in slow[0][4] and "(threshold 600 ms)" in slow[0][4] and "from paris" in slow[0][4]
        )

        # back to normal: the degradation resolves
        vendor_server.set(APP, page, content_type="text/html")
        wait_for(lambda: all(i[2] == "resolved" for i in _incidents(db, "jasper")), proc, timeout=30)
        assert len(_incidents(db, "jasper")) == 2

        status = subprocess.run(
            [sys.executable, "-m", "watcher", "status", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "jasper" in status.stdout and "app answered 200 in" in status.stdout, status.stdout
        board = httpx.get(f"http://127.0.0.1:{web_port}/", timeout=10)
        assert board.status_code == 200
        assert "Jasper" in board.text and "app answered 200 in" in board.text
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_watcher_check_once_shows_an_http_only_vendor(vendor_server, tmp_path):
    vendor_server.set("/app", "<title>Acme Writer</title>", content_type="text/html")
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f"""
watch = ["acme"]
[storage]
path = "{tmp_path / "w.db"}"
[vendors.acme]
name = "Acme Writer"
[vendors.acme.sources.app]
type = "http"
url = "{vendor_server.url("/app")}"
must_contain = "Acme"
"""
    )
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "--once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "acme" in proc.stdout and "operational" in proc.stdout and "app answered 200 in" in proc.stdout


def test_alternatives_closest_to_the_same_job_come_first():
    from watcher.alerts.engine import best_first
    from watcher.alerts.model import Alternative

    alts = best_first(
        [
            Alternative("midjourney", "Midjourney", "operational", latency_ms=90.0, match=0),
            Alternative("anthropic", "Anthropic", "degraded", latency_ms=50.0, match=2),
            Alternative("jasper", "Jasper", "operational", latency_ms=400.0, match=2, note="Marketing copy"),
            Alternative("rytr", "Rytr", "operational", latency_ms=200.0, match=2),
        ]
    )
    assert [a.vendor for a in alts] == ["rytr", "jasper", "midjourney", "anthropic"]


# -- is it them or us? and several locations -----------------------------------------------------


def _pipeline(
    tmp_path: Path, url: str, control: str, *, location: str = "paris", lease=None, db=None, stores=None
):
    settings = _settings(
        tmp_path,
        f"""
watch = ["jasper"]
[storage]
path = "{db or tmp_path / "w.db"}"
[poll]
timeout = 2
[cluster]
location = "{location}"
[probes]
control_urls = ["{control}"]
[vendors.jasper.sources.app]
url = "{url}"
[vendors.jasper.sources.api]
enabled = false
""",
    )
    vendors = resolve(settings)
    store = stores.open(location=location) if stores is not None else SQLiteStore(settings.storage.path)
    return settings, vendors, store, lease


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/"


def test_nothing_is_counted_against_a_vendor_while_our_own_network_is_down(vendor_server, tmp_path):
    vendor_server.set("/control", b"ok")
    dead = _closed_port_url()
    settings, vendors, store, _ = _pipeline(tmp_path, dead, dead)
    [spec] = vendors[0].sources
    t0 = datetime(2026, 12, 1, 10, 42, tzinfo=UTC)

    async def polls(n: int, start: int) -> None:
        async with make_client(user_agent="t") as client:
            for i in range(n):
                now = t0 + timedelta(minutes=start + i)
                await Pipeline(store, client, settings, vendors, clock=lambda now=now: now).poll(spec)

    asyncio.run(polls(4, 0))  # the tool and every control host refuse: our network
    assert store.open_incidents("jasper") == []
    rec = store.source("jasper/app")
    assert rec.error_kind == "network" and "our network is down" in rec.error
    assert store.detector_state("http:jasper/app")["down"]["fails_in_row"] == 0

    settings.probes.control_urls = [vendor_server.url("/control")]  # the network is back; the tool is not
    asyncio.run(polls(3, 10))
    [inc] = store.open_incidents("jasper")
    assert inc.kind.value == "outage"
    assert (
        "did not answer (connection refused by 127.0.0.1) on 3 checks in a row from paris; first at 10:52"
        in inc.reason
    )
    store.close()


def test_in_a_cluster_a_failure_is_declared_only_when_two_locations_see_it(vendor_server, tmp_path, backend):
    vendor_server.set("/ok", "Welcome to Jasper", content_type="text/html")
    vendor_server.set("/down", "oops", status=502, content_type="text/html")
    vendor_server.set("/control", b"ok")
    db = tmp_path / "shared.db"
    control = vendor_server.url("/control")
    leader = SimpleNamespace(shared=True, leading=True, epoch=1)
    follower = SimpleNamespace(shared=True, leading=False, epoch=1)
    paris = _pipeline(
        tmp_path / "p", vendor_server.url("/down"), control, location="paris", lease=leader, db=db
    )
    lyon = _pipeline(
        tmp_path / "l", vendor_server.url("/ok"), control, location="lyon", lease=follower, db=db
    )
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    async def rounds(n: int, start: int) -> None:
        async with make_client(user_agent="t") as client:
            for i in range(n):
                now = t0 + timedelta(minutes=start + i)
                for settings, vendors, store, lease in (lyon, paris):
                    p = Pipeline(store, client, settings, vendors, clock=lambda now=now: now, lease=lease)
                    await p.poll(vendors[0].sources[0])

    asyncio.run(rounds(4, 0))  # paris sees 502s, lyon sees the app: paris's own problem
    assert paris[2].open_incidents("jasper") == []

    vendor_server.set("/ok", "oops", status=502, content_type="text/html")  # now lyon sees it too
    asyncio.run(rounds(3, 10))
    [inc] = paris[2].open_incidents("jasper")
    assert "answered 502" in inc.reason and "from lyon and paris" in inc.reason
    assert "first at 09:00" in inc.reason  # paris saw it first
    for _s, _v, store, _l in (paris, lyon):
        store.close()


def test_a_certificate_close_to_expiry_is_shown_with_the_source(tmp_path, caplog):
    import http.server
    import ssl
    import threading

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=5, hours=1))

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"Welcome to Jasper"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/"
        settings, vendors, store, _ = _pipeline(tmp_path, url, url)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)

        async def poll() -> None:
            async with httpx.AsyncClient(verify=client_ctx) as client:
                await Pipeline(store, client, settings, vendors).poll(vendors[0].sources[0])

        asyncio.run(poll())
        summary = store.source("jasper/app").summary
        assert summary["cert_days_left"] == pytest.approx(5.0, abs=0.1)
        assert summary["check"].endswith("its TLS certificate expires in 5 days")
        assert "its TLS certificate expires in 5 days" in caplog.text
        store.close()
    finally:
        server.shutdown()


def test_the_app_and_the_api_failing_together_are_one_incident(vendor_server, tmp_path, backend):
    vendor_server.set("/app", "Welcome to Jasper", content_type="text/html")
    vendor_server.set("/api", b'{"ok": true}')
    vendor_server.set("/control", b"ok")
    api = vendor_server.url("/api").replace("127.0.0.1", "localhost")
    settings = _settings(
        tmp_path,
        f"""
watch = ["jasper"]
[storage]
path = "{tmp_path / "w.db"}"
[cluster]
location = "paris"
[probes]
control_urls = ["{vendor_server.url("/control")}"]
[vendors.jasper.sources.app]
url = "{vendor_server.url("/app")}"
[vendors.jasper.sources.api]
url = "{api}"
expect_status = [200]
json_condition = "ok == true"
""",
    )
    vendors = resolve(settings)
    store = backend.open(location="paris")
    t0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

    async def rounds(n: int, start: int) -> None:
        async with make_client(user_agent="t") as client:
            for i in range(n):
                now = t0 + timedelta(minutes=start + i)
                for spec in vendors[0].sources:
                    await Pipeline(store, client, settings, vendors, clock=lambda now=now: now).poll(spec)

    vendor_server.set("/app", "oops", status=503, content_type="text/html")
    asyncio.run(rounds(3, 0))
    [inc] = store.open_incidents("jasper")
    assert inc.title == "Jasper: 127.0.0.1 is not working for watcher's checks"

    vendor_server.set("/api", b'{"ok": false}')  # the API fails too, later: the same incident
    asyncio.run(rounds(3, 5))
    [inc2] = store.open_incidents("jasper")
    assert inc2.id == inc.id
    assert "127.0.0.1 and localhost" in inc2.title
    assert "localhost answered 200 but ok == true does not hold (ok is false)" in inc2.reason
    texts = [e.event.text for e in store.events(inc.id)]
    assert any(t.startswith("Since 10:05: localhost answered 200 but") for t in texts), texts

    vendor_server.set("/app", "Welcome to Jasper", content_type="text/html")  # the app is back, not the API
    asyncio.run(rounds(3, 10))
    [inc3] = store.open_incidents("jasper")
    assert inc3.id == inc.id and "127.0.0.1" not in inc3.reason

    vendor_server.set("/api", b'{"ok": true}')
    asyncio.run(rounds(2, 15))
    assert store.open_incidents("jasper") == []
    store.close()


def test_the_api_key_comes_from_the_environment_and_is_never_logged_or_stored(
    vendor_server, tmp_path, monkeypatch, caplog
):
    secret = "sk-live-very-secret-4242"
    monkeypatch.setenv("ACME_API_KEY", secret)
    vendor_server.set("/v1/health", b'{"status": "degraded"}')
    settings = _settings(
        tmp_path,
        f"""
watch = ["acme"]
[storage]
path = "{tmp_path / "w.db"}"
[vendors.acme]
name = "Acme"
[vendors.acme.sources.api]
type = "http"
url = "{vendor_server.url("/v1/health")}"
json_condition = 'status == "ok"'
headers = {{ "Accept-Language" = "fr" }}
api_key_env = "ACME_API_KEY"
api_key_header = "X-Api-Key"
api_key_prefix = ""
fail_after = 1
""",
    )
    vendors = resolve(settings)
    store = SQLiteStore(settings.storage.path)

    async def poll() -> None:
        async with make_client(user_agent="t") as client:
            await Pipeline(store, client, settings, vendors).poll(vendors[0].sources[0])

    with caplog.at_level("DEBUG"):
        asyncio.run(poll())
    sent = {k.lower(): v for k, v in vendor_server.request_headers["/v1/health"].items()}
    assert sent["x-api-key"] == secret and sent["accept-language"] == "fr"
    [inc] = store.open_incidents("acme")
    assert 'status == "ok" does not hold (status is "degraded")' in inc.reason
    store.close()
    assert secret not in caplog.text
    for f in tmp_path.glob("w.db*"):  # the database and its WAL
        assert secret.encode() not in f.read_bytes(), f


def test_the_incident_says_what_was_measured_in_french_in_the_teams_time_zone(vendor_server, tmp_path):
    vendor_server.set("/app", "oops", status=503, content_type="text/html")
    settings = _settings(
        tmp_path,
        f"""
watch = ["jasper"]
[storage]
path = "{tmp_path / "w.db"}"
[cluster]
location = "paris"
[alerts]
locale = "fr"
timezone = "Europe/Paris"
[vendors.jasper.sources.app]
url = "{vendor_server.url("/app")}"
[vendors.jasper.sources.api]
enabled = false
""",
    )
    vendors = resolve(settings)
    store = SQLiteStore(settings.storage.path)
    t0 = datetime(2026, 12, 1, 9, 42, tzinfo=UTC)

    async def polls(n: int) -> None:
        async with make_client(user_agent="t") as client:
            for i in range(n):
                now = t0 + timedelta(minutes=i)
                await Pipeline(store, client, settings, vendors, clock=lambda now=now: now).poll(
                    vendors[0].sources[0]
                )

    asyncio.run(polls(2))
    assert store.open_incidents("jasper") == []
    assert (
        store.source("jasper/app").summary["check"] == "answered 503 (2 failed in a row; an outage needs 3)"
    )
    asyncio.run(polls(1))
    [inc] = store.open_incidents("jasper")
    assert inc.title == "Jasper : 127.0.0.1 ne fonctionne pas lors des vérifications de watcher"
    assert inc.reason == "127.0.0.1 a répondu 503 à 3 vérifications de suite depuis paris ; première à 10:42"
    store.close()
