"""A hostile text cannot stall a service: while one issue of 20,000 x "差" (or a question word and
20,000 spaces) is analysed and evaluated, every service's /healthz keeps answering."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from deploy.launcher import ServiceProcesses
from shared.settings import SERVICES
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
# A health check slower than this means the event loop was held (a busy shared host alone
# reaches about 1 s; the stalls this guards against lasted 7 to 39 s).
MAX_HEALTHZ_SECONDS = 3.0
HOSTILE = ["差" * 20_000, "怎么" + " " * 19_990 + "办", "why" + " " * 19_990 + "?"]


@pytest.fixture(scope="module")
def own_services() -> Iterator[ServiceProcesses]:
    """Services with a database and vhost of their own: the hostile issue reaches these
    consumers (not the session's), and a stall holds up no other test."""
    with isolated_stack() as stack:
        group = ServiceProcesses(
            stack,
            env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY, "KEFU_LOG_JSON": "false"},
            ports={service: free_port() for service in SERVICES},
        )
        group.start_all()
        try:
            group.wait_ready(timeout=180)  # five more processes on a loaded host
            yield group
        finally:
            group.stop_all()


async def slowest_healthz(group: ServiceProcesses, seconds: float) -> dict[str, float]:
    """Each service's slowest /healthz over ``seconds``, one check every 50 ms."""
    slowest = dict.fromkeys(SERVICES, 0.0)

    async def watch(service: str) -> None:
        async with httpx.AsyncClient(base_url=group.url(service), timeout=60) as client:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.perf_counter()
                assert (await client.get("/healthz")).status_code == 200
                slowest[service] = max(slowest[service], time.perf_counter() - started)
                await asyncio.sleep(0.05)

    await asyncio.gather(*(watch(service) for service in SERVICES))
    return slowest


@pytest.mark.parametrize("text", HOSTILE, ids=["cha", "zh-spaces", "en-spaces"])
async def test_a_hostile_text_does_not_stall_any_service(
    own_services: ServiceProcesses, text: str
) -> None:
    body = {
        "channel": "chat",
        "external_id": f"hostile-{uuid.uuid4()}",
        "customer": {"email": "hostile@example.com"},
        "text": text,
    }
    async with httpx.AsyncClient(base_url=own_services.url("intake"), headers=AUTH) as client:
        assert (await client.post("/v1/issues", json=body)).status_code == 202
    slowest = await slowest_healthz(own_services, seconds=8)
    assert max(slowest.values()) < MAX_HEALTHZ_SECONDS, slowest
