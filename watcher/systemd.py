"""systemd readiness and watchdog (``Type=notify``), without a dependency.

The protocol is one datagram to the socket named in ``NOTIFY_SOCKET`` (a path, or
an abstract socket when it starts with ``@``). Outside systemd the variable is
unset and every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("watcher.systemd")


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``); True when it was sent."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(state.encode())
        return True
    except OSError as e:  # a broken notify socket must not stop the daemon
        log.warning("could not notify systemd (%s): %s", state, e)
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when systemd does not ask."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(1.0, int(usec) / 1e6 / 2)
    except ValueError:
        return None
