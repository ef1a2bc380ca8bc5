"""Replicas of a service share its HTTP port (SO_REUSEPORT) and its queue (deploy/launcher.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.launcher import ServiceProcesses, listening_ports, replicas_from_env
from shared.messaging.topology import service_queue_name
from shared.settings import Settings
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack

AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    with isolated_stack() as settings:
        yield settings


def _consumers(settings: Settings, queue: str) -> int:
    vhost = settings.amqp_url.rsplit("/", 1)[1]
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "consumers"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if fields and fields[0] == queue:
            return int(fields[1])
    return 0


def test_replica_counts_come_from_the_environment() -> None:
    services = ("intake", "improvement")
    assert replicas_from_env(services, {}) == {"intake": 1, "improvement": 1}
    assert replicas_from_env(services, {"KEFU_REPLICAS_IMPROVEMENT": "2"})["improvement"] == 2
    with pytest.raises(ValueError, match="KEFU_REPLICAS_INTAKE"):
        replicas_from_env(services, {"KEFU_REPLICAS_INTAKE": "two"})
    with pytest.raises(ValueError, match="between 1"):
        replicas_from_env(services, {"KEFU_REPLICAS_INTAKE": "0"})


def test_two_replicas_of_a_consumer_share_its_port_and_its_queue(
    stack: Settings, tmp_path: Path
) -> None:
    port = free_port()
    group = ServiceProcesses(
        stack,
        env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY, "KEFU_LOG_JSON": "false"},
        ports={"improvement": port},
        services=("improvement",),
        replicas={"improvement": 2},
        log_dir=tmp_path,
    )
    group.start_all()
    try:
        group.wait_ready(timeout=60)
        pids = group.pids("improvement")
        assert sorted(pids) == ["improvement", "improvement#2"]
        # Both processes listen on the one port, and both consume the service's queue.
        assert all(port in listening_ports(pid) for pid in pids.values())
        deadline = time.monotonic() + 20  # the broker's count of consumers may lag a little
        while (consumers := _consumers(stack, service_queue_name("improvement"))) != 2:
            assert time.monotonic() < deadline, f"{consumers} consumers on the queue, not 2"
            time.sleep(0.5)
        for _ in range(20):  # new connections, spread over both replicas by the kernel
            answer = httpx.get(f"{group.url('improvement')}/v1/followups", headers=AUTH)
            assert answer.status_code == 200
        # Either one serves alone: stop the first, the second still answers on the port.
        group.stop("improvement")
        assert list(group.procs) == ["improvement#2"]
        for _ in range(10):
            assert httpx.get(f"{group.url('improvement')}/readyz").status_code == 200
    finally:
        group.stop_all()
    assert (tmp_path / "improvement-2.log").exists()
