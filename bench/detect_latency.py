"""How long from a vendor's status page flipping to the alert landing in Slack?

Starts, on 127.0.0.1 only: a vendor status page (tests/vendor_server.py), the Slack
Web API stand-in (tests/slack_server.py), and one real `watcher run` process
polling the page every --interval seconds. Each trial waits a random time, flips
the page from operational to a major outage, and measures until Slack accepts the
chat.postMessage; then it flips back and waits for the resolve before the next.

    python bench/detect_latency.py                 # 30 trials at a 10 s interval
    python bench/detect_latency.py --trials 5      # quicker
    python bench/detect_latency.py --probe         # a vendor API that stops answering our probes

With --probe there is no status page: a fake OpenAI-compatible API (tests/llm_server.py)
starts answering 503 to everything, and the outage is watcher's own finding after
probes.fail_consecutive failed runs. Its target is the confirmation window
(fail_consecutive x probe interval) plus 1 s.

Prints each trial, then p50/p99/max and each as a ratio to the poll interval, and a
final JSON line. Target (issue 7): p99 at most the poll interval plus 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import scenario  # noqa: E402
from slack_server import SlackServer  # noqa: E402
from vendor_server import VendorServer  # noqa: E402

CHANNEL = "C0BENCH"
PATH = "/bench/api/v2/summary.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--probe", action="store_true", help="measure a probe-detected outage instead")
    ap.add_argument("--fail-consecutive", type=int, default=3)
    args = ap.parse_args()
    if args.probe:
        return probe_bench(args)

    vendor = VendorServer().start()
    slack = SlackServer(channels=(CHANNEL,)).start()
    vendor.set(PATH, scenario.operational())
    tmp = Path(tempfile.mkdtemp(prefix="watcher-bench-"))
    cfg = tmp / "w.toml"
    cfg.write_text(
        f"""
watch = ["anthropic"]
[storage]
path = "{tmp / "w.db"}"
[poll]
interval = {args.interval}
jitter = 0
[web]
enabled = false
[vendors.anthropic.sources.summary]
url = "{vendor.url(PATH)}"
[vendors.anthropic.sources.incidents]
enabled = false
[vendors.anthropic.sources.maintenances]
enabled = false
[vendors.anthropic.sources.history]
enabled = false
[[routes]]
name = "bench"
slack_channels = ["{CHANNEL}"]
[slack]
base_url = "{slack.api_url}"
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env["WATCHER_SLACK__TOKEN"] = slack.token
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "watcher.log", "w"),  # noqa: SIM115 - lives as long as the daemon; a pipe nobody reads would fill and block it
        text=True,
        env=env,
    )
    delays: list[float] = []
    try:
        deadline = time.monotonic() + 30
        while vendor.hits[PATH] < 1:  # the first poll has happened: the daemon is up
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("watcher did not start polling")
            time.sleep(0.05)
        for trial in range(1, args.trials + 1):
            time.sleep(random.uniform(0, args.interval))
            posts_before = len(slack.calls("chat.postMessage"))
            vendor.set(
                PATH,
                scenario.incident(
                    ("investigating", "All requests fail.", "2026-10-07T13:01:00Z"),
                    incident_id=f"bench{trial:04d}",
                ),
            )
            flipped = time.monotonic()
            while len(slack.calls("chat.postMessage")) <= posts_before:
                if time.monotonic() - flipped > args.interval * 3 + 10:
                    raise SystemExit(f"trial {trial}: no alert within {args.interval * 3 + 10:.0f} s")
                time.sleep(0.01)
            delay = time.monotonic() - flipped
            delays.append(delay)
            print(f"trial {trial:3d}: alert after {delay:6.2f} s ({delay / args.interval:.2f} x interval)")
            vendor.set(PATH, scenario.operational())
            wait_for_resolve(slack, args.interval * 3 + 10)
    finally:
        stop(proc, vendor, slack)
    p50, p99, mx = pct(delays, 0.5), pct(delays, 0.99), max(delays)
    target = args.interval + 1.0
    print(f"trials: {len(delays)}, poll interval {args.interval:g} s")
    print(f"p50 {p50:.2f} s ({p50 / args.interval:.2f} x interval)")
    print(f"p99 {p99:.2f} s ({p99 / args.interval:.2f} x interval)")
    print(f"max {mx:.2f} s ({mx / args.interval:.2f} x interval)")
    print(f"target p99 <= {target:.1f} s: {'MET' if p99 <= target else 'MISSED'}")
    print(
        json.dumps(
            {
                "bench": "detect_latency",
                "trials": len(delays),
                "interval_s": args.interval,
                "p50_s": round(p50, 3),
                "p99_s": round(p99, 3),
                "max_s": round(mx, 3),
                "p99_ratio": round(p99 / args.interval, 3),
                "target_met": p99 <= target,
            }
        )
    )
    return 0 if p99 <= target else 1


def probe_bench(args) -> int:
    from llm_server import LlmServer

    llm = LlmServer().start()
    vendor = VendorServer().start()
    slack = SlackServer(channels=(CHANNEL,)).start()
    vendor.set("/control", b"ok")
    llm.openai.set(answer="4", models=["bench-model"])
    tmp = Path(tempfile.mkdtemp(prefix="watcher-bench-"))
    cfg = tmp / "w.toml"
    cfg.write_text(
        f"""
watch = ["mistral"]
[storage]
path = "{tmp / "w.db"}"
[web]
enabled = false
[vendors.mistral.sources.summary]
enabled = false
[[routes]]
name = "bench"
slack_channels = ["{CHANNEL}"]
[slack]
base_url = "{slack.api_url}"
[probes]
interval = {args.interval}
fast_interval = {args.interval}
canaries_per_run = 1
fail_consecutive = {args.fail_consecutive}
recover_consecutive = 1
control_urls = ["{vendor.url("/control")}"]
[probes.vendors.mistral]
base_url = "{llm.base("openai")}"
format = "openai"
model = "bench-model"
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env["WATCHER_SLACK__TOKEN"] = slack.token
    env["WATCHER_PROBES__VENDORS__MISTRAL__KEY"] = llm.key("openai")
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "watcher.log", "w"),  # noqa: SIM115 - lives as long as the daemon; a pipe nobody reads would fill and block it
        env=env,
    )
    window = args.fail_consecutive * args.interval
    delays: list[float] = []
    try:
        deadline = time.monotonic() + 30
        while len(llm.openai.requests) < 2:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("watcher did not start probing")
            time.sleep(0.05)
        for trial in range(1, args.trials + 1):
            time.sleep(random.uniform(0, args.interval))
            posts_before = len(slack.calls("chat.postMessage"))
            llm.openai.fail_next(1_000_000, status=503)
            flipped = time.monotonic()
            while len(slack.calls("chat.postMessage")) <= posts_before:
                if time.monotonic() - flipped > window * 3 + 10:
                    raise SystemExit(f"trial {trial}: no alert within {window * 3 + 10:.0f} s")
                time.sleep(0.01)
            delay = time.monotonic() - flipped
            delays.append(delay)
            print(f"trial {trial:3d}: alert after {delay:6.2f} s ({delay / window:.2f} x confirmation window)")
            with llm.openai._lock:
                llm.openai._failing.clear()
            wait_for_resolve(slack, window * 3 + 10)
    finally:
        stop(proc, llm, vendor, slack)
    p50, p99, mx = pct(delays, 0.5), pct(delays, 0.99), max(delays)
    target = window + 1.0
    print(f"trials: {len(delays)}, probe interval {args.interval:g} s, {args.fail_consecutive} failed runs to confirm")
    print(f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {mx:.2f} s; confirmation window {window:g} s")
    print(f"target p99 <= {target:.1f} s: {'MET' if p99 <= target else 'MISSED'}")
    print(
        json.dumps(
            {
                "bench": "detect_latency_probe",
                "trials": len(delays),
                "probe_interval_s": args.interval,
                "confirmation_window_s": window,
                "p50_s": round(p50, 3),
                "p99_s": round(p99, 3),
                "max_s": round(mx, 3),
                "target_met": p99 <= target,
            }
        )
    )
    return 0 if p99 <= target else 1


def wait_for_resolve(slack, timeout: float) -> None:
    """Until the alert's message is edited (the resolve), so the next trial starts from calm."""
    updates_before = len(slack.calls("chat.update"))
    deadline = time.monotonic() + timeout
    while len(slack.calls("chat.update")) <= updates_before and time.monotonic() < deadline:
        time.sleep(0.05)


def stop(proc, *servers) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    for server in servers:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
