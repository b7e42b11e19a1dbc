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
