"""docker-compose.yml read as data: every long-running container restarts and has a health
check, every image is pinned, no secret has a default, and RabbitMQ's admin ports stay local."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import DEFAULT_PORTS

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
# An exact release (PostgreSQL's are major.minor), or a digest.
PINNED_TAG = re.compile(r"^[\w./-]+:\d+(\.\d+)+(-[\w.-]+)?$|@sha256:[0-9a-f]{64}$")
# ${NAME:?message} fails when NAME is unset; ${NAME:-value} and ${NAME-value} fall back.
DEFAULTED = re.compile(r"\$\{(\w+):?-([^}]*)\}")
SECRET_WORDS = ("PASSWORD", "PASS", "SECRET", "KEY", "TOKEN")


def load() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def compose_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    services: dict[str, Any] = compose["services"]
    built = {service["image"] for service in services.values() if "build" in service}
    for name, service in services.items():
        if one_shot(service):
            # A one-shot job: the services wait for it to have completed successfully.
            waiting = [
                other
                for other in services.values()
                if service_dependency(other, name) == "service_completed_successfully"
            ]
            if not waiting:
                problems.append(f"{name}: one-shot, but nothing waits for it to complete")
        else:
            if service.get("restart") not in ("always", "unless-stopped"):
                problems.append(f"{name}: no restart policy")
            if not service.get("healthcheck", {}).get("test"):
                problems.append(f"{name}: no healthcheck")
        image = service.get("image", "")
        if image not in built and not PINNED_TAG.search(image):
            problems.append(f"{name}: image {image!r} is not pinned to an exact version")
        for key, value in environment(service).items():
            for variable, fallback in DEFAULTED.findall(str(value)):
                secret = any(word in variable for word in SECRET_WORDS)
                if secret and fallback:
                    problems.append(f"{name}: {key} falls back to a default {variable}")
            written = "${" not in str(value) and value not in ("", None)
            if written and any(word in key for word in SECRET_WORDS):
                problems.append(f"{name}: {key} is written in the file")
    return problems


def service_dependency(service: dict[str, Any], name: str) -> str | None:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return "service_started" if name in depends else None
    condition = depends.get(name, {}).get("condition")
    return str(condition) if condition else None


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def test_the_compose_file_keeps_its_rules() -> None:
    assert compose_problems(load()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["services"]["intake"].pop("healthcheck"), "intake: no healthcheck"),
        (lambda c: c["services"]["feedback"].update(restart="no"), "feedback: one-shot"),
        (
            lambda c: c["services"]["postgres"].update(image="postgres:15"),
            "postgres: image 'postgres:15' is not pinned",
        ),
        (
            lambda c: c["services"]["rabbitmq"]["environment"].update(
                RABBITMQ_DEFAULT_PASS="${KEFU_RABBITMQ_PASSWORD:-guest}"
            ),
            "rabbitmq: RABBITMQ_DEFAULT_PASS falls back to a default KEFU_RABBITMQ_PASSWORD",
        ),
        (
            lambda c: c["services"]["postgres"]["environment"].update(POSTGRES_PASSWORD="kefu"),
            "postgres: POSTGRES_PASSWORD is written in the file",
        ),
    ],
)
def test_a_broken_compose_file_is_caught(change: Any, problem: str) -> None:
    compose = load()
    change(compose)
    assert any(found.startswith(problem) for found in compose_problems(compose))


def test_rabbitmq_is_4x_with_prometheus_and_local_admin_ports() -> None:
    rabbitmq = load()["services"]["rabbitmq"]
    assert re.match(r"rabbitmq:4\.\d+\.\d+-management$", rabbitmq["image"])
    ports = rabbitmq["ports"]
    for port in (15672, 15692):
        assert f"127.0.0.1:{port}:{port}" in ports
    plugins_file = next(v.split(":")[0] for v in rabbitmq["volumes"] if "enabled_plugins" in v)
    plugins = (COMPOSE.parent / plugins_file).read_text(encoding="utf-8")
    assert "rabbitmq_prometheus" in plugins
    assert "rabbitmq_management" in plugins


def test_every_service_runs_on_its_port() -> None:
    services = load()["services"]
    for name, port in DEFAULT_PORTS.items():
        assert services[name]["environment"]["KEFU_PORT"] == str(port)
        assert f"{port}:{port}" in services[name]["ports"]
