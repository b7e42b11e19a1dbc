"""What differs between SQLite and PostgreSQL, in one small interface: everything else is written once.

The queries of :mod:`watcher.store` are written once, in the SQL both databases speak
(``INSERT … ON CONFLICT … DO UPDATE``, ``RETURNING``, ``FILTER``, window functions), with
``%s`` placeholders. A dialect turns them into its own text and values, opens its
connection, runs its transactions, and names its failures. Two rules keep the text
portable:

- orders say ``NULLS FIRST`` on ascending and ``NULLS LAST`` on descending keys: that is
  SQLite's only order (NULL is its smallest value), so SQLite drops the words, and
  PostgreSQL needs them to read the same order from the same index;
- lists are spelled out (:func:`marks`), never ``= ANY(array)``.

The schema is written once too (:mod:`watcher.store.schema`) with type words in braces
(``{ts}``, ``{id}``, ``{bool}``, ``{key}``, ``{float}``, ``{bigint}``) that each dialect fills in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any, ClassVar

from watcher.store.base import StoreError

Run = Callable[[Callable[[Any], Any]], Any]
"""Calls a function with a connection of the store (and gives it back)."""


def marks(n: int) -> str:
    """``%s, %s, …`` for a list of ``n`` values (``IN (…)``)."""
    return ", ".join(["%s"] * n)


def chunks(values: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """A long list in pieces small enough for one statement's parameters (SQLite allows 32,766)."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


class Dialect(ABC):
    """One database's connection, text, values, transactions and failures."""

    name: ClassVar[str]
    """``sqlite`` or ``postgresql``: what ``watcher status`` and ``/metrics`` say the store is."""
    types: ClassVar[dict[str, str]]
    """The schema's type words (``ts``, ``id``, …) in this database's DDL."""
    errors: ClassVar[tuple[type[BaseException], ...]]
    """The driver's exceptions: turned into :class:`StoreError` naming what failed."""
    for_update: ClassVar[str] = ""
    """Appended to a ``SELECT`` whose rows the transaction will change (PostgreSQL row locks;
    SQLite's ``BEGIN IMMEDIATE`` already holds the only write lock)."""
    skip_locked: ClassVar[str] = ""
    """Appended to a ``SELECT`` whose rows another instance may hold: those are left for later."""

    connections: ClassVar[int] = 1
    """How many connections the store's pool may open (:class:`~watcher.store.database.Pool`)."""

    where: str
    """The database in messages: a file path, or ``host:port`` (never a password)."""

    def sql(self, q: str) -> str:
        return q

    def param(self, v: Any) -> Any:
        return v

    def params(self, args: Iterable[Any]) -> list[Any]:
        return [self.param(v) for v in args]

    def ddl(self, script: str) -> str:
        """A schema script with this database's types in place of the ``{…}`` words."""
        return self.sql(script.format(**self.types))

    @abstractmethod
    def connect(self) -> Any:
        """A new connection, rows as dicts, times in UTC; :class:`StoreError` in plain words when it fails."""

    @abstractmethod
    def lost(self, conn: Any) -> bool:
        """The connection is gone (a server restart): the next call opens a new one."""

    @abstractmethod
    def transaction(self, conn: Any) -> AbstractContextManager[Any]:
        """One transaction on ``conn``; commits when the block ends without an error."""

    @abstractmethod
    def error(self, what: str, e: BaseException, conn: Any) -> StoreError:
        """``cannot <what> …``: the driver's error in plain words, with its ``problem`` when known."""

    @abstractmethod
    def tables(self, conn: Any) -> set[str]:
        """The names of the tables the connection sees (in its schema, on PostgreSQL)."""

    @abstractmethod
    def migration_lock(self, conn: Any) -> AbstractContextManager[Any]:
        """A transaction that first takes the lock every process starting on this database takes
        before looking at the schema: the first migrates, the others wait, then find it done."""

    @abstractmethod
    def legacy_version(self, conn: Any) -> int | None:
        """The version of a database written before the one schema (SQLite's ``meta`` row), if any."""

    @abstractmethod
    def upgrade_legacy(self, conn: Any, version: int) -> None:
        """Bring such a database to the one schema's first version (:data:`~watcher.store.schema.BASE_VERSION`)."""

    @abstractmethod
    def close(self, conn: Any) -> None: ...

    @abstractmethod
    def health_write(self, conn: Any, key: str, value: str, timeout: float) -> None:
        """A real write of one ``meta`` row that waits at most ``timeout`` seconds for a lock."""

    @abstractmethod
    def compact(self, run: Run) -> Iterator[int]:
        """Give free space back after a prune; yields the pages given back by each step. ``run(fn)``
        calls ``fn`` with a connection for one step: nothing is held between steps."""

    @abstractmethod
    def optimize(self, conn: Any) -> None:
        """Refresh what the planner knows after a large delete (best effort)."""

    @abstractmethod
    def size(self, conn: Any) -> tuple[int, int | None]:
        """Bytes the database takes, and bytes free inside it (None when not known cheaply)."""


@lru_cache(maxsize=1024)
def strip_null_order(q: str) -> str:
    """A query in SQLite's words: ``?`` placeholders, no ``NULLS FIRST/LAST`` (see the module doc)."""
    return q.replace("%s", "?").replace("%%", "%").replace(" NULLS FIRST", "").replace(" NULLS LAST", "")
