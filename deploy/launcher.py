"""Runs several services as child processes: `kefu run` (make run) and the end-to-end tests.

`kefu run` supervises its children (``Supervisor``): an instance that dies is restarted after a
back-off that doubles from ``KEFU_RESTART_BACKOFF_SECONDS`` (1 s) up to
``KEFU_RESTART_BACKOFF_MAX_SECONDS`` (30 s) and starts over once it has stayed up
``KEFU_RESTART_STABLE_SECONDS`` (30 s); the others keep serving. An instance that exits
``KEFU_CRASH_LOOP_RESTARTS`` times (5) within ``KEFU_CRASH_LOOP_WINDOW_SECONDS`` (60 s) stops
the whole run with a message naming it and a non-zero exit code. The policy (``RestartPolicy``)
is pure and is tested without processes.

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
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from deploy.seed import post_seed
from shared.settings import DEFAULT_PORTS, RUNNABLE, SERVICES, Settings, role_database_url

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
        # With a broker user per service, each has its own URL (KEFU_AMQP_URL_<SERVICE>).
        "KEFU_AMQP_URL": os.environ.get(f"KEFU_AMQP_URL_{service.upper()}", settings.amqp_url),
        "KEFU_DATABASE_URL": role_database_url(
            settings.admin_database_url, service, settings.db_password_for(service)
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


def ports_from_env(
    services: Sequence[str], environ: Mapping[str, str] = os.environ
) -> dict[str, int]:
    """``KEFU_PORT_<SERVICE>`` (e.g. ``KEFU_PORT_INTAKE=18000``); the default port when unset."""
    ports: dict[str, int] = {}
    for service in services:
        variable = f"KEFU_PORT_{service.upper()}"
        raw = environ.get(variable, "").strip()
        try:
            ports[service] = int(raw) if raw else DEFAULT_PORTS[service]
        except ValueError:
            raise ValueError(f"{variable}={raw!r}: not a port number") from None
    return ports


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

    def peer_urls(self) -> dict[str, str]:
        """Where the console finds the other services (``KEFU_CONSOLE_<SERVICE>_URL``)."""
        return {
            f"KEFU_CONSOLE_{service.upper()}_URL": self.url(service)
            for service in SERVICES
            if service in self.ports
        }

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
                env=service_env(
                    self.settings,
                    service,
                    self.ports[service],
                    {
                        # Each replica's rate limits are its share of the service's.
                        "KEFU_RATE_LIMIT_REPLICAS": str(self.replicas.get(service, 1)),
                        **self.peer_urls(),
                        **self.peers_env(),
                    },
                ),
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )
        return name

    def peers_env(self) -> dict[str, str]:
        """Each child finds the others (intake's export asks them), then ``env``."""
        urls = {f"KEFU_URL_{name.upper()}": self.url(name) for name in self.ports}
        return {**urls, **self.env}

    def restart(self, name: str) -> None:
        """Start a new process for an instance whose process has exited."""
        service, _, replica = name.partition("#")
        self.start(service, int(replica) if replica else 1)

    def start_all(self) -> None:
        for service in self.services:
            for replica in range(1, self.replicas.get(service, 1) + 1):
                self.start(service, replica)

    def wait_ready(self, timeout: float = 60.0, services: Sequence[str] | None = None) -> None:
        """Wait until every instance is up: /readyz answers 200 with every check "ok" (its
        database and its broker; /readyz alone is 200 without the broker, see _ready).

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
                ready = _ready(self.url(service), timeout=1)
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


def describe_exit(code: int) -> str:
    """``code 1``, or ``signal 9 (SIGKILL)`` for a process a signal ended (Popen: -9)."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"code {code} (killed by {signal.Signals(-code).name})"
    return f"code {code}"


@dataclass
class RestartPolicy:
    """When to restart an instance that exited, and when to give up. Pure: times are given."""

    backoff: float = 1.0
    backoff_max: float = 30.0
    stable_after: float = 30.0
    crash_limit: int = 5
    window: float = 60.0
    _exits: deque[float] = field(default_factory=deque)
    _delay: float | None = None
    _started_at: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(
            backoff=settings.restart_backoff_seconds,
            backoff_max=settings.restart_backoff_max_seconds,
            stable_after=settings.restart_stable_seconds,
            crash_limit=settings.crash_loop_restarts,
            window=settings.crash_loop_window_seconds,
        )

    def started(self, now: float) -> None:
        self._started_at = now

    def exited(self, now: float) -> float | None:
        """Record an exit at ``now``. Returns the wait before the restart, or None when the
        instance has exited ``crash_limit`` times within ``window``: a crash loop."""
        if self._delay is None or now - self._started_at >= self.stable_after:
            self._delay = self.backoff  # first exit, or it had stayed up: start over
        self._exits.append(now)
        while self._exits and self._exits[0] <= now - self.window:
            self._exits.popleft()
        if len(self._exits) >= self.crash_limit:
            return None
        delay = self._delay
        self._delay = min(delay * 2, self.backoff_max)
        return delay


class CrashLoop(RuntimeError):
    """An instance keeps exiting: the run stops."""


@dataclass
class Supervisor:
    """Restarts the instances of a ServiceProcesses group as they exit (``tick`` each moment)."""

    group: ServiceProcesses
    policy: Callable[[], RestartPolicy]
    say: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    policies: dict[str, RestartPolicy] = field(default_factory=dict)
    restart_at: dict[str, float] = field(default_factory=dict)
    # Restarted instances whose port has not answered /readyz since.
    recovering: set[str] = field(default_factory=set)

    def started_all(self) -> None:
        now = self.clock()
        for name in self.group.procs:
            self._policy(name).started(now)

    def _policy(self, name: str) -> RestartPolicy:
        if name not in self.policies:
            self.policies[name] = self.policy()
        return self.policies[name]

    def tick(self) -> None:
        """Notice exits and restart what is due; raise CrashLoop to stop the run."""
        now = self.clock()
        for name, proc in list(self.group.procs.items()):
            code = proc.poll()
            if code is None or name in self.restart_at:
                continue
            delay = self._policy(name).exited(now)
            policy = self._policy(name)
            if delay is None:
                raise CrashLoop(
                    f"{name} keeps crashing: it exited {policy.crash_limit} times within "
                    f"{policy.window:.0f}s (last: {describe_exit(code)}); stopping the run"
                )
            self.say(f"{name} exited with {describe_exit(code)}; restarting in {delay:.1f}s")
            self.restart_at[name] = now + delay
            self.recovering.discard(name)
        for name, due in list(self.restart_at.items()):
            if now >= due:
                del self.restart_at[name]
                self.group.restart(name)
                self._policy(name).started(now)
                self.recovering.add(name)
                self.say(f"{name} restarted (pid {self.group.procs[name].pid})")
        for name in sorted(self.recovering):
            if _ready(self.group.url(service_of(name))):
                self.recovering.discard(name)
                self.say(f"{name} is ready again")


def _ready(url: str, timeout: float = 0.5) -> bool:
    """Ready and connected to all it uses. A service serves HTTP (its /readyz is 200) while
    only its database answers; a run starts consuming, seeding and testing once the broker is
    there too."""
    try:
        answer = httpx.get(f"{url}/readyz", timeout=timeout)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and all(value == "ok" for value in answer.json().values())


def _say(line: str) -> None:
    print(f"[supervisor] {line}", file=sys.stderr, flush=True)


def run_foreground(
    settings: Settings,
    services: Sequence[str],
    api_key: str,
    replicas: Mapping[str, int] | None = None,
    *,
    seed: bool = False,
) -> int:
    """Start the services, print where they are, restart any that dies, stop all on Ctrl-C.
    With ``seed``, post the seed's two customers through intake once everything is ready."""
    group = ServiceProcesses(
        settings,
        env={"KEFU_BOOTSTRAP_API_KEY": api_key, "KEFU_LOG_JSON": "false"},
        ports=ports_from_env(RUNNABLE),
        services=services,
        replicas=replicas_from_env(services) if replicas is None else replicas,
    )
    supervisor = Supervisor(group, lambda: RestartPolicy.from_settings(settings), _say)
    # SIGTERM (a supervisor, `timeout`, docker stop) stops the children as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    group.start_all()
    supervisor.started_all()
    announced = False
    try:
        while True:
            supervisor.tick()
            if not announced and all(_ready(group.url(service)) for service in services):
                announced = True
                if seed and "intake" in services:
                    _seed(group.url("intake"), api_key)
                _announce(group, services, api_key, RestartPolicy.from_settings(settings))
            time.sleep(0.25)
    except CrashLoop as exc:
        print(f"\n{exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
        return 0
    finally:
        group.stop_all()


def _seed(intake_url: str, api_key: str) -> None:
    try:
        lines = post_seed(intake_url, api_key)
    except (httpx.HTTPError, RuntimeError) as exc:
        _say(f"the seed's customers were not posted: {exc}")
        return
    print("\nThe seed's customers (kefu seed):", flush=True)
    for line in lines:
        print(f"  {line}", flush=True)


def _announce(
    group: ServiceProcesses, services: Sequence[str], api_key: str, policy: RestartPolicy
) -> None:
    print("\nKefu is running:", flush=True)
    for service in services:
        count = len(group.instances(service))
        shown = f"{count} replicas, " if count > 1 else ""
        print(f"  {service:<14} {group.url(service)}  ({shown}docs: {group.url(service)}/docs)")
    if "console" in services:
        print(f"\nConsole: {group.url('console')}  (sign in with the API key below)")
    print(f"\nAPI key: {api_key}")
    if "intake" in services:
        print(f'  curl -H "Authorization: Bearer {api_key}" {group.url("intake")}/v1/issues/...')
    print(
        f"A service that dies is restarted (back-off {policy.backoff:g}s doubling to "
        f"{policy.backoff_max:g}s); {policy.crash_limit} exits within {policy.window:g}s stop "
        "the run. Press Ctrl-C to stop.\n",
        flush=True,
    )
