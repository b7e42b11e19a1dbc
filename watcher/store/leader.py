"""Leader election: exactly one watcher instance at a time does the work that must not be done twice.

On PostgreSQL, :class:`~watcher.store.postgres_lease.LeaderLease` (importable
from here too; it lives apart because psycopg is an optional dependency) holds a *session* advisory lock on a
connection of its own (not the store's: the store reconnects freely, and a lock
held by a connection the store dropped and reopened would be lost unnoticed).
The lock lives exactly as long as that session:

- the leader's process dies (even ``kill -9``): its socket closes, the server
  ends the session and frees the lock at once; a follower's next
  :meth:`~watcher.store.postgres_lease.LeaderLease.try_acquire` wins;
- the leader's machine or network dies: nothing closes the socket, so the lease
  session is started with ``idle_session_timeout`` (PostgreSQL 14+) and TCP
  keepalives: the server ends a session that said nothing for
  ``0.6 × timeout`` seconds, and the lock goes with it;
- the leader hangs (a paused VM, a blocked event loop): same as above, and when
  it wakes its next check finds its connection gone.

The leader itself stops acting as leader *before* the server can hand the lock
to someone else: :attr:`~watcher.store.postgres_lease.LeaderLease.leading` (no I/O) is true only for
``0.3 × timeout`` seconds after the last successful check, while the server
waits ``0.6 × timeout`` of silence. Each acquisition bumps ``leader.epoch``, a
fencing token the outbox can use to refuse a deposed leader's claims.

Followers call :meth:`~watcher.store.postgres_lease.LeaderLease.tick` (or ``try_acquire``) every
:attr:`~watcher.store.postgres_lease.LeaderLease.tick_interval` seconds (``timeout / 6``), so a dead leader is
replaced within ``timeout``: at once after a crash, within about
``0.6 × timeout + tick_interval`` after a machine or network loss.

Every instance also writes a row in ``instances`` (name, location, host, pid,
start, last heartbeat by the server's clock, leader or not) for ``watcher cluster``.

On SQLite there is one instance per file: :class:`SoloLease` always leads, so the
daemon is written once for both stores.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

DEFAULT_TIMEOUT = 30.0
"""Seconds within which a follower replaces a leader that died or lost its connection."""


@dataclass(slots=True)
class InstanceRecord:
    name: str
    location: str | None
    host: str | None
    pid: int | None
    started_at: datetime | None
    last_heartbeat: datetime | None
    is_leader: bool
    heartbeat_age_s: float | None = None
    """Seconds since the last heartbeat, by the database server's clock (no skew between instances)."""


def default_instance_name() -> str:
    return socket.gethostname() or f"watcher-{os.getpid()}"


def identity(settings: Any) -> tuple[str, str]:
    """This instance's (name, location) from ``[cluster]``: the host name, and the name as location."""
    c = settings.cluster
    name = c.name or default_instance_name()
    return name, c.location or name


class Lease(Protocol):
    name: str
    location: str | None
    epoch: int | None
    tick_interval: float

    def try_acquire(self) -> bool: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def leading(self) -> bool: ...

    def tick(self) -> bool: ...

    def heartbeat(self) -> bool: ...

    def release(self) -> None: ...

    def close(self) -> None: ...

    def instances(self) -> list[InstanceRecord]: ...


class SoloLease:
    """The SQLite equivalent: one instance per database file, always the leader."""

    shared = False
    """Nobody else writes this database: what the store says was seen was also merged."""

    def __init__(self, name: str | None = None, location: str | None = None):
        self.name = name or default_instance_name()
        self.location = location
        self.epoch: int | None = 1
        self.tick_interval = DEFAULT_TIMEOUT / 6
        self.started_at = datetime.now(UTC)
        self._last = self.started_at

    def try_acquire(self) -> bool:
        return True

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def leading(self) -> bool:
        return True

    def tick(self) -> bool:
        self.heartbeat()
        return True

    def heartbeat(self) -> bool:
        self._last = datetime.now(UTC)
        return True

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass

    def instances(self) -> list[InstanceRecord]:
        now = datetime.now(UTC)
        return [
            InstanceRecord(
                self.name,
                self.location,
                socket.gethostname(),
                os.getpid(),
                self.started_at,
                self._last,
                True,
                (now - self._last).total_seconds(),
            )
        ]


class Observer(SoloLease):
    """A command-line tool in a cluster (``watcher probe``): it measures, but never leads, so it
    merges nothing and bills nothing behind the leader's back."""

    shared = True

    @property
    def is_leader(self) -> bool:
        return False

    @property
    def leading(self) -> bool:
        return False

    def try_acquire(self) -> bool:
        return False

    def tick(self) -> bool:
        return False


def in_cluster(store: Any) -> bool:
    """Several instances may share this store's database (PostgreSQL): leadership and fencing apply."""
    return bool(store.clustered)


def open_lease(
    store: Any, name: str | None = None, location: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> Lease:
    """The lease that fits the store: :class:`LeaderLease` on PostgreSQL, :class:`SoloLease` otherwise."""
    name = name or default_instance_name()
    if in_cluster(store):
        from watcher.store.postgres_lease import LeaderLease

        return LeaderLease(store.url, name, location, timeout=timeout)
    return SoloLease(name, location)


def __getattr__(name: str) -> Any:
    # LeaderLease needs psycopg, an optional dependency: imported only when asked for
    if name in ("LeaderLease", "list_instances"):
        from watcher.store import postgres_lease

        return getattr(postgres_lease, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
