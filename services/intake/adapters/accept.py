"""Issue acceptance on the hot path: one statement over plain asyncpg, outside a transaction.

``intake.accept_issues`` (migration 0003) answers retries, matches or creates the customers,
and inserts the issues, their outbox rows and the feedback that waited for them: one round trip,
committed on its own, for one issue or a whole batch. The relays are woken afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson

from services.intake.domain.customers import Contacts
from shared.db import asyncpg_dsn, create_pool, pooled_connection, sqlstate
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)

Outcome = Literal["accepted", "duplicate", "conflict"]

_ACCEPT = "SELECT idx, issue_id, outcome FROM intake.accept_issues($1::jsonb)"
# The statement's own "key taken concurrently" (the loser's work is undone), a serialization
# failure, a deadlock between two batches: run it again, it then sees the winner's rows.
_RETRY_SQLSTATES = {"KF001", "40001", "40P01"}
_ATTEMPTS = 4
_WAKE_UP_INTERVAL = 0.01


@dataclass(frozen=True)
class NewIssue:
    """One validated, normalised issue and its ``issue.received`` event.

    The event is complete but for ``data.customer``, which only the statement knows; its
    times and ids are written as pydantic writes them in JSON mode.
    """

    id: uuid.UUID
    channel: str
    external_id: str
    contacts: Contacts
    subject: str | None
    text: str
    language: str | None
    metadata: dict[str, Any]
    occurred_at: datetime | None
    received_at: datetime
    fingerprint: str
    event: dict[str, Any]

    def encode(self) -> bytes:
        """The issue as the statement reads it; ValueError if a value cannot be sent."""
        row = {
            "id": self.id,
            "channel": self.channel,
            "external_id": self.external_id,
            "name": self.contacts.name,
            "email": self.contacts.email,
            "phone": self.contacts.phone,
            "customer_external_id": self.contacts.external_id,
            "subject": self.subject,
            "body": self.text,
            "language": self.language,
            "metadata": self.metadata,
            "occurred_at": self.occurred_at,
            "received_at": self.received_at,
            "fingerprint": self.fingerprint,
            "event": self.event,
        }
        try:
            # Times as pydantic writes them in JSON mode (UTC as "Z"): the event is published
            # as it is written here.
            return orjson.dumps(row, option=orjson.OPT_UTC_Z)
        except orjson.JSONEncodeError:
            # Integers beyond 64 bits, which jsonb holds; text that is not UTF-8 still fails.
            return json.dumps(row, default=_json_default, ensure_ascii=False).encode()


def _json_default(value: object) -> str:
    """What orjson writes for the values json cannot: times (UTC as "Z") and UUIDs."""
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass(frozen=True)
class Stored:
    issue_id: uuid.UUID
    outcome: Outcome


class RelayWakeUp:
    """NOTIFYs the outbox channel after commits: one at a time, however many commits.

    A NOTIFY inside each accepting statement would hold Postgres's database-wide notify lock
    until that commit is flushed, serialising all of them. Here commits run free, and one
    NOTIFY covers every commit made before it is sent. A lost wake-up (this process dies, the
    database is away) costs latency only: the relays also poll.
    """

    def __init__(self, dsn: str, channel: str, *, connect_timeout: float) -> None:
        self.dsn = dsn
        self.channel = channel
        self.connect_timeout = connect_timeout
        self._connection: asyncpg.Connection | None = None
        self._wanted = False
        self._sender: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._wanted = True
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="outbox-wake-up")

    async def _send(self) -> None:
        while self._wanted:
            self._wanted = False
            try:
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
                await self._connection.execute("SELECT pg_notify($1, '')", self.channel)
                # At most one wake-up per interval: the relays then take bigger batches.
                await asyncio.sleep(_WAKE_UP_INTERVAL)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox wake-up not sent; the relays' poll covers it", error=str(exc))
                await self.close()
                return

    async def close(self) -> None:
        if self._sender is not None and self._sender is not asyncio.current_task():
            self._sender.cancel()
            with contextlib.suppress(BaseException):
                await self._sender
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None


class IssueStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        wake_up: RelayWakeUp,
        *,
        wait_seconds: float,
        connect_timeout: float = 0.0,
    ) -> None:
        self.pool = pool
        self.wake_up = wake_up
        self.wait_seconds = wait_seconds
        self.connect_timeout = connect_timeout

    async def accept(self, issues: Sequence[bytes]) -> list[Stored]:
        """Store what is new among encoded issues, in one statement; one answer each, in order."""
        items = (b"[" + b",".join(issues) + b"]").decode()
        async with pooled_connection(
            self.pool, wait=self.wait_seconds, connect_timeout=self.connect_timeout
        ) as connection:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    rows = await connection.fetch(_ACCEPT, items)
                    break
                except asyncpg.PostgresError as exc:
                    if sqlstate(exc) not in _RETRY_SQLSTATES or attempt == _ATTEMPTS:
                        raise
                    log.info("issue statement collided; again", sqlstate=sqlstate(exc))
        stored: list[Stored | None] = [None] * len(issues)
        for row in rows:
            stored[row["idx"]] = Stored(issue_id=row["issue_id"], outcome=row["outcome"])
        if any(answer is not None and answer.outcome == "accepted" for answer in stored):
            self.wake_up.poke()
        if None in stored:  # every item is answered, or the answers would shift
            raise RuntimeError("intake.accept_issues left an item unanswered")
        return [answer for answer in stored if answer is not None]


@contextlib.asynccontextmanager
async def open_issue_store(settings: Settings, notify_channel: str) -> AsyncIterator[IssueStore]:
    """A plain asyncpg pool beside the service's SQLAlchemy engine, and the relays' wake-up."""
    url = settings.service_database_url("intake")
    pool = await create_pool(
        url, size=settings.db_pool_size, connect_timeout=settings.db_timeout_seconds
    )
    wake_up = RelayWakeUp(
        asyncpg_dsn(url), notify_channel, connect_timeout=settings.db_timeout_seconds
    )
    try:
        yield IssueStore(
            pool,
            wake_up,
            wait_seconds=settings.db_wait_seconds,
            connect_timeout=settings.db_timeout_seconds,
        )
    finally:
        await wake_up.close()
        await pool.close()
