"""The `watcher` command as a user runs it: a real process, a real config file, a local vendor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import store_backends
from conftest import fixture_bytes

# a fresh PostgreSQL schema per test (see store_backends.py)
pg_url = store_backends.pg_url

CLAUDE = "statuspage/summary-anthropic-claude-incident-2026-10-07.json"


def run(*args: str, env: dict | None = None, stdin: str | None = None, cwd: Path | None = None, timeout=60):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        cwd=cwd,
        timeout=timeout,
    )


def write_config(tmp_path: Path, server, body: str = "") -> Path:
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f"""
watch = ["anthropic"]
[storage]
path = "{tmp_path / "w.db"}"
[vendors.anthropic.sources.summary]
url = "{server.url("/api/v2/summary.json")}"
[vendors.anthropic.sources.incidents]
enabled = false
[vendors.anthropic.sources.maintenances]
enabled = false
[vendors.anthropic.sources.history]
enabled = false
{body}
"""
    )
    return cfg


def test_check_once_reports_claudes_open_incident_with_its_kind(vendor_server, tmp_path):
    vendor_server.set("/api/v2/summary.json", fixture_bytes(CLAUDE))
    cfg = write_config(tmp_path, vendor_server)
    res = run("check", "--once", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    [claude] = doc["vendors"]
    assert claude["vendor"] == "anthropic"
    assert claude["state"] == "degraded"
    [inc] = claude["incidents"]
    assert inc["title"] == "Elevated errors on platform.claude.com"
    assert inc["kind"] == "degradation"
    assert inc["status"] == "monitoring"
    assert inc["reason"]
    assert inc["url"] == "https://status.claude.com/incidents/978mjkgw6mh7"

    # the human table says the same
    res = run("check", "--once", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "anthropic" in res.stdout and "degraded" in res.stdout
    assert "Elevated errors on platform.claude.com" in res.stdout

    # and `status`/`incidents` read it back from the database without polling
    hits = vendor_server.hits["/api/v2/summary.json"]
    res = run("status", "--json", "--config", str(cfg))
    assert json.loads(res.stdout)["vendors"][0]["state"] == "degraded"
    res = run("incidents", "--open", "--vendor", "anthropic", "--config", str(cfg))
    assert "Elevated errors on platform.claude.com" in res.stdout
    assert "degradation" in res.stdout
    assert vendor_server.hits["/api/v2/summary.json"] == hits


def test_env_overrides_the_config_file(vendor_server, tmp_path):
    vendor_server.set("/elsewhere.json", fixture_bytes(CLAUDE))
    cfg = write_config(tmp_path, vendor_server)
    res = run(
        "check",
        "--json",
        env={
            "WATCHER_CONFIG": str(cfg),
            "WATCHER_VENDORS__ANTHROPIC__SOURCES__SUMMARY__URL": vendor_server.url("/elsewhere.json"),
        },
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["vendors"][0]["state"] == "degraded"
    assert vendor_server.hits["/elsewhere.json"] == 1


def test_no_network_reports_every_vendor_unknown_network_unreachable(tmp_path):
    """Whole default catalog, in a network namespace with no interface up: no vendor is called down."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("unshare -n not permitted here; covered in-process by test_fetch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env["WATCHER_STORAGE__PATH"] = str(tmp_path / "w.db")
    env["WATCHER_POLL__TIMEOUT"] = "5"
    res = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "watcher", "check", "--once", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    vendors = json.loads(res.stdout)["vendors"]
    assert len(vendors) >= 10
    for v in vendors:
        assert v["state"] == "unknown", v
        assert v["reason"] == "network unreachable", v
        assert v["incidents"] == []


def test_invalid_config_names_the_key_and_the_fix(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[poll]\ninterval = 0.5\ntimout = 3\n[vendors.anthropic.sources.summary]\nurl = "ftp://x"\n'
    )
    res = run("config", "check", "--config", str(cfg))
    assert res.returncode == 2
    assert "poll.interval" in res.stderr and "greater than or equal to 1" in res.stderr
    assert "WATCHER_POLL__INTERVAL" in res.stderr
    assert "poll.timout: unknown key" in res.stderr and "did you mean 'timeout'" in res.stderr
    assert "vendors.anthropic.sources.summary.url" in res.stderr
    assert "Traceback" not in res.stderr


def test_broken_toml_and_missing_file_are_clear_errors(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("watch = [openai\n")
    res = run("config", "check", "--config", str(cfg))
    assert res.returncode == 2 and "not valid TOML" in res.stderr
    res = run("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_unknown_vendor_id_is_refused(tmp_path):
    res = run("config", "check", env={"WATCHER_WATCH": '["openai", "chatgtp"]'})
    assert res.returncode == 2
    assert "chatgtp" in res.stderr and "openai" in res.stderr


def test_config_check_prints_what_will_be_watched(vendor_server, tmp_path):
    cfg = write_config(
        tmp_path,
        vendor_server,
        '[vendors.acme]\nname = "Acme AI"\n[vendors.acme.sources.main]\ntype = "statuspage"\nurl = "http://127.0.0.1:9/x"\n',
    )
    cfg.write_text(cfg.read_text().replace('watch = ["anthropic"]', 'watch = ["anthropic", "acme"]'))
    res = run("config", "check", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "2 vendors" in res.stdout
    assert "Acme AI" in res.stdout
    assert vendor_server.url("/api/v2/summary.json") in res.stdout


def test_classify_reads_json_lines_and_answers_in_order():
    lines = [
        {
            "title": "Elevated error rates on Claude Sonnet",
            "body": "Some requests are failing.",
            "impact": "minor",
        },
        {
            "title": "ChatGPT is unavailable",
            "body": "Users are unable to access ChatGPT.",
            "impact": "critical",
        },
        {
            "title": "gpt-4-0613 will be retired on 2027-01-14",
            "body": "Migrate to a newer model.",
            "vendor": "openai",
        },
        {
            "title": "Scheduled maintenance of the Console",
            "body": "Planned upgrade.",
            "impact": "maintenance",
        },
        {"title": "Incorrect and garbled responses from Gemini", "body": "Some answers were nonsensical."},
    ]
    res = run("classify", stdin="\n".join(json.dumps(x) for x in lines) + "\n")
    assert res.returncode == 0, res.stderr
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert [o["kind"] for o in out] == [
        "degradation",
        "outage",
        "api_change",
        "maintenance",
        "hallucination_spike",
    ]
    assert all(o["reason"] for o in out)


def test_classify_explain_prints_probabilities_and_features_in_order():
    lines = [
        {"title": "ChatGPT is unavailable", "body": "Users are unable to access ChatGPT."},
        {"title": "x"},
    ]
    res = run("classify", "--explain", stdin="\n".join(json.dumps(x) for x in lines) + "\n")
    assert res.returncode == 0, res.stderr
    out = [json.loads(x) for x in res.stdout.splitlines()]
    plain = [
        json.loads(x)
        for x in run("classify", stdin="\n".join(json.dumps(x) for x in lines)).stdout.splitlines()
    ]
    assert [o["kind"] for o in out] == [p["kind"] for p in plain]
    assert [o["reason"] for o in out] == [p["reason"] for p in plain]
    for o in out:
        assert set(o["probabilities"]) == {
            "outage",
            "degradation",
            "api_change",
            "hallucination_spike",
            "maintenance",
        }
        assert o["features"] and all(f["weight"] > 0 for f in o["features"])


def test_classify_reports_a_bad_line_and_goes_on():
    res = run("classify", stdin='not json\n{"title": "API is down", "body": ""}\n')
    assert res.returncode == 1
    first, second = (json.loads(x) for x in res.stdout.splitlines())
    assert "line 1" in first["error"]
    assert second["kind"] == "outage"


def test_health_fails_before_any_poll_and_passes_after(vendor_server, tmp_path):
    vendor_server.set("/api/v2/summary.json", fixture_bytes(CLAUDE))
    cfg = write_config(tmp_path, vendor_server)
    res = run("health", "--config", str(cfg))
    assert res.returncode == 1 and "no database" in res.stderr
    assert run("check", "--config", str(cfg)).returncode == 0
    res = run("health", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "1 of 1 sources answering" in res.stdout
    res = run("health", "--max-age", "0", "--config", str(cfg))
    assert res.returncode == 1 and "last poll" in res.stderr


def test_health_says_none_answering_right_now_once_a_source_has_answered_and_stopped(vendor_server, tmp_path):
    """'none yet' is for a watcher whose sources never answered; one that did and stopped is 'right now'."""
    vendor_server.set("/api/v2/summary.json", fixture_bytes(CLAUDE))
    cfg = write_config(tmp_path, vendor_server)
    assert run("check", "--config", str(cfg)).returncode == 0
    vendor_server.set("/api/v2/summary.json", b"", status=503)
    run("check", "--config", str(cfg))
    res = run("health", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "0 of 1 sources answering (none right now:" in res.stdout


def test_one_dead_host_is_not_called_a_network_outage(vendor_server, tmp_path, monkeypatch):
    """DNS fails for one vendor's host while another vendor answers: that host's problem, not ours."""
    import asyncio
    import socket

    from watcher.catalog import resolve
    from watcher.cli.common import vendor_statuses
    from watcher.config import load_settings
    from watcher.daemon import poll_all_once
    from watcher.store.sqlite import SQLiteStore

    vendor_server.set("/api/v2/summary.json", fixture_bytes(CLAUDE))
    cfg = write_config(
        tmp_path,
        vendor_server,
        '[vendors.gone]\nname = "Gone AI"\n[vendors.gone.sources.summary]\ntype = "statuspage"\n'
        'url = "https://status.gone-vendor.test/api/v2/summary.json"\n',
    )
    cfg.write_text(cfg.read_text().replace('watch = ["anthropic"]', 'watch = ["anthropic", "gone"]'))
    real = socket.getaddrinfo

    def dns(host, *args, **kwargs):
        if host == "status.gone-vendor.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    settings = load_settings(cfg)
    vendors = resolve(settings)
    store = SQLiteStore(settings.storage.path)
    asyncio.run(poll_all_once(settings, vendors, store))
    states = {s.vendor.id: s for s in vendor_statuses(settings, store, vendors)}
    store.close()
    assert states["anthropic"].state.value == "degraded"
    assert states["gone"].state.value == "unknown"
    assert "DNS cannot resolve status.gone-vendor.test" in states["gone"].reason
    assert "network unreachable" not in states["gone"].reason


# -- on PostgreSQL ----------------------------------------------------------------------------------


def with_password(url: str, netloc: str | None = None) -> str:
    """The URL with a password (ignored by the test server's trust auth), and another host:port if given."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = netloc or parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:s3cret@{host}"))


def test_config_check_names_the_postgres_database_without_its_password(vendor_server, tmp_path, pg_url):
    from watcher.store.postgres import redact_url

    cfg = write_config(tmp_path, vendor_server)
    url = with_password(pg_url)
    res = run("config", "check", "--config", str(cfg), env={"WATCHER_STORAGE__URL": url})
    assert res.returncode == 0, res.stderr
    assert f"database {redact_url(url)}" in res.stdout and ":***@" in res.stdout
    assert str(tmp_path / "w.db") not in res.stdout
    res = run("config", "check", "--json", "--config", str(cfg), env={"WATCHER_STORAGE__URL": url})
    assert json.loads(res.stdout)["database"] == redact_url(url)
    assert "s3cret" not in res.stdout + res.stderr


def test_health_on_postgres_fails_before_any_poll_passes_after_and_when_the_server_is_down(
    vendor_server, tmp_path, pg_url
):
    vendor_server.set("/api/v2/summary.json", fixture_bytes(CLAUDE))
    cfg = write_config(tmp_path, vendor_server)
    env = {"WATCHER_STORAGE__URL": with_password(pg_url)}
    res = run("health", "--config", str(cfg), env=env)
    assert res.returncode == 1 and "nothing polled yet" in res.stderr, res.stderr
    assert run("check", "--config", str(cfg), env=env).returncode == 0
    res = run("health", "--config", str(cfg), env=env)
    assert res.returncode == 0, res.stderr
    assert "1 of 1 sources answering" in res.stdout
    assert not (tmp_path / "w.db").exists(), "nothing was written to the SQLite file"
    # the server is gone: a closed port on 127.0.0.1
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = {"WATCHER_STORAGE__URL": with_password(pg_url, f"127.0.0.1:{closed}")}
    res = run("health", "--config", str(cfg), env=down)
    assert res.returncode == 1
    assert f"unhealthy: PostgreSQL at 127.0.0.1:{closed} is unreachable" in res.stderr, res.stderr
    assert "s3cret" not in res.stdout + res.stderr
