"""`watcher probe` and `watcher baseline` as an admin runs them, against a fake vendor API."""

from __future__ import annotations

import json

from test_cli import run
from test_probe_runner import REFERENCE


def config(tmp_path, llm_server, vendor_server, **extra) -> str:
    vendor_server.set("/control", b"ok")
    cfg = tmp_path / "p.toml"
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in extra.items())
    cfg.write_text(
        f"""
watch = ["mistral"]
[storage]
path = "{tmp_path / "w.db"}"
[vendors.mistral.sources.summary]
enabled = false
[probes]
canaries_per_run = 3
control_urls = ["{vendor_server.url("/control")}"]
[probes.vendors.mistral]
base_url = "{llm_server.base("openai")}"
format = "openai"
model = "mistral-small"
{lines}
"""
    )
    return str(cfg)


def test_probe_prints_each_request_and_its_score(tmp_path, llm_server, vendor_server):
    llm_server.openai.set(answer_fn=lambda p: REFERENCE.get(p, "?"), models=["mistral-small"])
    cfg = config(tmp_path, llm_server, vendor_server)
    env = {"WATCHER_PROBES__VENDORS__MISTRAL__KEY": llm_server.key("openai")}
    r = run("probe", "mistral", "--config", cfg, env=env)
    assert r.returncode == 0, r.stderr
    assert "models list" in r.stdout and "canary" in r.stdout and "pass" in r.stdout
    assert "budget today" in r.stdout
    assert llm_server.key("openai") not in r.stdout + r.stderr, "the key is never printed"
    j = run("probe", "--json", "--config", cfg, env=env)
    [out] = json.loads(j.stdout)["probes"]  # one document
    assert out["network"]["ok"] and len(out["requests"]) == 4
    assert all(q["ok"] for q in out["requests"])
    b = run("baseline", "--config", cfg, env=env)
    assert b.returncode == 0, b.stderr
    assert "quality" in b.stdout and "latency" in b.stdout and "outage" in b.stdout
    assert "learning" in b.stdout, "a fresh baseline says it is still learning"


def test_probe_without_a_key_says_how_to_set_one(tmp_path, llm_server, vendor_server):
    cfg = config(tmp_path, llm_server, vendor_server)
    r = run("probe", "--config", cfg)
    assert r.returncode != 0
    assert "WATCHER_PROBES__VENDORS__" in r.stderr


def test_a_probe_run_that_finds_trouble_queues_its_alert_with_the_incident(tmp_path, vendor_server):
    """`watcher probe` alerts as the daemon does: the alert planned before the incident's write
    transaction (Pipeline plan_alerts, the engine's plan) and its outbox row written inside it, with the
    incident's id, links and playbook. Here the vendor API and the control hosts are both unreachable:
    our own network is down, which opens watcher's own notice (and no vendor outage)."""
    from test_probe_runner import closed_port

    from watcher.model import SELF_VENDOR
    from watcher.store.sqlite import SQLiteStore

    cfg = tmp_path / "p.toml"
    cfg.write_text(
        f"""
watch = ["mistral"]
[storage]
path = "{tmp_path / "w.db"}"
[vendors.mistral.sources.summary]
enabled = false
[[routes]]
name = "m"
slack_channels = ["C0MKTG"]
[alerts]
public_url = "https://watcher.example.com"
[probes]
canaries_per_run = 1
control_urls = ["http://127.0.0.1:{closed_port()}/"]
[probes.vendors.mistral]
base_url = "http://127.0.0.1:{closed_port()}/v1"
format = "openai"
model = "mistral-small"
"""
    )
    r = run("probe", "--config", str(cfg), env={"WATCHER_PROBES__VENDORS__MISTRAL__KEY": "sk-test"})
    assert r.returncode == 0, r.stderr
    assert "network: DOWN" in r.stdout
    store = SQLiteStore(tmp_path / "w.db")
    try:
        [notice] = store.incidents(vendor=SELF_VENDOR)
        assert store.incidents(vendor="mistral") == [], "no vendor outage while our network is down"
        [row] = store.notifications(limit=10)
    finally:
        store.close()
    assert (row.incident_id, row.action.value) == (notice.id, "opened")
    assert (row.channel, row.target) == ("slack", "C0MKTG")
    assert row.alert.incident_id == notice.id, "the id given inside the transaction, after planning"
    assert row.alert.incident_url and row.alert.incident_url.endswith(f"/incidents/{notice.id}")
    assert row.alert.playbook, "the playbook, rendered before the transaction, is in the queued alert"
    o = run("outbox", "--json", "--config", str(cfg))
    [shown] = json.loads(o.stdout)["notifications"]
    assert shown["incident_id"] == notice.id and shown["state"] == "pending"
