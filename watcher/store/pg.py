"""What only PostgreSQL has: URLs and connections, the dialect of the one store, the cluster's queries.

The store's queries are written once (:mod:`watcher.store.database` and its query modules);
this module gives them a PostgreSQL connection (autocommit, UTC, dict rows), names its
failures in plain words (never the password), and holds what SQLite has no use for: the
advisory locks, the size figures, the health write on a connection of its own, the list of
instances. :mod:`watcher.store.postgres_lease` builds the leader lease on it.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from watcher.store.base import StoreError
from watcher.store.dialect import Dialect, Run
from watcher.store.leader import InstanceRecord

log = logging.getLogger("watcher.store.postgres")

Conn = psycopg.Connection[dict[str, Any]]
"""A connection whose rows are dicts (see :func:`connect`)."""

MIGRATION_LOCK = 0x57415401
"""First half of the two-key advisory lock taken while migrating (the second is the schema's)."""
LEADER_LOCK = 0x57415402
"""First half of the leader's session advisory lock (see :mod:`watcher.store.leader`)."""
CONNECT_TIMEOUT = 5
"""Seconds to wait for the server when (re)connecting; calls are made on the event loop."""

# -- URLs and messages -------------------------------------------------------------------------


def one_row(cur: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    """The row of a query that always gives one (an aggregate, ``RETURNING`` of a row known to exist)."""
    row = cur.fetchone()
    if row is None:
        raise StoreError("PostgreSQL returned no row where one was certain")
    return row


def is_postgres_url(url: str | None) -> bool:
    return url is not None and url.split(":", 1)[0].lower() in ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """The URL with its password (in the user part or a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^@/]*@", "//***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hosts}"
    query = parts.query
    if query and "password" in query.lower():
        query = urlencode(
            [
                (k, "***" if k.lower() == "password" else v)
                for k, v in parse_qsl(query, keep_blank_values=True)
            ],
            safe="*/",
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def server_address(url: str) -> str:
    """``host:port`` of the server the URL names (for messages: never the user or the password)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "?"
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        params = dict(parse_qsl(parts.query))
        hosts = params.get("host") or "localhost"
        if params.get("port"):
            hosts += ":" + params["port"]
    return ",".join(h if re.search(r":\d+$", h) else f"{h}:5432" for h in hosts.split(","))


_PREFIX = re.compile(
    r'^(connection failed: )?(connection to server at "[^"]*"( \([^)]*\))?, port \d+ failed: )?'
)
_REFUSED = ("does not exist", "authentication failed", "pg_hba.conf", "permission denied", "password")


def plain_error(e: BaseException, secret: str | None = None) -> str:
    text = " ".join(str(e).split())
    text = _PREFIX.sub("", text).replace("FATAL: ", "")
    if secret:
        text = text.replace(secret, "***")
    return text or type(e).__name__


def url_password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        return parts.password or dict(parse_qsl(parts.query)).get("password") or None
    except ValueError:
        return None


def connect(url: str, *, connect_timeout: float = CONNECT_TIMEOUT, **kw: Any) -> Conn:
    """An autocommit connection in UTC returning dict rows; :class:`StoreError` in plain words when it fails."""
    where = server_address(url)
    params: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
    if "connect_timeout" not in url:
        params["connect_timeout"] = max(1, round(connect_timeout))
    params.update(kw)
    try:
        conn = psycopg.connect(url, **params)
        conn.execute("SET TIME ZONE 'UTC'")
    except psycopg.Error as e:
        msg = plain_error(e, url_password(url))
        if any(w in msg for w in _REFUSED):
            raise StoreError(f"PostgreSQL at {where} refused the connection: {msg}") from None
        raise StoreError(f"PostgreSQL at {where} is unreachable: {msg}") from None
    return conn


def schema_key(conn: Conn) -> tuple[str, int]:
    """The connection's schema and a 32-bit key for it: each schema is its own cluster of watchers."""
    row: Any = conn.execute("SELECT current_schema() AS s, current_setting('search_path') AS p").fetchone()
    if row["s"] is None:
        raise StoreError(
            f"no schema to use: none of the search_path ({row['p']}) exists; create it, or fix the URL's "
            "options=-csearch_path=..."
        )
    key = zlib.crc32(row["s"].encode())
    return row["s"], key - (1 << 32) if key >= 1 << 31 else key


def list_instances(conn: Conn) -> list[InstanceRecord]:
    rows = conn.execute(
        "SELECT name, location, host, pid, started_at, last_heartbeat, is_leader, "
        "EXTRACT(EPOCH FROM now() - last_heartbeat)::float8 AS age FROM instances "
        "ORDER BY is_leader DESC, name"
    ).fetchall()
    return [
        InstanceRecord(
            r["name"],
            r["location"],
            r["host"],
            r["pid"],
            r["started_at"],
            r["last_heartbeat"],
            bool(r["is_leader"]),
            r["age"],
        )
        for r in rows
    ]




class Postgres(Dialect):
    """One PostgreSQL schema (the URL's ``search_path``): each schema is its own cluster of watchers."""

    name: ClassVar[str] = "postgresql"
    types: ClassVar[dict[str, str]] = {
        "ts": "timestamptz",
        "id": "bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "bool": "boolean",
        "key": 'text COLLATE "C"',
        "float": "double precision",
        "bigint": "bigint",
    }
    errors: ClassVar[tuple[type[BaseException], ...]] = (psycopg.Error,)
    for_update: ClassVar[str] = " FOR UPDATE"
    skip_locked: ClassVar[str] = " FOR UPDATE SKIP LOCKED"
    connections: ClassVar[int] = 4

    def __init__(self, url: str, *, connect_timeout: float = CONNECT_TIMEOUT, idle_transaction_timeout: float | None = None):
        self.url = url
        self.where = server_address(url)
        self.connect_timeout = connect_timeout
        self.idle_transaction_timeout = idle_transaction_timeout
        """Seconds after which the server ends a transaction left idle (a frozen process): set
        below the lease's own silence limit, so a frozen leader's open transaction is gone before
        anyone else can take the lease, and cannot commit when the process wakes."""

    def connect(self) -> Conn:
        conn = connect(self.url, connect_timeout=self.connect_timeout, application_name="watcher")
        if self.idle_transaction_timeout:
            try:
                conn.execute(
                    "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                    [str(max(1, round(self.idle_transaction_timeout * 1000)))],
                )
            except psycopg.Error as e:
                conn.close()
                raise self.error("set the transaction timeout", e, None) from None
        return conn

    def lost(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)

    def transaction(self, conn: Conn) -> AbstractContextManager[Any]:
        return conn.transaction()

    def error(self, what: str, e: BaseException, conn: Any) -> StoreError:
        if conn is not None and self.lost(conn):
            return StoreError(
                f"cannot {what}: lost the connection to PostgreSQL at {self.where} ({plain_error(e)}); "
                "it is reopened on the next call",
                problem="unreachable",
            )
        return StoreError(f"cannot {what} in PostgreSQL at {self.where}: {plain_error(e, url_password(self.url))}")

    def tables(self, conn: Conn) -> set[str]:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
        ).fetchall()
        return {r["relname"] for r in rows}

    @contextmanager
    def migration_lock(self, conn: Conn) -> Iterator[Conn]:
        _schema, key = schema_key(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", [MIGRATION_LOCK, key])
            yield conn

    def legacy_version(self, conn: Conn) -> int | None:
        from watcher.store.legacy import POSTGRES_LAST
        from watcher.store.schema import version_of

        version = version_of(conn, self)
        return version if 0 < version <= POSTGRES_LAST else None

    def upgrade_legacy(self, conn: Conn, version: int) -> None:
        from watcher.store.legacy import upgrade_postgres

        upgrade_postgres(conn, version)

    def close(self, conn: Conn) -> None:
        with suppress(Exception):
            conn.close()

    def health_write(self, conn: Any, key: str, value: str, timeout: float) -> None:
        """On a connection of its own, in a transaction bounded by ``lock_timeout`` (``timeout``
        seconds; the connection too) and ``statement_timeout`` (a second more); the ``problem`` is
        ``unreachable``, ``refused``, ``read_only``, ``locked``, ``timeout``, ``disk_full`` or ``error``."""
        try:
            own = connect(self.url, connect_timeout=timeout, application_name="watcher-health")
        except StoreError as e:
            problem = "refused" if "refused the connection" in str(e) else "unreachable"
            raise StoreError(str(e), problem=problem) from None
        try:
            with own.transaction():
                # a lock in the way is named as such: the statement timeout comes a second later
                lock_ms = max(1, round(timeout * 1000))
                own.execute(
                    "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                    [str(lock_ms), str(lock_ms + 1000)],
                )
                own.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [key, value],
                )
        except psycopg.Error as e:
            raise StoreError(
                f"cannot write to PostgreSQL at {self.where}: {plain_error(e, url_password(self.url))}",
                problem=health_problem(e, own),
            ) from None
        finally:
            with suppress(Exception):
                own.close()

    def compact(self, run: Run) -> Iterator[int]:
        """Nothing to do: autovacuum keeps the space of deleted rows for new ones (a ``VACUUM FULL``,
        which would give it back, locks each table while it rewrites it)."""
        yield from ()

    def optimize(self, conn: Any) -> None:
        """Nothing to do: autovacuum refreshes the planner's statistics after large deletes."""

    def size(self, conn: Conn) -> tuple[int, int | None]:
        """This schema's tables with their indexes and TOAST; free space is not known without a scan."""
        row = one_row(
            conn.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS size FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                "AND c.relkind IN ('r', 'p', 'm')"
            )
        )
        return int(row["size"]), None


def health_problem(e: psycopg.Error, conn: Conn) -> str:
    state = getattr(e, "sqlstate", None) or ""
    if conn.closed or conn.broken or state.startswith(("08", "57P")):
        return "unreachable"
    # a read-only transaction (a standby, default_transaction_read_only), or no grant to write
    if state in ("25006", "42501"):
        return "read_only"
    if state in ("55P03", "40P01"):
        return "locked"
    if state == "57014":  # statement_timeout
        return "timeout"
    if state == "53100":
        return "disk_full"
    return "error"
