"""Store fixtures that run one test against every backend: SQLite on a file, PostgreSQL in a fresh schema.

Use in a test module::

    import store_backends

    backend, store, pg_url = store_backends.backend, store_backends.store, store_backends.pg_url

- ``backend``: a :class:`Backend` parametrised over ``sqlite`` and ``postgres``;
  ``backend.open()`` opens another store (another connection) on the same data,
  ``backend.opener`` is Python source that does it in a subprocess;
- ``store``: ``backend.open()``, closed after the test;
- ``pg_url``: PostgreSQL only, the URL of a fresh schema.

For code that opens its own store from the configuration (the daemon, the CLI, the
harnesses of tests/alerting.py), ``backend.storage`` is the ``storage`` table of the
settings and ``backend.storage_toml`` the same as a ``[storage]`` section of a config file.

PostgreSQL is ``$TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
the server these machines run). Each test gets its own schema ``t_<random>``,
chosen through the URL (``options=-csearch_path=...``) and dropped afterwards.
When the server is unreachable the postgres cases are skipped with the reason,
unless ``TEST_POSTGRES_REQUIRED=1`` (for CI, where a skip would hide a failure).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

PG_BASE_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_REQUIRED = os.environ.get("TEST_POSTGRES_REQUIRED", "") not in ("", "0")
_checked: list[str | None] = []


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used for tests (None when it can); asked once per session."""
    if not _checked:
        try:
            import psycopg
        except ImportError:
            _checked.append("psycopg is not installed (pip install 'psycopg[binary]')")
        else:
            try:
                with psycopg.connect(PG_BASE_URL, connect_timeout=3) as conn:
                    conn.execute("SELECT 1")
                _checked.append(None)
            except psycopg.Error as e:
                from watcher.store.postgres import redact_url

                why = " ".join(str(e).split())
                _checked.append(
                    f"PostgreSQL at {redact_url(PG_BASE_URL)} is unreachable ({why}); start one "
                    "or point TEST_POSTGRES_URL at one"
                )
    return _checked[0]


def need_postgres() -> None:
    why = postgres_unavailable()
    if why:
        if PG_REQUIRED:
            pytest.fail(why)
        pytest.skip(why)


def schema_url(schema: str, base: str = PG_BASE_URL) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote('-csearch_path=' + schema, safe='')}"


def _create_schema(base: str = PG_BASE_URL) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return name


def _drop_schemas(names: list[str], base: str = PG_BASE_URL) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@contextmanager
def pg_schema(base: str = PG_BASE_URL) -> Iterator[str]:
    """A fresh, empty schema for one test; its URL. Dropped (with everything in it) afterwards."""
    name = _create_schema(base)
    try:
        yield schema_url(name, base)
    finally:
        _drop_schemas([name], base)


@dataclass
class Backend:
    kind: str
    """``sqlite`` or ``postgres``."""
    spec: str
    """The SQLite file, or the PostgreSQL URL (with its schema)."""
    extra_schemas: list[str] = field(default_factory=list)
    """Schemas made by :meth:`another`, dropped with this backend's."""

    def another(self, where: Path) -> Backend:
        """A second, empty database of the same kind: a SQLite file in ``where``, or a fresh schema."""
        if self.kind == "sqlite":
            where.mkdir(parents=True, exist_ok=True)
            return Backend("sqlite", str(where / "w.db"))
        name = _create_schema()
        self.extra_schemas.append(name)
        return Backend("postgres", schema_url(name))

    def open(self, **kw):
        if self.kind == "sqlite":
            from watcher.store.sqlite import SQLiteStore

            return SQLiteStore(self.spec)
        from watcher.store.postgres import PostgresStore

        return PostgresStore(self.spec, **kw)

    @property
    def storage(self) -> dict[str, str]:
        """The ``storage`` settings that name this store (``Settings.model_validate({"storage": ...})``)."""
        return {"path": self.spec} if self.kind == "sqlite" else {"url": self.spec}

    @property
    def storage_toml(self) -> str:
        """The same as the ``[storage]`` section of a config file (ends with a newline)."""
        key, value = next(iter(self.storage.items()))
        return f'[storage]\n{key} = "{value}"\n'

    def query(self, sql: str, *params) -> list[tuple]:
        """Rows of one read on this store's data, on a connection of its own (``?`` placeholders);
        ``[]`` while the schema does not exist yet (a daemon still starting)."""
        if self.kind == "sqlite":
            import sqlite3

            if not Path(self.spec).exists():
                return []
            try:
                with sqlite3.connect(self.spec) as conn:
                    return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError:
                return []
        import psycopg

        try:
            with psycopg.connect(self.spec) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []

    @property
    def opener(self) -> str:
        """Python source that binds ``s`` to a store on the same data (for subprocesses)."""
        if self.kind == "sqlite":
            return f"from watcher.store.sqlite import SQLiteStore\ns = SQLiteStore({self.spec!r})\n"
        return f"from watcher.store.postgres import PostgresStore\ns = PostgresStore({self.spec!r})\n"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "w.db"))
        return
    need_postgres()
    with pg_schema() as url:
        b = Backend("postgres", url)
        yield b
        _drop_schemas(b.extra_schemas)


@pytest.fixture
def store(backend: Backend):
    s = backend.open()
    yield s
    s.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    need_postgres()
    with pg_schema() as url:
        yield url


class RawSQLite:
    """The SQLite store's own connection with rows as tuples: tests that fill a file fast or read PRAGMAs."""

    def __init__(self, store):
        self.conn = store.conn

    def execute(self, q: str, args=()):
        cur = self.conn.cursor()
        cur.row_factory = None
        return cur.execute(q, args)
