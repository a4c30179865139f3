"""zmartd's hypercorn worker: every waiting connection is accepted at once,
answers are served, and a stop is graceful."""

from __future__ import annotations

import socket
from functools import partial
from typing import Any

import httpx
import trio
import trio.testing

from tests.api.conftest import make_config, make_ctx
from zmartd.api import server as server_module
from zmartd.api.server import DrainingListener, hypercorn_config, serve


async def test_the_listener_takes_every_waiting_connection_at_once() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    listener = DrainingListener(server)
    clients = [socket.create_connection(server.getsockname()) for _ in range(20)]
    try:
        first = await listener.accept()
        streams = [first]
        # the other 19 were taken with the first: no scheduler pass each
        with trio.testing.assert_no_checkpoints():
            streams += [await listener.accept() for _ in range(19)]
        assert len({s.socket.getpeername() for s in streams}) == 20
        for stream in streams:
            await stream.aclose()
        late = socket.create_connection(server.getsockname())  # then it waits again
        clients.append(late)
        with trio.testing.assert_checkpoints():
            await (await listener.accept()).aclose()
        clients.append(socket.create_connection(server.getsockname()))
        clients.append(socket.create_connection(server.getsockname()))
        await trio.sleep(0.05)
        await (await listener.accept()).aclose()  # one handed out, one kept ...
    finally:
        await listener.aclose()  # ... and closed with the listener
        for client in clients:
            client.close()


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


async def test_serve_answers_many_connections_and_stops_gracefully() -> None:
    config = hypercorn_config(make_ctx(make_config(http={"host": "127.0.0.1", "port": 0})))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            partial(serve, hello, config, shutdown_trigger=stop.wait)
        )
        assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:")
        answers: list[httpx.Response] = []

        async def get() -> None:
            async with httpx.AsyncClient(base_url=urls[0], timeout=5) as client:
                answers.append(await client.get("/"))

        with trio.fail_after(10):
            async with trio.open_nursery() as clients:
                for _ in range(50):
                    clients.start_soon(get)
        assert [r.content for r in answers] == [b"hi"] * 50
        stop.set()
    # stopped: the port is closed
    host, port = urls[0].removeprefix("http://").split(":")
    try:
        await trio.open_tcp_stream(host, int(port))
    except OSError:
        pass
    else:
        raise AssertionError("still listening after the stop")


async def test_connections_past_the_cap_get_a_fast_503() -> None:
    config = hypercorn_config(make_ctx(make_config(http={"host": "127.0.0.1", "port": 0})))
    release = trio.Event()
    entered: list[str] = []

    async def held(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await hello(scope, receive, send)
            return
        entered.append(scope["path"])
        await release.wait()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"hi"})

    refused: list[int] = []
    stop = trio.Event()
    request = b"GET /%d HTTP/1.1\r\nHost: zmart.test\r\n\r\n"

    async def answer(stream: trio.SocketStream) -> bytes:
        data = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in data or not data.endswith((b"hi", b"}")):
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                data += chunk
        return data

    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(
            partial(
                serve,
                held,
                config,
                shutdown_trigger=stop.wait,
                max_connections=2,
                on_refused=lambda: refused.append(1),
            )
        )
        host, port = urls[0].removeprefix("http://").split(":")
        served = [await trio.open_tcp_stream(host, int(port)) for _ in range(2)]
        for n, stream in enumerate(served):
            await stream.send_all(request % n)
        with trio.fail_after(5):
            while len(entered) < 2:
                await trio.sleep(0.01)
        extra = await trio.open_tcp_stream(host, int(port))
        started = trio.current_time()
        await extra.send_all(request % 2)
        no = await answer(extra)
        waited = trio.current_time() - started
        assert no.startswith(b"HTTP/1.1 503 ") and b"connection: close" in no
        assert b"retry-after: 1" in no and b"urn:zmart:problem:overloaded" in no
        assert server_module.REFUSAL_HOLD - 0.1 <= waited < server_module.REFUSAL_READ_TIMEOUT
        assert await extra.receive_some(1) == b""  # closed
        assert refused == [1] and entered == ["/0", "/1"]  # never reached the app
        release.set()
        for stream in served:
            assert (await answer(stream)).startswith(b"HTTP/1.1 200 ")
            await stream.aclose()
        with trio.fail_after(5):  # the slots are free again
            while True:
                again = await trio.open_tcp_stream(host, int(port))
                await again.send_all(request % 3)
                reply = await answer(again)
                await again.aclose()
                if reply.startswith(b"HTTP/1.1 200 "):
                    break
        assert entered[-1] == "/3"
        stop.set()
