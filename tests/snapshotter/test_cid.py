"""CID vectors: the values real ``ipfs add`` assigns, and a chunked (> 1 MiB) payload whose
CID is derived here independently, by building the UnixFS/dag-pb DAG by hand."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import aleph_cid

from zmartd.snapshotter.cid import CHUNK_SIZE, StreamHasher, cid_of, cid_of_file, is_cid


def test_ipfs_add_vectors() -> None:
    # `echo "hello world" | ipfs add` (CIDv0, Kubo's default form)
    assert aleph_cid.compute_cid(b"hello world\n") == (
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    )
    # `printf "hello world" | ipfs add --cid-version=1` (raw leaves): zmartd's form
    assert cid_of(b"hello world") == ("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")


# --- an independent implementation of `ipfs add --cid-version=1` for a one-level DAG ---


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return key + _varint(payload)
    assert isinstance(payload, bytes)
    return key + _varint(len(payload)) + payload


def _cid_v1(codec: int, block: bytes) -> bytes:
    return bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(block).digest()


def _base32(cid: bytes) -> str:
    return "b" + base64.b32encode(cid).decode().lower().rstrip("=")


def hand_built_cid(data: bytes) -> str:
    """Raw leaves of 256 KiB; one dag-pb root whose PBLinks (Hash, Name "", Tsize) come
    before its Data, a UnixFS File with filesize and one blocksize per leaf."""
    chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]
    assert 1 < len(chunks) <= 174  # one level: the test payload stays below 43.5 MiB
    links = b"".join(
        _field(2, 2, _field(1, 2, _cid_v1(0x55, c)) + _field(2, 2, b"") + _field(3, 0, len(c)))
        for c in chunks
    )
    unixfs = (
        _field(1, 0, 2) + _field(3, 0, len(data)) + b"".join(_field(4, 0, len(c)) for c in chunks)
    )
    root = links + _field(1, 2, unixfs)
    return _base32(_cid_v1(0x70, root))


def test_chunked_payload_matches_a_hand_built_dag(tmp_path: Path) -> None:
    data = hashlib.shake_256(b"zmartd").digest(1_500_000)  # 6 chunks, the last partial
    expected = hand_built_cid(data)
    assert expected.startswith("bafybei")
    assert cid_of(data) == expected
    path = tmp_path / "payload"
    path.write_bytes(data)
    assert cid_of_file(path, block=100_000) == expected  # block size does not matter
    hasher = StreamHasher()
    for i in range(0, len(data), 77_777):
        hasher.update(data[i : i + 77_777])
    cid, sha = hasher.finalize()
    assert (cid, sha, hasher.size) == (expected, hashlib.sha256(data).digest(), len(data))


def test_single_chunk_is_the_sha256_of_the_bytes() -> None:
    data = b"x" * CHUNK_SIZE
    assert cid_of(data) == _base32(_cid_v1(0x55, data))
    assert cid_of(data + b"x") != _base32(_cid_v1(0x55, data + b"x"))  # two chunks: a DAG


def test_is_cid() -> None:
    assert is_cid("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
    assert is_cid("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
    for bad in (
        "",
        "../etc/passwd",
        "bafy",
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5O0",
        "BAFKREIFZJUT3TE2NHYEKKLSS27NH3K72YSCO7Y32KOAO5EEI66WOF36N5E",
    ):
        assert not is_cid(bad)
