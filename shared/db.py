"""Async engine, one session per request or message, and the unit of work handlers use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import MetaData, Row, Table, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared import tracing
from shared.contracts import CloudEvent, EventData, new_event


def service_metadata(schema: str) -> MetaData:
    """Every table of a service lives in the service's own schema."""
    return MetaData(
        schema=schema,
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        },
    )


def create_engine(url: str, *, pool_size: int = 10, timeout: float = 5.0) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,  # overflow connections are opened and closed per burst: costly
        pool_pre_ping=True,
        pool_timeout=timeout,
        # Errors would otherwise quote their bound values (customers' data) into the logs.
        hide_parameters=True,
        connect_args={"timeout": timeout, "command_timeout": 30},
    )


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a plain DSN for a raw asyncpg connection (LISTEN).

    TLS is ``?ssl=require`` (or verify-full...) in a SQLAlchemy URL, ``sslmode`` in a DSN."""
    parsed = make_url(url).set(drivername="postgresql")
    if "ssl" in parsed.query:
        query = dict(parsed.query)
        query["sslmode"] = query.pop("ssl")
        parsed = parsed.set(query=query)
    return parsed.render_as_string(hide_password=False)


# Serialization failure and deadlock: the same work succeeds when tried again.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


def sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


# Shutting down, starting up ("the database system is starting up"), or out of connections.
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}


def is_transient_db_error(exc: BaseException) -> bool:
    """True when the database is away or the work collided, not when the statement is wrong."""
    if isinstance(exc, OSError | TimeoutError | PoolTimeout | asyncpg.PostgresConnectionError):
        return True
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    if sqlstate(exc) in _UNAVAILABLE_SQLSTATES:
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if sqlstate(exc) in _RETRYABLE_SQLSTATES:
        return True
    if isinstance(exc, OperationalError | InterfaceError) and sqlstate(exc) is None:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_transient_db_error(cause)


async def lock_for_transaction(session: AsyncSession, *keys: str) -> None:
    """Serialise work on each of ``keys`` across replicas until the transaction ends.

    The locks are taken in one statement and one order, so two batches that share keys wait
    for each other instead of deadlocking."""
    ordered = sorted(set(keys))
    if not ordered:
        return
    await session.execute(
        text(
            "SELECT pg_advisory_xact_lock(hashtextextended(key, 0)) "
            "FROM unnest(CAST(:keys AS text[])) AS key ORDER BY key"
        ),
        {"keys": ordered},
    )


async def upsert(
    session: AsyncSession,
    table: Table,
    key: dict[str, Any],
    *,
    unless_newer: str | None = None,
    **values: Any,
) -> Row[Any] | None:
    """Insert the row, or update ``values`` on the row that has ``key``; return the row.

    With ``unless_newer`` (a timestamp column among ``values``), a row that already holds a
    later time is left alone and None is returned: a late, older event changes nothing.
    """
    statement = insert(table).values(**key, **values)
    where = None
    if unless_newer is not None:
        column = table.c[unless_newer]
        where = column.is_(None) | (column <= statement.excluded[unless_newer])
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_=values or key, where=where
    )
    row: Row[Any] | None = (await session.execute(statement.returning(table))).first()
    return row


class Outbox:
    """Writes events into the service's outbox table inside the caller's transaction."""

    def __init__(self, table: Table, source: str) -> None:
        self.table = table
        self.source = source
        self.notify_channel = f"kefu_outbox_{table.schema}"
        # One array per column: the same text for any number of rows, so it is parsed and
        # planned once per connection.
        self._write = text(
            f"""
            WITH inserted AS (
                INSERT INTO {table.schema}.{table.name} (id, type, payload, created_at)
                SELECT id, type, payload::jsonb, created_at
                FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]),
                            CAST(:payloads AS text[]), CAST(:times AS timestamptz[]))
                    AS event(id, type, payload, created_at)
                RETURNING 1
            )
            SELECT pg_notify(:channel, '') FROM (SELECT count(*) FROM inserted) AS written
            """
        )

    async def write(self, session: AsyncSession, events: Sequence[CloudEvent]) -> None:
        """All the rows in one statement, with one NOTIFY that Postgres delivers only if the
        transaction commits."""
        if not events:
            return
        await session.execute(
            self._write,
            {
                "ids": [event.id for event in events],
                "types": [event.type for event in events],
                "payloads": [event.model_dump_json() for event in events],
                "times": [event.time for event in events],
                "channel": self.notify_channel,
            },
        )


@dataclass
class UnitOfWork:
    """One transaction: what a handler changes and the events it emits commit together.

    Emitted events are written to the outbox in one statement just before the commit."""

    session: AsyncSession
    outbox: Outbox
    pending: list[CloudEvent] = field(default_factory=list)
    # Subject -> traceparent of the consumed events' spans (shared/tracing.py), set by the
    # consumer: an emitted event continues the trace of the event about the same subject.
    trace_parents: Mapping[str, str] | None = None

    def emit(self, data: EventData) -> CloudEvent:
        traceparent = (
            tracing.parent_for(data.event_subject(), self.trace_parents)
            if tracing.enabled()
            else None
        )
        event = new_event(self.outbox.source, data, traceparent)
        self.pending.append(event)
        return event

    async def flush(self) -> None:
        events, self.pending = self.pending, []
        await self.outbox.write(self.session, events)


class Database:
    def __init__(self, engine: AsyncEngine, outbox: Outbox) -> None:
        self.engine = engine
        self.outbox = outbox
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """The one place a session is opened, committed or rolled back, and closed."""
        async with self.sessionmaker() as session:
            try:
                uow = UnitOfWork(session=session, outbox=self.outbox)
                yield uow
                await uow.flush()
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


# --- A plain asyncpg pool, for hot paths that need no ORM (intake's issue acceptance) ---


class DatabaseBusy(Exception):
    """Every connection stayed busy for the whole wait: back-pressure, not an outage."""


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without the reset round trip: the hot paths leave no session state behind
    (asyncpg still rolls back a transaction left open)."""


async def create_pool(url: str, *, size: int, connect_timeout: float) -> asyncpg.Pool:
    """Connections open on demand, so a service starts (and answers 503) with the database down."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=0,
        max_size=size,
        timeout=connect_timeout,
        command_timeout=30,
        reset=_keep_session,
    )
    return pool


@asynccontextmanager
async def pooled_connection(
    pool: asyncpg.Pool, *, wait: float, connect_timeout: float = 0.0
) -> AsyncIterator[asyncpg.Connection]:
    """A connection within ``wait`` seconds, or DatabaseBusy while the pool's connections work.

    A pool with no connection yet may be opening its first one (slow on a loaded host): it is
    given up to ``connect_timeout`` more before the database counts as away."""
    try:
        connection = await pool.acquire(timeout=wait)
    except TimeoutError:
        if pool.get_size() > 0:
            raise DatabaseBusy(f"no database connection free within {wait}s") from None
        if connect_timeout <= 0:
            raise  # not one connection could be opened: the database is away
        try:
            connection = await pool.acquire(timeout=connect_timeout)
        except TimeoutError:
            if pool.get_size() == 0:
                raise  # still none: the database is away
            raise DatabaseBusy(f"no database connection free within {wait}s") from None
    try:
        yield connection
    finally:
        await pool.release(connection)
