"""Runs several services as child processes: `kefu run` (make run) and the end-to-end tests.

A service may run as several replicas (``replicas={"improvement": 2}``, or
``KEFU_REPLICAS_IMPROVEMENT=2`` for `make run`): they share the service's HTTP port
(SO_REUSEPORT, see shared/service.py), compete on its queue and share its outbox. The first
replica is named after the service, the others ``improvement#2``, ``improvement#3``...
"""

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
MAX_REPLICAS = 16


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


def instance_name(service: str, replica: int) -> str:
    """``improvement`` for the first replica, ``improvement#2`` for the second..."""
    return service if replica == 1 else f"{service}#{replica}"


def service_of(instance: str) -> str:
    return instance.partition("#")[0]


def replicas_from_env(
    services: Sequence[str], environ: Mapping[str, str] = os.environ
) -> dict[str, int]:
    """``KEFU_REPLICAS_<SERVICE>`` (e.g. ``KEFU_REPLICAS_IMPROVEMENT=2``); 1 when unset."""
    counts: dict[str, int] = {}
    for service in services:
        variable = f"KEFU_REPLICAS_{service.upper()}"
        raw = environ.get(variable, "1").strip() or "1"
        try:
            count = int(raw)
        except ValueError:
            raise ValueError(f"{variable}={raw!r}: not a whole number") from None
        if not 1 <= count <= MAX_REPLICAS:
            raise ValueError(f"{variable}={count}: between 1 and {MAX_REPLICAS}")
        counts[service] = count
    return counts


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on (Linux /proc); every port when /proc cannot tell."""
    inodes: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return set()  # the process is gone
    except OSError:
        return set(range(65536))
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines, None)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass
class ServiceProcesses:
    settings: Settings
    env: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    services: Sequence[str] = SERVICES
    log_dir: Path | None = None
    replicas: Mapping[str, int] = field(default_factory=dict)
    # Keyed by instance name: "intake", "improvement", "improvement#2"...
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://{self.settings.host}:{self.ports[service_of(service)]}"

    def instances(self, service: str) -> list[str]:
        """The running instances of ``service``, first replica first."""
        return [name for name in self.procs if service_of(name) == service]

    def pids(self, service: str) -> dict[str, int]:
        return {name: self.procs[name].pid for name in self.instances(service)}

    def start(self, service: str, replica: int = 1) -> str:
        """Start one replica of ``service`` (a new one when ``replica`` is already running)."""
        name = instance_name(service, replica)
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        with contextlib.ExitStack() as stack:
            output = None
            if self.log_dir is not None:
                # The child keeps its own handle; ours closes once it is started.
                log_name = name.replace("#", "-")
                output = stack.enter_context((self.log_dir / f"{log_name}.log").open("ab"))
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                cwd=ROOT,
                env=service_env(self.settings, service, self.ports[service], self.env),
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )
        return name

    def start_all(self) -> None:
        for service in self.services:
            for replica in range(1, self.replicas.get(service, 1) + 1):
                self.start(service, replica)

    def wait_ready(self, timeout: float = 60.0, services: Sequence[str] | None = None) -> None:
        """Wait until every instance answers /readyz (database and broker reachable).

        Replicas share a port and the kernel spreads new connections over them, so a request
        cannot pick its replica: each instance must be listening on the port itself, and the
        port must then answer ready on several new connections in a row.
        """
        wanted = set(services) if services is not None else {service_of(n) for n in self.procs}
        deadline = time.monotonic() + timeout
        streak = dict.fromkeys(wanted, 0)
        while streak:
            for service in sorted(streak):
                instances = self.instances(service)
                for name in instances:
                    proc = self.procs[name]
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {proc.returncode}")
                port = self.ports[service]
                listening = all(port in listening_ports(self.procs[n].pid) for n in instances)
                try:
                    ready = httpx.get(f"{self.url(service)}/readyz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    ready = False
                streak[service] = streak[service] + 1 if ready and listening else 0
                if streak[service] >= (1 if len(instances) == 1 else 5 * len(instances)):
                    del streak[service]
            if streak and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout}s: {sorted(streak)}")
            if streak:  # quick while a streak of ready answers builds up
                time.sleep(0.05 if any(streak.values()) else 0.2)

    def stop(self, name: str, *, timeout: float = 15.0) -> None:
        """Stop one instance: ``improvement`` (the first replica) or ``improvement#2``."""
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        # SIGTERM to all first, so they stop side by side.
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self.procs):
            self.stop(name)

    def first_exit(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None


def run_foreground(
    settings: Settings,
    services: Sequence[str],
    api_key: str,
    replicas: Mapping[str, int] | None = None,
) -> int:
    """Start the services, print where they are, and stop them all on Ctrl-C."""
    group = ServiceProcesses(
        settings,
        env={"KEFU_BOOTSTRAP_API_KEY": api_key, "KEFU_LOG_JSON": "false"},
        services=services,
        replicas=replicas_from_env(services) if replicas is None else replicas,
    )
    # SIGTERM (a supervisor, `timeout`) stops the children as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    group.start_all()
    try:
        group.wait_ready()
        print("\nKefu is running:", flush=True)
        for service in services:
            count = len(group.instances(service))
            shown = f"{count} replicas, " if count > 1 else ""
            print(f"  {service:<14} {group.url(service)}  ({shown}docs: {group.url(service)}/docs)")
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
