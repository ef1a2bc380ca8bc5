"""Load generators for the benchmark: wrk for single POSTs, a lean asyncio HTTP/1.1 client else.

wrk (Debian's package, `make bench` installs it when it can) is written in C with one event loop
per thread: with one thread it drives 64 keep-alive connections at tens of thousands of requests
per second for a few percent of a core, so on two cores it leaves the server almost all the CPU.
A Lua script gives every request a new (channel, external_id) so that each one commits a new
issue, and counts the answers by status.

The asyncio client is the fallback and the driver of every scenario that must read the answers
(the loop needs each issue's id): raw HTTP/1.1 over keep-alive sockets, request bytes built
before the clock starts, only the status line, Content-Length and the body parsed. It costs far
less than an HTTP library per request; the bench reports its own CPU time in the table.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CUSTOMER_TEXT = "需要更快的响应速度"


def issue_body(run: str, index: int, text: str, channel: str = "chat") -> dict[str, Any]:
    """An issue of the contract's shape: new (channel, external_id), a customer, a text."""
    return {
        "channel": channel,
        "external_id": f"bench-{run}-{index}",
        "customer": {"name": f"客户{index}", "phone": f"139{index % 100_000_000:08d}"},
        "text": text,
    }


def post_request(host: str, port: int, path: str, body: bytes, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; answers must carry Content-Length (uvicorn's do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed by the server")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        close = False
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


OnReply = Callable[[int, float, int, bytes], None]


@dataclass
class HttpRun:
    """What one load run saw: answers by status, time-outs, latencies, the client's CPU."""

    tool: str
    connections: int
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    timeouts: int = 0
    socket_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    p50_ms: float | None = None
    p99_ms: float | None = None
    client_cpu_seconds: float = 0.0

    def count(self, *statuses: int) -> int:
        return sum(self.statuses[s] for s in statuses)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> dict[str, Any]:
        if self.latencies_ms and self.p50_ms is None:
            self.p50_ms = percentile(self.latencies_ms, 50)
            self.p99_ms = percentile(self.latencies_ms, 99)
        return {
            "tool": self.tool,
            "connections": self.connections,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "server_errors_5xx": self.server_errors,
            "status_503": self.statuses[503],
            "timeouts": self.timeouts,
            "socket_errors": self.socket_errors,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "client_cpu_seconds": round(self.client_cpu_seconds, 3),
        }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 2)


async def _connect(host: str, port: int, count: int) -> list[HttpConnection]:
    return list(await asyncio.gather(*(HttpConnection.open(host, port) for _ in range(count))))


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    connections: int,
    *,
    request_timeout: float = 10.0,
    on_reply: OnReply | None = None,
) -> HttpRun:
    """Send every request once, ``connections`` at a time, each as soon as a connection is free."""
    run = HttpRun(tool="asyncio", connections=connections)
    pool = await _connect(host, port, min(connections, len(requests)))
    cursor = iter(range(len(requests)))

    async def worker(conn: HttpConnection) -> None:
        for index in cursor:
            started = time.perf_counter()
            try:
                if conn.closed:
                    conn = await HttpConnection.open(host, port)
                status, body = await asyncio.wait_for(
                    conn.request(requests[index]), request_timeout
                )
            except TimeoutError:
                run.timeouts += 1
                conn.close()
                continue
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                run.socket_errors += 1
                conn.close()
                continue
            run.latencies_ms.append((time.perf_counter() - started) * 1000)
            run.statuses[status] += 1
            if on_reply is not None:
                on_reply(index, started, status, body)
        conn.close()

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker(conn) for conn in pool))
    run.seconds = time.perf_counter() - started
    run.client_cpu_seconds = time.process_time() - cpu
    run.requests = len(requests)
    return run


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: float,
    connections: int,
    *,
    request_timeout: float = 10.0,
    on_reply: OnReply | None = None,
) -> HttpRun:
    """Send request i at ``i / rate`` seconds, whatever the answers do (no coordinated omission).

    Latency counts from the scheduled time, so waiting for a free connection counts too.
    """
    run = HttpRun(tool="asyncio-paced", connections=connections)
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for conn in await _connect(host, port, connections):
        idle.put_nowait(conn)
    start = time.perf_counter() + 0.05

    async def send(index: int) -> None:
        scheduled = start + index / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        conn = await idle.get()
        try:
            if conn.closed:
                conn = await HttpConnection.open(host, port)
            status, body = await asyncio.wait_for(conn.request(requests[index]), request_timeout)
        except TimeoutError:
            run.timeouts += 1
            conn.close()
            return
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            run.socket_errors += 1
            conn.close()
            return
        finally:
            idle.put_nowait(conn)
        run.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        run.statuses[status] += 1
        if on_reply is not None:
            on_reply(index, scheduled, status, body)

    cpu = time.process_time()
    await asyncio.gather(*(send(index) for index in range(len(requests))))
    run.seconds = time.perf_counter() - start
    run.client_cpu_seconds = time.process_time() - cpu
    run.requests = len(requests)
    while not idle.empty():
        idle.get_nowait().close()
    return run


# ----------------------------------------------------------------------------------------- wrk

WRK_SCRIPT = r"""
-- Every request a new issue: external_id = <run>-<thread>-<counter>. Answers counted by status.
local threads = {}
counter = 0
statuses = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = args[1]
  token = args[2]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if token ~= nil and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  counter = counter + 1
  local id = prefix .. "-" .. tid .. "-" .. counter
  local body = string.format(
    '{"channel":"chat","external_id":"%s","customer":{"name":"客户%d","phone":"139%08d"},'
    .. '"text":"TEXT"}', id, counter, (tid * 10000000 + counter) % 100000000)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  io.write(string.format(
    'KEFU-BENCH {"duration_us":%d,"requests":%d,"timeouts":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"statuses":{%s}}\n',
    summary.duration, summary.requests, summary.errors.timeout, summary.errors.connect,
    summary.errors.read, summary.errors.write, latency:percentile(50), latency:percentile(99),
    latency.max, table.concat(parts, ",")))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    run_id: str,
    token: str | None,
    text: str = CUSTOMER_TEXT,
    path: str = "/v1/issues",
    threads: int = 1,
    timeout: float = 10.0,
) -> HttpRun:
    """``seconds`` of single POSTs at ``connections`` keep-alive connections, with wrk."""
    binary = wrk_path()
    if binary is None:
        raise FileNotFoundError("wrk")
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "issues.lua"
        script.write_text(WRK_SCRIPT.replace("TEXT", text))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [
                binary,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={round(timeout)}s",
                "-s",
                str(script),
                url.rstrip("/") + path,
                "--",
                run_id,
                token or "",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=seconds + timeout + 30,
        ).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(line for line in out.splitlines() if line.startswith("KEFU-BENCH "))
    figures = json.loads(line.removeprefix("KEFU-BENCH "))
    run = HttpRun(tool=f"wrk -t{threads}", connections=connections)
    run.requests = figures["requests"]
    run.seconds = figures["duration_us"] / 1e6
    run.statuses = Counter({int(k): v for k, v in figures["statuses"].items()})
    run.timeouts = figures["timeouts"]
    run.socket_errors = figures["connect"] + figures["read"] + figures["write"]
    run.p50_ms = round(figures["p50_us"] / 1000, 2)
    run.p99_ms = round(figures["p99_us"] / 1000, 2)
    run.client_cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return run


async def single_posts(
    url: str,
    host: str,
    port: int,
    *,
    seconds: float,
    connections: int,
    run_id: str,
    token: str | None,
    fallback_requests: int,
    use_wrk: bool = True,
) -> HttpRun:
    """wrk for ``seconds`` when it is installed, else ``fallback_requests`` with asyncio."""
    if use_wrk and wrk_path() is not None:
        return await asyncio.to_thread(
            run_wrk, url, seconds=seconds, connections=connections, run_id=run_id, token=token
        )
    bodies = [
        post_request(
            host,
            port,
            "/v1/issues",
            json.dumps(issue_body(run_id, i, CUSTOMER_TEXT), ensure_ascii=False).encode(),
            token,
        )
        for i in range(fallback_requests)
    ]
    return await closed_loop(host, port, bodies, connections)
