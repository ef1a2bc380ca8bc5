"""A failed statement's error (which lands in the logs) never quotes its bound values."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import create_engine
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_failed_statement_does_not_carry_its_parameters(private_stack: Settings) -> None:
    engine = create_engine(private_stack.service_database_url("intake"))
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(
                    text("SELECT CAST(:email AS text), 1 / 0"),
                    {"email": "zhangsan@example.com"},
                )
    finally:
        await engine.dispose()
    assert "division by zero" in str(caught.value)
    assert "zhangsan" not in str(caught.value)
