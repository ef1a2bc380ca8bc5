"""TLS works when configured: `kefu setup` and intake against a PostgreSQL and a RabbitMQ of this
test's own that accept TLS (a throw-away CA's certificate for 127.0.0.1), with
``?ssl=verify-full`` and ``amqps://``; every connection intake holds really is encrypted
(pg_stat_ssl, rabbitmqctl list_connections), and a server whose certificate the CA did not sign
is refused. The shared PostgreSQL and RabbitMQ are never touched."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest

from deploy.launcher import ServiceProcesses
from shared.db import asyncpg_dsn
from shared.settings import Settings
from tests.chaos.stack import Postgres, RabbitMQ, Tls
from tests.support import BOOTSTRAP_KEY, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
ROOT = Path(__file__).resolve().parents[2]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(home: Path, name: str) -> Path:
    """A CA of its own: ``<name>.pem`` (certificate) and ``<name>.key``."""
    _openssl(
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-nodes", "-days", "1", "-subj", f"/CN=Kefu test {name}"),
        *("-keyout", f"{name}.key", "-out", f"{name}.pem"),
        cwd=home,
    )
    return home / f"{name}.pem"


def make_server_cert(home: Path, ca: str) -> Tls:
    """A server certificate for 127.0.0.1 and localhost, signed by the CA ``ca``."""
    (home / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *("-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"),
        cwd=home,
    )
    _openssl(
        *("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key"),
        *("-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.pem"),
        cwd=home,
    )
    (home / "server.pem").chmod(0o644)
    return Tls(cert=home / "server.pem", key=home / "server.key")


@dataclass
class TlsStack:
    home: Path
    postgres: Postgres
    rabbitmq: RabbitMQ
    ca: Path
    other_ca: Path

    def settings(self) -> Settings:
        return Settings(
            admin_database_url=f"{self.postgres.admin_url}?ssl=verify-full",
            amqp_url=f"amqps://guest:guest@127.0.0.1:{self.rabbitmq.tls_port}/?cafile={self.ca}",
            bootstrap_api_key=BOOTSTRAP_KEY,
        )


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[TlsStack]:
    if shutil.which("openssl") is None or not Path("/usr/lib/rabbitmq/bin").exists():
        pytest.skip("openssl, PostgreSQL and RabbitMQ must be installed here")
    home = Path(tempfile.mkdtemp(prefix="kefu-tls-"))
    home.chmod(0o755)  # the servers, running as their own users, read the certificate
    ca = make_ca(home, "ca")
    other_ca = make_ca(home, "other-ca")
    tls = make_server_cert(home, "ca")
    stack = TlsStack(
        home,
        Postgres(home / "postgres", tls=tls),
        RabbitMQ(home / "rabbitmq", tls=tls),
        ca,
        other_ca,
    )
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once: half the wait
            for started in [pool.submit(stack.postgres.start), pool.submit(stack.rabbitmq.start)]:
                started.result()
        yield stack
    finally:
        stack.rabbitmq.stop()
        stack.postgres.stop()
        shutil.rmtree(home, ignore_errors=True)


async def test_setup_and_a_service_run_over_tls(
    tls_stack: TlsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libpq's and asyncpg's way to name the CA that verify-full checks the server against.
    monkeypatch.setenv("PGSSLROOTCERT", str(tls_stack.ca))
    settings = tls_stack.settings()
    env = {
        **os.environ,
        "KEFU_ADMIN_DATABASE_URL": settings.admin_database_url,
        "KEFU_AMQP_URL": settings.amqp_url,
    }
    setup = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "deploy.cli", "setup"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr[-2000:]
    assert "broker ready" in setup.stdout

    group = ServiceProcesses(
        settings,
        env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY, "KEFU_LOG_JSON": "false"},
        ports={"intake": free_port()},
        services=("intake",),
    )
    group.start_all()
    try:
        await asyncio.to_thread(group.wait_ready, 60)
        body = {
            "channel": "web",
            "external_id": f"tls-{uuid.uuid4()}",
            "customer": {"email": "tls@example.com"},
            "text": "我的订单还没到",
        }
        async with httpx.AsyncClient(
            base_url=group.url("intake"), headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
        ) as client:
            assert (await client.post("/v1/issues", json=body)).status_code == 202

        db = await asyncpg.connect(asyncpg_dsn(settings.admin_database_url))
        try:

            async def published() -> bool:
                pending = await db.fetchval(
                    "SELECT count(*) FROM intake.outbox WHERE published_at IS NULL"
                )
                return pending == 0

            await wait_until(published, what="the outbox relayed over amqps")
            rows = await db.fetch(
                "SELECT a.usename, s.ssl, s.version FROM pg_stat_ssl s "
                "JOIN pg_stat_activity a USING (pid) WHERE a.usename IS NOT NULL"
            )
        finally:
            await db.close()
        intake_rows = [row for row in rows if row["usename"] == "kefu_intake"]
        # Its SQLAlchemy pool, its raw asyncpg pool and its LISTEN connection.
        assert len(intake_rows) >= 2, rows
        assert all(row["ssl"] and row["version"].startswith("TLS") for row in rows), rows

        listing = tls_stack.rabbitmq.ctl(
            "list_connections", "--no-table-headers", "user", "ssl", "ssl_protocol"
        )
        connections = [line.split("\t") for line in listing.splitlines() if line.strip()]
        assert connections, "intake holds no broker connection"
        assert all(
            ssl == "true" and protocol.startswith("tlsv1") for _, ssl, protocol in connections
        ), connections
    finally:
        group.stop_all()


async def test_a_server_the_ca_did_not_sign_is_refused(
    tls_stack: TlsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSSLROOTCERT", str(tls_stack.other_ca))
    settings = tls_stack.settings()
    with pytest.raises(Exception, match="certificate verify failed"):
        await asyncpg.connect(asyncpg_dsn(settings.admin_database_url), timeout=10)
    with pytest.raises(Exception, match="certificate verify failed"):
        await aio_pika.connect(
            settings.amqp_url.replace(str(tls_stack.ca), str(tls_stack.other_ca))
        )
