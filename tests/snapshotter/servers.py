"""IPFS services written for the tests, served by hypercorn on real sockets: a Kubo RPC
API (``add`` honouring the CID options like Kubo, ``pin/rm``, ``cat``) and an IPFS
Pinning Service API that "fetches" a CID from that Kubo node before reporting it pinned.
Either can be told to lie about the CID."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aleph_cid
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart import Response, jsonify, request
from quart_trio import QuartTrio


def kubo_cid(data: bytes, params: Any) -> str:
    """The CID Kubo assigns for these ``add`` options (CIDv0 unless asked otherwise)."""
    if params.get("hash", "sha2-256") != "sha2-256":
        raise ValueError("only sha2-256 here")
    if params.get("chunker", "size-262144") != "size-262144":
        raise ValueError("only the default chunker here")
    v1 = params.get("cid-version", "0") == "1"
    raw = params.get("raw-leaves", "true" if v1 else "false") == "true"
    if v1 and raw:
        hasher = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves()
        hasher.update(data)
        return hasher.finalize()
    if not v1 and not raw:
        return aleph_cid.compute_cid(data)
    raise ValueError("only the two default forms here")


@dataclass
class FakeKubo:
    auth: str | None = None
    #: report this CID instead of the real one
    lie: str | None = None
    blocks: dict[str, bytes] = field(default_factory=dict)
    pins: set[str] = field(default_factory=set)
    adds: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> QuartTrio:
        app = QuartTrio("fake-kubo")

        @app.before_request
        async def _auth() -> Any:
            if request.method != "POST":
                return Response("405 - Method Not Allowed", status=405)
            if self.auth is not None and request.headers.get("Authorization") != self.auth:
                return Response("401 - Unauthorized", status=401)
            return None

        @app.post("/api/v0/add")
        async def add() -> Any:
            files = await request.files
            upload = files.get("file")
            if upload is None:
                return jsonify(
                    {"Message": "file argument 'path' is required", "Code": 1, "Type": "error"}
                ), 400
            data = upload.read()
            params = dict(request.args)
            self.adds.append(params)
            cid = kubo_cid(data, params)
            self.blocks[cid] = data
            if params.get("pin", "true") == "true":
                self.pins.add(cid)
            return jsonify(
                {"Name": upload.filename, "Hash": self.lie or cid, "Size": str(len(data))}
            )

        @app.post("/api/v0/pin/rm")
        async def pin_rm() -> Any:
            cid = request.args.get("arg", "")
            if cid not in self.pins:
                return jsonify(
                    {"Message": "not pinned or pinned indirectly", "Code": 0, "Type": "error"}
                ), 500
            self.pins.discard(cid)
            return jsonify({"Pins": [cid]})

        @app.post("/api/v0/cat")
        async def cat() -> Any:
            cid = request.args.get("arg", "")
            if cid not in self.blocks:
                return jsonify(
                    {"Message": "block was not found locally", "Code": 0, "Type": "error"}
                ), 500
            return Response(self.blocks[cid], content_type="text/plain")

        return app


@dataclass
class FakePinningService:
    """Pins a CID once the Kubo node provides it (after two polls, like a real fetch)."""

    provider: FakeKubo
    token: str = "psa-token"
    lie: str | None = None
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def _status(self, rid: str) -> dict[str, Any]:
        pin = self.pins[rid]
        cid = pin["cid"]
        polls = self.polls[rid]
        if cid not in self.provider.blocks:
            state = "failed"
        else:
            state = ("queued", "pinning", "pinned")[min(polls, 2)]
        shown = self.lie if (state == "pinned" and self.lie) else cid
        return {
            "requestid": rid,
            "status": state,
            "created": "2026-01-01T00:00:00Z",
            "pin": {"cid": shown, "name": pin.get("name")},
            "delegates": [],
            "info": {},
        }

    def app(self) -> QuartTrio:
        app = QuartTrio("fake-psa")

        @app.before_request
        async def _auth() -> Any:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return jsonify({"error": {"reason": "UNAUTHORIZED"}}), 401
            return None

        @app.post("/pins")
        async def add() -> Any:
            body = await request.get_json()
            rid = f"r{next(self.ids)}"
            self.pins[rid] = {"cid": body["cid"], "name": body.get("name")}
            self.polls[rid] = 0
            return jsonify(self._status(rid)), 202

        @app.get("/pins/<rid>")
        async def get(rid: str) -> Any:
            if rid not in self.pins:
                return jsonify({"error": {"reason": "NOT_FOUND"}}), 404
            self.polls[rid] += 1
            return jsonify(self._status(rid))

        @app.get("/pins")
        async def list_pins() -> Any:
            cids = set(request.args.get("cid", "").split(",")) - {""}
            found = [self._status(r) for r, p in self.pins.items() if not cids or p["cid"] in cids]
            return jsonify({"count": len(found), "results": found})

        @app.delete("/pins/<rid>")
        async def delete(rid: str) -> Any:
            if self.pins.pop(rid, None) is None:
                return jsonify({"error": {"reason": "NOT_FOUND"}}), 404
            return Response(b"", status=202)

        return app


@asynccontextmanager
async def served(app: QuartTrio) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1 at a free port; yields its base URL."""
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.graceful_timeout = 0.1
    hc.accesslog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls: list[str] = await nursery.start(partial(serve, app, hc, shutdown_trigger=stop.wait))
        try:
            yield urls[0]
        finally:
            stop.set()
