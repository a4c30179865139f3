"""``GET /ipfs/{cid}``: the local snapshot store, read-only, shaped like a public IPFS
gateway's path (so a frontend switches to a real gateway by changing a base URL).

Content under a CID never changes, so answers are cacheable forever (``Cache-Control:
public, max-age=31536000, immutable``) with a strong ETag equal to the CID
(``If-None-Match`` answers 304).  Everything zmartd stores there is a JSON document
(discussion snapshots and their daily roots), served as ``application/json``.  Only
well-formed CIDs are looked up, so a path can never leave the store; the file is
streamed, never read whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import trio
from quart import Blueprint, Response, current_app, request

from zmartd.api.problems import Problem
from zmartd.context import ActorContext
from zmartd.storage.blobs import BlobStore

__all__ = ["IMMUTABLE", "blueprint"]

blueprint = Blueprint("gateway", __name__)

IMMUTABLE: Final = "public, max-age=31536000, immutable"
_BLOCK: Final = 256 * 1024


async def _stream(path: Path, size: int) -> AsyncIterator[bytes]:
    f = await trio.open_file(path, "rb")
    try:
        sent = 0
        while sent < size and (block := await f.read(_BLOCK)):
            sent += len(block)
            yield block
    finally:
        await f.aclose()


@blueprint.route("/ipfs/<cid>", methods=["GET", "HEAD"])
async def content(cid: str) -> Any:
    ctx: ActorContext = current_app.extensions["zmartd"]
    store = BlobStore.under(ctx.config.daemon.data_dir)
    path = store.path(cid)
    if path is None:
        raise Problem("malformed", f"not a CID: {cid[:100]!r}")
    try:
        size = (await trio.Path(path).stat()).st_size
    except FileNotFoundError:
        raise Problem("not-found", f"{cid} is not stored here") from None
    etag = f'"{cid}"'
    headers = {
        "Cache-Control": IMMUTABLE,
        "ETag": etag,
        "X-Ipfs-Path": f"/ipfs/{cid}",
        "Content-Type": "application/json",
        "Content-Length": str(size),
    }
    if etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        headers.pop("Content-Length")
        return Response(b"", status=304, headers=headers)
    if request.method == "HEAD":
        head = Response(b"", status=200, headers=headers)
        head.headers["Content-Length"] = str(size)  # the GET's length, not the empty body's
        return head
    response = Response(_stream(path, size), status=200, headers=headers)
    return response
