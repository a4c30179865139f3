"""Baseline server of ``bench/http_api.py``: a bare ASGI hello-world on hypercorn+trio.

Why this exists: absolute request rates on a shared 2-core machine move by 2x
between runs, so the HTTP bench reports zmartd as a *ratio* against the
cheapest possible app on the very same stack.  To make that ratio mean
"what zmartd's own code costs", everything but the app is zmartd's: the
server is :func:`zmartd.api.server.serve` (hypercorn's trio worker on
zmartd's accept loop and connection cap), the hypercorn
settings come from :func:`zmartd.api.server.hypercorn_config` applied to
the same TOML file the daemon reads (bind host, keep-alive defaults,
``graceful_timeout``, no access log), and it runs one trio process like
``python -m zmartd``.  Only ``[http] port`` is replaced (``--port``).

``--app quart`` serves the same body from a one-route Quart-Trio app instead,
to tell the framework's cost from zmartd's own.

Prints ``http://host:port`` on stdout once listening; stops on SIGTERM/SIGINT.
Run it as a module from the repository root (it imports ``zmartd``)::

    .venv/bin/python -m bench._http_baseline --config bench.toml --port 18081
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from pathlib import Path
from typing import Any

import trio

from zmartd.api.server import hypercorn_config, serve
from zmartd.bus import Bus
from zmartd.config import load_config
from zmartd.context import ActorContext, Health
from zmartd.observability import Metrics
from zmartd.services import Services

BODY = b'{"hello":"world"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def hello(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """The whole app: a fixed small JSON answer to any HTTP request."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def quart_hello() -> Any:
    """The same answer from a one-route Quart-Trio app with no hooks: the
    framework's own share of a request, between the bare ASGI baseline and
    zmartd (which adds its hooks, load shedder, routing table and cache)."""
    from quart import Response
    from quart_trio import QuartTrio

    app = QuartTrio("hello")

    @app.get("/")
    async def index() -> Response:
        return Response(BODY, content_type="application/json")

    return app


async def main(config_path: Path, port: int, app_name: str) -> None:
    cfg = load_config(config_path)
    cfg = dataclasses.replace(cfg, http=dataclasses.replace(cfg.http, port=port))
    ctx = ActorContext(
        name="http",
        config=cfg,
        bus=Bus(),
        metrics=Metrics(),
        services=Services(),
        health=Health(),
        statuses=lambda: [],
        facts=lambda: {},
    )
    hc = hypercorn_config(ctx)
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def on_signal() -> None:
                async for _ in signals:
                    stop.set()
                    return

            nursery.start_soon(on_signal)
            app: Any = hello if app_name == "asgi" else quart_hello()
            urls: list[str] = await nursery.start(
                partial(
                    serve,
                    app,
                    hc,
                    shutdown_trigger=stop.wait,
                    max_connections=cfg.http.max_connections,
                )
            )
            print(urls[0], flush=True)
            await stop.wait()
            nursery.cancel_scope.deadline = trio.current_time() + cfg.http.graceful_timeout + 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--app",
        choices=("asgi", "quart"),
        default="asgi",
        help="asgi: the bare callable (the baseline); quart: a one-route "
        "Quart-Trio app (the framework's share)",
    )
    args = parser.parse_args()
    trio.run(main, args.config, args.port, args.app)
