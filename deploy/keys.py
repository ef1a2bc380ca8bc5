"""API key management. A key is written, hashed, into the api_keys table of each chosen service;
a creation or revocation is announced (NOTIFY) to every running replica in the same transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from shared.auth import CREATIONS_CHANNEL, REVOCATIONS_CHANNEL, generate_key, hash_key, insert_key
from shared.db import service_metadata
from shared.tables import api_keys_table


def _table(service: str) -> Table:
    return api_keys_table(service_metadata(service))


async def _create(admin_url: str, name: str, scopes: Sequence[str], services: Sequence[str]) -> str:
    key = generate_key()
    engine = create_async_engine(admin_url)
    try:
        async with engine.begin() as conn:
            for service in services:
                await insert_key(conn, _table(service), name=name, key=key, scopes=scopes)
            # Delivered at commit: a replica that cached the token as unknown forgets it.
            await conn.execute(select(func.pg_notify(CREATIONS_CHANNEL, hash_key(key))))
    finally:
        await engine.dispose()
    return key


async def _list(admin_url: str, services: Sequence[str]) -> list[dict[str, Any]]:
    engine = create_async_engine(admin_url)
    rows: list[dict[str, Any]] = []
    try:
        async with engine.connect() as conn:
            for service in services:
                table = _table(service)
                result = await conn.execute(select(table).order_by(table.c.created_at))
                rows.extend({"service": service, **row._asdict()} for row in result)
    finally:
        await engine.dispose()
    return rows


async def _revoke(admin_url: str, key_or_prefix: str, services: Sequence[str]) -> int:
    engine = create_async_engine(admin_url)
    count = 0
    try:
        async with engine.begin() as conn:
            for service in services:
                table = _table(service)
                result = await conn.execute(
                    update(table)
                    .where(
                        or_(table.c.prefix == key_or_prefix[:12], table.c.name == key_or_prefix),
                        table.c.revoked_at.is_(None),
                    )
                    .values(revoked_at=func.now())
                    .returning(table.c.key_hash)
                )
                for key_hash in result.scalars():
                    # Delivered at commit: every replica drops the key from its cache.
                    await conn.execute(select(func.pg_notify(REVOCATIONS_CHANNEL, key_hash)))
                    count += 1
    finally:
        await engine.dispose()
    return count


def create(admin_url: str, name: str, scopes: Sequence[str], services: Sequence[str]) -> str:
    return asyncio.run(_create(admin_url, name, scopes, services))


def list_keys(admin_url: str, services: Sequence[str]) -> list[dict[str, Any]]:
    return asyncio.run(_list(admin_url, services))


def revoke(admin_url: str, key_or_prefix: str, services: Sequence[str]) -> int:
    return asyncio.run(_revoke(admin_url, key_or_prefix, services))
