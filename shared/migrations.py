"""Alembic environment shared by the services: each has its own version table in its own schema."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import get_settings

# The role migrations run as (deploy/database.py sets it: the schema's owner), if not the URL's.
MIGRATION_ROLE_OPTION = "kefu_role"


def run_migrations(metadata: MetaData, service: str) -> None:
    """Body of each service's ``migrations/env.py``."""
    schema = metadata.schema
    assert schema, "service metadata must name its schema"
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().service_database_url(
        service
    )

    def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
        return name == schema if type_ == "schema" else True

    def configure(**connection: Any) -> None:
        context.configure(
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
            **connection,
        )

    if context.is_offline_mode():
        configure(url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    role = context.config.get_main_option(MIGRATION_ROLE_OPTION)

    def migrate(connection: Connection) -> None:
        if role:
            connection.exec_driver_sql('SET ROLE "' + role.replace('"', '""') + '"')
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()

    async def online() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(online())
