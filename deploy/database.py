"""Creates the database, two roles and one schema per service, and applies each service's
migrations.

``kefu_<service>_owner`` (no login) owns the schema and everything in it: migrations run as it
(the admin connection does ``SET ROLE``). ``kefu_<service>``, the role the service connects as,
may only read and write the rows of its own schema's tables: no DDL, no other schema, and its
API keys are read-only to it (``kefu keys`` writes them as the admin). Each service role has a
password of its own (``KEFU_DB_PASSWORD_<SERVICE>``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from shared.db import asyncpg_dsn
from shared.migrations import MIGRATION_ROLE_OPTION
from shared.settings import SERVICES, owner_role_name, role_name

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


async def create_roles_and_schemas(admin_url: str, passwords: Mapping[str, SecretStr]) -> None:
    conn = await _connect(asyncpg_dsn(admin_url))
    try:
        database = _quote(await conn.fetchval("SELECT current_database()"))
        await conn.execute(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for service in SERVICES:
            role, owner = _quote(role_name(service)), _quote(owner_role_name(service))
            # Roles are cluster-wide: another database (or a concurrent run) may have made it.
            for statement in (f"CREATE ROLE {role} LOGIN", f"CREATE ROLE {owner} NOLOGIN"):
                with contextlib.suppress(
                    asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError
                ):
                    await conn.execute(statement)
            # An admin that is not a superuser (a managed database) needs it for SET ROLE.
            with contextlib.suppress(asyncpg.PostgresError):
                await conn.execute(f"GRANT {owner} TO CURRENT_USER")
            if service in passwords:
                secret = passwords[service].get_secret_value()
                await conn.execute(f"ALTER ROLE {role} PASSWORD {_literal(secret)}")
            await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}")
            schema = _quote(service)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}")
            # A schema made before owner roles existed: everything passes to the owner.
            if await conn.fetchval(
                "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", service
            ) != owner_role_name(service):
                await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {owner}")
                await conn.execute(f"REASSIGN OWNED BY {role} TO {owner}")
            await conn.execute(f"REVOKE CREATE ON SCHEMA {schema} FROM {role}")
            await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    finally:
        await conn.close()


async def grant_rows(admin_url: str, service: str) -> None:
    """The service role may read and write the rows of its tables, and nothing more; its API
    keys and Alembic's version table it may only read."""
    role, schema = _quote(role_name(service)), _quote(service)
    conn = await _connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}")
        await conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
        )
        await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
        for read_only in ("api_keys", "alembic_version"):
            await conn.execute(
                f"REVOKE INSERT, UPDATE, DELETE ON TABLE {schema}.{_quote(read_only)} FROM {role}"
            )
    finally:
        await conn.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bootstrap(admin_url: str, passwords: Mapping[str, SecretStr]) -> None:
    asyncio.run(create_database(admin_url))
    asyncio.run(create_roles_and_schemas(admin_url, passwords))


def alembic_config(service: str, url: str) -> Config:
    folder = ROOT / "services" / service
    config = Config(str(folder / "alembic.ini"))
    config.set_main_option("script_location", str(folder / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option(MIGRATION_ROLE_OPTION, owner_role_name(service))
    return config


def migrate(admin_url: str, services: tuple[str, ...] = SERVICES, revision: str = "head") -> None:
    """Apply each service's migrations as the owner of its schema, then grant its role the
    rows of whatever tables they made."""
    for service in services:
        command.upgrade(alembic_config(service, admin_url), revision)
        asyncio.run(grant_rows(admin_url, service))
