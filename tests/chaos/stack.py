"""A PostgreSQL cluster and a RabbitMQ node of the fault suite's own, on free ports.

The suite stops, restarts and alarms them; the machine's shared PostgreSQL and RabbitMQ (which
other test runs use at the same time) are never touched. Both come from the same packages as
the shared ones; as root, each runs as its package's user, as the shared ones do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import free_port

POSTGRES_BIN = Path("/usr/lib/postgresql")
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def _as(user: str) -> list[str]:
    """Run as ``user`` when we are root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []


def _give(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user)


def _postgres_bin() -> Path:
    versions = sorted(POSTGRES_BIN.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
    return versions[-1] / "bin"


@dataclass(frozen=True)
class Tls:
    """A server certificate and its key (PEM files); with it a node also accepts TLS."""

    cert: Path
    key: Path


def _own_key(tls: Tls, home: Path, user: str) -> Path:
    """A copy of the key only ``user`` can read (PostgreSQL refuses a key others can read)."""
    key = home / "server.key"
    shutil.copyfile(tls.key, key)
    key.chmod(0o600)
    _give(key, user)
    return key


@dataclass
class Postgres:
    home: Path
    port: int = 0
    tls: Tls | None = None

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/kefu"

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*_as("postgres"), str(_postgres_bin() / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        self.port = self.port or free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        _give(self.home, "postgres")
        if not self.data.exists():
            subprocess.run(
                [
                    *_as("postgres"),
                    str(_postgres_bin() / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        self._start_server()

    def _start_server(self) -> None:
        # With its log in a file: a server writing to our pipe would keep it open for good.
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c shared_buffers=64MB"
        )
        if self.tls is not None:
            key = _own_key(self.tls, self.home, "postgres")
            options += f" -c ssl=on -c ssl_cert_file={self.tls.cert} -c ssl_key_file={key}"
        self._ctl("start", "-w", "-l", str(self.home / "postgres.log"), "-o", options)

    def restart_immediate(self) -> None:
        """As `pg_ctl restart -m immediate`: every backend killed, crash recovery on start."""
        self._ctl("stop", "-m", "immediate")
        self._start_server()

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [
                    *_as("postgres"),
                    str(_postgres_bin() / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "stop",
                    "-m",
                    "immediate",
                ],
                capture_output=True,
                timeout=60,
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class RabbitMQ:
    home: Path
    port: int = 0
    dist_port: int = 0
    tls: Tls | None = None
    tls_port: int = 0

    @property
    def node(self) -> str:
        return f"kefu-chaos-{self.port}@localhost"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # The CLI tools find the node through the shared Erlang cookie of this user.
            "HOME": "/var/lib/rabbitmq" if os.geteuid() == 0 else os.environ.get("HOME", "/"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq"),
        }

    def ctl(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [*_as("rabbitmq"), str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "-q", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self._env(),
        )
        return done.stdout

    def start(self) -> None:
        self.port = self.port or free_port()
        self.dist_port = self.dist_port or free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "enabled_plugins").write_text("[].\n")
        # Guest may connect from 127.0.0.1 only, as on the shared broker.
        config = "loopback_users.guest = true\n"
        if self.tls is not None:
            self.tls_port = self.tls_port or free_port()
            key = _own_key(self.tls, self.home, "rabbitmq")
            config += (
                f"listeners.ssl.default = {self.tls_port}\n"
                f"ssl_options.certfile = {self.tls.cert}\nssl_options.keyfile = {key}\n"
                "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"
            )
        (self.home / "rabbitmq.conf").write_text(config)
        for path in (self.home, self.home / "enabled_plugins", self.home / "rabbitmq.conf"):
            _give(path, "rabbitmq")
        subprocess.run(
            [*_as("rabbitmq"), str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
            check=True,
            capture_output=True,
            timeout=60,
            env=self._env(),
            cwd=self.home,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl("await_startup", timeout=timeout)
                return
            except subprocess.SubprocessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [*_as("rabbitmq"), str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "stop"],
                capture_output=True,
                timeout=60,
                env=self._env(),
            )
        # A node the CLI could not stop (hung, or the box too busy) is killed: the suite never
        # leaves a broker behind.
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int((self.home / "pid").read_text().strip())
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
