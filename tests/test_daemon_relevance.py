"""`watcher run` for a team that says what it uses: a quiet notice for the rest, a page for its own tools.

Real processes on 127.0.0.1: the daemon polls the (real-fixture-based) Anthropic page
and posts to the Slack stand-in. The same incident, first on the Console's usage page
(not used), then on the Claude API (used). On a SQLite file and on a PostgreSQL schema
(tests/store_backends.py).
"""

from __future__ import annotations

import scenario
from daemon_harness import CHANNEL, SUMMARY, Daemon, anthropic_toml, route_toml, slack_toml, write_config

CONSOLE = "Claude Console (platform.claude.com)"
BODY = (
    "We are investigating elevated errors affecting usage data on the platform.claude.com Usage page and the "
    "Admin API usage report. Core functionality is not affected."
)


def _has_ack(msg) -> bool:
    return any(
        e.get("action_id") == "ack" for b in msg.blocks if b.get("type") == "actions" for e in b["elements"]
    )


def test_watcher_run_sends_a_quiet_notice_for_an_unused_component_and_pages_for_a_used_one(
    vendor_server, slack_server, tmp_path, backend
):
    slack_server.add_channel(CHANNEL)
    vendor_server.set(SUMMARY, scenario.operational())
    cfg = write_config(
        tmp_path / "w.toml",
        'watch = ["anthropic"]\n',
        backend.storage_toml,
        "[poll]\ninterval = 1\ntimeout = 2\n[web]\nenabled = false\n",
        anthropic_toml(vendor_server.url(SUMMARY), used_for=["blog drafts"], uses=["api", "chat app"]),
        route_toml(),
        slack_toml(slack_server),
    )
    d = Daemon(cfg, env={"WATCHER_SLACK__TOKEN": slack_server.token})
    try:
        d.until(lambda: vendor_server.hits[SUMMARY] >= 2)
        # 1. the usage page of the Console, which this team does not use
        vendor_server.set(
            SUMMARY,
            scenario.incident(
                ("investigating", BODY, "2026-10-07T13:25:04Z"),
                name="Elevated errors on platform.claude.com",
                impact="major",
                component=CONSOLE,
                component_status="partial_outage",
                indicator="minor",
                incident_id="zz1usage0001",
            ),
        )
        [notice] = d.until(lambda: slack_server.messages(CHANNEL))
        text = notice.all_text()
        assert "Notice" in text
        assert "Core functionality is not affected, says Anthropic" in text
        assert "Your API and chat app use is not affected" in text
        assert "failed requests" not in text, "the playbook follows the affected capability"
        assert not _has_ack(notice), "a quiet notice asks nobody to act"
        assert "<!channel>" not in text and "<!here>" not in text and "<@" not in text, "no mention"

        # 2. the same incident on the Claude API, which it uses
        vendor_server.set(
            SUMMARY,
            scenario.incident(
                ("investigating", "Elevated errors on the Claude API.", "2026-10-07T14:01:00Z"),
                name="Elevated errors on the Claude API",
                impact="major",
                component_status="partial_outage",
                indicator="minor",
                incident_id="zz1api000002",
            ),
        )
        msgs = d.until(
            lambda: len(slack_server.messages(CHANNEL)) >= 2 and slack_server.messages(CHANNEL)
        )
        page = next(m for m in msgs if "Claude API" in m.all_text() and m.ts != notice.ts)
        assert "Notice" not in page.all_text().split("\n", 1)[0]
        assert _has_ack(page), "it pages as before: someone must take it on"
        assert "This touches what you use: Claude API (api.anthropic.com)" in page.all_text()
    finally:
        d.stop_cleanly()
