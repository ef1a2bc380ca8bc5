"""TLS settings carry over to every connection, and set-up finds the broker's management API."""

from __future__ import annotations

from shared.db import asyncpg_dsn
from shared.settings import Settings


def test_the_databases_tls_mode_reaches_raw_asyncpg_connections() -> None:
    url = "postgresql+asyncpg://kefu_intake:s3cret@db.example.com:5432/kefu?ssl=verify-full"
    assert asyncpg_dsn(url) == (
        "postgresql://kefu_intake:s3cret@db.example.com:5432/kefu?sslmode=verify-full"
    )


def test_the_management_api_is_found_beside_the_broker() -> None:
    plain = Settings(amqp_url="amqp://admin:pw@mq.example.com:5672/kefu")
    assert plain.management_url() == "http://admin:pw@mq.example.com:15672"
    assert plain.amqp_vhost() == "kefu"
    tls = Settings(amqp_url="amqps://admin:pw@mq.example.com:5671/")
    assert tls.management_url() == "https://admin:pw@mq.example.com:15671"
    assert tls.amqp_vhost() == "/"
    given = Settings(amqp_management_url="https://ops:x@mgmt.example.com")
    assert given.management_url() == "https://ops:x@mgmt.example.com"
