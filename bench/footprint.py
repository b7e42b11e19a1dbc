"""What watcher costs while it waits: RSS and CPU of an idle `watcher run`, and start-up time.

Starts a local stand-in (tests/vendor_server.py, 127.0.0.1 only) that serves every
source of the default catalog with a realistic document of its type, points each
catalog source at it, runs `watcher run` for --minutes with the default poll
intervals, and samples the process's RSS and CPU time from /proc once a second.
Then times `watcher --help` against a bare `python -c pass`.

    python bench/footprint.py               # 10 minutes, as issue 7 asks
    python bench/footprint.py --minutes 1   # quicker

Targets (issue 7): RSS under 100 MB, under 1 % of one core, start-up under 5x bare Python.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import scenario  # noqa: E402
from vendor_server import VendorServer  # noqa: E402

from watcher.catalog import resolve  # noqa: E402
from watcher.config import Settings  # noqa: E402

FIX = ROOT / "tests" / "fixtures"
BODIES = {
    "statuspage": scenario.operational(),
    "statuspage_incidents": b'{"page": {"id": "x", "name": "Bench"}, "incidents": []}',
    "statuspage_maintenances": b'{"page": {"id": "x", "name": "Bench"}, "scheduled_maintenances": []}',
    "feed": (FIX / "feeds" / "statuspage-parse-history-2014-trimmed.rss").read_bytes(),
    "gcp": (FIX / "gcp" / "incidents-trimmed-2026-09.json").read_bytes(),
    "betterstack": (FIX / "synthetic" / "betterstack-index.json").read_bytes(),
    "instatus": (FIX / "synthetic" / "instatus-summary.json").read_bytes(),
    "checkly": (FIX / "checkly" / "mistral-checkly-nuxt-data-2026-09-04.json").read_bytes(),
}
TICK = os.sysconf("SC_CLK_TCK")


def proc_sample(pid: int) -> tuple[int, float]:
    """(RSS in bytes, CPU seconds) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / TICK


def startup_ratio(runs: int = 10) -> tuple[float, float, float]:
    def best(cmd: list[str]) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    bare = best([sys.executable, "-c", "pass"])
    help_ = best([sys.executable, "-m", "watcher", "--help"])
    return bare, help_, help_ / bare


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()

    server = VendorServer().start()
    vendors = resolve(Settings())
    lines = ["[web]", "enabled = false"]
    n_sources = 0
    for v in vendors:
        for s in v.sources:
            path = f"/{v.id}/{s.id}"
            server.set(path, BODIES.get(s.type, b"{}"), content_type="application/json")
            lines += [f"[vendors.{v.id}.sources.{s.id}]", f'url = "{server.url(path)}"']
            n_sources += 1
    tmp = Path(tempfile.mkdtemp(prefix="watcher-footprint-"))
    cfg = tmp / "w.toml"
    cfg.write_text(f'[storage]\npath = "{tmp / "w.db"}"\n' + "\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "watcher.log", "w"),  # noqa: SIM115 - lives as long as the daemon; a pipe nobody reads would fill and block it
        text=True,
        env=env,
    )
    rss_samples: list[int] = []
    try:
        time.sleep(15)  # start-up and the first round of polls are not "idle"
        _, cpu0 = proc_sample(proc.pid)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise SystemExit(f"watcher exited: {(tmp / 'watcher.log').read_text()[-2000:]}")
            rss, _ = proc_sample(proc.pid)
            rss_samples.append(rss)
            time.sleep(1)
        _, cpu1 = proc_sample(proc.pid)
        wall = time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.stop()
    polls = sum(server.hits.values())
    cpu_pct = 100 * (cpu1 - cpu0) / wall
    peak_mb = max(rss_samples) / 2**20
    bare, help_, ratio = startup_ratio()
    print(f"machine: {os.cpu_count()} cores; {len(vendors)} vendors, {n_sources} sources; idle for {wall / 60:.1f} min")
    print(f"polls served: {polls}")
    print(f"peak RSS {peak_mb:.1f} MB (target < 100): {'MET' if peak_mb < 100 else 'MISSED'}")
    print(f"CPU {cpu_pct:.2f} % of one core (target < 1 %): {'MET' if cpu_pct < 1 else 'MISSED'}")
    print(
        f"start-up: watcher --help {help_ * 1000:.0f} ms, bare python {bare * 1000:.0f} ms, "
        f"ratio {ratio:.1f} (target < 5): {'MET' if ratio < 5 else 'MISSED'}"
    )
    print(
        json.dumps(
            {
                "bench": "footprint",
                "vendors": len(vendors),
                "sources": n_sources,
                "idle_minutes": round(wall / 60, 2),
                "peak_rss_mb": round(peak_mb, 1),
                "cpu_percent": round(cpu_pct, 3),
                "startup_ms": round(help_ * 1000),
                "bare_python_ms": round(bare * 1000),
                "startup_ratio": round(ratio, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
