"""Port forwarding to running instances: for each forwarded port of an instance, a TCP
listener on the server host's loopback (an ephemeral port) whose connections are piped to
the instance (domain/network.py says which ports).

One asyncio loop on its own thread serves every forward, whatever the web server runs on.
Closing an instance's forwards closes their listeners and every connection through them: once
the instance ends, nothing of it stays reachable.
"""

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field

from calor.domain.ports import ActiveForward, InstanceJob

log = logging.getLogger("calor.forwarder")

LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT = 10.0
CHUNK = 65536


@dataclass
class _Instance:
    task_uuid: str
    instance_id: int
    forwards: list[ActiveForward] = field(default_factory=list)
    servers: list[asyncio.Server] = field(default_factory=list)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)


class TcpForwarder:
    def __init__(self, bind_address: str = LOOPBACK) -> None:
        self.bind_address = bind_address
        self._lock = threading.Lock()
        self._open: dict[int, _Instance] = {}  # by row id (one attempt runs per row)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, daemon=True, name="calor-forwarder"
                ).start()
                self._loop = loop
            return self._loop

    # -- Forwards ---------------------------------------------------------------------------

    def open(self, job: InstanceJob, target_host: str) -> list[ActiveForward]:
        if not job.forward_ports:
            return []
        self.close(job.row_id)  # a retry of the row: the old attempt's are gone
        entry = _Instance(job.task_uuid, job.instance_id)
        future = asyncio.run_coroutine_threadsafe(
            self._listen(entry, target_host, job.forward_ports), self._running_loop()
        )
        future.result(timeout=CONNECT_TIMEOUT)
        with self._lock:
            self._open[job.row_id] = entry
        return list(entry.forwards)

    def close(self, row_id: int) -> None:
        with self._lock:
            entry = self._open.pop(row_id, None)
            loop = self._loop
        if entry is None or loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shut(entry), loop).result(timeout=CONNECT_TIMEOUT)

    def active(self, task_uuid: str) -> dict[int, list[ActiveForward]]:
        with self._lock:
            return {
                e.instance_id: list(e.forwards)
                for e in self._open.values()
                if e.task_uuid == task_uuid
            }

    def stop(self) -> None:
        with self._lock:
            rows = list(self._open)
        for row in rows:
            self.close(row)
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)

    # -- on the loop ------------------------------------------------------------------------

    async def _listen(self, entry: _Instance, target_host: str, ports: tuple[int, ...]) -> None:
        try:
            for port in ports:

                async def handle(
                    reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter,
                    port: int = port,
                ) -> None:
                    await self._pipe(entry, reader, writer, target_host, port)

                server = await asyncio.start_server(handle, self.bind_address, 0)
                entry.servers.append(server)
                bound = server.sockets[0].getsockname()[1]
                entry.forwards.append(
                    ActiveForward(port, int(bound), self.bind_address, self.bind_address)
                )
        except Exception:
            await self._shut(entry)
            raise

    async def _pipe(
        self,
        entry: _Instance,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target_host: str,
        port: int,
    ) -> None:
        entry.writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(target_host, port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            # nothing listens there (yet): the client sees its connection closed
            entry.writers.discard(writer)
            await _close(writer)
            return
        entry.writers.add(up_writer)
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            entry.writers.discard(writer)
            entry.writers.discard(up_writer)
            await _close(writer)
            await _close(up_writer)

    async def _shut(self, entry: _Instance) -> None:
        for server in entry.servers:
            server.close()
        for writer in list(entry.writers):
            await _close(writer)
        for server in entry.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        entry.forwards.clear()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction; at its end the other side learns it (half close) when it can."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)
