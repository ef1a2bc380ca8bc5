"""One RabbitMQ user per service, one for the CLI and a read-only subscriber, each allowed only
what it needs (through the management HTTP API, so it works on a remote broker).

Set-up owns the topology, so no user may configure (create, change or delete) anything but a
subscriber's own queues. A service reads only its own queues (its DLQ included: erasure strips
the customer's events there, shared/messaging/dead_letters.py), publishes to ``kefu.events`` only
its own event types (topic permissions on the routing key), and to the default exchange (its
released copies) and ``kefu.dlx`` (its dead letters). Consumers refuse events whose ``user_id``
is not their owner's (shared/messaging/provenance.py), so a service that reaches another's queue
through the default exchange still cannot speak for another service.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from shared.contracts import EVENT_TYPES, PUBLISHERS
from shared.messaging.provenance import CLI_USER, broker_user
from shared.messaging.topology import (
    ARCHIVE_QUEUE,
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    SELF_BINDING,
    binding_keys,
    dead_letter_queue_name,
    service_queue_name,
)
from shared.settings import SERVICES

SUBSCRIBER_USER = "subscriber"
# A subscriber's queues are named after its user: <prefix>subscriber.<anything>.
NOTHING = "^$"
DEFAULT_EXCHANGE = "amq.default"


@dataclass(frozen=True)
class Grant:
    user: str
    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str


def _exactly(names: Iterable[str]) -> str:
    return "^(" + "|".join(re.escape(name) for name in sorted(names)) + ")$"


def grants(prefix: str) -> list[Grant]:
    """What each user may do; the pattern of RabbitMQ's permissions, per resource name."""
    result = []
    for service in SERVICES:
        owned = [t for t, owner in PUBLISHERS.items() if owner == service]
        own = re.escape(service_queue_name(service))
        exchanges = [EVENTS_EXCHANGE, DEFAULT_EXCHANGE, DEAD_LETTER_EXCHANGE]
        # A self-binding service (webhooks) binds its own queue to kefu.events: that writes to
        # the queue and reads the exchange, for the event types' routing keys only.
        binds = service in SELF_BINDING
        # Its own queues, its DLQ too: an erasure strips the customer's events there.
        reads = f"^{own}(\\..+)?$"
        result.append(
            Grant(
                user=broker_user(prefix, service),
                # Its own auxiliary queues (webhooks' jobs and delays), never its DLQ.
                configure=f"^{own}\\.(?!dlq$).+$",
                write=_exactly([*exchanges, service_queue_name(service)] if binds else exchanges),
                read=f"{reads}|^{re.escape(EVENTS_EXCHANGE)}$" if binds else reads,
                topic_write=_exactly(binding_keys(owned)) if owned else NOTHING,
                topic_read=_exactly(binding_keys(EVENT_TYPES)) if binds else NOTHING,
            )
        )
    result.append(
        Grant(
            user=broker_user(prefix, CLI_USER),
            configure=NOTHING,
            # kefu dlq replay: from a DLQ back to its service's queue.
            write=_exactly([DEFAULT_EXCHANGE]),
            read=_exactly(dead_letter_queue_name(service) for service in SERVICES),
            topic_write=NOTHING,
            topic_read=NOTHING,
        )
    )
    subscriber = broker_user(prefix, SUBSCRIBER_USER)
    own_queues = "^" + re.escape(subscriber + ".") + ".*$"
    result.append(
        Grant(
            user=subscriber,
            configure=own_queues,
            write=own_queues,  # binding writes to the queue
            read=f"{own_queues}|{_exactly([EVENTS_EXCHANGE, ARCHIVE_QUEUE])}",
            topic_write=NOTHING,
            topic_read=".*",  # may bind to any routing key
        )
    )
    return result


class BrokerAdmin:
    """The few management API calls set-up needs."""

    def __init__(self, management_url: str, vhost: str) -> None:
        url = httpx.URL(management_url)
        self.vhost = quote(vhost, safe="")
        self.client = httpx.Client(
            base_url=str(url.copy_with(username=None, password=None)).rstrip("/"),
            auth=(url.username, url.password),
            timeout=30,
        )

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, json: object = None) -> httpx.Response:
        response = self.client.request(method, path, json=json)
        if response.status_code >= 400 and not (method == "DELETE" and response.status_code == 404):
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response

    def put_user(self, name: str, password: str) -> None:
        self._call("PUT", f"/api/users/{quote(name, safe='')}", {"password": password, "tags": ""})

    def delete_user(self, name: str) -> None:
        self._call("DELETE", f"/api/users/{quote(name, safe='')}")

    def grant(self, grant: Grant) -> None:
        user = quote(grant.user, safe="")
        self._call(
            "PUT",
            f"/api/permissions/{self.vhost}/{user}",
            {"configure": grant.configure, "write": grant.write, "read": grant.read},
        )
        self._call(
            "PUT",
            f"/api/topic-permissions/{self.vhost}/{user}",
            {"exchange": EVENTS_EXCHANGE, "write": grant.topic_write, "read": grant.topic_read},
        )


def passwords_from_env(prefix: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``KEFU_AMQP_PASSWORD_<NAME>`` for each user (``KEFU_AMQP_PASSWORD_INTAKE``, ``..._CLI``)."""
    names = [grant.user.removeprefix(prefix) for grant in grants(prefix)]
    return {
        name: environ[f"KEFU_AMQP_PASSWORD_{name.upper()}"]
        for name in names
        if environ.get(f"KEFU_AMQP_PASSWORD_{name.upper()}")
    }


def user_names(prefix: str) -> list[str]:
    return [grant.user for grant in grants(prefix)]


def create_users(
    management_url: str, vhost: str, prefix: str, passwords: Mapping[str, str]
) -> list[str]:
    """Create (or update) every user with its password and permissions; returns their names.

    ``passwords`` is keyed by the name without the prefix (``intake``, ``cli``, ``subscriber``);
    every user must have one: there is no default password."""
    missing = [g.user for g in grants(prefix) if not passwords.get(g.user.removeprefix(prefix))]
    if missing:
        raise ValueError(f"no password for broker user(s) {', '.join(missing)}")
    admin = BrokerAdmin(management_url, vhost)
    try:
        for grant in grants(prefix):
            admin.put_user(grant.user, passwords[grant.user.removeprefix(prefix)])
            admin.grant(grant)
    finally:
        admin.close()
    return user_names(prefix)


def delete_users(management_url: str, prefix: str) -> None:
    admin = BrokerAdmin(management_url, "/")
    try:
        for name in user_names(prefix):
            admin.delete_user(name)
    finally:
        admin.close()
