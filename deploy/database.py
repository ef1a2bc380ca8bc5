"""Creates the database, one role and one schema per service, and applies each service's migrations.

Each role owns its own schema and is granted nothing else, so a service can touch only its own data.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from shared.db import asyncpg_dsn
from shared.settings import SERVICES, role_database_url, role_name

ROOT = Path(__file__).resolve().parent.parent


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def create_database(admin_url: str) -> bool:
    """Create the database named in ``admin_url`` if missing; True if it was created."""
    url = make_url(admin_url)
    name = url.database
    assert name, "the admin URL must name the database"
    conn = await _connect(asyncpg_dsn(url.set(database="postgres").render_as_string(False)))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await conn.execute(f"CREATE DATABASE {_quote(name)}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


async def _connect(dsn: str, attempts: int = 30) -> asyncpg.Connection:
    """Connect, waiting for a server that is still starting (a fresh container)."""
    for _ in range(attempts - 1):
        try:
            return await asyncpg.connect(dsn, timeout=10)
        except (OSError, asyncpg.CannotConnectNowError):
            await asyncio.sleep(1)
    return await asyncpg.connect(dsn, timeout=10)


async def create_roles_and_schemas(admin_url: str, password: SecretStr | None) -> None:
    conn = await _connect(asyncpg_dsn(admin_url))
    try:
        database = _quote(await conn.fetchval("SELECT current_database()"))
        await conn.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for service in SERVICES:
            role = _quote(role_name(service))
            # Roles are cluster-wide: another database (or a concurrent run) may have made it.
            with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
                await conn.execute(f"CREATE ROLE {role} LOGIN")
            if password is not None:
                await conn.execute(
                    f"ALTER ROLE {role} PASSWORD {_literal(password.get_secret_value())}"
                )
            await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}")
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {_quote(service)} AUTHORIZATION {role}"
            )
    finally:
        await conn.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bootstrap(admin_url: str, password: SecretStr | None) -> None:
    asyncio.run(create_database(admin_url))
    asyncio.run(create_roles_and_schemas(admin_url, password))


def alembic_config(service: str, url: str) -> Config:
    folder = ROOT / "services" / service
    config = Config(str(folder / "alembic.ini"))
    config.set_main_option("script_location", str(folder / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(
    admin_url: str,
    password: SecretStr | None,
    services: tuple[str, ...] = SERVICES,
    revision: str = "head",
) -> None:
    """Apply each service's migrations as the service's own role."""
    for service in services:
        command.upgrade(
            alembic_config(service, role_database_url(admin_url, service, password)), revision
        )
