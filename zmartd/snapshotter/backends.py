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
from typing import Any, Protocol

import httpx
import trio

from zmartd.config import SnapshotterConfig
from zmartd.snapshotter.cid import KUBO_ADD_PARAMS, cid_of_file
from zmartd.storage.blobs import BlobStore

__all__ = [
    "Backend",
    "BackendError",
    "KuboBackend",
    "LocalBackend",
    "PinningServiceBackend",
    "make_backend",
]


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

    def __init__(self, url: str, auth: str | None, *, timeout: float, pin: bool = True) -> None:
        headers = {"Authorization": auth} if auth else {}
        self.client = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.params = {**KUBO_ADD_PARAMS, "pin": "true" if pin else "false"}

    async def put(self, path: Path, name: str) -> str:
        try:
            with path.open("rb") as f:
                response = await self.client.post(
                    "/api/v0/add",
                    params=self.params,
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


class PinningServiceBackend:
    """The IPFS Pinning Service API (the standard Pinata, Filebase and others implement).

    The API pins *by CID*: the service fetches the content from the IPFS network.  So the
    bytes are first added (unpinned) to the Kubo node at ``kubo_url``, which provides them
    (its CID verified like the ``kubo`` backend's), then ``POST /pins`` asks the service
    to pin that CID, and ``GET /pins/{requestid}`` is polled until the status is
    ``pinned`` (``failed``, or no answer within ``pin_timeout``, is an error).  Pruning
    finds the pin requests of a CID (``GET /pins?cid=``) and deletes them.
    """

    name = "pinning-service"

    def __init__(
        self,
        url: str,
        token: str,
        upload: KuboBackend,
        *,
        timeout: float,
        pin_timeout: float,
        poll_initial: float = 0.5,
        poll_max: float = 10.0,
    ) -> None:
        self.client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
        self.upload = upload
        self.pin_timeout = pin_timeout
        self.poll_initial = poll_initial
        self.poll_max = poll_max

    async def _call(self, method: str, url: str, **kw: Any) -> Any:
        try:
            response = await self.client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise BackendError(f"pinning service {method} {url}: {exc}") from exc
        if response.status_code >= 300:
            raise BackendError(
                f"pinning service {method} {url}: HTTP "
                f"{response.status_code}: {response.text[:200]}"
            )
        if response.status_code == 202 and method == "DELETE":
            return None
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(f"pinning service {method} {url}: not JSON") from exc

    async def put(self, path: Path, name: str) -> str:
        cid = await self.upload.put(path, name)
        status = await self._call("POST", "/pins", json={"cid": cid, "name": name})
        delay = self.poll_initial
        with trio.move_on_after(self.pin_timeout) as waited:
            while True:
                if not isinstance(status, dict) or not isinstance(status.get("requestid"), str):
                    raise BackendError(f"pinning service: unexpected PinStatus {status!r:.200}")
                pinned = (
                    status.get("pin", {}).get("cid")
                    if isinstance(status.get("pin"), dict)
                    else None
                )
                state = status.get("status")
                if state == "pinned":
                    if not isinstance(pinned, str):
                        raise BackendError("pinning service: a pin without its CID")
                    return pinned
                if state == "failed":
                    raise BackendError(f"pinning service: pinning {cid} failed")
                await trio.sleep(delay)
                delay = min(delay * 2, self.poll_max)
                status = await self._call("GET", f"/pins/{status['requestid']}")
        assert waited.cancelled_caught
        raise BackendError(f"pinning service: {cid} not pinned after {self.pin_timeout:g} s")

    async def remove(self, cid: str) -> None:
        found = await self._call("GET", "/pins", params={"cid": cid, "limit": "1000"})
        results = found.get("results", []) if isinstance(found, dict) else None
        if not isinstance(results, list):
            raise BackendError(f"pinning service: unexpected pin list {found!r:.200}")
        for status in results:
            if isinstance(status, dict) and isinstance(status.get("requestid"), str):
                await self._call("DELETE", f"/pins/{status['requestid']}")
        await self.upload.remove(cid)

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.upload.aclose()


def make_backend(cfg: SnapshotterConfig, data_dir: Path) -> Backend:
    """The backend ``[snapshotter] backend`` selects."""
    auth = cfg.kubo_auth.reveal() if cfg.kubo_auth else None
    if cfg.backend == "kubo":
        return KuboBackend(cfg.kubo_url, auth, timeout=cfg.request_timeout)
    if cfg.backend == "pinning-service":
        upload = KuboBackend(cfg.kubo_url, auth, timeout=cfg.request_timeout, pin=False)
        return PinningServiceBackend(
            cfg.pinning_url,
            cfg.pinning_token.reveal(),
            upload,
            timeout=cfg.request_timeout,
            pin_timeout=cfg.pin_timeout,
        )
    return LocalBackend(BlobStore.under(data_dir))
