"""Least privilege in local development too: against the local broker's default URL
(``amqp://guest:guest@127.0.0.1:5672/``, what `make run` uses), `kefu setup` makes the same
broker users as in production (prefix ``kefu_``), with passwords generated once and kept outside
the repository in ``~/.config/kefu/broker-users.json`` (readable by its owner only), and
`kefu run` connects each service, and the CLI's `kefu dlq`, as its own user.

Any other URL (another vhost, as the tests use, another host, or ``KEFU_AMQP_USER_PREFIX`` set)
is left as it is configured.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from deploy import broker_users
from shared.messaging.provenance import CLI_USER, broker_user
from shared.settings import DEFAULT_AMQP_URL, SERVICES, Settings

PREFIX = "kefu_"


def credentials_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "kefu" / "broker-users.json"


def applies(settings: Settings) -> bool:
    return settings.amqp_user_prefix is None and settings.amqp_url == DEFAULT_AMQP_URL


def passwords(path: Path | None = None) -> dict[str, str] | None:
    """The local users' passwords, keyed by name without the prefix; None before set-up."""
    path = path or credentials_path()
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    return {str(name): str(password) for name, password in stored.items()}


def ensure_passwords(path: Path | None = None) -> dict[str, str]:
    """The stored passwords, with one made for any user that has none yet."""
    path = path or credentials_path()
    names = [user.removeprefix(PREFIX) for user in broker_users.user_names(PREFIX)]
    current = passwords(path) or {}
    wanted = {name: current.get(name) or secrets.token_urlsafe(24) for name in names}
    if wanted != current:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_suffix(".tmp")
        # Created readable by its owner only, then put in place at once.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(wanted, file, indent=2)
        partial.replace(path)
    return wanted


def create_users(settings: Settings) -> list[str]:
    return broker_users.create_users(
        settings.management_url(), settings.amqp_vhost(), PREFIX, ensure_passwords()
    )


def user_url(amqp_url: str, name: str, password: str) -> str:
    """``amqp_url`` with ``name``'s credentials in place of guest's."""
    parts = urlsplit(amqp_url)
    user = quote(broker_user(PREFIX, name), safe="")
    netloc = f"{user}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def use_own_users(settings: Settings, environ: MutableMapping[str, str]) -> Settings:
    """After local set-up: each service (``KEFU_AMQP_URL_<SERVICE>``, for `kefu run`'s children)
    and this CLI connect as their own users; the settings the CLI goes on with. Variables
    already set win."""
    stored = passwords() if applies(settings) else None
    if not stored:
        return settings
    environ.setdefault("KEFU_AMQP_USER_PREFIX", PREFIX)
    for service in SERVICES:
        url = user_url(settings.amqp_url, service, stored[service])
        environ.setdefault(f"KEFU_AMQP_URL_{service.upper()}", url)
    cli_url = user_url(settings.amqp_url, CLI_USER, stored[CLI_USER])
    return settings.model_copy(update={"amqp_user_prefix": PREFIX, "amqp_url": cli_url})
