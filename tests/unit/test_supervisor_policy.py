"""The restart policy of `kefu run` (deploy/launcher.py), on a fake clock and fake processes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from deploy.launcher import CrashLoop, RestartPolicy, Supervisor, describe_exit


def test_back_off_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff=1, backoff_max=4, stable_after=30, crash_limit=100, window=60)
    policy.started(0)
    delays = []
    now = 0.0
    for _ in range(5):
        now += 0.5  # dies half a second after each start
        delay = policy.exited(now)
        assert delay is not None
        delays.append(delay)
        now += delay
        policy.started(now)
    assert delays == [1, 2, 4, 4, 4]


def test_back_off_starts_over_after_a_stable_run() -> None:
    policy = RestartPolicy(backoff=1, backoff_max=30, stable_after=30, crash_limit=5, window=60)
    policy.started(0)
    assert policy.exited(1) == 1
    policy.started(2)
    assert policy.exited(3) == 2
    policy.started(5)
    assert policy.exited(100) == 1  # it had stayed up 95 s


def test_five_exits_within_a_minute_is_a_crash_loop() -> None:
    policy = RestartPolicy(backoff=1, backoff_max=30, stable_after=30, crash_limit=5, window=60)
    policy.started(0)
    for at in (1, 3, 7, 15):
        assert policy.exited(at) is not None
        policy.started(at + 0.5)
    assert policy.exited(20) is None


def test_exits_spread_over_more_than_the_window_are_not_a_crash_loop() -> None:
    policy = RestartPolicy(backoff=1, backoff_max=30, stable_after=1000, crash_limit=3, window=60)
    policy.started(0)
    for at in (0, 50, 100, 150, 200, 250):
        assert policy.exited(at) is not None, at
        policy.started(at + 1)


@dataclass
class FakeProcess:
    pid: int
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class FakeGroup:
    procs: dict[str, FakeProcess] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)

    def restart(self, name: str) -> None:
        self.started.append(name)
        self.procs[name] = FakeProcess(pid=100 + len(self.started))

    def url(self, service: str) -> str:
        return "http://127.0.0.1:1"  # nothing answers: "ready again" is not claimed


def test_supervisor_restarts_the_one_that_died_and_leaves_the_others() -> None:
    now = [0.0]
    said: list[str] = []
    group = FakeGroup({"intake": FakeProcess(1), "feedback": FakeProcess(2)})
    supervisor = Supervisor(
        group,  # type: ignore[arg-type]
        lambda: RestartPolicy(backoff=1, crash_limit=3, window=60),
        said.append,
        clock=lambda: now[0],
    )
    supervisor.started_all()
    group.procs["feedback"].code = -9
    now[0] = 10
    supervisor.tick()
    assert said == ["feedback exited with code -9 (killed by SIGKILL); restarting in 1.0s"]
    assert group.started == []
    now[0] = 10.5
    supervisor.tick()
    assert group.started == []  # not yet due
    now[0] = 11
    supervisor.tick()
    assert group.started == ["feedback"]
    assert said[-1] == "feedback restarted (pid 101)"
    assert group.procs["intake"].pid == 1  # untouched

    for at in (12, 14):  # dies again twice within the minute: the third exit stops the run
        group.procs["feedback"].code = 1
        now[0] = at
        supervisor.tick()
        now[0] = at + 1.9
        supervisor.tick()
    group.procs["feedback"].code = 1
    now[0] = 20
    with pytest.raises(CrashLoop, match="feedback keeps crashing: it exited 3 times within 60s"):
        supervisor.tick()


def test_exit_codes_are_described() -> None:
    assert describe_exit(1) == "code 1"
    assert describe_exit(-15) == "code -15 (killed by SIGTERM)"


def test_each_replica_is_supervised_on_its_own() -> None:
    now = [0.0]
    said: list[str] = []
    group = FakeGroup({"improvement": FakeProcess(1), "improvement#2": FakeProcess(2)})
    supervisor = Supervisor(
        group,  # type: ignore[arg-type]
        lambda: RestartPolicy(backoff=1, crash_limit=2, window=60),
        said.append,
        clock=lambda: now[0],
    )
    supervisor.started_all()
    group.procs["improvement#2"].code = -9
    now[0] = 5
    supervisor.tick()
    now[0] = 6
    supervisor.tick()
    assert group.started == ["improvement#2"]
    assert group.procs["improvement"].pid == 1
    # The first replica's own first exit is not the second's second one: no crash loop.
    group.procs["improvement"].code = 1
    now[0] = 7
    supervisor.tick()
    assert said[-1] == "improvement exited with code 1; restarting in 1.0s"
