"""When the leader of a watcher cluster dies mid-storm, how long until alerts flow again?

Starts, on 127.0.0.1 only: status pages for --vendors custom vendors (tests/vendor_server.py),
the Slack Web API stand-in (tests/slack_server.py, each chat.postMessage slowed by
--slack-delay seconds so the outbox is busy), and --watchers real `watcher run` processes
(tests/cluster_harness.py: names a, b, c; locations paris, frankfurt, virginia) sharing the
PostgreSQL at $BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test), in a
fresh schema per run, dropped after it.

Each run: start the watchers, wait for a leader, flip every vendor into an incident at once
(an alert storm), wait until --kill-after alerts have reached Slack, SIGKILL the leader, and
measure from the kill until Slack accepts the first alert sent after it (necessarily by the
new leader: the old one is dead). Also measured: takeover (the kill until a follower holds
the lease), then, once the outbox is empty, alerts lost and duplicated.

    .venv/bin/python bench/failover.py              # 10 runs
    .venv/bin/python bench/failover.py --runs 3     # quicker

Prints one line per run, then the median and the worst, and a final JSON line. Target
(issue 6): the worst at most failover_timeout, nothing lost, at most one duplicate per kill.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cluster_harness import INSTANCES, Cluster  # noqa: E402
from slack_server import SlackServer  # noqa: E402
from store_backends import pg_schema  # noqa: E402
from test_faults import storm_config, storm_down, storm_tally  # noqa: E402
from vendor_server import VendorServer  # noqa: E402

CHANNEL = "C0STORM"
"""The channel storm_config routes every alert to."""
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def one_run(run: int, args) -> dict:
    vendor = VendorServer().start()
    slack = SlackServer(channels=(CHANNEL,)).start()
    slack.slow("chat.postMessage", args.slack_delay)
    tmp = Path(tempfile.mkdtemp(prefix="watcher-failover-"))
    try:
        with pg_schema(PG_URL) as url:
            cfg, _ = storm_config(tmp, vendor, slack, None, args.vendors, storage_url=url, down=False)
            with Cluster(
                tmp, url, cfg.read_text(), env={"WATCHER_SLACK__TOKEN": slack.token}, failover_timeout=args.timeout
            ) as c:
                names = INSTANCES[: args.watchers]
                c.start_all(names)

                def leader():
                    holder, epoch = c.leader()
                    rows = c.instances()
                    ok = {n for n, _ in names} <= set(rows) and holder in rows and rows[holder]["is_leader"]
                    return ok and (holder, epoch)

                old, epoch = c.wait(leader, timeout=60)
                c.wait(lambda: all(vendor.hits[f"/v{i}/summary.json"] >= 2 for i in range(args.vendors)))
                storm_down(vendor, args.vendors)
                c.wait(lambda: len(slack.messages(CHANNEL)) >= args.kill_after, timeout=60, step=0.02)
                unsent = c.unsent()
                wall = time.time()
                killed = c.kill(old)
                new, _ = c.wait(lambda: (x := c.leader())[1] > epoch and x, timeout=args.timeout * 3, step=0.01)
                takeover = time.monotonic() - killed

                def first_alert():
                    done = [
                        r.answered_at
                        for r in slack.requests
                        if r.at > wall
                        and r.method in ("chat.postMessage", "chat.update")
                        and isinstance(r.response, dict)
                        and r.response.get("ok")
                    ]
                    return min(done) if done else None

                first = c.wait(first_alert, timeout=args.timeout * 3, step=0.01) - wall
                def texts():
                    return [m.text for m in slack.messages(CHANNEL)]

                c.wait(lambda: not storm_tally(texts(), args.vendors)[0] and c.unsent() == 0, timeout=120)
                lost, duplicated = storm_tally(texts(), args.vendors)
    except BaseException:
        print(f"run {run}: failed; the watchers' logs are in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        vendor.stop()
        slack.stop()
    out = {
        "run": run,
        "killed": old,
        "new_leader": new,
        "unsent_at_kill": unsent,
        "takeover_s": round(takeover, 3),
        "first_alert_s": round(first, 3),
        "lost": len(lost),
        "duplicated": duplicated,
    }
    print(
        f"run {run:2d}: killed leader {old} with {unsent:2d} alerts unsent; {new} leads after {takeover:5.2f} s, "
        f"first alert accepted {first:5.2f} s after the kill; {len(lost)} lost, {duplicated} duplicated",
        flush=True,
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--watchers", type=int, default=3, choices=(2, 3))
    ap.add_argument("--vendors", type=int, default=20, help="incidents in the storm")
    ap.add_argument("--timeout", type=float, default=6.0, help="cluster.failover_timeout, seconds")
    ap.add_argument("--slack-delay", type=float, default=0.25, help="seconds Slack takes per chat.postMessage")
    ap.add_argument("--kill-after", type=int, default=4, help="alerts in Slack before the kill")
    args = ap.parse_args()
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as e:  # no database, no bench: say which and why
        raise SystemExit(f"PostgreSQL at {PG_URL} is unreachable ({' '.join(str(e).split())}): set BENCH_POSTGRES_URL") from None

    runs = [one_run(i, args) for i in range(1, args.runs + 1)]
    firsts = [r["first_alert_s"] for r in runs]
    takeovers = [r["takeover_s"] for r in runs]
    lost = sum(r["lost"] for r in runs)
    dup = sum(r["duplicated"] for r in runs)
    met = max(firsts) <= args.timeout and lost == 0 and all(r["duplicated"] <= 1 for r in runs)
    print(f"runs: {len(runs)}, {args.watchers} watchers, {args.vendors} incidents, failover_timeout {args.timeout:g} s")
    print(f"leader killed -> first alert from the new leader: median {statistics.median(firsts):.2f} s, worst {max(firsts):.2f} s")
    print(f"leader killed -> follower holds the lease:        median {statistics.median(takeovers):.2f} s, worst {max(takeovers):.2f} s")
    print(f"alerts lost {lost}, duplicated {dup} ({len(runs)} kills)")
    print(f"target worst <= {args.timeout:g} s, nothing lost, <= 1 duplicate per kill: {'MET' if met else 'MISSED'}")
    print(
        json.dumps(
            {
                "bench": "failover",
                "runs": len(runs),
                "watchers": args.watchers,
                "incidents": args.vendors,
                "failover_timeout_s": args.timeout,
                "first_alert_median_s": round(statistics.median(firsts), 3),
                "first_alert_worst_s": round(max(firsts), 3),
                "takeover_median_s": round(statistics.median(takeovers), 3),
                "takeover_worst_s": round(max(takeovers), 3),
                "lost": lost,
                "duplicated": dup,
                "target_met": met,
            }
        )
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
