"""Where snapshots are stored: the ``local`` content-addressed store, a Kubo node (RPC
API), or an IPFS Pinning Service.

Each backend stores a file and reports the CID *it* assigned; the caller compares that
with the CID computed locally (:mod:`zmartd.snapshotter.cid`) and anchors nothing on a
mismatch.  ``remove`` unpins/deletes (pruning, or the stray content of a mismatch).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

import httpx
import trio

from zmartd.config import SnapshotterConfig
from zmartd.snapshotter.cid import KUBO_ADD_PARAMS, cid_of_file
from zmartd.storage.blobs import BlobStore

__all__ = ["Backend", "BackendError", "KuboBackend", "LocalBackend", "make_backend"]


class BackendError(Exception):
    """The backend could not store or remove content (unreachable, refused, malformed)."""


class Backend(Protocol):
    name: str

    async def put(self, path: Path, name: str) -> str:
        """Store the file's bytes (pinned) and return the CID the backend assigned."""

    async def remove(self, cid: str) -> None:
        """Unpin/delete ``cid``; content already gone is not an error."""

    async def aclose(self) -> None: ...


class LocalBackend:
    """Files under ``<data_dir>/ipfs``, named by the CID recomputed from the stored copy
    (so the verification compares two independent passes over the bytes)."""

    name = "local"

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def _put(self, path: Path) -> str:
        fd, name = tempfile.mkstemp(dir=self.store.workdir(), prefix="add-")
        tmp = Path(name)
        try:
            with open(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            cid = cid_of_file(tmp)
            self.store.add(tmp, cid)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return cid

    async def put(self, path: Path, name: str) -> str:
        try:
            return await trio.to_thread.run_sync(self._put, path)
        except OSError as exc:
            raise BackendError(f"local store: {exc}") from exc

    async def remove(self, cid: str) -> None:
        try:
            await trio.to_thread.run_sync(self.store.remove, cid)
        except OSError as exc:
            raise BackendError(f"local store: {exc}") from exc

    async def aclose(self) -> None:
        pass


class KuboBackend:
    """The Kubo RPC API: ``/api/v0/add`` with the options of our CID form (pinned), and
    ``/api/v0/pin/rm``."""

    name = "kubo"

    def __init__(self, url: str, auth: str | None, *, timeout: float) -> None:
        headers = {"Authorization": auth} if auth else {}
        self.client = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    async def put(self, path: Path, name: str) -> str:
        try:
            with path.open("rb") as f:
                response = await self.client.post(
                    "/api/v0/add",
                    params=KUBO_ADD_PARAMS,
                    files={"file": (name, f, "application/json")},
                )
        except (httpx.HTTPError, OSError) as exc:
            raise BackendError(f"kubo add: {exc}") from exc
        if response.status_code != 200:
            raise BackendError(f"kubo add: HTTP {response.status_code}: {response.text[:200]}")
        # one JSON object per line (progress lines first when asked); the last names the file
        try:
            last = json.loads(response.text.strip().splitlines()[-1])
            cid = last["Hash"]
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise BackendError(f"kubo add: unexpected answer {response.text[:200]!r}") from exc
        if not isinstance(cid, str):
            raise BackendError(f"kubo add: unexpected answer {response.text[:200]!r}")
        return cid

    async def remove(self, cid: str) -> None:
        try:
            response = await self.client.post("/api/v0/pin/rm", params={"arg": cid})
        except httpx.HTTPError as exc:
            raise BackendError(f"kubo pin/rm: {exc}") from exc
        if response.status_code == 200 or "not pinned" in response.text:
            return
        raise BackendError(f"kubo pin/rm: HTTP {response.status_code}: {response.text[:200]}")

    async def aclose(self) -> None:
        await self.client.aclose()


def make_backend(cfg: SnapshotterConfig, data_dir: Path) -> Backend:
    """The backend ``[snapshotter] backend`` selects."""
    if cfg.backend == "kubo":
        auth = cfg.kubo_auth.reveal() if cfg.kubo_auth else None
        return KuboBackend(cfg.kubo_url, auth, timeout=cfg.request_timeout)
    return LocalBackend(BlobStore.under(data_dir))
