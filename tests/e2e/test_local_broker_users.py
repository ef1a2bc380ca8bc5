"""`make run`'s path with least privilege: `kefu setup` against the local guest URL makes a
broker user per service, and the services started with `kefu run`'s environment connect as
them; an issue is still analysed. Run on a vhost and user prefix of this test's own (the real
local users, ``kefu_*`` on ``/``, are never touched)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy import broker_users, cli, local_broker
from deploy.launcher import ServiceProcesses
from shared.settings import Settings, get_settings
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


@pytest.fixture
def local_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Settings]:
    """`kefu setup` as on a developer's machine, with this test's vhost as the local URL."""
    prefix = f"kefu_t{uuid.uuid4().hex[:8]}_"
    with isolated_stack() as stack:
        monkeypatch.setattr(local_broker, "PREFIX", prefix)
        monkeypatch.setattr(local_broker, "DEFAULT_AMQP_URL", stack.amqp_url)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        monkeypatch.setenv("KEFU_ADMIN_DATABASE_URL", stack.admin_database_url)
        monkeypatch.setenv("KEFU_AMQP_URL", stack.amqp_url)
        monkeypatch.delenv("KEFU_AMQP_USER_PREFIX", raising=False)
        get_settings.cache_clear()
        try:
            assert cli.main(["setup"]) == 0
            assert f"broker users ready: {prefix}intake" in capsys.readouterr().out
            yield stack
        finally:
            get_settings.cache_clear()
            broker_users.delete_users(stack.management_url(), prefix)


async def test_local_services_connect_as_their_own_broker_users(
    local_setup: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = local_broker.PREFIX
    assert (tmp_path / "kefu" / "broker-users.json").exists()
    # What `kefu run` does to its environment: each child's own URL (KEFU_AMQP_URL_<SERVICE>)
    # and the prefix; here through monkeypatch, so that it is undone after the test.
    environ: dict[str, str] = {}
    cli_settings = local_broker.use_own_users(local_setup, environ)
    assert cli_settings.amqp_url.startswith(f"amqp://{prefix}cli:")
    assert environ["KEFU_AMQP_USER_PREFIX"] == prefix
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    group = ServiceProcesses(
        local_setup,
        env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY, "KEFU_LOG_JSON": "false"},
        ports={"intake": free_port(), "need_analyzer": free_port()},
        services=("intake", "need_analyzer"),
    )
    try:
        group.start_all()
        group.wait_ready(timeout=60)
        body = {
            "channel": "web",
            "external_id": f"local-{uuid.uuid4()}",
            "customer": {"email": "local@example.com"},
            "text": "我的订单还没到",
        }
        async with httpx.AsyncClient(base_url=group.url("intake"), headers=AUTH) as client:
            issue_id = (await client.post("/v1/issues", json=body)).json()["issue_id"]
        async with httpx.AsyncClient(base_url=group.url("need_analyzer"), headers=AUTH) as client:

            async def analysed() -> bool:
                return (await client.get(f"/v1/analyses/{issue_id}")).status_code == 200

            await wait_until(analysed, timeout=40, what="the analysis")
        vhost = local_setup.amqp_vhost()
        listed = await asyncio.to_thread(
            subprocess.run,
            ["rabbitmqctl", "-q", "list_connections", "--no-table-headers", "vhost", "user"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            # Erlang reads its own configuration under XDG_CONFIG_HOME: not this test's.
            env={k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"},
        )
        rows = [line.split("\t") for line in listed.stdout.splitlines() if line.strip()]
        listing = [user for row_vhost, user in rows if row_vhost == vhost]
        assert sorted(set(listing)) == [f"{prefix}intake", f"{prefix}need_analyzer"], listing
    finally:
        group.stop_all()
