"""The one CID form zmartd publishes snapshots under, computed locally.

Form: **CIDv1, raw leaves, 256 KiB fixed-size chunks, balanced dag-pb/UnixFS tree of at
most 174 links per node, sha2-256, base32** -- exactly what ``ipfs add --cid-version=1``
(Kubo's defaults for CIDv1) assigns.  Why this form:

* it is what a node or gateway re-derives from the bytes, so anyone can check a snapshot
  with stock tools (``ipfs add --only-hash --cid-version=1 file``);
* a payload up to 256 KiB is a single raw block, so its CID is just the sha2-256 of the
  bytes (``bafkrei...``); larger ones are chunked like ``ipfs add`` (``bafybei...``);
* base32 CIDv1 is case-insensitive, which subdomain gateways require (CIDv0 ``Qm...``
  cannot be a DNS label).

The hashing is ``aleph-cid`` (Rust, GIL released), which streams, so a snapshot of any
size is hashed in bounded memory.  The Kubo ``add`` options that produce the same CID are
:data:`KUBO_ADD_PARAMS`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Final

import aleph_cid

__all__ = [
    "CHUNK_SIZE",
    "CID_FORM",
    "KUBO_ADD_PARAMS",
    "StreamHasher",
    "cid_of",
    "cid_of_file",
    "is_cid",
]

CHUNK_SIZE: Final = 256 * 1024
CID_FORM: Final = "CIDv1 raw leaves, 256 KiB chunks, balanced dag-pb (ipfs add --cid-version=1)"
#: ``/api/v0/add`` query options under which Kubo assigns the CID computed here
KUBO_ADD_PARAMS: Final[dict[str, str]] = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "pin": "true",
}
_CID_RE: Final = re.compile(r"(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{50,200})")


def is_cid(text: str) -> bool:
    """A CIDv0 or a base32 CIDv1 string (the shapes ``ipfs_anchors`` accepts)."""
    return _CID_RE.fullmatch(text) is not None


class StreamHasher:
    """CID and sha-256 of bytes fed in pieces (the snapshot is written once, hashed as it
    is written)."""

    def __init__(self) -> None:
        self._cid = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves()
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._cid.update(data)
        self._sha.update(data)
        self.size += len(data)

    def finalize(self) -> tuple[str, bytes]:
        """``(cid, sha256 digest)``; the hasher cannot be used afterwards."""
        return self._cid.finalize(), self._sha.digest()


def cid_of(data: bytes) -> str:
    """The CID of ``data`` in zmartd's form."""
    hasher = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves()
    hasher.update(data)
    return hasher.finalize()


def cid_of_file(path: Path, *, block: int = 1 << 20) -> str:
    """The CID of a file's bytes, read in ``block``-sized pieces (blocking: call it from a
    worker thread)."""
    hasher = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves()
    with path.open("rb") as f:
        while piece := f.read(block):
            hasher.update(piece)
    return hasher.finalize()
