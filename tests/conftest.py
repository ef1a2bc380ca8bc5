from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.launcher import ServiceProcesses
from shared.settings import SERVICES, Settings
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """The database and vhost that the running services of the e2e tests use."""
    with isolated_stack() as settings:
        yield settings


@pytest.fixture(scope="session")
def services(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """All four services as real processes, on free ports, against the session's stack."""
    log_dir = tmp_path_factory.mktemp("service-logs")
    group = ServiceProcesses(
        stack,
        env={
            "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
            "KEFU_OUTBOX_POLL_SECONDS": "0.5",
            "KEFU_DELIVERY_LIMIT": "3",
            "KEFU_LOG_JSON": "false",
            "KEFU_API_KEY_CACHE_SECONDS": "0",
            "KEFU_METRICS_REFRESH_SECONDS": "0.5",
        },
        ports={service: free_port() for service in SERVICES},
        log_dir=log_dir,
    )
    group.start_all()
    try:
        group.wait_ready(timeout=60)
        yield group
    finally:
        group.stop_all()
        _print_errors(log_dir)


def _print_errors(log_dir: Path) -> None:
    for log in sorted(log_dir.glob("*.log")):
        lines = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if "Traceback" in line or "[error" in line
        ]
        if lines:
            print(f"\n{log.name}: {len(lines)} error lines, e.g. {lines[:3]}")
