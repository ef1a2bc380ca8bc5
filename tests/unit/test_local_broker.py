"""Local development's broker users: passwords made once, kept out of the repository and
readable by their owner only; after set-up each service and the CLI get their own user."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deploy import local_broker
from shared.settings import DEFAULT_AMQP_URL, SERVICES, Settings


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("KEFU_AMQP_USER_PREFIX", raising=False)  # a developer's own setting
    return tmp_path


def test_only_the_local_default_url_without_a_prefix() -> None:
    assert local_broker.applies(Settings(amqp_url=DEFAULT_AMQP_URL))
    assert not local_broker.applies(Settings(amqp_url=DEFAULT_AMQP_URL, amqp_user_prefix="x_"))
    assert not local_broker.applies(Settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/t"))


def test_passwords_are_made_once_and_readable_by_their_owner_only(config_home: Path) -> None:
    assert local_broker.passwords() is None
    made = local_broker.ensure_passwords()
    path = local_broker.credentials_path()
    assert path == config_home / "kefu" / "broker-users.json"
    assert set(made) == {*SERVICES, "cli", "subscriber"}
    assert len(set(made.values())) == len(made) and all(len(p) >= 32 for p in made.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_broker.ensure_passwords() == made  # kept, not made again
    path.write_text('{"intake": "kept"}')
    assert local_broker.ensure_passwords()["intake"] == "kept"  # and completed


def test_after_setup_each_service_and_the_cli_connect_as_their_own_user() -> None:
    settings = Settings(amqp_url=DEFAULT_AMQP_URL)
    environ = {"KEFU_AMQP_URL_FEEDBACK": "amqp://mine@example.com/"}
    assert local_broker.use_own_users(settings, environ) is settings  # before set-up: guest
    assert environ == {"KEFU_AMQP_URL_FEEDBACK": "amqp://mine@example.com/"}
    stored = local_broker.ensure_passwords()
    cli = local_broker.use_own_users(settings, environ)
    assert cli.amqp_user_prefix == "kefu_"
    assert cli.amqp_url == f"amqp://kefu_cli:{stored['cli']}@127.0.0.1:5672/"
    assert environ["KEFU_AMQP_USER_PREFIX"] == "kefu_"
    assert (
        environ["KEFU_AMQP_URL_INTAKE"] == f"amqp://kefu_intake:{stored['intake']}@127.0.0.1:5672/"
    )
    assert environ["KEFU_AMQP_URL_FEEDBACK"] == "amqp://mine@example.com/"  # set: it wins
    other = Settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/other")
    assert local_broker.use_own_users(other, {}) is other
