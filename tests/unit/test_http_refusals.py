"""Busy is back-pressure, a database that is away or starting up is unavailable: both 503."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.db import DatabaseBusy, is_transient_db_error
from shared.problems import install_problem_handlers

pytestmark = pytest.mark.asyncio(loop_scope="session")


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/v1/issues")
    async def fail() -> None:
        raise exc

    return app


async def post(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        return await client.post("/v1/issues", json={})


@pytest.mark.parametrize(
    "exc", [DatabaseBusy("no connection free within 1s"), PoolTimeout("QueuePool limit")]
)
async def test_a_pool_that_stays_busy_is_503_busy(exc: Exception) -> None:
    response = await post(app_raising(exc))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Service busy" and "busy" in body["detail"]
    assert "unavailable" not in body["detail"]


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
async def test_a_database_away_or_starting_up_is_503_unavailable(exc: Exception) -> None:
    assert is_transient_db_error(exc)
    response = await post(app_raising(exc))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "database is unavailable" in response.json()["detail"]


async def test_a_bug_is_still_a_500() -> None:
    assert not is_transient_db_error(asyncpg.exceptions.UndefinedColumnError("no column"))
    assert (await post(app_raising(RuntimeError("bug")))).status_code == 500
