"""The PostgreSQL leader lease (see :mod:`watcher.store.leader` for how leadership works and why)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime

import psycopg

from watcher.store.base import StoreError
from watcher.store.leader import DEFAULT_TIMEOUT, InstanceRecord
from watcher.store.pg import (
    LEADER_LOCK,
    Conn,
    Postgres,
    connect,
    list_instances,
    one_row,
    schema_key,
    server_address,
)
from watcher.store.schema import migrate

log = logging.getLogger("watcher.store.leader")


class LeaderLease:
    """Leadership through a PostgreSQL session advisory lock on a dedicated connection.

    Blocking (a few milliseconds per call; up to ``0.2 × timeout`` when the server
    does not answer): call it from a worker thread in the daemon. Never raises
    for database trouble: a lease that cannot reach the database does not lead.
    """

    def __init__(self, url: str, name: str, location: str | None = None, *, timeout: float = DEFAULT_TIMEOUT):
        if timeout < 3:
            raise ValueError("the leader timeout must be at least 3 seconds")
        self.url = url
        self.name = name
        self.location = location
        self.timeout = timeout
        self.tick_interval = timeout / 6
        self.validity = timeout * 0.3
        """Seconds after the last successful check during which :attr:`leading` stays true."""
        self.server_idle_timeout = timeout * 0.6
        self.where = server_address(url)
        self.epoch: int | None = None
        """Fencing token: bumped each time any instance takes the lease; ours while we lead."""
        self.started_at = datetime.now(UTC)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._lock = threading.RLock()
        self._conn: Conn | None = None
        self._held = False
        self._confirmed = 0.0
        self._key = 0
        self._connect()  # a lease that cannot reach the database at start is a start-up error

    def __repr__(self) -> str:
        return f"LeaderLease({self.name!r}, leading={self.leading})"

    # -- connection -----------------------------------------------------------------------------

    def _connect(self) -> Conn:
        step = max(1, int(self.tick_interval))
        conn = connect(
            self.url,
            connect_timeout=max(1.0, self.timeout * 0.2),
            application_name=f"watcher lease {self.name}"[:63],
            keepalives=1,
            keepalives_idle=step,
            keepalives_interval=max(1, step // 2),
            keepalives_count=3,
            tcp_user_timeout=int(self.timeout * 0.2 * 1000),
        )
        try:
            migrate(Postgres(self.url), conn)
            _schema, self._key = schema_key(conn)
            # If we vanish without closing the socket, the server ends this session (and frees the lock).
            conn.execute(f"SET tcp_keepalives_idle = {step}")
            conn.execute(f"SET tcp_keepalives_interval = {max(1, step // 2)}")
            conn.execute("SET tcp_keepalives_count = 3")
            try:
                conn.execute(f"SET idle_session_timeout = {int(self.server_idle_timeout * 1000)}")
            except psycopg.errors.UndefinedObject:  # PostgreSQL before 14: keepalives only
                log.warning(
                    "PostgreSQL at %s has no idle_session_timeout (before 14): a leader whose machine "
                    "vanishes is replaced only when TCP keepalives notice",
                    self.where,
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _ensure(self) -> Conn:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self._held:
            self._lost("its connection to the database dropped")
        if conn is not None:
            self._drop()
        return self._connect()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):  # closing a dead connection
                conn.close()

    def _lost(self, why: str) -> None:
        if self._held:
            log.warning("%s: no longer the leader: %s", self.name, why)
        self._held = False
        self._drop()

    # -- the lease ---------------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this instance leads (already, or now)."""
        with self._lock:
            if self._held:
                return self.is_leader
            asked = time.monotonic()  # before the question: the server's idle clock starts after it
            try:
                conn, got = self._try_lock()
                if not got:
                    return False
                with conn.transaction():
                    self.epoch = one_row(
                        conn.execute(
                            "UPDATE leader SET epoch = epoch + 1, holder = %s, since = now() RETURNING epoch",
                            [self.name],
                        )
                    )["epoch"]
                    conn.execute(
                        "UPDATE instances SET is_leader = false WHERE is_leader AND name <> %s", [self.name]
                    )
                    self._write_heartbeat(conn, True)
            except (psycopg.Error, StoreError) as e:
                log.warning("%s: cannot try the leader lease: %s", self.name, e)
                self._lost(str(e))  # closing the session frees the lock if we got it
                return False
            self._held = True
            self._confirmed = asked
            log.info("%s: now the leader (epoch %d)", self.name, self.epoch)
            return True

    def _try_lock(self) -> tuple[Conn, bool]:
        """``pg_try_advisory_lock``; once more on a new connection if the server had closed ours while idle."""
        for attempt in (0, 1):
            conn = self._ensure()
            try:
                row = one_row(conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS got", [LEADER_LOCK, self._key]))
                return conn, bool(row["got"])
            except psycopg.OperationalError:
                if attempt or not (conn.closed or conn.broken):
                    raise
                self._drop()
        raise AssertionError("unreachable")

    @property
    def is_leader(self) -> bool:
        """Still the leader? Asks the server whether this session holds the lock (one cheap query)."""
        with self._lock:
            if not self._held:
                return False
            conn = self._conn
            if conn is None or conn.closed or conn.broken:
                self._lost("its connection to the database dropped")
                return False
            asked = time.monotonic()
            try:
                held = one_row(
                    conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND classid::bigint = %s AND objid::bigint = %s "
                        "AND objsubid = 2 AND granted) AS held",
                        [LEADER_LOCK, self._key & 0xFFFFFFFF],
                    )
                )["held"]
            except psycopg.Error as e:
                self._lost(f"the database did not answer: {' '.join(str(e).split())}")
                return False
            if not held:
                self._lost("the lock is no longer held")
                return False
            self._confirmed = asked
            return True

    @property
    def leading(self) -> bool:
        """No I/O: held, and confirmed within :attr:`validity` seconds. Check it before each leader-only act."""
        return self._held and time.monotonic() - self._confirmed < self.validity

    def tick(self) -> bool:
        """One step, every :attr:`tick_interval`: confirm or try to take the lease, then heartbeat."""
        with self._lock:
            leads = self.is_leader if self._held else self.try_acquire()
            self.heartbeat()
            return leads

    def heartbeat(self) -> bool:
        """Upsert this instance's row (last heartbeat by the server's clock); False when the database is away."""
        with self._lock:
            try:
                self._write_heartbeat(self._ensure(), self._held)
            except (psycopg.Error, StoreError) as e:
                log.warning("%s: heartbeat not written: %s", self.name, e)
                if self._conn is not None and (self._conn.closed or self._conn.broken):
                    self._lost("its connection to the database dropped")
                return False
            return True

    def _write_heartbeat(self, conn: Conn, leads: bool) -> None:
        conn.execute(
            "INSERT INTO instances (name, location, host, pid, started_at, last_heartbeat, is_leader) "
            "VALUES (%s, %s, %s, %s, %s, now(), %s) ON CONFLICT (name) DO UPDATE SET "
            "location = EXCLUDED.location, host = EXCLUDED.host, pid = EXCLUDED.pid, "
            "started_at = EXCLUDED.started_at, last_heartbeat = now(), is_leader = EXCLUDED.is_leader",
            [self.name, self.location, self.host, self.pid, self.started_at, leads],
        )

    def release(self) -> None:
        """Give the lease up (at shutdown): a follower takes over at its next try, without waiting."""
        with self._lock:
            if not self._held:
                return
            self._held = False
            conn = self._conn
            try:
                if conn is not None and not conn.closed and not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", [LEADER_LOCK, self._key])
                    conn.execute("UPDATE instances SET is_leader = false WHERE name = %s", [self.name])
            except psycopg.Error:
                self._drop()  # the session ends: the lock goes with it
            log.info("%s: gave up the leader lease", self.name)

    def close(self) -> None:
        with self._lock:
            self.release()
            self._drop()

    def instances(self) -> list[InstanceRecord]:
        with self._lock:
            try:
                return list_instances(self._ensure())
            except (psycopg.Error, StoreError) as e:
                log.warning("cannot list instances: %s", e)
                return []
