"""`kefu run` supervises its services (deploy/launcher.py): one killed with SIGKILL is
restarted and ready again while the others keep answering; one that keeps crashing stops the
run with its name; SIGTERM still stops everything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.launcher import ROOT
from shared.settings import Settings
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    with isolated_stack() as settings:
        yield settings


def kefu_run(
    stack: Settings, ports: dict[str, int], log: Path, *options: str, **extra: str
) -> subprocess.Popen[bytes]:
    """`kefu run --service ... [options]` on the test's database, vhost and ports."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},
        "PYTHONPATH": str(ROOT),
        "KEFU_ADMIN_DATABASE_URL": stack.admin_database_url,
        "KEFU_AMQP_URL": stack.amqp_url,
        "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
        "KEFU_DELIVERY_LIMIT": str(stack.delivery_limit),
        **{f"KEFU_PORT_{service.upper()}": str(port) for service, port in ports.items()},
        **extra,
    }
    args = [arg for service in ports for arg in ("--service", service)]
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "run", *args, *options],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def children(pid: int) -> dict[str, int]:
    """The supervisor's children, by service: {"intake": 1234, ...}."""
    found: dict[str, int] = {}
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, listed):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for part in command:
            if part.startswith(b"services."):
                found[part.decode().removeprefix("services.")] = child
    return found


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.1)


def test_a_killed_service_is_restarted_while_the_others_keep_serving(
    stack: Settings, tmp_path: Path
) -> None:
    ports = {"intake": free_port(), "feedback": free_port()}
    log = tmp_path / "kefu-run.log"
    run = kefu_run(stack, ports, log, KEFU_RESTART_BACKOFF_SECONDS="0.5")
    try:
        wait(lambda: all(ready(p) for p in ports.values()), 60, "both services ready")
        before = children(run.pid)
        assert set(before) == {"intake", "feedback"}

        os.kill(before["feedback"], signal.SIGKILL)
        intake_answers = 0
        while not (
            ready(ports["feedback"])
            and children(run.pid).get("feedback") not in (None, before["feedback"])
        ):
            assert run.poll() is None, log.read_text()
            # Meanwhile intake keeps serving, untouched.
            assert ready(ports["intake"])
            intake_answers += 1
            assert intake_answers < 600, log.read_text()
            time.sleep(0.1)
        after = children(run.pid)
        assert after["intake"] == before["intake"]
        assert after["feedback"] != before["feedback"]
        wait(lambda: "feedback is ready again" in log.read_text(), 10, "ready-again line")
        text = log.read_text()
        assert "feedback exited with code -9 (killed by SIGKILL); restarting in 0.5s" in text
        assert "feedback restarted" in text
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(30)
    assert code == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in after.values())


def test_a_service_that_keeps_crashing_stops_the_run_with_its_name(
    stack: Settings, tmp_path: Path
) -> None:
    with socket.socket() as taken:  # bound without SO_REUSEPORT: intake cannot bind it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "kefu-run.log"
        run = kefu_run(
            stack,
            {"intake": port},
            log,
            KEFU_RESTART_BACKOFF_SECONDS="0.1",
            KEFU_CRASH_LOOP_RESTARTS="3",
        )
        try:
            code = run.wait(90)
        finally:
            if run.poll() is None:
                run.kill()
    text = log.read_text()
    assert code == 1, text
    assert "intake keeps crashing: it exited 3 times within 60s" in text
    assert text.count("intake exited with code 1") == 2  # two restarts, then the stop
