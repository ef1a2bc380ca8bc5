"""API keys: random tokens stored as SHA-256 hashes, each with scopes.

Keys are 256-bit random, so a fast hash is enough (no password-stretching needed) and lets a
lookup use the unique index. ``KEFU_BOOTSTRAP_API_KEY`` holds every scope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.problems import Problem

KEY_PREFIX = "kefu_"
SCOPES = (
    "issues:write",
    "issues:read",
    "feedback:write",
    "analyses:read",
    "satisfaction:read",
    "improvements:read",
    "improvements:write",
    "webhooks:manage",
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


class ApiKeyAuth:
    """Resolves a bearer token to a principal; keys are cached briefly to spare the database."""

    def __init__(
        self, engine: AsyncEngine, table: Table, *, bootstrap_key: str | None, cache_seconds: float
    ) -> None:
        self.engine = engine
        self.table = table
        self.bootstrap_key = bootstrap_key
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, token: str) -> Principal | None:
        if self.bootstrap_key and hmac.compare_digest(token.encode(), self.bootstrap_key.encode()):
            return Principal(name="bootstrap", scopes=frozenset(SCOPES))
        digest = hash_key(token)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(self.table.c.name, self.table.c.scopes).where(
                        self.table.c.key_hash == digest, self.table.c.revoked_at.is_(None)
                    )
                )
            ).first()
        principal = Principal(name=row.name, scopes=frozenset(row.scopes)) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + self.cache_seconds, principal)
        return principal


async def authorize(auth: ApiKeyAuth, header: str, scope: str) -> Principal:
    """The principal of an ``Authorization`` header holding ``scope``; a 401/403 Problem if not."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "Unauthorized",
            "send Authorization: Bearer <api key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await auth.authenticate(token.strip())
    if principal is None:
        raise Problem(
            401,
            "Unauthorized",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if scope not in principal.scopes:
        raise Problem(403, "Forbidden", f"the API key lacks the scope {scope!r}")
    return principal


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: the caller must hold ``scope``."""

    async def dependency(request: Request) -> Principal:
        auth: ApiKeyAuth = request.app.state.auth
        return await authorize(auth, request.headers.get("authorization", ""), scope)

    return dependency
