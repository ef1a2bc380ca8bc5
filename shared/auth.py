"""API keys: random tokens stored as SHA-256 hashes, each with scopes and a rate limit.

Keys are 256-bit random, so a fast hash is enough (no password-stretching needed) and lets a
lookup use the unique index. ``KEFU_BOOTSTRAP_API_KEY`` holds every scope. A token that does
not have a key's shape is refused without a database query. Lookups, found or not, are cached
only while the service hears revocations and new keys (``LISTEN``): ``kefu keys revoke`` and
``kefu keys create`` notify every replica in their transaction, so a revoked key stops working
at once and a new one works at once. Guessing costs a query per distinct token, so each client
address may fail only so often (``failure_limiter``) before it is answered 429 without one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Request
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import asyncpg_dsn
from shared.logging import get_logger
from shared.problems import Problem

log = get_logger(__name__)

KEY_PREFIX = "kefu_"
# What generate_key makes: the prefix and 32 random bytes in URL-safe base64.
KEY_SHAPE = re.compile(r"kefu_[A-Za-z0-9_-]{43}")
# NOTIFY channel of revocations; the payload is the revoked key's hash.
REVOCATIONS_CHANNEL = "kefu_api_keys_revoked"
# NOTIFY channel of new keys: a replica that cached the token as unknown forgets it.
CREATIONS_CHANNEL = "kefu_api_keys_created"
# Cached lookups of unknown tokens, at most: a flood of made-up tokens evicts only its own kind.
MAX_CACHED_MISSES = 10_000
# Where authorize leaves the caller's rate-limit state for RateLimitHeaders.
RATE_LIMIT_SCOPE_KEY = "kefu.rate_limit"
SCOPES = (
    "issues:write",
    "issues:read",
    "feedback:write",
    "analyses:read",
    "satisfaction:read",
    "improvements:read",
    "improvements:write",
    "webhooks:manage",
    "customers:read",
    "customers:erase",
)


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: Sequence[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
    return sorted(set(scopes))


async def insert_key(
    conn: AsyncConnection, table: Table, *, name: str, key: str, scopes: Sequence[str]
) -> uuid.UUID:
    key_id = uuid.uuid4()
    await conn.execute(
        table.insert().values(
            id=key_id, name=name, key_hash=hash_key(key), prefix=key[:12], scopes=list(scopes)
        )
    )
    return key_id


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int | None  # set when the request is refused

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``per_second``.

    Each of ``replicas`` processes behind one port keeps its own bucket with its share of the
    limit (the kernel spreads connections evenly), so together they allow the limit, not
    ``replicas`` times it."""

    def __init__(
        self, per_second: float, burst: int, *, replicas: int = 1, max_keys: int = 100_000
    ) -> None:
        self.per_second = per_second / replicas
        self.burst = max(1, math.ceil(burst / replicas))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.per_second)

    def give_back(self, key: str) -> None:
        """Return a token taken for what turned out not to count."""
        if key in self._buckets:
            tokens, at = self._buckets[key]
            self._buckets[key] = (min(float(self.burst), tokens + 1.0), at)

    def take(self, key: str, now: float | None = None) -> RateLimitState:
        now = time.monotonic() if now is None else now
        tokens = self._tokens(key, now)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()  # keys are few; only a flood of distinct keys gets here
        self._buckets[key] = (tokens, now)
        return RateLimitState(
            limit=self.burst,
            remaining=int(tokens),
            reset_seconds=math.ceil((self.burst - tokens) / self.per_second),
            retry_after=None if allowed else max(1, math.ceil((1.0 - tokens) / self.per_second)),
        )


class ApiKeyAuth:
    """Resolves a bearer token to a principal; lookups are cached while revocations are heard."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        *,
        bootstrap_key: str | None,
        cache_seconds: float,
        rate_limiter: RateLimiter | None = None,
        failure_limiter: RateLimiter | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self.bootstrap_key = bootstrap_key
        self.cache_seconds = cache_seconds
        self.rate_limiter = rate_limiter
        # Per client address: failed lookups (a token of a key's shape that is no key).
        self.failure_limiter = failure_limiter
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._misses: dict[str, float] = {}  # hash of an unknown token -> cached until
        # True while a LISTEN connection would hear a revocation: only then is caching safe.
        self._hearing_revocations = False

    @property
    def hearing_revocations(self) -> bool:
        return self._hearing_revocations

    async def authenticate(self, token: str) -> Principal | None:
        known = self.known(token)
        if known is not None:
            return known
        if not KEY_SHAPE.fullmatch(token):
            return None  # no key looks like this: no query
        digest = hash_key(token)
        if self._misses.get(digest, 0.0) > time.monotonic():
            return None
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(self.table.c.name, self.table.c.scopes).where(
                        self.table.c.key_hash == digest, self.table.c.revoked_at.is_(None)
                    )
                )
            ).first()
        principal = Principal(name=row.name, scopes=frozenset(row.scopes)) if row else None
        if self._hearing_revocations and self.cache_seconds > 0:
            until = time.monotonic() + self.cache_seconds
            if principal is None:
                if len(self._misses) >= MAX_CACHED_MISSES:
                    self._misses.clear()
                self._misses[digest] = until
            else:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (until, principal)
        return principal

    def known(self, token: str) -> Principal | None:
        """The principal of the bootstrap key or of a key this process has already found valid
        (cached): what needs no query."""
        if self.bootstrap_key and hmac.compare_digest(token.encode(), self.bootstrap_key.encode()):
            return Principal(name="bootstrap", scopes=frozenset(SCOPES))
        cached = self._cache.get(hash_key(token))
        return cached[1] if cached and cached[0] > time.monotonic() else None

    def forget(self, key_hash: str) -> None:
        """A key was revoked or created: its next use is looked up again."""
        self._cache.pop(key_hash, None)
        self._misses.pop(key_hash, None)

    def _forget_all(self) -> None:
        self._cache.clear()
        self._misses.clear()

    async def listen_for_revocations(self, url: str) -> None:
        """Until cancelled: drop a revoked key from the cache the moment it is revoked.

        While the connection is down nothing is cached, so a revocation is never missed."""
        while True:
            try:
                conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
            except Exception as exc:
                log.warning("revocation listener cannot connect", error=type(exc).__name__)
                await asyncio.sleep(2)
                continue
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _conn, closed=closed: closed.set())
            try:
                for channel in (REVOCATIONS_CHANNEL, CREATIONS_CHANNEL):
                    await conn.add_listener(
                        channel, lambda _c, _pid, _channel, payload: self.forget(payload)
                    )
                self._forget_all()  # keys revoked or created while we were deaf
                self._hearing_revocations = True
                await closed.wait()
            except Exception as exc:
                log.warning("revocation listener lost", error=type(exc).__name__)
            finally:
                self._hearing_revocations = False
                self._forget_all()
                if not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(1)


async def authorize(
    auth: ApiKeyAuth,
    header: str,
    scope: str | None,
    asgi_scope: MutableMapping[str, Any] | None = None,
) -> Principal:
    """The principal of an ``Authorization`` header holding ``scope`` (any valid key when
    ``scope`` is None); a 401/403/429 Problem if not. The rate-limit state is left in
    ``asgi_scope`` for the response's headers."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            401,
            "Unauthorized",
            "send Authorization: Bearer <api key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    address = _client_address(asgi_scope)
    limiter = auth.failure_limiter
    # A token that may cost a query pays its address a token first (so concurrent guesses get
    # no more queries than the budget), and gets it back if it is a key. The bootstrap key and
    # keys already found valid here cost nothing: one guesser behind a shared address (a
    # proxy) does not lock out its known clients.
    charged = (
        limiter
        if limiter is not None
        and KEY_SHAPE.fullmatch(token) is not None
        and auth.known(token) is None
        else None
    )
    if charged is not None:
        retry_after = charged.take(address).retry_after
        if retry_after is not None:
            raise Problem(
                429,
                "Too many requests",
                f"too many unknown API keys from {address}; retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
    principal = await auth.authenticate(token)
    if principal is None:
        raise Problem(
            401,
            "Unauthorized",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if charged is not None:
        charged.give_back(address)
    if auth.rate_limiter is not None:
        state = auth.rate_limiter.take(hash_key(token))
        if asgi_scope is not None:
            asgi_scope[RATE_LIMIT_SCOPE_KEY] = state
        if state.retry_after is not None:
            raise Problem(
                429,
                "Too many requests",
                f"this API key's rate limit is {auth.rate_limiter.per_second:g} requests/s "
                f"(bursts of {auth.rate_limiter.burst}); retry after {state.retry_after} s",
                headers=state.headers(),
            )
    if scope is not None and scope not in principal.scopes:
        raise Problem(403, "Forbidden", f"the API key lacks the scope {scope!r}")
    return principal


def _client_address(asgi_scope: MutableMapping[str, Any] | None) -> str:
    client = asgi_scope.get("client") if asgi_scope is not None else None
    return str(client[0]) if client else "unknown"


def require(scope: str | None) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: the caller must hold ``scope`` (None: any valid key)."""

    async def dependency(request: Request) -> Principal:
        auth: ApiKeyAuth = request.app.state.auth
        return await authorize(auth, request.headers.get("authorization", ""), scope, request.scope)

    return dependency


class RateLimitHeaders:
    """Adds ``RateLimit-*`` headers to every answer to a caller whose key was rate-limited."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            state: RateLimitState | None = scope.get(RATE_LIMIT_SCOPE_KEY)
            if message["type"] == "http.response.start" and state is not None:
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.lower().encode(), value.encode())
                    for name, value in state.headers().items()
                    if name.lower().encode() not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
