"""The local content-addressed store: immutable files named by their CID under
``<data_dir>/ipfs``.

The snapshotter's ``local`` backend writes here and the HTTP actor serves it read-only at
``/ipfs/{cid}``; it lives in the storage layer because both use it.  A file is moved into
place atomically (``rename`` on the same filesystem), so a reader never sees a partial
file; names are validated, so a request path can never reach outside the store.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

__all__ = ["BlobStore"]

_NAME: Final = re.compile(r"(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{50,200})")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def under(cls, data_dir: Path) -> BlobStore:
        return cls(data_dir / "ipfs")

    def path(self, cid: str) -> Path | None:
        """Where ``cid`` lives (whether or not it is stored), or None for a malformed CID."""
        if _NAME.fullmatch(cid) is None:
            return None
        return self.root / cid[-2:] / cid

    def workdir(self) -> Path:
        """A directory on the store's filesystem for files about to be added."""
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def has(self, cid: str) -> bool:
        path = self.path(cid)
        return path is not None and path.is_file()

    def add(self, source: Path, cid: str) -> Path:
        """Move ``source`` (on the store's filesystem) into place as ``cid``; blocking."""
        target = self.path(cid)
        if target is None:
            raise ValueError(f"not a CID: {cid!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(source, 0o444)
        os.replace(source, target)
        return target

    def remove(self, cid: str) -> bool:
        path = self.path(cid)
        if path is None or not path.exists():
            return False
        path.unlink()
        return True
