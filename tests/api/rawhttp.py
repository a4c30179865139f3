"""HTTP/1.1 over a raw trio socket, for tests that control every write: a
head and its body sent separately (as requests/urllib3 do), pipelined
requests, heads that never complete.  And zmartd's own server (its accept
loop, connection cap and deadlines), which ``live_api`` does not run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import trio
from quart_trio import QuartTrio

from tests.api.conftest import make_ctx
from zmartd.api.server import create_app, hypercorn_config, serve
from zmartd.config import Config
from zmartd.context import ActorContext
from zmartd.storage.database import DATABASE, Database

__all__ = ["Answer", "RawConnection", "Served", "head", "serve_zmartd"]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def head(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    token: str | None = None,
    content_type: str = "application/json",
    length: int | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    """A request head; ``Content-Length`` is ``length`` or the body's."""
    lines = [f"{method} {path} HTTP/1.1", "Host: zmart.test"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    size = len(body) if length is None else length
    if size or method in ("POST", "PUT", "PATCH"):
        lines += [f"Content-Type: {content_type}", f"Content-Length: {size}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class RawConnection:
    stream: trio.SocketStream
    buffer: bytearray = field(default_factory=bytearray)

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    async def answer(self, timeout: float = 5.0, *, method: str = "GET") -> Answer:
        """The next answer (fails after ``timeout``: the hang this guards)."""
        with trio.fail_after(timeout):
            while b"\r\n\r\n" not in self.buffer:
                await self._fill()
            end = self.buffer.index(b"\r\n\r\n")
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            del self.buffer[: end + 4]
            status = int(lines[0].split(" ")[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            size = (
                0
                if method == "HEAD" or status in (204, 304)
                else int(headers.get("content-length", "0"))
            )
            while len(self.buffer) < size:
                await self._fill()
            body = bytes(self.buffer[:size])
            del self.buffer[:size]
            return Answer(status, headers, body)

    async def closed_by_server(self, timeout: float) -> bool:
        """Whether the server closes the connection within ``timeout``."""
        with trio.move_on_after(timeout):
            try:
                while await self.stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
            return True
        return False

    async def aclose(self) -> None:
        await self.stream.aclose()


@dataclass
class Served:
    port: int
    app: QuartTrio
    ctx: ActorContext

    def connections(self) -> float:
        """Open connections, as the daemon reports them."""
        value = self.ctx.metrics.registry.get_sample_value("zmartd_http_connections")
        assert value is not None
        return value


@asynccontextmanager
async def serve_zmartd(
    cfg: Config,
    database: Database | None,
    *,
    graceful_timeout: float = 0.1,
    stopped: trio.Event | None = None,
) -> AsyncIterator[Served]:
    """The app served as the ``http`` actor serves it (zmartd's accept loop,
    connection cap, keep-alive and head/body deadlines from ``cfg``);
    ``stopped`` is set once the server has stopped after the block."""
    ctx = make_ctx(cfg)
    if database is not None:
        ctx.services.provide(DATABASE, database)
    app = create_app(ctx)
    config = hypercorn_config(ctx)
    config.graceful_timeout = graceful_timeout
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            partial(
                serve,
                app,
                config,
                shutdown_trigger=stop.wait,
                max_connections=cfg.http.max_connections,
                on_refused=ctx.metrics.http_shed.inc,
                header_timeout=cfg.http.header_timeout,
                body_timeout=cfg.http.body_timeout,
                connections=ctx.metrics.http_connections,
            )
        )
        try:
            yield Served(int(urls[0].rsplit(":", 1)[1]), app, ctx)
        finally:
            stop.set()
    if stopped is not None:
        stopped.set()
