"""PostgreSQL store (psycopg 3): the same methods as the SQLite store, for several watchers on one database.

Selected by ``storage.url = "postgresql://..."`` (the password, if any, belongs in
``WATCHER_STORAGE__URL``, never in the config file). Everything the SQLite store
and its mixins (:mod:`~watcher.store.outbox`, :mod:`~watcher.store.measurements`,
:mod:`~watcher.store.subscriptions`) do is done here with the same arguments,
the same return types and the same semantics:

- timestamps are ``timestamptz``; they come back as aware UTC datetimes, cut to
  whole seconds where SQLite keeps whole seconds (sources, observations,
  incidents and their events) and to microseconds elsewhere, so both stores
  return equal values. Rows returned as dicts (``probe_results``, ``audit_log``,
  ``subscription_changes``) carry ISO strings and 0/1 flags, as SQLite's do;
- JSON documents are kept as text, byte for byte as the SQLite store writes them
  (``jsonb`` would reorder object keys);
- text keys that are ordered on (source keys, streams, channels) use the ``"C"``
  collation: the byte order SQLite uses, whatever the database's locale.

Schema: versioned in ``schema_version``, migrated on open inside one transaction
that first takes ``pg_advisory_xact_lock`` (one key per schema), so instances
that start together migrate once and the others wait, then find it done.

Connection: one per store, in autocommit; multi-statement writes run in explicit
transactions (``_tx``), like the SQLite store's ``BEGIN IMMEDIATE``. The store is
shared by the event loop and a few worker threads, so every use holds one
re-entrant lock. A lost connection is reopened on the next call; a read (or a
write that is safe to repeat) that fails because the connection dropped is tried
once more on a new one. A write that is not safe to repeat (an insert) raises
:class:`~watcher.store.base.StoreError`: it may or may not have been committed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from watcher.alerts.model import Alert, AlertAction
from watcher.incidents.model import EventType, Incident, IncidentEvent
from watcher.model import SELF_VENDOR
from watcher.store.base import ALERT_STATE_VERSION, SourceRecord, StoredEvent, StoreError
from watcher.store.outbox import Ack, Mute, Notification, _notification
from watcher.store.sqlite import _incident, _source
from watcher.store.subscriptions import WILDCARD, Subscription, subscription_detail

log = logging.getLogger("watcher.store.postgres")

T = TypeVar("T")

MIGRATION_LOCK = 0x57415401
"""First half of the two-key advisory lock taken while migrating (the second is the schema's)."""
LEADER_LOCK = 0x57415402
"""First half of the leader's session advisory lock (see :mod:`watcher.store.leader`)."""
CONNECT_TIMEOUT = 5
"""Seconds to wait for the server when (re)connecting; calls are made on the event loop."""

# -- URLs and messages -------------------------------------------------------------------------


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and url.split(":", 1)[0].lower() in ("postgresql", "postgres")


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


def _plain(e: BaseException, secret: str | None = None) -> str:
    text = " ".join(str(e).split())
    text = _PREFIX.sub("", text).replace("FATAL: ", "")
    if secret:
        text = text.replace(secret, "***")
    return text or type(e).__name__


def _password(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        return parts.password or dict(parse_qsl(parts.query)).get("password") or None
    except ValueError:
        return None


def connect(url: str, *, connect_timeout: float = CONNECT_TIMEOUT, **kw: Any) -> psycopg.Connection:
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
        msg = _plain(e, _password(url))
        if any(w in msg for w in _REFUSED):
            raise StoreError(f"PostgreSQL at {where} refused the connection: {msg}") from None
        raise StoreError(f"PostgreSQL at {where} is unreachable: {msg}") from None
    return conn


def schema_key(conn: psycopg.Connection) -> tuple[str, int]:
    """The connection's schema and a 32-bit key for it: each schema is its own cluster of watchers."""
    row = conn.execute("SELECT current_schema() AS s, current_setting('search_path') AS p").fetchone()
    if row["s"] is None:
        raise StoreError(
            f"no schema to use: none of the search_path ({row['p']}) exists; create it, or fix the URL's "
            "options=-csearch_path=..."
        )
    key = zlib.crc32(row["s"].encode())
    return row["s"], key - (1 << 32) if key >= 1 << 31 else key


# -- schema -------------------------------------------------------------------------------------

_V1 = """
CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value text);

CREATE TABLE sources (
    key text COLLATE "C" PRIMARY KEY,
    vendor text COLLATE "C",
    type text,
    url text,
    last_polled_at timestamptz,
    last_success_at timestamptz,
    last_change_at timestamptz,
    error text,
    error_kind text,
    error_since timestamptz,
    etag text,
    last_modified text,
    content_hash text,
    final_url text,
    summary text,
    polls bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0
);
CREATE INDEX idx_sources_vendor ON sources (vendor);

CREATE TABLE observations (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    source text,
    vendor text,
    at timestamptz,
    kind text,
    data text,
    location text
);
CREATE INDEX idx_observations_vendor_at ON observations (vendor, at);
CREATE INDEX idx_observations_source_at ON observations (source, at);

CREATE TABLE incidents (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    vendor text,
    title text,
    kind text,
    reason text,
    state text,
    status text,
    impact text,
    is_maintenance boolean NOT NULL DEFAULT false,
    phase text,
    origin text,
    backfilled boolean NOT NULL DEFAULT false,
    opened_at timestamptz,
    updated_at timestamptz,
    started_at timestamptz,
    resolved_at timestamptz,
    scheduled_for timestamptz,
    scheduled_until timestamptz,
    url text,
    components text,
    component_statuses text,
    active_sources text,
    seen_updates text,
    bodies text,
    revision integer NOT NULL DEFAULT 0
);
CREATE INDEX idx_incidents_vendor_state ON incidents (vendor, state);
CREATE INDEX idx_incidents_state_opened_at ON incidents (state, opened_at);
CREATE INDEX idx_incidents_opened_at ON incidents (opened_at);

CREATE TABLE incident_keys (
    vendor text NOT NULL,
    key text NOT NULL,
    incident_id bigint NOT NULL REFERENCES incidents (id),
    PRIMARY KEY (vendor, key)
);
CREATE INDEX idx_incident_keys_incident_id ON incident_keys (incident_id);

CREATE TABLE incident_events (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id),
    at timestamptz,
    type text,
    text text,
    status text,
    source text,
    dedupe text
);
CREATE INDEX idx_incident_events_incident_id_id ON incident_events (incident_id, id);
CREATE UNIQUE INDEX idx_incident_events_dedupe ON incident_events (incident_id, dedupe) WHERE dedupe IS NOT NULL;

CREATE TABLE notifications (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    incident_id bigint,
    action text,
    channel text,
    target text,
    route text,
    alert text,
    state text,
    attempts integer NOT NULL DEFAULT 0,
    not_before timestamptz,
    created_at timestamptz,
    claimed_at timestamptz,
    delivered_at timestamptz,
    last_error text,
    first_error_at timestamptz,
    fallback_of bigint,
    fallback_sent boolean NOT NULL DEFAULT false,
    held boolean NOT NULL DEFAULT false,
    ref text
);
CREATE INDEX idx_notifications_state_not_before ON notifications (state, not_before);
CREATE INDEX idx_notifications_incident_channel_target ON notifications (incident_id, channel, target, state, id);

CREATE TABLE slack_threads (
    incident_id bigint, channel text, ts text, created_at timestamptz, PRIMARY KEY (incident_id, channel)
);
CREATE TABLE email_threads (
    incident_id bigint, address text, root_id text, seq integer, PRIMARY KEY (incident_id, address)
);
CREATE TABLE acks (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    incident_id bigint,
    by text,
    at timestamptz,
    reason text,
    via text,
    cleared_at timestamptz
);
CREATE INDEX idx_acks_incident_id ON acks (incident_id);
CREATE TABLE mutes (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    vendor text,
    until timestamptz,
    reason text,
    by text,
    created_at timestamptz,
    ended_at timestamptz
);
CREATE TABLE alert_state (
    incident_id bigint PRIMARY KEY,
    first_alert_at timestamptz,
    last_reminder_at timestamptz,
    escalation_level integer,
    escalated_at timestamptz
);
CREATE TABLE audit (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at timestamptz, who text, what text, detail text
);

CREATE TABLE probe_results (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    vendor text,
    kind text,
    model text,
    at timestamptz,
    ok boolean,
    status integer,
    error_class text,
    error text,
    ttfb_s double precision,
    ttft_s double precision,
    total_s double precision,
    tokens_in bigint,
    tokens_out bigint,
    tokens_per_s double precision,
    canary text,
    passed boolean,
    detail text,
    answer text,
    cost double precision,
    network_ok boolean,
    location text
);
CREATE INDEX idx_probe_results_vendor_at ON probe_results (vendor, at);
CREATE TABLE detector_state (stream text COLLATE "C" PRIMARY KEY, state text, updated_at timestamptz);
CREATE TABLE budget_state (vendor text COLLATE "C" PRIMARY KEY, state text, updated_at timestamptz);

CREATE TABLE subscriptions (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    channel text COLLATE "C" NOT NULL,
    vendor text COLLATE "C" NOT NULL,
    kinds text NOT NULL,
    created_by text,
    created_at timestamptz
);
CREATE UNIQUE INDEX idx_subscriptions_channel_vendor ON subscriptions (channel, vendor);
CREATE INDEX idx_subscriptions_vendor ON subscriptions (vendor);

CREATE TABLE instances (
    name text COLLATE "C" PRIMARY KEY,
    location text,
    host text,
    pid integer,
    started_at timestamptz,
    last_heartbeat timestamptz,
    is_leader boolean NOT NULL DEFAULT false
);
CREATE TABLE leader (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch bigint NOT NULL DEFAULT 0,
    holder text,
    since timestamptz
);
INSERT INTO leader (one) VALUES (true);
"""

_V2 = """
-- Several instances poll the same sources: each keeps its own fetch state (validators,
-- content hash, last error), so one instance's poll never makes another skip a change.
ALTER TABLE sources ADD COLUMN location text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sources DROP CONSTRAINT sources_pkey;
ALTER TABLE sources ADD PRIMARY KEY (key, location);
CREATE INDEX idx_probe_results_location_vendor_at ON probe_results (location, vendor, at);
"""

_V3 = """
-- Acknowledge links act once: each use is recorded under the link's own key.
CREATE TABLE ack_link_uses (
    key text COLLATE "C" PRIMARY KEY,
    incident_id bigint,
    by text,
    at timestamptz
);
"""

_V4 = """
-- A vendor's open incidents in one index range, already in order (issue 18): each merge reads
-- them, and its cost must not grow with the number of vendors watched.
CREATE INDEX idx_incidents_vendor_state_opened ON incidents (vendor, state, opened_at, id);
"""

_V5 = """
-- The newest incidents and the recently resolved ones read through an index, not a sort of every
-- incident ever stored (issue 18: a year of history must not slow the board).
CREATE INDEX idx_incidents_started ON incidents ((COALESCE(started_at, opened_at)) DESC NULLS LAST, id DESC);
CREATE INDEX idx_incidents_vendor_started
    ON incidents (vendor, (COALESCE(started_at, opened_at)) DESC NULLS LAST, id DESC);
CREATE INDEX idx_incidents_resolved_at ON incidents (resolved_at);
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5]
"""One SQL script per schema version; append, never edit one that has shipped."""
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: psycopg.Connection, where: str = "PostgreSQL") -> int:
    """Bring the connection's schema to :data:`SCHEMA_VERSION`; safe when several processes do it at once.

    One transaction: the advisory lock first (the others wait on it, then see the
    new version), then the version row, then each missing script. Returns the
    version found before.
    """
    _schema, key = schema_key(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", [MIGRATION_LOCK, key])
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)"
        )
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row["version"] if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database at {where} has schema version {version}, newer than this watcher "
                f"({SCHEMA_VERSION}): upgrade watcher or use another database or schema"
            )
        for n in range(version, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[n])
            conn.execute(
                "INSERT INTO schema_version (one, version) VALUES (true, %s) "
                "ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
                [n + 1],
            )
        if version < SCHEMA_VERSION:
            log.info("database schema migrated from version %d to %d", version, SCHEMA_VERSION)
    return version


# -- values ----------------------------------------------------------------------------------------


def _sec(dt: datetime | None) -> datetime | None:
    """As the SQLite store keeps it: UTC, whole seconds (cut, not rounded)."""
    return dt.astimezone(UTC).replace(microsecond=0) if dt else None


def _us(dt: datetime | None) -> datetime | None:
    return dt.astimezone(UTC) if dt else None


def _iso(dt: datetime | None) -> str | None:
    """The text the SQLite store returns for microsecond timestamps."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds") if dt else None


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _escape_like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


PROBE_COLUMNS = (
    "vendor",
    "kind",
    "model",
    "at",
    "ok",
    "status",
    "error_class",
    "error",
    "ttfb_s",
    "ttft_s",
    "total_s",
    "tokens_in",
    "tokens_out",
    "tokens_per_s",
    "canary",
    "passed",
    "detail",
    "answer",
    "cost",
    "network_ok",
    "location",
)
_PROBE_FLAGS = ("ok", "passed", "network_ok")
ALERT_STATE_COLUMNS = ("first_alert_at", "last_reminder_at", "escalation_level", "escalated_at")


class PostgresStore:
    """The :class:`~watcher.store.base.Store` on a PostgreSQL database (see the module doc)."""

    path = None
    """No file: health checks and retention that need a SQLite file skip this store."""

    def __init__(
        self,
        url: str,
        *,
        location: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_transaction_timeout: float | None = None,
    ):
        self.url = url
        self.location = location
        """Written into ``observations.location`` and ``probe_results.location``; keys ``sources`` rows."""
        self.fence_epoch: int | None = None
        """The leader's epoch while this instance leads: outbox claims and every transaction
        (incidents and their alerts) are fenced by it, see :meth:`_tx`."""
        self.idle_transaction_timeout = idle_transaction_timeout
        """Seconds after which the server ends a transaction left idle (a frozen process): set
        below the lease's own silence limit, so a frozen leader's open transaction is gone before
        anyone else can take the lease, and cannot commit when the process wakes."""
        self.connect_timeout = connect_timeout
        self.where = server_address(url)
        self.redacted = redact_url(url)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._depth = 0
        self._closed = False
        with self._lock:
            conn = self._connection()
            try:
                migrate(conn, f"PostgreSQL at {self.where}")
            except psycopg.Error as e:
                conn.close()
                raise StoreError(f"cannot migrate the database at {self.where}: {_plain(e)}") from None
            except StoreError:
                conn.close()
                raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted

    # -- connection ------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self._closed:
            raise StoreError(f"the store for PostgreSQL at {self.where} is closed")
        if self._depth:
            raise StoreError(f"lost the connection to PostgreSQL at {self.where} during a transaction")
        if conn is not None:
            with suppress(Exception):
                conn.close()
            self._conn = None
            log.warning("connection to PostgreSQL at %s lost; reconnecting", self.where)
        conn = connect(self.url, connect_timeout=self.connect_timeout, application_name="watcher")
        if self.idle_transaction_timeout:
            try:
                conn.execute(
                    "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                    [str(max(1, round(self.idle_transaction_timeout * 1000)))],
                )
            except psycopg.Error as e:
                conn.close()
                raise self._error("set the transaction timeout", e, None) from None
        self._conn = conn
        return self._conn

    def _error(self, what: str, e: psycopg.Error, conn: psycopg.Connection | None) -> StoreError:
        if conn is not None and (conn.closed or conn.broken):
            return StoreError(
                f"cannot {what}: lost the connection to PostgreSQL at {self.where} ({_plain(e)}); "
                "it is reopened on the next call"
            )
        return StoreError(f"cannot {what} in PostgreSQL at {self.where}: {_plain(e)}")

    def _run(self, what: str, fn: Callable[[psycopg.Connection], T], *, retry: bool = False) -> T:
        """``fn(conn)`` under the lock; ``retry``: once more on a new connection if this one dropped."""
        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                try:
                    return fn(conn)
                except psycopg.Error as e:
                    lost = conn.closed or conn.broken
                    if lost and retry and attempt == 0 and not self._depth:
                        continue
                    raise self._error(what, e, conn) from None
            raise AssertionError("unreachable")

    def _rows(self, q: Any, args: Iterable[Any] = (), what: str = "read") -> list[dict[str, Any]]:
        return self._run(what, lambda c: c.execute(q, list(args)).fetchall(), retry=True)

    def _one(self, q: Any, args: Iterable[Any] = (), what: str = "read") -> dict[str, Any] | None:
        return self._run(what, lambda c: c.execute(q, list(args)).fetchone(), retry=True)

    def _exec(self, q: Any, args: Iterable[Any] = (), what: str = "write", *, retry: bool = False) -> int:
        return self._run(what, lambda c: c.execute(q, list(args)).rowcount, retry=retry)

    def _insert(self, table: str, row: dict[str, Any], what: str) -> int:
        q = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder() * len(row)),
        )
        return self._run(what, lambda c: c.execute(q, list(row.values())).fetchone()["id"])

    def _upsert(self, table: str, row: dict[str, Any], pk: tuple[str, ...], what: str) -> None:
        """Insert, or update the given columns only (sqlite-utils' ``upsert``); safe to repeat."""
        rest = [k for k in row if k not in pk]
        action = (
            sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(k)) for k in rest)
            )
            if rest
            else sql.SQL("DO NOTHING")
        )
        q = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Placeholder() * len(row)),
            sql.SQL(", ").join(map(sql.Identifier, pk)),
            action,
        )
        self._exec(q, row.values(), what, retry=True)

    def transaction(self, what: str):
        """Several writes that stand or fall together (``what`` names them in a StoreError);
        nested transactions join the outer one."""
        return self._tx(what)

    @contextmanager
    def _tx(self, what: str = "write") -> Iterator[psycopg.Connection]:
        """One transaction; nested uses join the outer one (like the SQLite store's)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            conn = self._connection()
            self._depth = 1
            try:
                with conn.transaction():
                    if self.fence_epoch is not None:
                        # a leader that lost the lease without noticing (frozen, cut off) writes nothing
                        row = conn.execute("SELECT epoch FROM leader").fetchone()
                        if row is None or row["epoch"] != self.fence_epoch:
                            raise StoreError(
                                f"cannot {what}: this instance no longer leads the cluster (epoch "
                                f"{self.fence_epoch}, now {row['epoch'] if row else '?'})",
                                problem="deposed",
                            )
                    yield conn
            except psycopg.Error as e:
                raise self._error(what, e, conn) from None
            finally:
                self._depth = 0

    @property
    def schema_version(self) -> int:
        row = self._one("SELECT version FROM schema_version")
        return row["version"] if row else 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                with suppress(Exception):
                    self._conn.close()
                self._conn = None

    # -- meta (what other modules keep in SQLite's ``meta`` through ``store.db``) -----------------

    def meta_get(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", [key])
        return row["value"] if row else None

    def alert_state_version(self) -> str | None:
        """Changes whenever the mutes or watcher's own incidents change, whichever instance wrote them."""
        return self.meta_get(ALERT_STATE_VERSION)

    def _bump_alert_state(self) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES (%s, '1') "
            "ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text",
            [ALERT_STATE_VERSION],
            "save alert state version",
        )

    def meta_set(self, key: str, value: str) -> None:
        self._upsert("meta", {"key": key, "value": value}, ("key",), "save setting")

    def meta_items(self, prefix: str = "") -> dict[str, str]:
        rows = self._rows(
            "SELECT key, value FROM meta WHERE key LIKE %s ESCAPE '\\' ORDER BY key",
            [_escape_like(prefix) + "%"],
        )
        return {r["key"]: r["value"] for r in rows}

    def meta_add(self, key: str, n: int) -> int:
        """Add ``n`` to an integer kept as text (retention's pruned counters); the new value."""
        row = self._run(
            "save counter",
            lambda c: c.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET "
                "value = (COALESCE(NULLIF(meta.value, ''), '0')::bigint + EXCLUDED.value::bigint)::text "
                "RETURNING value",
                [key, str(int(n))],
            ).fetchone(),
        )
        return int(row["value"])

    # -- sources --------------------------------------------------------------------------------------

    def source(self, key: str) -> SourceRecord | None:
        row = self._one("SELECT * FROM sources WHERE key = %s AND location = %s", [key, self.location or ""])
        return _source(row) if row else None

    def touch_source(self, record: SourceRecord) -> None:
        """An unchanged document: one small UPDATE of the fetch state, the summary left as stored.

        For a source already saved with no error; otherwise (no row yet) the whole record is saved.
        """
        n = self._exec(
            "UPDATE sources SET last_polled_at = %s, last_success_at = %s, etag = %s, last_modified = %s, "
            "final_url = %s, polls = %s, failures = 0, error = NULL, error_kind = NULL, error_since = NULL "
            "WHERE key = %s AND location = %s",
            [
                _sec(record.last_polled_at),
                _sec(record.last_success_at),
                record.etag,
                record.last_modified,
                record.final_url,
                record.polls,
                record.key,
                self.location or "",
            ],
            "save source",
        )
        if n == 0:
            self.save_source(record)

    def sources(self, vendor: str | None = None) -> list[SourceRecord]:
        """This instance's view of the sources (each location keeps its own fetch state)."""
        loc = self.location or ""
        if vendor is None:
            rows = self._rows("SELECT * FROM sources WHERE location = %s ORDER BY key", [loc])
        else:
            rows = self._rows(
                "SELECT * FROM sources WHERE vendor = %s AND location = %s ORDER BY key", [vendor, loc]
            )
        return [_source(r) for r in rows]

    def save_source(self, record: SourceRecord) -> None:
        row = {
            "key": record.key,
            "location": self.location or "",
            "vendor": record.vendor,
            "type": record.type,
            "url": record.url,
            "last_polled_at": _sec(record.last_polled_at),
            "last_success_at": _sec(record.last_success_at),
            "last_change_at": _sec(record.last_change_at),
            "error": record.error,
            "error_kind": record.error_kind,
            "error_since": _sec(record.error_since),
            "etag": record.etag,
            "last_modified": record.last_modified,
            "content_hash": record.content_hash,
            "final_url": record.final_url,
            "summary": json.dumps(record.summary) if record.summary is not None else None,
            "polls": record.polls,
            "failures": record.failures,
        }
        self._upsert("sources", row, ("key", "location"), "save source")

    def add_observation(
        self, source: str, vendor: str, at: datetime, kind: str, data: dict[str, Any]
    ) -> None:
        self._exec(
            "INSERT INTO observations (source, vendor, at, kind, data, location) VALUES (%s, %s, %s, %s, %s, %s)",
            [source, vendor, _sec(at), kind, json.dumps(data), self.location],
            "save observation",
        )

    # -- incidents ------------------------------------------------------------------------------------

    def open_incidents(self, vendor: str | None = None) -> list[Incident]:
        if vendor is None:
            rows = self._rows(
                "SELECT * FROM incidents WHERE state = 'open' ORDER BY opened_at NULLS FIRST, id"
            )
        else:
            rows = self._rows(
                "SELECT * FROM incidents WHERE state = 'open' AND vendor = %s ORDER BY opened_at NULLS FIRST, id",
                [vendor],
            )
        return self._incidents(rows)

    def incidents_by_keys(self, vendor: str, keys: Iterable[str]) -> list[Incident]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return []
        ids = [
            r["incident_id"]
            for r in self._rows(
                "SELECT DISTINCT incident_id FROM incident_keys WHERE vendor = %s AND key = ANY(%s)",
                [vendor, keys],
            )
        ]
        if not ids:
            return []
        return self._incidents(self._rows("SELECT * FROM incidents WHERE id = ANY(%s) ORDER BY id", [ids]))

    def incident(self, incident_id: int) -> Incident | None:
        got = self._incidents(self._rows("SELECT * FROM incidents WHERE id = %s", [incident_id]))
        return got[0] if got else None

    def incidents(
        self, *, vendor: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[Incident]:
        where, args = [], []
        if vendor:
            where.append("vendor = %s")
            args.append(vendor)
        if open_only:
            where.append("state = 'open'")
        q = "SELECT * FROM incidents"
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY COALESCE(started_at, opened_at) DESC NULLS LAST, id DESC LIMIT %s"
        return self._incidents(self._rows(q, [*args, limit]))

    def resolved_since(self, since: datetime, limit: int = 1000) -> list[Incident]:
        """Incidents resolved at or after ``since``, the latest resolved first: an indexed range."""
        return self._incidents(
            self._rows(
                "SELECT * FROM incidents WHERE resolved_at >= %s ORDER BY resolved_at DESC, id DESC LIMIT %s",
                [_sec(since), limit],
            )
        )

    def save_incident(self, incident: Incident, events: list[IncidentEvent]) -> int:
        row = {
            "vendor": incident.vendor,
            "title": incident.title,
            "kind": incident.kind.value,
            "reason": incident.reason,
            "state": incident.state.value,
            "status": incident.status.value,
            "impact": incident.impact,
            "is_maintenance": bool(incident.is_maintenance),
            "phase": incident.phase.value if incident.phase else None,
            "origin": incident.origin,
            "backfilled": bool(incident.backfilled),
            "opened_at": _sec(incident.opened_at),
            "updated_at": _sec(incident.updated_at),
            "started_at": _sec(incident.started_at),
            "resolved_at": _sec(incident.resolved_at),
            "scheduled_for": _sec(incident.scheduled_for),
            "scheduled_until": _sec(incident.scheduled_until),
            "url": incident.url,
            "components": json.dumps(incident.components),
            "component_statuses": json.dumps({k: v.value for k, v in incident.component_statuses.items()}),
            "active_sources": json.dumps(sorted(incident.active_sources)),
            "seen_updates": json.dumps(sorted(incident.seen_updates)),
            "bodies": json.dumps(incident.bodies),
            "revision": incident.revision,
        }
        new = incident.id is None
        try:
            with self._tx("save incident"):
                if incident.vendor == SELF_VENDOR:
                    self._bump_alert_state()
                if new:
                    incident.id = self._insert("incidents", row, "save incident")
                else:
                    q = sql.SQL("UPDATE incidents SET {} WHERE id = %s").format(
                        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in row)
                    )
                    if not self._exec(q, [*row.values(), incident.id], "save incident"):
                        raise StoreError(
                            f"cannot save incident: incident #{incident.id} is not in the database"
                        )
                keys = [(incident.vendor, k, incident.id) for k in sorted(incident.keys)]
                evs = [
                    (incident.id, _sec(ev.at), ev.type.value, ev.text, ev.status, ev.source, ev.dedupe)
                    for ev in events
                ]

                def write(c: psycopg.Connection) -> None:
                    with c.cursor() as cur:
                        if keys:
                            cur.executemany(
                                "INSERT INTO incident_keys (vendor, key, incident_id) VALUES (%s, %s, %s) "
                                "ON CONFLICT (vendor, key) DO UPDATE SET incident_id = EXCLUDED.incident_id",
                                keys,
                            )
                        if evs:
                            cur.executemany(
                                "INSERT INTO incident_events (incident_id, at, type, text, status, source, dedupe) "
                                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                evs,
                            )

                self._run("save incident", write)
        except BaseException:
            if new:
                incident.id = None
            raise
        return incident.id

    def events(self, incident_id: int) -> list[StoredEvent]:
        rows = self._rows("SELECT * FROM incident_events WHERE incident_id = %s ORDER BY id", [incident_id])
        return [
            StoredEvent(
                id=r["id"],
                incident_id=r["incident_id"],
                event=IncidentEvent(
                    type=EventType(r["type"]),
                    at=r["at"],
                    text=r["text"] or "",
                    status=r["status"],
                    source=r["source"],
                    dedupe=r["dedupe"],
                ),
            )
            for r in rows
        ]

    def _incidents(self, rows: Iterable[dict[str, Any]]) -> list[Incident]:
        out = [_incident(r) for r in rows]
        if not out:
            return out
        by_id = {i.id: i for i in out}
        for r in self._rows(
            "SELECT incident_id, key FROM incident_keys WHERE incident_id = ANY(%s)", [list(by_id)]
        ):
            by_id[r["incident_id"]].keys.add(r["key"])
        return out

    # -- notifications (the outbox) -------------------------------------------------------------------

    def enqueue(
        self,
        *,
        incident_id: int,
        action: AlertAction,
        channel: str,
        target: str,
        route: str,
        alert: Alert,
        now: datetime,
        not_before: datetime | None = None,
        fallback_of: int | None = None,
    ) -> int:
        """Write a notification; a held one (``not_before`` later) is merged with an earlier held one."""
        held = not_before is not None and not_before > now
        with self._tx("queue notification"):
            if held:
                row = self._one(
                    "SELECT id FROM notifications WHERE incident_id = %s AND channel = %s AND target = %s "
                    "AND state = 'pending' AND held ORDER BY id DESC LIMIT 1 FOR UPDATE",
                    [incident_id, channel, target],
                    "queue notification",
                )
                if row:
                    self._exec(
                        "UPDATE notifications SET alert = %s, action = %s, not_before = %s WHERE id = %s",
                        [json.dumps(alert.to_json()), action.value, _us(not_before), row["id"]],
                        "queue notification",
                    )
                    return row["id"]
            return self._insert(
                "notifications",
                {
                    "incident_id": incident_id,
                    "action": action.value,
                    "channel": channel,
                    "target": target,
                    "route": route,
                    "alert": json.dumps(alert.to_json()),
                    "state": "pending",
                    "attempts": 0,
                    "not_before": _us(not_before or now),
                    "created_at": _us(now),
                    "fallback_of": fallback_of,
                    "held": held,
                },
                "queue notification",
            )

    def due_notifications(self, now: datetime, limit: int = 50) -> list[Notification]:
        """Pending rows whose time has come; a row waits for earlier unsent rows of its incident and target."""
        rows = self._rows(
            "SELECT * FROM notifications n WHERE n.state = 'pending' AND n.not_before <= %s "
            "AND NOT EXISTS (SELECT 1 FROM notifications m WHERE m.incident_id = n.incident_id "
            "AND m.channel = n.channel AND m.target = n.target "
            "AND m.state IN ('pending', 'sending') AND m.id < n.id) "
            "ORDER BY n.id LIMIT %s",
            [_us(now), limit],
        )
        return [_notification(r) for r in rows]

    def next_due_at(self, after: datetime | None = None) -> datetime | None:
        if after is None:
            row = self._one("SELECT MIN(not_before) AS t FROM notifications WHERE state = 'pending'")
        else:
            row = self._one(
                "SELECT MIN(not_before) AS t FROM notifications WHERE state = 'pending' AND not_before > %s",
                [_us(after)],
            )
        return row["t"] if row else None

    def claim(self, notification_id: int, now: datetime) -> bool:
        """True when this caller now owns the row (exactly one row changed), across every instance.

        With :attr:`fence_epoch` set (the leader's epoch), the claim also requires that
        epoch to still be the newest: a deposed leader that has not noticed yet cannot
        claim anything once another instance has taken the lease.
        """
        if self.fence_epoch is None:
            q = (
                "UPDATE notifications SET state = 'sending', claimed_at = %s, attempts = attempts + 1 "
                "WHERE id = %s AND state = 'pending'"
            )
            args: list[Any] = [_us(now), notification_id]
        else:
            q = (
                "UPDATE notifications SET state = 'sending', claimed_at = %s, attempts = attempts + 1 "
                "WHERE id = %s AND state = 'pending' AND (SELECT epoch FROM leader) = %s"
            )
            args = [_us(now), notification_id, self.fence_epoch]
        return self._exec(q, args, "claim notification") == 1

    def mark_delivered(self, notification_id: int, now: datetime, ref: dict[str, Any] | None = None) -> None:
        self._exec(
            "UPDATE notifications SET state = 'delivered', delivered_at = %s, ref = %s, last_error = NULL "
            "WHERE id = %s",
            [_us(now), json.dumps(ref) if ref else None, notification_id],
            "mark notification delivered",
            retry=True,
        )

    def mark_retry(self, notification_id: int, now: datetime, not_before: datetime, error: str) -> None:
        self._exec(
            "UPDATE notifications SET state = 'pending', not_before = %s, last_error = %s, "
            "first_error_at = COALESCE(first_error_at, %s) WHERE id = %s",
            [_us(not_before), error, _us(now), notification_id],
            "reschedule notification",
            retry=True,
        )

    def mark_dead(self, notification_id: int, now: datetime, error: str) -> None:
        self._exec(
            "UPDATE notifications SET state = 'dead', last_error = %s, "
            "first_error_at = COALESCE(first_error_at, %s) WHERE id = %s",
            [error, _us(now), notification_id],
            "mark notification dead",
            retry=True,
        )

    def mark_fallback_sent(self, notification_id: int) -> None:
        self._exec(
            "UPDATE notifications SET fallback_sent = true WHERE id = %s",
            [notification_id],
            "mark fallback sent",
            retry=True,
        )

    def recover_inflight(self) -> int:
        """Put rows left in ``sending`` back to ``pending``; returns how many.

        With several instances only the leader may call this, once it holds the
        lease: a follower doing it would re-queue the leader's sends in flight.
        """
        return self._exec(
            "UPDATE notifications SET state = 'pending' WHERE state = 'sending'", (), "recover notifications"
        )

    def notifications(
        self, *, state: str | None = None, incident_id: int | None = None, limit: int = 100
    ) -> list[Notification]:
        where, args = [], []
        if state:
            where.append("state = %s")
            args.append(state)
        if incident_id is not None:
            where.append("incident_id = %s")
            args.append(incident_id)
        q = "SELECT * FROM notifications" + (" WHERE " + " AND ".join(where) if where else "")
        return [_notification(r) for r in self._rows(q + " ORDER BY id DESC LIMIT %s", [*args, limit])]

    def alerted_targets(self, incident_id: int) -> list[tuple[str, str, str]]:
        """(channel, target, route) of every notification queued for an incident (not dead), first first.

        The route is the first row's, as SQLite gives a bare column next to ``MIN(id)``.
        """
        rows = self._rows(
            "SELECT channel, target, (array_agg(route ORDER BY id))[1] AS route FROM notifications "
            "WHERE incident_id = %s AND state != 'dead' GROUP BY channel, target ORDER BY MIN(id)",
            [incident_id],
        )
        return [(r["channel"], r["target"], r["route"]) for r in rows]

    # -- threads --------------------------------------------------------------------------------------

    def slack_thread(self, incident_id: int, channel: str) -> str | None:
        row = self._one(
            "SELECT ts FROM slack_threads WHERE incident_id = %s AND channel = %s", [incident_id, channel]
        )
        return row["ts"] if row else None

    def save_slack_thread(self, incident_id: int, channel: str, ts: str, now: datetime) -> None:
        self._upsert(
            "slack_threads",
            {"incident_id": incident_id, "channel": channel, "ts": ts, "created_at": _us(now)},
            ("incident_id", "channel"),
            "save Slack thread",
        )

    def email_thread(self, incident_id: int, address: str) -> tuple[str, int] | None:
        row = self._one(
            "SELECT root_id, seq FROM email_threads WHERE incident_id = %s AND address = %s",
            [incident_id, address],
        )
        return (row["root_id"], row["seq"]) if row else None

    def save_email_thread(self, incident_id: int, address: str, root_id: str, seq: int) -> None:
        self._upsert(
            "email_threads",
            {"incident_id": incident_id, "address": address, "root_id": root_id, "seq": seq},
            ("incident_id", "address"),
            "save email thread",
        )

    # -- acknowledgements ---------------------------------------------------------------------------------

    def acknowledge(self, incident_id: int, by: str, now: datetime, reason: str | None, via: str) -> None:
        with self._tx("save acknowledgement"):
            self._exec(
                "UPDATE acks SET cleared_at = %s WHERE incident_id = %s AND cleared_at IS NULL",
                [_us(now), incident_id],
                "save acknowledgement",
            )
            self._insert(
                "acks",
                {"incident_id": incident_id, "by": by, "at": _us(now), "reason": reason, "via": via},
                "save acknowledgement",
            )
            self.audit(
                now, by, "ack", f"incident #{incident_id} via {via}" + (f": {reason}" if reason else "")
            )

    def use_ack_link(self, key: str, incident_id: int, by: str, now: datetime) -> tuple[str, datetime] | None:
        n = self._exec(
            "INSERT INTO ack_link_uses (key, incident_id, by, at) VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
            [key, incident_id, by, _us(now)],
            "record acknowledge link use",
        )
        return None if n == 1 else self.ack_link_use(key)

    def ack_link_use(self, key: str) -> tuple[str, datetime] | None:
        row = self._one("SELECT by, at FROM ack_link_uses WHERE key = %s", [key])
        return (row["by"], row["at"]) if row else None

    def ack(self, incident_id: int) -> Ack | None:
        row = self._one(
            "SELECT incident_id, by, at, reason, via FROM acks WHERE incident_id = %s AND cleared_at IS NULL "
            "ORDER BY id DESC LIMIT 1",
            [incident_id],
        )
        return Ack(row["incident_id"], row["by"], row["at"], row["reason"], row["via"]) if row else None

    def clear_ack(self, incident_id: int, now: datetime) -> None:
        self._exec(
            "UPDATE acks SET cleared_at = %s WHERE incident_id = %s AND cleared_at IS NULL",
            [_us(now), incident_id],
            "clear acknowledgement",
            retry=True,
        )

    # -- mutes ---------------------------------------------------------------------------------------------

    def add_mute(
        self, vendor: str, until: datetime, reason: str | None, by: str | None, now: datetime
    ) -> int:
        with self._tx("save mute"):
            self._bump_alert_state()
            mid = self._insert(
                "mutes",
                {"vendor": vendor, "until": _us(until), "reason": reason, "by": by, "created_at": _us(now)},
                "save mute",
            )
            self.audit(
                now, by or "?", "mute", f"{vendor} until {_iso(until)}" + (f": {reason}" if reason else "")
            )
        return mid

    def active_mutes(self, now: datetime) -> list[Mute]:
        rows = self._rows(
            "SELECT id, vendor, until, reason, by, created_at FROM mutes "
            "WHERE until > %s AND ended_at IS NULL ORDER BY until",
            [_us(now)],
        )
        return [Mute(r["id"], r["vendor"], r["until"], r["reason"], r["by"], r["created_at"]) for r in rows]

    def end_mutes(self, vendor: str, now: datetime, by: str | None = None) -> int:
        with self._tx("end mute"):
            self._bump_alert_state()
            n = self._exec(
                "UPDATE mutes SET ended_at = %s WHERE vendor = %s AND ended_at IS NULL AND until > %s",
                [_us(now), vendor, _us(now)],
                "end mute",
            )
            if n:
                self.audit(now, by or "?", "unmute", vendor)
        return n

    # -- reminders / escalation -------------------------------------------------------------------------

    def alert_state(self, incident_id: int) -> dict[str, Any] | None:
        r = self._one("SELECT * FROM alert_state WHERE incident_id = %s", [incident_id])
        if not r:
            return None
        return {
            "first_alert_at": r["first_alert_at"],
            "last_reminder_at": r["last_reminder_at"],
            "escalation_level": r["escalation_level"] or 0,
            "escalated_at": r["escalated_at"],
        }

    def alerted_open_incident_ids(self) -> list[int]:
        """Open incidents somebody was alerted about: the only ones reminders and escalation look at."""
        rows = self._rows(
            "SELECT a.incident_id FROM alert_state a JOIN incidents i ON i.id = a.incident_id "
            "WHERE i.state = 'open' AND a.first_alert_at IS NOT NULL"
        )
        return [r["incident_id"] for r in rows]

    def save_alert_state(self, incident_id: int, **fields: Any) -> None:
        unknown = set(fields) - set(ALERT_STATE_COLUMNS)
        if unknown:
            raise StoreError(f"cannot save alert state: no column {', '.join(sorted(unknown))}")
        row: dict[str, Any] = {"incident_id": incident_id}
        row.update({k: (_us(v) if isinstance(v, datetime) else v) for k, v in fields.items()})
        self._upsert("alert_state", row, ("incident_id",), "save alert state")

    def audit(self, now: datetime, who: str, what: str, detail: str) -> None:
        self._exec(
            "INSERT INTO audit (at, who, what, detail) VALUES (%s, %s, %s, %s)",
            [_us(now), who, what, detail],
            "write audit log",
        )

    def audit_log(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._rows("SELECT id, at, who, what, detail FROM audit ORDER BY id DESC LIMIT %s", [limit])
        return [{**r, "at": _iso(r["at"])} for r in rows]

    # -- measurements ------------------------------------------------------------------------------------

    def add_probe_result(self, row: dict[str, Any]) -> int:
        unknown = set(row) - set(PROBE_COLUMNS)
        if unknown:
            raise StoreError(f"cannot save probe result: no column {', '.join(sorted(unknown))}")
        row = dict(row)
        at = row.get("at")
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        if isinstance(at, datetime):
            row["at"] = _us(at)
        for k in _PROBE_FLAGS:
            if row.get(k) is not None:
                row[k] = bool(row[k])
        if self.location is not None:
            row.setdefault("location", self.location)
        return self._insert("probe_results", row, "save probe result")

    def probe_results(self, vendor: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if vendor:
            rows = self._rows(
                "SELECT * FROM probe_results WHERE vendor = %s ORDER BY id DESC LIMIT %s", [vendor, limit]
            )
        else:
            rows = self._rows("SELECT * FROM probe_results ORDER BY id DESC LIMIT %s", [limit])
        out = []
        for r in rows:
            r["at"] = _iso(r["at"])
            for k in _PROBE_FLAGS:
                r[k] = _int(r[k])
            out.append(r)
        return out

    def detector_state(self, stream: str) -> dict[str, Any] | None:
        row = self._one("SELECT state FROM detector_state WHERE stream = %s", [stream])
        return json.loads(row["state"]) if row else None

    def detector_states(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        rows = self._rows(
            "SELECT stream, state FROM detector_state WHERE stream LIKE %s ESCAPE '\\' ORDER BY stream",
            [_escape_like(prefix) + "%"],
        )
        return {r["stream"]: json.loads(r["state"]) for r in rows}

    def save_detector_state(self, stream: str, state: dict[str, Any], now: datetime) -> None:
        self._upsert(
            "detector_state",
            {"stream": stream, "state": json.dumps(state), "updated_at": _us(now)},
            ("stream",),
            "save detector state",
        )

    def budget_state(self, vendor: str) -> dict[str, Any] | None:
        row = self._one("SELECT state FROM budget_state WHERE vendor = %s", [vendor])
        return json.loads(row["state"]) if row else None

    def save_budget_state(self, vendor: str, state: dict[str, Any], now: datetime) -> None:
        self._upsert(
            "budget_state",
            {"vendor": vendor, "state": json.dumps(state), "updated_at": _us(now)},
            ("vendor",),
            "save budget state",
        )

    # -- subscriptions --------------------------------------------------------------------------------------

    def subscribe(
        self, channel: str, vendor: str, kinds: list[str] | tuple[str, ...], by: str, now: datetime
    ) -> bool:
        """Subscribe ``channel`` to ``vendor`` for ``kinds``; True when something changed."""
        kinds = tuple(dict.fromkeys(kinds))
        with self._tx("save subscription"):
            row = self._one(
                "INSERT INTO subscriptions (channel, vendor, kinds, created_by, created_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (channel, vendor) DO UPDATE SET "
                "kinds = EXCLUDED.kinds, created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at "
                "WHERE subscriptions.kinds IS DISTINCT FROM EXCLUDED.kinds RETURNING id",
                [channel, vendor, json.dumps(list(kinds)), by, _us(now)],
                "save subscription",
            )
            if row is None:
                return False
            self.audit(now, by, "subscribe", subscription_detail(channel, vendor, kinds))
        return True

    def unsubscribe(self, channel: str, vendor: str | None, by: str, now: datetime) -> list[str]:
        """Remove this channel's subscription to ``vendor`` (None: all of them); the vendors removed."""
        with self._tx("remove subscription"):
            if vendor is None:
                rows = self._rows(
                    "DELETE FROM subscriptions WHERE channel = %s RETURNING vendor",
                    [channel],
                    "remove subscription",
                )
            else:
                rows = self._rows(
                    "DELETE FROM subscriptions WHERE channel = %s AND vendor = %s RETURNING vendor",
                    [channel, vendor],
                    "remove subscription",
                )
            removed = sorted(r["vendor"] for r in rows)
            for v in removed:
                self.audit(now, by, "unsubscribe", subscription_detail(channel, v))
        return removed

    def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        if channel is None:
            rows = self._rows("SELECT * FROM subscriptions ORDER BY channel, vendor")
        else:
            rows = self._rows("SELECT * FROM subscriptions WHERE channel = %s ORDER BY vendor", [channel])
        return [_subscription(r) for r in rows]

    def subscriptions_for(self, vendor: str) -> list[Subscription]:
        rows = self._rows(
            "SELECT * FROM subscriptions WHERE vendor IN (%s, %s) ORDER BY id", [vendor, WILDCARD]
        )
        return [_subscription(r) for r in rows]

    def subscription_changes(self, channel: str, limit: int = 10) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, at, who, what, detail FROM audit WHERE what IN ('subscribe', 'unsubscribe') "
            "AND detail LIKE %s ESCAPE '\\' ORDER BY id DESC LIMIT %s",
            [_escape_like(channel) + ": %", limit],
        )
        return [{**r, "at": _iso(r["at"])} for r in rows]

    # -- operations: retention, report, /healthz, /metrics (see watcher.store.maintenance) -----------

    def prune(self, table: str, before: datetime, batch: int = 2000) -> Iterator[int]:
        """Delete ``table``'s rows older than ``before``, oldest first, ``batch`` per transaction;
        yields each batch's count (nothing happens until iterated). The same rules as the SQLite
        store's :meth:`~watcher.store.maintenance.MaintenanceTables.prune`, except that the newest
        observation of each source is kept per location."""
        from watcher.store.maintenance import PRUNABLE

        if table == "notifications":
            yield from self._prune_notifications(_us(before), batch)
            return
        if table == "observations":
            # the newest of each source stays, as seen from each location
            keep = [
                r["id"]
                for r in self._rows("SELECT MAX(id) AS id FROM observations GROUP BY source, location")
                if r["id"] is not None
            ]
            q = (
                "DELETE FROM observations WHERE id IN (SELECT id FROM observations "
                "WHERE at < %s AND id <> ALL(%s::bigint[]) ORDER BY id LIMIT %s)"
            )
            args: list[Any] = [_sec(before), keep, batch]
        elif table == "probe_results":
            q = "DELETE FROM probe_results WHERE id IN (SELECT id FROM probe_results WHERE at < %s ORDER BY id LIMIT %s)"
            args = [_us(before), batch]
        else:
            raise ValueError(f"cannot prune {table!r}: only {', '.join(PRUNABLE)}")
        while True:
            # each DELETE is its own short transaction; repeating one after a lost connection is harmless
            n = self._exec(q, args, f"prune {table}", retry=True)
            if not n:
                return
            yield n
            if n < batch:
                return

    def _prune_notifications(self, cutoff: datetime, batch: int) -> Iterator[int]:
        from watcher.store.maintenance import pruned_counters

        while True:
            with self._tx("prune notifications"):
                rows = self._rows(
                    "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications "
                    "WHERE state IN ('delivered', 'dead') AND created_at < %s "
                    "AND incident_id NOT IN (SELECT id FROM incidents WHERE state = 'open') "
                    "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING channel, state, attempts",
                    [cutoff, batch],
                    "prune notifications",
                )
                groups: dict[tuple[str, str], list[int]] = {}
                for r in rows:
                    g = groups.setdefault((r["channel"], r["state"]), [0, 0])
                    g[0] += 1
                    g[1] += r["attempts"] or 0
                counters = pruned_counters([(c, s, n, a) for (c, s), (n, a) in groups.items()])
                for key, n in sorted(counters.items()):
                    self.meta_add(key, n)
            if not rows:
                return
            yield len(rows)
            if len(rows) < batch:
                return

    def compact(self) -> Iterator[int]:
        """Nothing to do: autovacuum keeps the space of deleted rows for new ones (a ``VACUUM FULL``,
        which would give it back, locks each table while it rewrites it)."""
        yield from ()

    def optimize(self) -> None:
        """Nothing to do: autovacuum refreshes the planner's statistics after large deletes."""

    def health_write(self, key: str, value: str, *, timeout: float = 2.0) -> None:
        """A real write of one ``meta`` row on a connection of its own, in a transaction bounded by
        ``lock_timeout`` (``timeout`` seconds; the connection too) and ``statement_timeout`` (a second more);
        :class:`StoreError` with its ``problem`` (``unreachable``, ``refused``, ``read_only``,
        ``locked``, ``timeout``, ``disk_full``, ``error``) when the server cannot take it."""
        try:
            conn = connect(self.url, connect_timeout=timeout, application_name="watcher-health")
        except StoreError as e:
            problem = "refused" if "refused the connection" in str(e) else "unreachable"
            raise StoreError(str(e), problem=problem) from None
        try:
            with conn.transaction():
                # a lock in the way is named as such: the statement timeout comes a second later
                lock_ms = max(1, round(timeout * 1000))
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                    [str(lock_ms), str(lock_ms + 1000)],
                )
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    [key, value],
                )
        except psycopg.Error as e:
            raise StoreError(
                f"cannot write to PostgreSQL at {self.where}: {_plain(e, _password(self.url))}",
                problem=self._health_problem(e, conn),
            ) from None
        finally:
            with suppress(Exception):
                conn.close()

    @staticmethod
    def _health_problem(e: psycopg.Error, conn: psycopg.Connection) -> str:
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

    def first_ack(self, incident_id: int) -> tuple[datetime, str] | None:
        row = self._one(
            "SELECT at, by FROM acks WHERE incident_id = %s ORDER BY at, id LIMIT 1", [incident_id]
        )
        return (row["at"], row["by"]) if row else None

    def probe_ttfts(self, vendor: str, since: datetime, until: datetime | None = None) -> list[float]:
        q = "SELECT ttft_s FROM probe_results WHERE vendor = %s AND at >= %s AND ok AND ttft_s IS NOT NULL"
        args: list[Any] = [vendor, _us(since)]
        if until is not None:
            q += " AND at < %s"
            args.append(_us(until))
        return sorted(float(r["ttft_s"]) for r in self._rows(q, args))

    def last_probe_ttft(self, vendor: str) -> float | None:
        row = self._one(
            "SELECT ttft_s FROM probe_results WHERE vendor = %s AND ok AND ttft_s IS NOT NULL "
            "ORDER BY at DESC, id DESC LIMIT 1",
            [vendor],
        )
        return float(row["ttft_s"]) if row else None

    def probe_summary(self, vendor: str, since: datetime, until: datetime | None = None) -> dict[str, Any]:
        q = (
            "SELECT COUNT(*) AS requests, COUNT(*) FILTER (WHERE ok) AS ok, COUNT(*) FILTER (WHERE NOT ok) AS failed, "
            "COUNT(*) FILTER (WHERE passed) AS passed, COUNT(*) FILTER (WHERE NOT passed) AS wrong, "
            "COUNT(passed) AS answered, COALESCE(SUM(COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0)), 0) AS tokens, "
            "COALESCE(SUM(cost), 0) AS cost FROM probe_results WHERE vendor = %s AND at >= %s"
        )
        args: list[Any] = [vendor, _us(since)]
        if until is not None:
            q += " AND at < %s"
            args.append(_us(until))
        r = self._one(q, args)
        out: dict[str, Any] = {
            k: int(r[k]) for k in ("requests", "ok", "failed", "passed", "wrong", "answered", "tokens")
        }
        out["cost"] = float(r["cost"])
        return out

    def probe_results_since(self, vendor: str, since: datetime) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT * FROM probe_results WHERE vendor = %s AND at > %s ORDER BY at, id", [vendor, _us(since)]
        )
        for r in rows:
            r["at"] = _iso(r["at"])
            for k in _PROBE_FLAGS:
                r[k] = _int(r[k])
        return rows

    def outbox_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        rows = self._rows(
            "SELECT channel, state, COUNT(*) AS n, COALESCE(SUM(attempts), 0) AS attempts FROM notifications "
            "GROUP BY channel, state"
        )
        return {(r["channel"], r["state"]): (int(r["n"]), int(r["attempts"])) for r in rows}

    def oldest_unsent_due(self, now: datetime) -> datetime | None:
        row = self._one(
            "SELECT MIN(not_before) AS t FROM notifications WHERE state IN ('pending', 'sending') AND not_before <= %s",
            [_us(now)],
        )
        return row["t"] if row else None

    def oldest_undelivered(self, now: datetime) -> dict[str, dict[str, Any]]:
        rows = self._rows(
            "SELECT DISTINCT ON (channel) channel, id, target, since, last_error FROM (SELECT channel, id, target, "
            "last_error, CASE WHEN held AND not_before > created_at THEN not_before ELSE created_at END AS since "
            "FROM notifications WHERE state IN ('pending', 'sending')) AS w WHERE since <= %s "
            "ORDER BY channel, since, id",
            [_us(now)],
        )
        return {
            r["channel"]: {"id": r["id"], "target": r["target"], "since": r["since"], "last_error": r["last_error"]}
            for r in rows
        }

    def size_stats(self) -> dict[str, Any]:
        """``size_bytes``: this schema's tables with their indexes and TOAST (``pg_total_relation_size``);
        ``free_bytes``: None (not known without scanning); ``rows`` per table of ``SIZE_TABLES``."""
        from watcher.store.maintenance import SIZE_TABLES

        size = self._one(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS size FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relkind IN ('r', 'p', 'm')"
        )
        rows = {
            t: int(self._one(sql.SQL("SELECT COUNT(*) AS n FROM {}").format(sql.Identifier(t)))["n"])
            for t in SIZE_TABLES
        }
        return {"size_bytes": int(size["size"]), "free_bytes": None, "rows": rows}

    # -- cluster ---------------------------------------------------------------------------------------------

    def instances(self):
        """Every watcher instance that ever joined, leader first (for ``watcher cluster``)."""
        from watcher.store.postgres_lease import list_instances

        return self._run("list instances", list_instances, retry=True)

    def leader_record(self) -> dict[str, Any]:
        """The lease's last holder, its epoch and since when (the holder may have died since)."""
        row = self._one("SELECT epoch, holder, since FROM leader")
        return dict(row) if row else {"epoch": 0, "holder": None, "since": None}

    def source_errors_by_location(self) -> dict[str, tuple[int, int]]:
        """Per location: (sources it polls, sources failing from there)."""
        rows = self._rows(
            "SELECT location, count(*) AS n, count(*) FILTER (WHERE error IS NOT NULL) AS failing "
            "FROM sources GROUP BY location ORDER BY location"
        )
        return {r["location"]: (r["n"], r["failing"]) for r in rows}


# -- rows → objects -------------------------------------------------------------------------------------








def _subscription(r: dict[str, Any]) -> Subscription:
    return Subscription(
        id=r["id"],
        channel=r["channel"],
        vendor=r["vendor"],
        kinds=tuple(json.loads(r["kinds"] or "[]")),
        created_by=r["created_by"] or "?",
        created_at=r["created_at"] or datetime.fromtimestamp(0, UTC),
    )
