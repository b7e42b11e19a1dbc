"""The first hour of a new admin (issue 16): every command run as a real process, as a newcomer would."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from conftest import fixture_bytes
from daemon_harness import email_toml, slack_toml, start_daemon, wait_for
from smtp_server import PASSWORD, USERNAME
from test_cli import CLAUDE, run, write_config
from test_health_rule import failing_for

REPO = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def no_traceback(res) -> None:
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert lines and lines[-1].startswith(("watcher", "usage")) or "error:" in res.stderr, res.stderr


# -- finding 1 and 10: global options anywhere, --version ------------------------------------------


def test_config_given_before_the_command_is_used(vendor_server, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[poll]\ninterval = 0\n")
    res = run("-c", str(broken), "config", "check")
    assert res.returncode == 2 and "poll.interval" in res.stderr, res.stdout
    vendor_server.set("/api/v2/summary.json", fixture_bytes(CLAUDE))
    cfg = write_config(tmp_path, vendor_server)
    assert run("-c", str(cfg), "check").returncode == 0
    res = run("--config", str(cfg), "status", "--json", cwd=tmp_path.parent)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["vendors"][0]["vendor"] == "anthropic"


def test_version():
    res = run("--version")
    assert res.returncode == 0
    from watcher import __version__

    assert res.stdout.strip() == f"watcher {__version__}"


# -- finding 7: no traceback reaches a user ---------------------------------------------------------


def test_errors_are_one_line_with_their_fix_never_a_traceback(tmp_path):
    res = run("show", "99999999999999999999", cwd=tmp_path)
    assert res.returncode == 2 and "not an incident number" in res.stderr
    no_traceback(res)
    res = run("demo", "--port", "99999", "--no-web")
    assert res.returncode == 2 and "1 to 65535" in res.stderr
    no_traceback(res)
    assert not (tmp_path / "watcher.db").exists()


def test_ctrl_c_in_classify_is_one_line():
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    p = subprocess.Popen(
        [sys.executable, "-m", "watcher", "classify"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    p.stdin.write('{"title": "API is down", "body": ""}\n')
    p.stdin.flush()
    assert json.loads(p.stdout.readline())["kind"]  # it is now waiting on stdin
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130
    assert "Traceback" not in err and err.strip() == "watcher: interrupted"


# -- finding 10: --json is one document, also when empty ------------------------------------------


def test_json_is_one_document_per_command_also_when_empty(vendor_server, tmp_path):
    vendor_server.set("/api/v2/summary.json", b'{"page": {"id": "x", "name": "Claude"}, "components": [], "incidents": [],'
                      b' "scheduled_maintenances": [], "status": {"indicator": "none", "description": "ok"}}')
    cfg = write_config(tmp_path, vendor_server)
    assert run("check", "--config", str(cfg)).returncode == 0
    res = run("incidents", "--json", "--config", str(cfg))
    assert res.returncode == 0 and json.loads(res.stdout) == {"incidents": []}
    res = run("outbox", "--json", "--config", str(cfg))
    assert res.returncode == 0 and json.loads(res.stdout) == {"notifications": []}
    res = run("status", "--json", "--config", str(cfg))
    doc = json.loads(res.stdout)
    assert doc["database"] == str(tmp_path / "w.db") and doc["probe_budgets"] == []


# -- finding 2: alerts that go nowhere are said so ----------------------------------------------------


def test_test_alert_with_no_target_says_so_and_fails(tmp_path):
    cfg = tmp_path / "watcher.toml"
    cfg.write_text((REPO / "config.example.toml").read_text())  # the shipped example: a route with no target
    res = run("test-alert", "--config", str(cfg))
    assert res.returncode == 2
    assert "no target" in res.stderr and "marketing" in res.stderr
    res = run("config", "check", "--config", str(cfg))
    assert res.returncode == 1
    assert "route marketing: has no slack_channels" in res.stdout


def doctor_config(tmp_path, slack, smtp, routes: str, extra: str = "", web_port: int | None = None) -> Path:
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f"""
watch = ["anthropic"]
{routes}
[probes]
control_urls = ["{slack.url}/"]
[web]
port = {web_port or closed_port()}
{slack_toml(slack)}{email_toml(smtp, timeout=5)}{extra}
"""
    )
    return cfg


def test_doctor_tries_every_credential_for_real_without_posting(tmp_path, slack_server, smtp_server):
    slack_server.set_channel("C0PUBLIC01")
    slack_server.set_channel("C0OUTSIDE1", member=False)
    slack_server.set_channel("G0PRIVATE1", private=True, member=False)
    cfg = doctor_config(
        tmp_path,
        slack_server,
        smtp_server,
        '[[routes]]\nname = "team"\nslack_channels = ["C0PUBLIC01", "C0OUTSIDE1", "G0PRIVATE1", "C0MISSING1"]\n'
        'emails = ["team@example.com"]\n',
    )
    env = {"WATCHER_SLACK__TOKEN": slack_server.token, "WATCHER_EMAIL__PASSWORD": PASSWORD,
           "SSL_CERT_FILE": str(smtp_server.ca_file)}
    res = run("doctor", "--config", str(cfg), env=env)
    out = res.stdout
    assert res.returncode == 1, out + res.stderr
    line = {ln.split(":")[0].split(None, 1)[1]: ln for ln in out.splitlines() if ln[:4] in ("ok  ", "warn", "FAIL")}
    assert line["route team"].startswith("ok") and "slack:C0PUBLIC01" in line["route team"]
    assert line["slack token"].startswith("ok") and "auth.test" in line["slack token"]
    assert line["slack channel C0PUBLIC01"].startswith("ok")
    assert line["slack channel C0OUTSIDE1"].startswith("ok") and "chat:write.public" in line["slack channel C0OUTSIDE1"]
    assert line["slack channel G0PRIVATE1"].startswith("FAIL") and "/invite @watcher" in line["slack channel G0PRIVATE1"]
    assert line["slack channel C0MISSING1"].startswith("FAIL") and "Copy link" in line["slack channel C0MISSING1"]
    assert line["smtp"].startswith("ok") and f"login as {USERNAME}" in line["smtp"]
    assert line["database"].startswith("ok") and str(tmp_path / "watcher.db") in line["database"]
    assert line["web.port"].startswith("ok") and line["network"].startswith("ok")
    assert slack_server.all_messages() == [] and smtp_server.messages == [], "the doctor never posts"
    assert not slack_server.calls("chat.postMessage")

    # a wrong token, a refused SMTP login, a busy web port: each one line with its fix
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    cfg = doctor_config(
        tmp_path, slack_server, smtp_server, '[[routes]]\nname = "team"\nslack_channels = ["C0PUBLIC01"]\n'
        'emails = ["team@example.com"]\n', web_port=busy.getsockname()[1]
    )
    env.update(WATCHER_SLACK__TOKEN="xoxb-wrong", WATCHER_EMAIL__PASSWORD="nope")
    res = run("doctor", "--json", "--config", str(cfg), env=env)
    busy.close()
    doc = json.loads(res.stdout)
    assert res.returncode == 1 and doc["ok"] is False
    by = {c["check"]: c for c in doc["checks"]}
    assert by["slack token"]["status"] == "FAIL" and "WATCHER_SLACK__TOKEN" in by["slack token"]["fix"]
    assert by["smtp"]["status"] == "FAIL" and "WATCHER_EMAIL__PASSWORD" in by["smtp"]["fix"]
    assert by["web.port"]["status"] == "FAIL" and "web.port" in by["web.port"]["fix"]


def test_doctor_and_config_check_fail_when_a_routed_channel_has_no_credentials(tmp_path, slack_server, smtp_server):
    cfg = doctor_config(tmp_path, slack_server, smtp_server, '[[routes]]\nname = "team"\nslack_channels = ["C0PUBLIC01"]\n')
    for cmd in (("doctor",), ("config", "check")):
        res = run(*cmd, "--config", str(cfg))
        assert res.returncode == 1, res.stdout
        assert "no Slack token" in res.stdout and "WATCHER_SLACK__TOKEN" in res.stdout
    cfg.write_text(f'watch = ["anthropic"]\n[probes]\ncontrol_urls = ["{slack_server.url}/"]\n')
    res = run("doctor", "--config", str(cfg))
    assert "NO ALERT REACHES ANYONE" in res.stdout


# -- finding 10: watcher init -------------------------------------------------------------------------


def test_init_from_flags_writes_a_working_commented_config_and_sends_a_test_alert(tmp_path, slack_server):
    slack_server.set_channel("C0MKTG0001")
    out = tmp_path / "conf" / "watcher.toml"
    env = {"WATCHER_SLACK__TOKEN": slack_server.token}
    args = ["init", "--yes", "-o", str(out), "--vendors", "openai,anthropic", "--used-for", "openai=blog drafts; ad copy",
            "--slack-channel", "C0MKTG0001", "--timezone", "Europe/Paris", "--locale", "fr", "--test-alert"]
    # the config must reach the stand-in Slack: init writes the config, the test sets slack.base_url by env
    env["WATCHER_SLACK__BASE_URL"] = slack_server.api_url
    env["WATCHER_PROBES__CONTROL_URLS"] = json.dumps([slack_server.url + "/"])
    res = run(*args, env=env, cwd=tmp_path)
    assert f"wrote {out}" in res.stdout, res.stdout + res.stderr
    text = out.read_text()
    assert 'watch = ["openai", "anthropic"]' in text and 'used_for = ["blog drafts", "ad copy"]' in text
    assert 'timezone = "Europe/Paris"' in text and 'locale = "fr"' in text and "# " in text
    assert slack_server.token not in text, "the token goes to a file beside the config, not into it"
    token_file = out.parent / "slack-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "ok    slack token" in res.stdout and "ok    slack channel C0MKTG0001" in res.stdout
    assert "slack:C0MKTG0001" in res.stdout and "ok" in res.stdout.split("watcher test-alert:")[1]
    assert len(slack_server.messages("C0MKTG0001")) == 1
    assert res.returncode == 0, res.stdout + res.stderr
    # the written file is valid for every command, without the token in the environment
    res = run("config", "check", "--config", str(out), env={"WATCHER_SLACK__BASE_URL": slack_server.api_url})
    assert res.returncode == 0, res.stdout + res.stderr
    # never overwritten by accident; bad input is one line with the fix
    again = run(*args[:-1], env=env)
    assert again.returncode == 2 and "--force" in again.stderr
    bad = run("init", "--yes", "-o", str(tmp_path / "b.toml"), "--vendors", "chatgtp", "--timezone", "Paris/France")
    assert bad.returncode == 2 and "chatgtp" in bad.stderr and "Paris/France" in bad.stderr
    assert not (tmp_path / "b.toml").exists()


def test_init_asks_a_new_admin(tmp_path, capsys):
    from watcher.onboarding import Answers, ask, catalog_choices, render

    ids = list(catalog_choices())
    replies = iter([f"1,{ids.index('anthropic') + 1}", "blog drafts", "", "C0MKTG0001", "", "Europe/Paris", "fr"])
    a = ask(Answers(), inp=lambda prompt: next(replies), secret=lambda prompt: "xoxb-typed")
    assert a.vendors == [ids[0], "anthropic"] and a.used_for == {ids[0]: "blog drafts"}
    assert a.slack_channels == ["C0MKTG0001"] and a.slack_token == "xoxb-typed"
    assert (a.timezone, a.locale) == ("Europe/Paris", "fr")
    assert "xoxb-typed" not in render(a, {})


# -- findings 4 and 6: health and the database location -------------------------------------------------


def test_health_is_unhealthy_when_every_poll_fails(tmp_path):
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'watch = ["dead"]\n[poll]\ntimeout = 2\n[vendors.dead]\nname = "Dead"\n'
        f'[vendors.dead.sources.summary]\ntype = "statuspage"\nurl = "http://127.0.0.1:{closed_port()}/s.json"\n'
    )
    assert run("check", "--config", str(cfg)).returncode == 0
    # just started: the same grace as /healthz (test_health_rule.py)
    res = run("health", "--config", str(cfg))
    assert res.returncode == 0 and "unhealthy once every source is silent for 300s" in res.stdout, res.stderr
    failing_for(tmp_path / "watcher.db", 301)
    res = run("health", "--config", str(cfg))
    assert res.returncode == 1, res.stdout
    assert "no source has answered ever" in res.stderr and "0 of 1 sources" in res.stderr


def test_every_command_reads_the_database_beside_the_config(vendor_server, tmp_path):
    vendor_server.set("/api/v2/summary.json", fixture_bytes(CLAUDE))
    conf = tmp_path / "etc"
    conf.mkdir()
    cfg = conf / "watcher.toml"
    cfg.write_text(write_config(tmp_path, vendor_server).read_text().replace(str(tmp_path / "w.db"), "watcher.db"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run("status", "--config", str(cfg), cwd=elsewhere).returncode == 1  # nothing yet: said, not created
    assert not (conf / "watcher.db").exists() and list(elsewhere.iterdir()) == []
    assert run("check", "--config", str(cfg), cwd=tmp_path).returncode == 0
    assert (conf / "watcher.db").exists() and not (tmp_path / "watcher.db").exists()
    res = run("status", "--config", str(cfg), cwd=elsewhere)
    assert res.returncode == 0 and "degraded" in res.stdout
    assert f"database: {conf / 'watcher.db'}" in res.stdout
    assert list(elsewhere.iterdir()) == []
    # under systemd or in the container: the state directory
    state = tmp_path / "state"
    state.mkdir()
    res = run("status", "--config", str(cfg), env={"STATE_DIRECTORY": str(state)})
    assert res.returncode == 1 and str(state / "watcher.db") in res.stderr


# -- findings 2, 3 and 5: the first screen of watcher run -------------------------------------------------


def test_run_first_screen_is_a_summary_and_failing_sources_are_reported_after_a_restart(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = closed_port()
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(
        f'watch = ["a", "b"]\n[poll]\ntimeout = 1\n[web]\nport = {busy.getsockname()[1]}\n'
        + "".join(
            f'[vendors.{v}]\nname = "{v.upper()}"\n[vendors.{v}.sources.summary]\ntype = "statuspage"\n'
            f'url = "http://127.0.0.1:{port}/{v}.json"\n'
            for v in ("a", "b")
        )
    )
    try:
        for _ in range(2):  # the second start: every source failed before, and it is still said
            log = tmp_path / f"run{_}.log"
            proc = start_daemon(cfg, log=log)
            try:
                wait_for(lambda log=log: "first round" in log.read_text(), proc, timeout=30)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
            text = log.read_text()
            assert "watching 2 vendors through 2 sources" in text
            assert "NO ALERT CAN REACH ANYONE" in text
            assert "first round: NONE of 2 sources answered" in text
            assert f"web.port {busy.getsockname()[1]}" in text and "WATCHER_WEB__PORT" in text
            assert "Traceback" not in text
    finally:
        busy.close()
    time.sleep(0)


def test_doctor_and_status_find_the_watcher_toml_that_init_wrote_in_the_working_folder(tmp_path):
    """The README's first steps: ``watcher init`` here, then ``watcher doctor`` here, without ``-c``."""
    res = run(
        "init", "--yes", "--vendors", "openai", "--email", "team@example.com", "--smtp-host", "127.0.0.1",
        "--smtp-port", str(closed_port()), "--sender", "w@example.com", "--no-doctor", cwd=tmp_path,
    )
    assert res.returncode == 0 and (tmp_path / "watcher.toml").is_file(), res.stderr
    res = run("doctor", cwd=tmp_path)
    assert f"config: {tmp_path / 'watcher.toml'} (found in the working folder)" in res.stdout, res.stdout
    assert "route team:" in res.stdout and "email:team@example.com" in res.stdout
    # an explicit -c still wins, and WATCHER_CONFIG too
    other = tmp_path / "other.toml"
    other.write_text('watch = ["anthropic"]\n')
    assert f"config: {other}\n" in run("doctor", "-c", str(other), cwd=tmp_path).stdout
    assert f"config: {other}\n" in run("doctor", cwd=tmp_path, env={"WATCHER_CONFIG": str(other)}).stdout


def test_doctor_tells_a_refused_token_from_an_unreachable_slack(tmp_path, slack_server):
    """Copying the token again is the fix for a refused token only; an unreachable Slack is the network's."""
    slack_server.set_channel("C0PUBLIC01")
    routes = '[[routes]]\nname = "team"\nslack_channels = ["C0PUBLIC01"]\n'
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f'watch = ["anthropic"]\n{routes}{slack_toml(slack_server)}')
    res = run("doctor", "--config", str(cfg), env={"WATCHER_SLACK__TOKEN": "xoxb-wrong"})
    [line] = [ln for ln in res.stdout.splitlines() if "slack token:" in ln]
    assert line.startswith("FAIL") and "invalid_auth" in line and "copy the Bot User OAuth Token" in line
    # Slack's address refuses connections: no word about the token, the network named, no raw slack-sdk line
    dead = f"127.0.0.1:{closed_port()}"
    cfg.write_text(f'watch = ["anthropic"]\n{routes}[slack]\nbase_url = "http://{dead}/api/"\ntimeout = 3\n')
    res = run("doctor", "--config", str(cfg), env={"WATCHER_SLACK__TOKEN": slack_server.token})
    [line] = [ln for ln in res.stdout.splitlines() if "slack token:" in ln]
    assert line.startswith("FAIL") and "not checked: cannot reach Slack" in line, line
    assert f"reach {dead}: check DNS, the firewall or HTTPS_PROXY" in line
    assert "copy the" not in line.lower() and "token" not in line.split("->", 1)[1]
    assert "Failed to send a request" not in res.stderr + res.stdout, res.stderr
    assert res.stderr.strip() == "", res.stderr
