"""Several `watcher run` processes on one PostgreSQL schema: the harness of tests/test_cluster.py and
bench/failover.py.

Each instance is a real process (``test_daemon.start_daemon``) with its own config file: the
shared config plus its ``[cluster]`` table (name, location, failover_timeout, any extra keys),
and its own log file, appended to across restarts (nobody reads a daemon's pipe while it
runs, and a full pipe would block it). Everything listens and connects on 127.0.0.1 only.

    with Cluster(tmp_path, pg_url, config_text, env={"WATCHER_SLACK__TOKEN": ...}) as c:
        c.start("a", "paris"); c.start("b", "frankfurt")
        holder, epoch = c.wait(lambda: c.leader()[0] and c.leader())
        at = c.kill(holder)                  # SIGKILL; returns the monotonic time it was sent
        c.status()                           # `watcher cluster --json`, parsed

``config`` is the TOML text every instance shares (without ``[cluster]``), or a function
of the instance name giving it (for per-instance settings). On exit every process still
running gets SIGTERM, then SIGKILL after a grace period: none outlives the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon_harness import start_daemon, wait_for

INSTANCES = (("a", "paris"), ("b", "frankfurt"), ("c", "virginia"))
"""Names and locations of the three-instance clusters."""
START_MARK = "--- test harness: starting "
"""Written to an instance's log before each start."""


class Cluster:
    def __init__(
        self,
        workdir: Path,
        pg_url: str,
        config: str | Callable[[str], str],
        *,
        env: dict[str, str] | None = None,
        failover_timeout: float = 6,
        cluster_extra: str = "",
    ):
        self.workdir = Path(workdir)
        self.pg_url = pg_url
        self.config = config
        self.env = dict(env or {})
        self.failover_timeout = failover_timeout
        self.cluster_extra = cluster_extra
        self.procs: dict[str, subprocess.Popen] = {}
        self.locations: dict[str, str] = {}
        self.stopped: set[str] = set()
        """Instances killed or stopped on purpose (not a failure when they are not running)."""
        self._conn = None

    # -- processes ----------------------------------------------------------------------------------

    def config_file(self, name: str) -> Path:
        return self.workdir / f"{name}.toml"

    def log_file(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self, name: str, location: str | None = None, *, env: dict[str, str] | None = None):
        """Start (or restart) instance ``name``; its log is appended to ``<name>.log``."""
        assert name not in self.procs or self.procs[name].poll() is not None, f"{name} is running"
        location = location or self.locations.get(name) or name
        self.locations[name] = location
        text = self.config(name) if callable(self.config) else self.config
        cfg = self.config_file(name)
        cfg.write_text(
            f"{text}\n[cluster]\n{_toml_pair('name', name)}\n{_toml_pair('location', location)}\n"
            f"failover_timeout = {self.failover_timeout}\n{self.cluster_extra}\n"
        )
        with open(self.log_file(name), "a") as f:
            f.write(f"{START_MARK}{name} ({location}) at {time.strftime('%H:%M:%S')}\n")
        self.procs[name] = start_daemon(cfg, env={**self.env, **(env or {})}, log=self.log_file(name))
        self.stopped.discard(name)
        return self.procs[name]

    def start_all(self, instances=INSTANCES) -> None:
        for name, location in instances:
            self.start(name, location)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> float:
        """Send ``sig`` (SIGKILL by default) to ``name``; the monotonic time it was sent. A SIGKILL
        is waited for, so the process is gone (and its sockets closed) on return."""
        proc = self.procs[name]
        self.stopped.add(name)
        at = time.monotonic()
        proc.send_signal(sig)
        if sig == signal.SIGKILL:
            proc.wait(timeout=10)
        return at

    def stop(self, name: str, timeout: float = 30) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit code."""
        proc = self.procs[name]
        self.stopped.add(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def running(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop_all(self, timeout: float = 30) -> dict[str, int]:
        """SIGTERM to every instance at once, then wait (SIGKILL after ``timeout``); exit codes by name."""
        self.stopped.update(self.procs)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # one a test paused (SIGSTOP) could not act on SIGTERM
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return {name: proc.returncode for name, proc in self.procs.items()}

    def close(self) -> None:
        """Stop every instance still running (SIGTERM, then SIGKILL), and the database connection."""
        self.stop_all(timeout=20)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def log(self, name: str, *, last: bool = False) -> str:
        """What instance ``name`` logged (with ``last``: since its latest start only)."""
        try:
            text = self.log_file(name).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text.rsplit(START_MARK, 1)[-1] if last else text

    def logs(self) -> str:
        """Every instance's log, each under a header: for assertion messages."""
        return "\n".join(f"===== {n} =====\n{self.log(n)[-6000:]}" for n in self.procs)

    def check_alive(self, *names: str) -> bool:
        """True, or AssertionError with its log when one of ``names`` (default: every instance not
        stopped on purpose) has exited."""
        for name in names or [n for n in self.procs if n not in self.stopped]:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(
                    f"instance {name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}"
                )
        return True

    def wait(self, predicate: Callable[[], Any], timeout: float = 30, step: float = 0.1) -> Any:
        """``test_daemon.wait_for``, failing at once (with the log) if an instance dies meanwhile."""
        try:
            return wait_for(lambda: self.check_alive() and predicate(), timeout=timeout, step=step)
        except AssertionError as e:
            if str(e) == "condition not met in time":
                raise AssertionError(f"condition not met within {timeout} s\n{self.logs()}") from None
            raise

    # -- the CLI ---------------------------------------------------------------------------------------

    def cli(self, *args: str, name: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """``watcher ARGS --config <name's config>`` (default: the first instance's)."""
        name = name or next(iter(self.procs))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        env.update(self.env)
        return subprocess.run(
            [sys.executable, "-m", "watcher", *args, "--config", str(self.config_file(name))],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    def status(self, name: str | None = None) -> dict:
        """``watcher cluster --json``, parsed."""
        r = self.cli("cluster", "--json", name=name)
        if r.returncode != 0:
            raise AssertionError(f"watcher cluster --json exited with {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return json.loads(r.stdout)

    # -- the database ----------------------------------------------------------------------------------

    def sql(self, query: str, params: tuple | list = ()) -> list[dict]:
        """Rows of ``query`` on the cluster's schema; [] while the schema has no tables yet."""
        import psycopg
        from psycopg.rows import dict_row

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.pg_url, autocommit=True, row_factory=dict_row, connect_timeout=5)
        try:
            return self._conn.execute(query, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []

    def leader(self) -> tuple[str | None, int]:
        """The ``leader`` row: who took the lease last, and its epoch (the holder stays named after
        it dies: compare epochs to see a takeover)."""
        rows = self.sql("SELECT holder, epoch FROM leader")
        return (rows[0]["holder"], rows[0]["epoch"]) if rows else (None, 0)

    def instances(self) -> dict[str, dict]:
        """The ``instances`` rows by name, with the heartbeat's age by the server's clock."""
        rows = self.sql(
            "SELECT *, EXTRACT(EPOCH FROM now() - last_heartbeat)::float8 AS age FROM instances"
        )
        return {r["name"]: r for r in rows}

    def outbox(self) -> Counter[str]:
        """Notifications by state."""
        return Counter({r["state"]: r["n"] for r in self.sql("SELECT state, COUNT(*) AS n FROM notifications GROUP BY state")})

    def unsent(self) -> int:
        c = self.outbox()
        return c["pending"] + c["sending"]


def _toml_pair(key: str, value: str) -> str:
    return f"{key} = {json.dumps(value)}"
