"""Least privilege in the database: a service's role reads and writes rows of its own schema's
tables and does nothing else; migrations ran as the schema's owner."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.db import asyncpg_dsn
from shared.settings import SERVICES, Settings, owner_role_name

ASYNC = pytest.mark.asyncio(loop_scope="session")


@ASYNC
@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_has_rows_but_no_ddl(private_stack: Settings, service: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(private_stack.service_database_url(service)))
    try:
        owners = await conn.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = $1", service
        )
        assert [row["tableowner"] for row in owners] == [owner_role_name(service)]
        event_id = uuid.uuid4()
        await conn.execute(
            f"INSERT INTO {service}.inbox (event_id, type) VALUES ($1, 'probe')", event_id
        )
        await conn.execute(f"DELETE FROM {service}.inbox WHERE event_id = $1", event_id)
        for ddl in (
            f"CREATE TABLE {service}.sneaky (id int)",
            f"DROP TABLE {service}.inbox",
            f"ALTER TABLE {service}.outbox ADD COLUMN sneaky int",
            f"TRUNCATE {service}.outbox",
            f"CREATE FUNCTION {service}.sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(ddl)
    finally:
        await conn.close()


@ASYNC
@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_mint_api_keys(private_stack: Settings, service: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(private_stack.service_database_url(service)))
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {service}.api_keys") >= 0
        for statement in (
            f"INSERT INTO {service}.api_keys (id, name, key_hash, prefix, scopes) "
            f"VALUES ('{uuid.uuid4()}', 'mine', 'x', 'kefu_', ARRAY['issues:read'])",
            f"UPDATE {service}.api_keys SET revoked_at = NULL",
            f"DELETE FROM {service}.api_keys",
            f"UPDATE {service}.alembic_version SET version_num = 'x'",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


def test_each_role_has_a_secret_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DB_PASSWORD_INTAKE", "intake-secret")
    monkeypatch.setenv("KEFU_DB_PASSWORD_FEEDBACK", "feedback-secret")
    settings = Settings(db_password="dev-only")
    assert "intake-secret" in settings.service_database_url("intake")
    assert "feedback-secret" in settings.service_database_url("feedback")
    assert "dev-only" in settings.service_database_url("improvement")
    passwords = {k: v.get_secret_value() for k, v in settings.db_passwords().items()}
    assert passwords["intake"] != passwords["feedback"]
