"""The files an admin installs with: the systemd unit, the Dockerfile, the compose example."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent


def test_systemd_unit_is_hardened_and_uses_readiness_notification():
    unit = (ROOT / "systemd" / "watcher.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "StateDirectory=watcher",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
    ):
        assert line in unit, line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    watcher_bin = Path(sys.executable).parent / "watcher"
    unit = (ROOT / "systemd" / "watcher.service").read_text().replace("/opt/watcher/bin/watcher", str(watcher_bin))
    path = tmp_path / "watcher.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_dockerfile_runs_as_non_root_with_a_volume_and_a_healthcheck():
    d = (ROOT / "Dockerfile").read_text()
    assert "USER watcher" in d
    assert 'VOLUME ["/data"]' in d
    assert "HEALTHCHECK" in d
    assert "EXPOSE 8080" in d


def test_compose_example_keeps_secrets_out_and_the_port_on_localhost():
    c = yaml.safe_load((ROOT / "compose.yaml").read_text())
    svc = c["services"]["watcher"]
    assert svc["ports"] == ["127.0.0.1:8080:8080"]
    assert not any("TOKEN" in k or "PASSWORD" in k for k in svc.get("environment", {}))
    assert "watcher-data:/data" in svc["volumes"]


def test_dockerfile_example_gives_a_board_that_serves_and_the_database_in_the_volume():
    d = (ROOT / "Dockerfile").read_text()
    example = [ln for ln in d.splitlines() if ln.startswith("#")]
    run_lines = " ".join(example)
    assert "WATCHER_WEB__AUTH_TOKEN=" in run_lines, "bound beyond localhost, the board needs a login token"
    assert "-p 127.0.0.1:8080:8080" in run_lines
    assert "STATE_DIRECTORY=/data" in d, "`docker exec watcher watcher status` reads the daemon's database"


def test_local_config_and_secrets_are_ignored_by_git(tmp_path):
    for name in ("watcher.env", "watcher.toml", "slack-token", "email-password"):
        r = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", name])
        assert r.returncode == 0, f"{name} is not ignored by .gitignore"


def test_compose_also_shows_two_watchers_on_postgresql():
    c = yaml.safe_load((ROOT / "compose.yaml").read_text())
    cluster = [s for s in c["services"].values() if "WATCHER_STORAGE__URL" in (s.get("environment") or {})]
    assert len(cluster) == 2
    names = {s["environment"]["WATCHER_CLUSTER__NAME"] for s in cluster}
    assert len(names) == 2
    for s in cluster:
        # from the env; "-" keeps a plain `compose up` (the SQLite watcher alone) working when it is unset
        assert "${WATCHER_PG_PASSWORD:-}" in s["environment"]["WATCHER_STORAGE__URL"], "the password from the env"
        assert all(p.startswith("127.0.0.1:") for p in s["ports"])
    assert "postgres" in c["services"]
