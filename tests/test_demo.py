"""``watcher demo``: the recorded incident replayed end to end, with no accounts and no internet."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from watcher import demo

ROOT = Path(__file__).resolve().parent.parent


def check_story(text: str) -> None:
    # the vendor's state changes
    assert "◆ Anthropic: operational → degraded" in text
    assert "◆ Anthropic: degraded → operational" in text
    # the incident opens, is updated, resolves
    assert "● incident #1 [degradation] opened: Elevated errors on platform.claude.com" in text
    assert "status_changed: investigating → identified" in text
    assert "● incident #1 [degradation] resolved" in text
    # the alert and its playbook, as plain text
    assert "✉ Alert to marketing-oncall@example.com (opened): [watcher] Anthropic degradation" in text
    # a usage-page incident ("Core functionality is not affected"): the notice playbook, not
    # "expect failed requests" (issue 13)
    for part in (
        "What this means for the team",
        "- blog drafts",
        "Do now",
        "Nothing to change in your work",
        "Core functionality is not affected, says Anthropic.",
    ):
        assert part in text, part
    assert "failed requests" not in text
    assert "**" not in text and "###" not in text, "the plain part carries no Markdown marks"
    # the real text/plain part of the email (issue 16, finding 8), not a retouched copy of it
    email = text.split("┌─ the email, as plain text", 1)[1].split("└─", 1)[0]
    assert "\n    │ -- \n" in email and "This is an automated message: replies are not read." in email
    assert re.search(r"\n    │ =+\n", email), "headings are underlined as in the real part"
    # acknowledged half-way, then resolved with the recording's duration
    assert "Sam (marketing) clicks Acknowledge" in text
    assert "(acknowledged by Sam (marketing))" in text
    assert re.search(r"\(resolved\): .*\(resolved after 8 hr 49 min\)", text)
    assert "alerts: 6 (opened delivered, updated delivered, updated delivered, acknowledged delivered" in text


def test_demo_replays_the_recorded_incident_on_the_console():
    out = io.StringIO()
    t0 = time.monotonic()
    assert demo.main(["--speed", "1000", "--no-web"], out=out) == 0
    assert time.monotonic() - t0 < 20
    check_story(out.getvalue())


def test_demo_ignores_the_users_watcher_settings(monkeypatch, tmp_path):
    """A real database or a real Slack route in the environment must not be touched by the demo."""
    monkeypatch.setenv("WATCHER_STORAGE__PATH", str(tmp_path / "production.db"))
    monkeypatch.setenv("WATCHER_ROUTES", '[{"name": "prod", "slack_channels": ["C0PROD"]}]')
    out = io.StringIO()
    assert demo.main(["--speed", "1000", "--no-web"], out=out) == 0
    assert not (tmp_path / "production.db").exists()
    assert "C0PROD" not in out.getvalue()
    check_story(out.getvalue())


def test_demo_scenes_come_from_the_real_recording():
    plan = demo.scenes()
    assert [s.title.split(":")[-1].strip() for s in plan[1:5]] == ["investigating", "investigating", "identified", "monitoring"]
    assert plan[1].update.startswith("We are investigating elevated errors affecting usage data")
    assert [s.at.strftime("%H:%M") for s in plan] == ["13:20", "13:26", "16:37", "17:29", "21:45", "22:14"]


def test_demo_needs_no_network_but_loopback():
    """In a network namespace of its own (only loopback, brought up), through the real CLI."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("unshare -n not permitted here")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` to bring loopback up in the namespace")
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", f'ip link set lo up && exec "{sys.executable}" -m watcher demo --speed 1000 --no-web'],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    check_story(proc.stdout)


class _Lines(io.StringIO):
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def write(self, s):
        with self.lock:
            return super().write(s)

    def text(self) -> str:
        with self.lock:
            return self.getvalue()


def test_demo_serves_the_web_app_while_it_runs():
    out = _Lines()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(asyncio.run(demo.run_demo(speed=15, web=True, port=0, out=out))), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    url = None
    while time.monotonic() < deadline and url is None:
        m = re.search(r"\(also (http://127\.0\.0\.1:\d+)/metrics\)", out.text())
        url = m.group(1) if m else None
        time.sleep(0.02)
    assert url, out.text()
    with httpx.Client(base_url=url, timeout=5, trust_env=False) as http:
        health = http.get("/healthz")
        metrics = http.get("/metrics")
        board = http.get("/")
    thread.join(timeout=60)
    assert result == [0], out.text()
    assert health.status_code == 200, health.text
    assert health.json()["scheduler"]["running"] is True
    assert "watcher_source_polls_total" in metrics.text
    assert board.status_code in (200, 404)  # the board when installed (watcher.web.board)
    if board.status_code == 200:
        assert "Anthropic" in board.text


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WATCHER_")}
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_demo_speaks_the_language_of_locale_or_of_the_config(tmp_path):
    """``watcher demo --locale fr`` (as the README says), and ``alerts.locale`` of the config by default."""
    french, english = "démo de watcher : un vrai incident", "watcher demo: a real incident"
    res = run_cli("demo", "--locale", "fr", "--speed", "1000", "--no-web", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert french in res.stdout and english not in res.stdout
    cfg = tmp_path / "fr.toml"
    cfg.write_text('[alerts]\nlocale = "fr"\n')
    res = run_cli("-c", str(cfg), "demo", "--speed", "1000", "--no-web", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert french in res.stdout
    # the flag wins over the config; and ./watcher.toml is found like by every other command
    (tmp_path / "watcher.toml").write_text(cfg.read_text())
    res = run_cli("demo", "--locale", "en", "--speed", "1000", "--no-web", cwd=tmp_path)
    assert res.returncode == 0 and english in res.stdout and french not in res.stdout, res.stderr
    res = run_cli("demo", "--speed", "1000", "--no-web", cwd=tmp_path)
    assert res.returncode == 0 and french in res.stdout, res.stderr
    # an unknown language is refused with the choices, not played in English
    res = run_cli("demo", "--locale", "de", cwd=tmp_path)
    assert res.returncode == 2 and "'en', 'fr'" in res.stderr


def test_demo_with_a_broken_config_says_so_instead_of_ignoring_it(tmp_path):
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[alerts\n")
    res = run_cli("demo", "-c", str(cfg), "--no-web", cwd=tmp_path)
    assert res.returncode == 2 and "not valid TOML" in res.stderr and "Traceback" not in res.stderr
