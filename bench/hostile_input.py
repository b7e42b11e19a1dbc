"""What hostile vendor documents cost the daemon (issue 15, findings 1 and 2).

1. Event-loop stall: `watcher run` polls a local feed source (tests/vendor_server.py, 127.0.0.1)
   that serves the hostile 200 KB feed of tests/hostile.py every second (super-linear spots of
   the old code: Statuspage date regex, status-line regex, feedparser's sanitizer, html.parser).
   The feed changes every 0.3 s, so every poll parses it. A client asks /healthz back to back
   for --seconds; the longest answer is the longest time
   the event loop could not serve it. The same is measured in-process: a ticker coroutine
   wakes every 5 ms while the feed is parsed as the pipeline parses it, and the longest gap
   between two wake-ups is printed.
2. Nested gzip bomb: a child process fetches, with watcher.fetch and poll.max_bytes = 5 MB, a
   body of --bomb-mb MB of zeros gzipped twice (`Content-Encoding: gzip, gzip`, about 2 KB on
   the wire) and an ordinary 100 KB JSON for comparison; its peak RSS (ru_maxrss) is printed.

    python bench/hostile_input.py                  # 200 KB feed, 1 GB bomb, 10 s of /healthz
    python bench/hostile_input.py --size 400000    # a bigger feed

Prints plain lines and a final JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hostile  # noqa: E402
import httpx  # noqa: E402
from test_daemon import free_port  # noqa: E402
from vendor_server import VendorServer  # noqa: E402

from watcher.pipeline import _THREAD_PARSE_BYTES  # noqa: E402
from watcher.sources import parser_for  # noqa: E402
from watcher.sources.base import ParseError  # noqa: E402


async def in_process_stall(body: bytes, rounds: int) -> tuple[float, float]:
    """(longest gap between 5 ms ticks, mean parse time) while ``body`` is parsed ``rounds`` times."""
    parse = parser_for("feed")
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker():
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last - 0.005)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    spent = []
    for _ in range(rounds):
        start = time.perf_counter()
        try:
            if len(body) > _THREAD_PARSE_BYTES:  # as watcher.pipeline does
                await asyncio.to_thread(parse, body)
            else:
                parse(body)
        except ParseError:
            pass
        spent.append(time.perf_counter() - start)
        await asyncio.sleep(0.01)
    done.set()
    await tick
    return max(gaps), sum(spent) / len(spent)


def live_daemon_stall(body: bytes, seconds: float) -> dict:
    """The longest /healthz answer of `watcher run` while it polls the hostile feed every second."""
    vendor = VendorServer().start()
    vendor.set(hostile.FEED_PATH, body, content_type="application/rss+xml", etag=False)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "w.toml"
        cfg.write_text(
            f"""
watch = ["hostile"]
[storage]
path = "{Path(tmp) / "w.db"}"
[poll]
interval = 1
jitter = 0
[web]
port = {port}
[vendors.hostile]
name = "Hostile"
[vendors.hostile.sources.history]
type = "feed"
url = "{vendor.url(hostile.FEED_PATH)}"
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=90, trust_env=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    http.get("/healthz")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            while vendor.hits[hostile.FEED_PATH] < 1:
                time.sleep(0.05)
            polls_before = vendor.hits[hostile.FEED_PATH]
            stop = threading.Event()

            def vary():  # a new document each poll, so each one is parsed (not skipped as unchanged)
                n = 0
                while not stop.wait(0.3):
                    n += 1
                    varied = body.replace(b"<title>Hostile</title>", f"<title>Hostile {n}</title>".encode(), 1)
                    vendor.set(hostile.FEED_PATH, varied, content_type="application/rss+xml", etag=False)

            changer = threading.Thread(target=vary, daemon=True)
            changer.start()
            worst, answers, end = 0.0, 0, time.monotonic() + seconds
            while time.monotonic() < end:
                start = time.perf_counter()
                try:
                    http.get("/healthz")
                    answers += 1
                except httpx.TimeoutException:
                    pass  # counted as the full wait
                worst = max(worst, time.perf_counter() - start)
            stop.set()
            polls = vendor.hits[hostile.FEED_PATH] - polls_before
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a daemon stuck in a parse cannot even stop
                proc.kill()
                proc.wait()
            vendor.stop()
    return {"worst_healthz_s": worst, "healthz_answers": answers, "feed_polls": polls}


CHILD = r"""
import asyncio, json, resource, sys
from watcher.fetch import FetchError, fetch, make_client

async def go(url):
    async with make_client(user_agent="bench") as client:
        try:
            res = await fetch(client, url, timeout=60, max_bytes=5_000_000)
            return f"{len(res.body)} bytes"
        except FetchError as e:
            return f"{e.kind}: {e.message}"

outcome = asyncio.run(go(sys.argv[1]))
print(json.dumps({"outcome": outcome, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bomb_rss(bomb_mb: int) -> dict:
    vendor = VendorServer().start()
    bomb = hostile.nested_gzip(bomb_mb * 1_000_000, layers=2)
    vendor.set("/bomb", bomb, headers={"Content-Encoding": "gzip, gzip"}, etag=False)
    vendor.set("/plain.json", json.dumps({"x": "y" * 100_000}).encode())
    out = {"bomb_wire_bytes": len(bomb)}
    try:
        for name, path in (("plain", "/plain.json"), ("bomb", "/bomb")):
            r = subprocess.run(
                [sys.executable, "-c", CHILD, vendor.url(path)], capture_output=True, text=True, timeout=600
            )
            res = json.loads(r.stdout.strip().splitlines()[-1])
            out[f"{name}_peak_rss_mb"] = res["maxrss_mb"]
            out[f"{name}_outcome"] = res["outcome"]
    finally:
        vendor.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=200_000, help="bytes of hostile feed (default 200000)")
    ap.add_argument("--rounds", type=int, default=5, help="in-process parses of the feed")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of /healthz against the live daemon")
    ap.add_argument("--bomb-mb", type=int, default=1000, help="decoded size of the nested gzip bomb, MB")
    args = ap.parse_args()

    body = hostile.feed(args.size)
    gap, parse_s = asyncio.run(in_process_stall(body, args.rounds))
    print(f"hostile feed: {len(body):,} bytes; parse {parse_s * 1000:.1f} ms on average over {args.rounds}")
    print(f"in-process event loop: longest stall {gap * 1000:.1f} ms while it is parsed")
    live = live_daemon_stall(body, args.seconds)
    print(
        f"watcher run: longest /healthz answer {live['worst_healthz_s'] * 1000:.1f} ms over "
        f"{live['healthz_answers']} requests in {args.seconds:g} s, during {live['feed_polls']} polls of the feed"
    )
    bomb = bomb_rss(args.bomb_mb)
    print(
        f"nested gzip bomb: {args.bomb_mb} MB decoded, {bomb['bomb_wire_bytes']:,} bytes on the wire: "
        f"peak RSS {bomb['bomb_peak_rss_mb']:.0f} MB ({bomb['bomb_outcome']}); "
        f"an ordinary 100 KB fetch: {bomb['plain_peak_rss_mb']:.0f} MB"
    )
    print(
        json.dumps(
            {
                "feed_bytes": len(body),
                "parse_ms": round(parse_s * 1000, 1),
                "loop_stall_ms": round(gap * 1000, 1),
                "live_worst_healthz_ms": round(live["worst_healthz_s"] * 1000, 1),
                "live_feed_polls": live["feed_polls"],
                "bomb_mb": args.bomb_mb,
                **{k: (round(v, 1) if isinstance(v, float) else v) for k, v in bomb.items()},
                "self_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
