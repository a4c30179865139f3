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
        urls: list[str] = await nursery.start(partial(serve, hello, config,
                                                      shutdown_trigger=stop.wait))
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
