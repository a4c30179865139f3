"""Driving an ASGI app directly, as hypercorn would, without a socket: for tests that
need exact control of the scope (the peer address, repeated headers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import trio


class Answer:
    """What an ASGI app sent for one request."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = messages[0]
        assert start["type"] == "http.response.start"
        self.status: int = start["status"]
        self.headers: list[tuple[bytes, bytes]] = list(start["headers"])
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    def header(self, name: str) -> str | None:
        return next((v.decode() for k, v in self.headers if k == name.encode()), None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Answer) and (self.status, self.headers, self.body) == (
            other.status,
            other.headers,
            other.body,
        )

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.headers}, {self.body[:60]!r})"


async def call(
    app: Any,
    path: str,
    query: str = "",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    client: str = "10.0.0.1",
) -> Answer:
    """One request straight into an ASGI app (as hypercorn would make it); ``headers``
    as pairs may repeat a name."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    messages: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"zmart.test"),
            *((k.lower().encode(), v.encode()) for k, v in pairs),
        ],
        "client": (client, 40000),
        "server": ("127.0.0.1", 8080),
        "extensions": {},
    }
    await app(scope, receive, send)
    return Answer(messages)
