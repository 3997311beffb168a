"""The database handle: engines, units of work, migrations, health.

A *unit of work* is a plain function of a synchronous SQLAlchemy
``Connection`` that runs as one transaction: :meth:`Database.run`. On SQLite
it runs in a database thread with the synchronous driver — one hop per
transaction instead of one per cursor call — with writes in a single writer
thread whose queue lets urgent work (storing a webhook's message) go first.
On PostgreSQL it runs over asyncpg through ``run_sync``, without threads.
The async ``transaction()`` and ``read()`` remain for code that is not hot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.config import ConfigError, database_url_for_driver
from bot.storage.crypto import AddressKeys, WrongKey, private_file, resolve_data_key

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 7_312_026  # pg_advisory_xact_lock key, so parallel `migrate`s queue up
_ONE_SEALED = text("SELECT channel, address_enc FROM channel_identities WHERE address_enc IS NOT NULL LIMIT 1")
T = TypeVar("T")
Work = Callable[[Connection], T]


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA secure_delete=ON")  # what is deleted (an erased resident) is zeroed in the file
    cursor.close()


class _WriterThread:
    """SQLite's one writer: units of work run here one after another, urgent
    ones (acknowledging a webhook) before the rest."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.PriorityQueue[tuple[int, int, Any, Future[Any] | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name="kiezstimme-db-writer", daemon=True)
        self._thread.start()

    def submit(self, work: Work[T], urgent: bool) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((0 if urgent else 1, next(self._order), work, future))
        return future

    def _run(self) -> None:
        while True:
            _, _, work, future = self._queue.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                with self.engine.begin() as conn:
                    result = work(conn)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                future.set_exception(exc)
            else:
                future.set_result(result)

    def stop(self) -> None:
        self._queue.put((2, next(self._order), None, None))
        self._thread.join(timeout=10)


def _sqlite_engine(url: str, begin: str, echo: bool) -> Engine:
    """A synchronous pysqlite engine whose transactions start with ``begin``
    (``BEGIN IMMEDIATE`` for the writer: it takes the write lock up front)."""
    engine = create_engine(
        url.replace("sqlite+aiosqlite", "sqlite+pysqlite", 1),
        echo=echo,
        hide_parameters=True,  # an error that is logged never shows an address
        connect_args={"check_same_thread": False},
        pool_size=4,
        max_overflow=4,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # we say when a transaction begins

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """Owns the engines. On SQLite, async writers queue on an in-process lock
    (SQLite has one writer at a time; waiting here beats SQLITE_BUSY) and units
    of work run in database threads (see the module's docstring)."""

    def __init__(self, url: str, *, echo: bool = False, data_key: str | None = None) -> None:
        self.url = database_url_for_driver(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # errors that end up in a log never show SQL parameters (phone numbers, chat ids)
        kwargs: dict = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                for own in ("", "-wal", "-shm"):  # SQLite gives its -wal and -shm the database's mode
                    if own == "" or Path(path + own).exists():
                        private_file(Path(path + own))
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        # residents' addresses at rest (see bot.storage.crypto): DATA_KEY, or the embedded key file
        self.key_source = resolve_data_key(self.url, data_key)
        self.keys = AddressKeys(self.key_source.key)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self.own_connections: set[AsyncConnection] = set()
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._echo = echo
        self._writer: _WriterThread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._read_engine: Engine | None = None

    # -- units of work --------------------------------------------------------------

    async def run(self, work: Work[T], *, write: bool = True, urgent: bool = False) -> T:
        """Run ``work(conn)`` as one transaction (committed if it returns) and return its result."""
        if not self.is_sqlite:
            if write:
                async with self.engine.begin() as conn:
                    return await conn.run_sync(work)
            async with self.engine.connect() as conn:
                return await conn.run_sync(work)
        if write:
            if self._writer is None:
                self._writer = _WriterThread(_sqlite_engine(self.url, "BEGIN IMMEDIATE", self._echo))
            return await asyncio.wrap_future(self._writer.submit(work, urgent))
        if self._readers is None:
            self._read_engine = _sqlite_engine(self.url, "BEGIN", self._echo)
            self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kiezstimme-db-reader")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, work)

    def _read(self, work: Work[T]) -> T:
        assert self._read_engine is not None
        with self._read_engine.begin() as conn:
            return work(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction (commits on success)."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock:
            async with self.engine.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def plan_for_many(self, conn: AsyncConnection) -> None:
        """For the rest of this transaction, join by hashing, whatever the statistics say: for
        statements over a whole audience (counts, bulk inserts). Right after thousands of residents
        arrived, before autovacuum has analysed their tables, PostgreSQL takes them for a handful
        of rows and joins them by a nested loop, which is quadratic: counting and queueing a
        broadcast to 10,000 took 13 s instead of 0.3 s. SQLite plans without statistics."""
        if not self.is_sqlite:
            await conn.execute(text("SET LOCAL enable_nestloop = off"))

    async def healthy(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=3)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            log.warning("database health check failed", exc_info=True)
            return False

    async def try_session_lock(self, key: int) -> AsyncConnection | None:
        """A session-level advisory lock (PostgreSQL), held as long as the returned
        connection lives; None if someone else holds it."""
        conn = await self.engine.connect()
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar_one()
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if got:
            return conn
        await conn.close()
        return None

    async def ping(self, conn: AsyncConnection) -> None:
        """Raises if the connection (and with it a session lock) is gone."""
        await conn.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (safe to run repeatedly)."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            await conn.run_sync(_upgrade, self.keys)
            await self._check_key(conn)
        if self.is_sqlite:  # pages that held what the migrations replaced leave the write-ahead log too
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def _check_key(self, conn: AsyncConnection) -> None:
        """Refuse a DATA_KEY that does not open the stored addresses (it would take every
        resident for a new one and reach nobody)."""
        row = (await conn.execute(_ONE_SEALED)).first()
        if row is None:
            return
        try:
            self.keys.open(row.channel, row.address_enc)
        except WrongKey:
            where = ""
            if self.key_source.file is not None:
                staged = self.key_source.file.with_name(self.key_source.file.name + ".new")
                where = f" ({self.key_source.file}" + (
                    f"; an interrupted rotation left the new key in {staged})" if staged.exists() else ")"
                )
            raise ConfigError(
                "DATA_KEY does not open the stored addresses: it is not the key they were encrypted with" + where
            ) from None

    async def dispose(self) -> None:
        # connections held for a process's lifetime (sender claims): a pool's dispose leaves them open
        for conn in list(self.own_connections):
            self.own_connections.discard(conn)
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - already closed or the server went away
                pass
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.stop)
            writer.engine.dispose()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        if self._read_engine is not None:
            self._read_engine.dispose()
            self._read_engine = None
        await self.engine.dispose()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(sync_conn, keys: AddressKeys) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    cfg.attributes["address_keys"] = keys  # 0006 encrypts the addresses stored before it
    command.upgrade(cfg, "head")
