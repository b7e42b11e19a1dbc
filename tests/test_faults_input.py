"""Fault suite, hostile input: vendor documents and requests built to hurt, against the live daemon.

Each test states what it proves. Everything runs on 127.0.0.1: the vendor is
tests/vendor_server.py, the daemon is ``python -m watcher run`` in a subprocess. Timing is only
ever a generous deadline on an answer, never a measured duration (bench/ measures those:
bench/hostile_input.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import hostile
import httpx
from test_daemon import free_port, wait_for


class LiveWatcher:
    """``watcher run`` with its web app on a free port, watching one ``feed`` vendor ``hostile``."""

    def __init__(self, tmp_path: Path, vendor_server, *, extra: str = "", url: str | None = None) -> None:
        self.port = free_port()
        cfg = tmp_path / "w.toml"
        cfg.write_text(
            f"""
watch = ["hostile"]
[storage]
path = "{tmp_path / "w.db"}"
[poll]
interval = 1
timeout = 5
[web]
port = {self.port}
[vendors.hostile]
name = "Hostile"
[vendors.hostile.sources.history]
type = "feed"
url = "{url or vendor_server.url(hostile.FEED_PATH)}"
{extra}
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base, timeout=10, trust_env=False)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def until(self, predicate, timeout: float = 20.0):
        def check():
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                raise AssertionError(f"watcher exited with {self.proc.returncode}:\n{self.log[-4000:]}")
            return predicate()

        return wait_for(check, timeout=timeout)

    def answers(self) -> bool:
        try:
            return self.http.get("/healthz").status_code in (200, 503)
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_web_app_answers_while_a_hostile_200kb_feed_is_parsed(tmp_path, vendor_server):
    """Proves finding 1: a 200 KB feed built against every super-linear spot on the feed path
    (date regex, status-line regex, feedparser's sanitizer, html.parser) is parsed every second
    by the live daemon while /healthz keeps answering each request within a generous 3 s, and
    the polls go on. Before RE2 and lxml one such parse held the interpreter for minutes."""
    vendor_server.set(hostile.FEED_PATH, hostile.feed(200_000), content_type="application/rss+xml")
    w = LiveWatcher(tmp_path, vendor_server)
    try:
        w.until(w.answers)
        w.until(lambda: vendor_server.hits[hostile.FEED_PATH] >= 1)
        start_hits = vendor_server.hits[hostile.FEED_PATH]
        deadline = time.monotonic() + 4
        answered = 0
        while time.monotonic() < deadline:
            r = w.http.get("/healthz", timeout=3)  # the old daemon never answered: ReadTimeout
            assert r.status_code in (200, 503)
            answered += 1
            time.sleep(0.2)
        assert answered >= 5
        w.until(lambda: vendor_server.hits[hostile.FEED_PATH] >= start_hits + 2, timeout=10)
        assert "Traceback" not in w.log
    finally:
        w.stop()
