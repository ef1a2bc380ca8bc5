"""Runs several services as child processes: `kefu run` (make run) and the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.settings import DEFAULT_PORTS, SERVICES, Settings, role_database_url

ROOT = Path(__file__).resolve().parent.parent


def service_env(
    settings: Settings, service: str, port: int, extra: Mapping[str, str]
) -> dict[str, str]:
    """Each child connects as its own role; ``extra`` has the last say."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KEFU_PORT": str(port),
        "KEFU_AMQP_URL": settings.amqp_url,
        "KEFU_DATABASE_URL": role_database_url(
            settings.admin_database_url, service, settings.db_password
        ),
        **extra,
    }


@dataclass
class ServiceProcesses:
    settings: Settings
    env: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    services: Sequence[str] = SERVICES
    log_dir: Path | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://{self.settings.host}:{self.ports[service]}"

    def start(self, service: str) -> None:
        with contextlib.ExitStack() as stack:
            output = None
            if self.log_dir is not None:
                # The child keeps its own handle; ours closes once it is started.
                output = stack.enter_context((self.log_dir / f"{service}.log").open("ab"))
            self.procs[service] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                cwd=ROOT,
                env=service_env(self.settings, service, self.ports[service], self.env),
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )

    def start_all(self) -> None:
        for service in self.services:
            self.start(service)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every service answers /readyz (database and broker reachable)."""
        deadline = time.monotonic() + timeout
        pending = set(self.services)
        while pending:
            for service in sorted(pending):
                proc = self.procs[service]
                if proc.poll() is not None:
                    raise RuntimeError(f"{service} exited with code {proc.returncode}")
                try:
                    if httpx.get(f"{self.url(service)}/readyz", timeout=1).status_code == 200:
                        pending.discard(service)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout}s: {sorted(pending)}")
            if pending:
                time.sleep(0.2)

    def stop(self, service: str, *, timeout: float = 15.0) -> None:
        proc = self.procs.pop(service)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for service in list(self.procs):
            self.stop(service)

    def first_exit(self) -> tuple[str, int] | None:
        for service, proc in self.procs.items():
            if proc.poll() is not None:
                return service, proc.returncode
        return None


def run_foreground(settings: Settings, services: Sequence[str], api_key: str) -> int:
    """Start the services, print where they are, and stop them all on Ctrl-C."""
    group = ServiceProcesses(
        settings,
        env={"KEFU_BOOTSTRAP_API_KEY": api_key, "KEFU_LOG_JSON": "false"},
        services=services,
    )
    # SIGTERM (a supervisor, `timeout`) stops the children as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    group.start_all()
    try:
        group.wait_ready()
        print("\nKefu is running:", flush=True)
        for service in services:
            print(f"  {service:<14} {group.url(service)}  (docs: {group.url(service)}/docs)")
        print(f"\nAPI key: {api_key}")
        print(f'  curl -H "Authorization: Bearer {api_key}" {group.url("intake")}/v1/issues/...')
        print("Press Ctrl-C to stop.\n", flush=True)
        while (exited := group.first_exit()) is None:
            time.sleep(0.5)
        print(f"{exited[0]} exited with code {exited[1]}; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
        return 0
    finally:
        group.stop_all()
