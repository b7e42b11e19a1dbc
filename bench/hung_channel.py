"""While one alert channel hangs, how long do alerts take on the other one?

Starts, on 127.0.0.1 only: the Slack Web API stand-in (tests/slack_server.py) and an SMTP
server (aiosmtpd, tests/smtp_server.py), a SQLite outbox in a temporary directory, and the real
Deliverer running its daemon loop. One channel then hangs for --hang seconds: the SMTP server
accepts connections and never answers (``--hung email``), or Slack accepts requests and never
answers (``--hung slack``). Meanwhile a new incident alert is queued every --every seconds for
both channels (one Slack channel, --emails addresses), as the alert engine does.

Measured: for the healthy channel, the time from queueing to delivery of each alert
(``delivered_at - created_at`` in the outbox); for the hung one, how many alerts it holds.

    .venv/bin/python bench/hung_channel.py                     # 2 minutes of hung SMTP, then of hung Slack
    .venv/bin/python bench/hung_channel.py --hang 20 --hung email

Prints one line per hung channel and a final JSON line. Target (issue 15, finding 5): the healthy
channel's worst latency stays around a second, whatever the hung one does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from slack_server import SlackServer  # noqa: E402
from smtp_server import PASSWORD, USERNAME, SmtpServer  # noqa: E402

from watcher.alerts.deliver import Deliverer, Transports  # noqa: E402
from watcher.alerts.email import SmtpMailer  # noqa: E402
from watcher.alerts.model import Alert, AlertAction  # noqa: E402
from watcher.alerts.slack import SlackBot  # noqa: E402
from watcher.config import Settings  # noqa: E402
from watcher.store.sqlite import SQLiteStore  # noqa: E402

CHANNEL = "C0BENCH"


def alert(i: int) -> Alert:
    return Alert(
        incident_id=i,
        vendor="anthropic",
        vendor_name="Anthropic",
        title=f"Bench incident {i:03d}: Claude API unavailable",
        kind="outage",
        reason="bench",
        state="open",
        status="investigating",
        action=AlertAction.OPENED,
    )


async def run_one(hung: str, args, tmp: Path) -> dict:
    slack = SlackServer(channels=(CHANNEL,)).start()
    smtp = SmtpServer("starttls").start()
    store = SQLiteStore(tmp / f"{hung}.db")
    settings = Settings.model_validate(
        {
            "storage": {"path": str(tmp / f"{hung}.db")},
            "slack": {"timeout": args.timeout},
            "email": {"timeout": args.timeout},
            "alerts": {"fallback_after": 86400},
        }
    )
    mailer = SmtpMailer(
        "127.0.0.1",
        smtp.port,
        username=USERNAME,
        password=PASSWORD,
        starttls=True,
        ssl=False,
        timeout=args.timeout,
        sender="watcher <alerts@example.com>",
        ssl_context=smtp.client_context(),
    )
    transports = Transports(
        slack_bot=SlackBot(slack.token, base_url=slack.api_url, timeout=args.timeout), mailer=mailer
    )
    deliverer = Deliverer(settings, store, transports)
    stopping = asyncio.Event()
    loop_task = asyncio.create_task(deliverer.run(stopping))
    emails = [f"oncall{i}@example.com" for i in range(args.emails)]
    if hung == "email":
        smtp.stall_at = "connect"
    else:
        slack.down("hang")
    healthy = "slack" if hung == "email" else "email"
    started = time.monotonic()
    i = 0
    try:
        while time.monotonic() - started < args.hang:
            i += 1
            now = datetime.now(UTC)
            for channel, target in [("slack", CHANNEL)] + [("email", e) for e in emails]:
                store.enqueue(
                    incident_id=i,
                    action=AlertAction.OPENED,
                    channel=channel,
                    target=target,
                    route="bench",
                    alert=alert(i),
                    now=now,
                )
            deliverer.wake.set()
            await asyncio.sleep(args.every)
        deadline = time.monotonic() + 10  # the last alerts on the healthy channel
        while time.monotonic() < deadline:
            rows = store.notifications(limit=100_000)
            if all(n.state == "delivered" for n in rows if n.channel == healthy):
                break
            await asyncio.sleep(0.1)
    finally:
        rows = store.notifications(limit=100_000)
        stopping.set()
        if hung == "email":
            smtp.stall_at = None
        else:
            slack.up()
        await asyncio.wait_for(loop_task, timeout=30)
        store.close()
        slack.stop()
        smtp.stop()
    lat = sorted(
        (n.delivered_at - n.created_at).total_seconds()
        for n in rows
        if n.channel == healthy and n.state == "delivered"
    )
    queued = sum(1 for n in rows if n.channel == healthy)
    held = sum(1 for n in rows if n.channel == hung and n.state != "delivered")
    return {
        "hung": hung,
        "healthy": healthy,
        "hang_s": args.hang,
        "alerts": i,
        "healthy_delivered": len(lat),
        "healthy_queued": queued,
        "median_s": round(statistics.median(lat), 3) if lat else None,
        "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3) if lat else None,
        "max_s": round(lat[-1], 3) if lat else None,
        "hung_channel_undelivered": held,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hang", type=float, default=120.0, help="seconds the channel hangs (default 120)")
    ap.add_argument("--hung", choices=["email", "slack", "both"], default="both", help="which channel hangs")
    ap.add_argument("--every", type=float, default=2.0, help="seconds between new alerts (default 2)")
    ap.add_argument("--emails", type=int, default=8, help="email addresses routed (default 8)")
    ap.add_argument("--timeout", type=float, default=10.0, help="client timeout of both channels (default 10)")
    args = ap.parse_args()
    logging.disable(logging.ERROR)  # every failed send of the hung channel would log a line or two
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for hung in (["email", "slack"] if args.hung == "both" else [args.hung]):
            r = asyncio.run(run_one(hung, args, Path(tmp)))
            results.append(r)
            print(
                f"{r['hung']} hung {r['hang_s']:g}s: {r['healthy']} delivered {r['healthy_delivered']}/"
                f"{r['healthy_queued']} alerts, latency median {r['median_s']}s, p95 {r['p95_s']}s, "
                f"max {r['max_s']}s; {r['hung_channel_undelivered']} held on {r['hung']}",
                flush=True,
            )
    print(json.dumps(results))
    return 0 if all(r["healthy_delivered"] == r["healthy_queued"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
