"""CPU time and memory of processes, from Linux /proc: what each service costs per issue.

CPU is utime + stime (/proc/<pid>/stat) in seconds. PostgreSQL runs a process per connection:
its figure is every `postgres` process plus what the postmaster has reaped from exited backends
(cutime + cstime). RabbitMQ is its `beam.smp`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its closing one.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB; zeros when the process is gone."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in values:
                values[name] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


def pids_named(command: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def postgres_cpu() -> float:
    pids = pids_named("postgres")
    total = 0.0
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        postmaster = int(fields[1]) not in pids
        total += cpu_seconds(pid, reaped_children=postmaster)
    return total


def rabbitmq_cpu() -> float:
    """The broker's Erlang VM; rabbitmqctl runs one of its own, which is not the broker."""
    total = 0.0
    for pid in pids_named("beam.smp"):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"rabbitmqctl" not in command and b"escript" not in command:
            total += cpu_seconds(pid)
    return total


Groups = Callable[[], Mapping[str, list[int]]]


def snapshot(groups: Mapping[str, list[int]]) -> dict[str, float]:
    taken = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}
    taken["postgres"] = postgres_cpu()
    taken["rabbitmq"] = rabbitmq_cpu()
    return taken


@dataclass
class Meter:
    """CPU seconds per group over a scenario, and the largest RSS sampled meanwhile."""

    groups: Groups
    # Resident memory is per process: a replica is its own entry ("improvement#2").
    instances: Callable[[], Mapping[str, int]] = dict
    interval: float = 0.5
    cpu: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    _before: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Meter:
        self._before = snapshot(self.groups())
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample_once()
        after = snapshot(self.groups())
        self.cpu = {name: after[name] - self._before.get(name, 0.0) for name in after}

    def _sample_once(self) -> None:
        for name, pid in self.instances().items():
            rss = memory_mb(pid)[0]
            self.peak_rss_mb[name] = max(self.peak_rss_mb.get(name, 0.0), rss)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample_once()

    def per_unit_ms(self, units: int) -> dict[str, float]:
        return {name: round(1000 * s / units, 2) for name, s in self.cpu.items() if units}
