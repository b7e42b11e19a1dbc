"""`watcher run` as a real process, for the tests that start the daemon.

Each fact is written once here: how the daemon is started (no ``WATCHER_*`` variable of
the developer's shell, its output read live so a full pipe never blocks it), how a test
waits for something while failing at once with the daemon's log if it died, how it is
stopped (SIGTERM, then the exit code), and the config sections every such test repeats
(one Anthropic Statuspage summary served from 127.0.0.1, a Slack route to the stand-in).

A config names its store with ``backend.storage_toml`` (tests/store_backends.py), so the
same daemon test runs on a SQLite file and on a PostgreSQL schema; ``backend.query`` reads
the daemon's database from the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

SUMMARY = "/claude/api/v2/summary.json"
CHANNEL = "C0MKTG"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 20.0, step: float = 0.1):
    """Poll until `predicate` holds (returns its value); if the daemon died meanwhile, fail with what it printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"daemon exited with {proc.returncode}:\n{err[-4000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``WATCHER_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(extra or {})
    return env


def start_daemon(cfg: Path, *, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """`watcher run --config cfg` with no WATCHER_* variable of ours (``env`` adds variables).

    Its output is piped; with ``log``, appended to that file instead (for daemons nobody
    reads while they run: a full pipe would block them).
    """
    cmd = [sys.executable, "-m", "watcher", "run", "--config", str(cfg)]
    if log is None:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(env))
    with open(log, "a") as out:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out, text=True, env=clean_env(env))


class Daemon:
    """``watcher run --config cfg`` in a subprocess, its stderr collected live in :attr:`log`.

    ``prefix`` goes before the interpreter (``setpriv ...``, ``unshare ...``), ``boot`` replaces
    ``-m watcher`` (a bootstrap script), ``args`` follow ``run --config cfg``.
    """

    def __init__(
        self,
        cfg: Path,
        *,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
        boot: Sequence[str] = (),
        args: Sequence[str] = (),
        preexec_fn=None,
    ) -> None:
        cmd = [*prefix, sys.executable, *(boot or ("-m", "watcher")), "run", "--config", str(cfg), *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(env),
            preexec_fn=preexec_fn,
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def until(self, predicate, timeout: float = 20.0):
        """``wait_for`` that fails with the daemon's log if the daemon died meanwhile."""

        def check():
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                raise AssertionError(f"watcher exited with {self.proc.returncode}:\n{self.log[-4000:]}")
            return predicate()

        return wait_for(check, timeout=timeout)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM, then its exit code (killed if it does not stop within ``timeout``); the log is complete."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        return self.proc.returncode

    def stop_cleanly(self) -> str:
        """Stop it and check it ended as a service should: exit 0, no traceback. Its log."""
        code = self.stop()
        assert code == 0, self.log[-4000:]
        assert "Traceback" not in self.log, self.log[-4000:]
        return self.log


def anthropic_toml(url: str, *, used_for: Sequence[str] = (), uses: Sequence[str] = ()) -> str:
    """``[vendors.anthropic]`` polling only its Statuspage summary at ``url``."""
    head = "[vendors.anthropic]\n"
    if used_for:
        head += f"used_for = {list(used_for)!r}\n".replace("'", '"')
    if uses:
        head += f"uses = {list(uses)!r}\n".replace("'", '"')
    return (
        head
        + f'[vendors.anthropic.sources.summary]\nurl = "{url}"\n'
        + "".join(
            f"[vendors.anthropic.sources.{s}]\nenabled = false\n" for s in ("incidents", "maintenances", "history")
        )
    )


def route_toml(channel: str = CHANNEL, *, name: str = "marketing", extra: str = "") -> str:
    """A ``[[routes]]`` table named ``name`` to the Slack ``channel``; ``extra``: more of its keys."""
    return f'[[routes]]\nname = "{name}"\nslack_channels = ["{channel}"]\n{extra}'


def slack_toml(slack_server) -> str:
    """``[slack]`` pointing at the Slack stand-in; the token goes in the environment (``WATCHER_SLACK__TOKEN``)."""
    return f'[slack]\nbase_url = "{slack_server.api_url}"\ntimeout = 3\n'


def email_toml(smtp_server, *, timeout: float | None = None) -> str:
    """``[email]`` for the aiosmtpd of tests/smtp_server.py (STARTTLS, login); the password goes in the
    environment (``WATCHER_EMAIL__PASSWORD``), its CA in ``SSL_CERT_FILE``."""
    from smtp_server import USERNAME

    return (
        f'[email]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nusername = "{USERNAME}"\n'
        'sender = "watcher <alerts@example.com>"\n' + (f"timeout = {timeout}\n" if timeout is not None else "")
    )


def write_config(path: Path, *sections: str) -> Path:
    """Write the TOML ``sections`` (each ending with a newline) to ``path``; ``path``."""
    path.write_text("".join(sections))
    return path
