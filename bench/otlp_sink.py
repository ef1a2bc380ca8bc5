"""A local OTLP/HTTP sink for `python -m bench.e2e --tracing`: answers every export with 200 and
counts requests and bytes, so the bench measures what tracing costs Kefu, not a collector.

Run as its own process (`python -m bench.otlp_sink --port N`); on SIGTERM it prints its counts
as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal


class Sink:
    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                self.bytes += length
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def run(port: int) -> None:
    sink = Sink()
    server = await asyncio.start_server(sink.serve, "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    print(json.dumps({"requests": sink.requests, "bytes": sink.bytes}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(run(parser.parse_args().port))
