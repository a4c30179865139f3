"""A small, typed Borsh codec driven by ``layout.json``.

Why not anchorpy/borsh-construct: we need exactly the handful of types the
program uses (little-endian integers, ``bool``, ``Pubkey``, ``[u8; N]``,
one-byte enums and ``Option<T>``), typed results instead of dicts, precise
errors, and speed for back-fills (≥ 5,000 events/s end to end).  A struct is
compiled once into *segments*: each maximal run of fixed-size fields becomes
one precompiled :class:`struct.Struct`, and each ``Option`` field is decoded
on its own because it changes every later offset.

The field *types* come from ``layout.json``; the Python classes
(:mod:`zmartd.chain.types`) only supply names and Python types.  Binding a
class whose field names or order differ from the layout fails immediately
with :class:`LayoutMismatch`, because the codec builds instances
positionally and a reordered class would silently swap values.

Strictness follows borsh-rs, which the program itself uses: a ``bool`` byte
other than 0/1, an ``Option`` tag other than 0/1 and an unknown enum variant
are rejected.  What happens *after* the payload (zero tail of an account,
trailing instruction bytes) is a policy of the callers
(:mod:`~zmartd.chain.accounts`, :mod:`~zmartd.chain.instructions`,
:mod:`~zmartd.chain.events`); this module reports where the payload ended.

Also here: base58, which Solana uses for pubkeys, signatures, instruction
data in JSON transactions and ``memcmp`` filter bytes; solders only exposes
it for 32- and 64-byte values.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Generic, TypeVar

from solders.pubkey import Pubkey

__all__ = [
    "BorshType",
    "DecodeError",
    "EncodeError",
    "FieldLayout",
    "LayoutMismatch",
    "StructCodec",
    "b58decode",
    "b58encode",
    "parse_type",
]

T = TypeVar("T")


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of ``type_name``.

    ``field`` is the field being read when decoding failed (``"discriminator"``
    for the 8-byte prefix, ``None`` for problems not tied to one field, e.g.
    trailing bytes) and ``offset`` the byte offset in the input where it
    starts.  Subclass of :class:`ValueError` so generic input-validation code
    catches it.
    """

    def __init__(self, type_name: str, field: str | None, offset: int, reason: str) -> None:
        self.type_name = type_name
        self.field = field
        self.offset = offset
        self.reason = reason
        where = f"{type_name}.{field}" if field else type_name
        super().__init__(f"cannot decode {where} at offset {offset}: {reason}")


class EncodeError(ValueError):
    """A value that cannot be encoded (wrong Python type, out of range, wrong length)."""

    def __init__(self, type_name: str, field: str, reason: str) -> None:
        self.type_name = type_name
        self.field = field
        self.reason = reason
        super().__init__(f"cannot encode {type_name}.{field}: {reason}")


class LayoutMismatch(TypeError):
    """A hand-written class does not match its ``layout.json`` entry."""


# --------------------------------------------------------------------------- types

_INTS: dict[str, tuple[str, int, int, int]] = {
    # layout name: (struct code, size, min, max)
    "u8": ("B", 1, 0, 2**8 - 1),
    "u16": ("H", 2, 0, 2**16 - 1),
    "u32": ("I", 4, 0, 2**32 - 1),
    "u64": ("Q", 8, 0, 2**64 - 1),
    "i64": ("q", 8, -(2**63), 2**63 - 1),
}
_ARRAY_RE = re.compile(r"\[u8;(\d+)\]")


@dataclass(frozen=True, slots=True)
class BorshType:
    """One parsed layout type such as ``u64``, ``[u8;46]`` or ``option<bool>``."""

    text: str
    #: ``int``, ``bool``, ``pubkey``, ``bytes``, ``enum`` or ``option``
    kind: str
    #: struct code of the fixed-size encoding ("" for ``option``)
    code: str
    #: encoded size; for ``option`` the size when ``Some``
    size: int
    lo: int = 0
    hi: int = 0
    enum: type[IntEnum] | None = None
    inner: BorshType | None = None

    @property
    def min_size(self) -> int:
        return 1 if self.kind == "option" else self.size

    @property
    def max_size(self) -> int:
        return self.size

    @property
    def python_type(self) -> str:
        """The Python annotation a class field of this type must carry."""
        if self.kind == "option":
            assert self.inner is not None
            return f"{self.inner.python_type} | None"
        if self.kind == "enum":
            assert self.enum is not None
            return self.enum.__name__
        return {"int": "int", "bool": "bool", "pubkey": "Pubkey", "bytes": "bytes"}[self.kind]


def parse_type(text: str, enums: Mapping[str, type[IntEnum]]) -> BorshType:
    """Parse a ``layout.json`` type string."""
    if text in _INTS:
        code, size, lo, hi = _INTS[text]
        return BorshType(text, "int", code, size, lo, hi)
    if text == "bool":
        return BorshType(text, "bool", "B", 1)
    if text == "pubkey":
        return BorshType(text, "pubkey", "32s", 32)
    m = _ARRAY_RE.fullmatch(text)
    if m:
        n = int(m.group(1))
        return BorshType(text, "bytes", f"{n}s", n)
    if text.startswith("enum:"):
        enum = enums.get(text[5:])
        if enum is None:
            raise LayoutMismatch(f"no Python enum for layout type {text!r}")
        return BorshType(text, "enum", "B", 1, enum=enum)
    if text.startswith("option<") and text.endswith(">"):
        inner = parse_type(text[7:-1], enums)
        if inner.kind == "option":
            raise LayoutMismatch(f"nested options are not used by the program: {text!r}")
        return BorshType(text, "option", "", 1 + inner.size, inner=inner)
    raise LayoutMismatch(f"unsupported layout type {text!r}")


# ---------------------------------------------------------------- value converters


class _Invalid(Exception):
    """Raised by a converter; turned into Decode/EncodeError with the field name."""


def _dec_bool(v: int) -> bool:
    if v == 1:
        return True
    if v == 0:
        return False
    raise _Invalid(f"invalid bool byte {v} (must be 0 or 1)")


def _dec_pubkey(v: bytes) -> Pubkey:
    return Pubkey.from_bytes(v)


def _dec_enum(enum: type[IntEnum]) -> Callable[[int], IntEnum]:
    members = {m.value: m for m in enum}

    def conv(v: int) -> IntEnum:
        try:
            return members[v]
        except KeyError:
            raise _Invalid(f"invalid {enum.__name__} variant {v}") from None

    return conv


def _decoder(t: BorshType) -> Callable[[Any], Any] | None:
    if t.kind == "bool":
        return _dec_bool
    if t.kind == "pubkey":
        return _dec_pubkey
    if t.kind == "enum":
        assert t.enum is not None
        return _dec_enum(t.enum)
    return None  # ints and byte arrays come out of struct.unpack ready to use


def _encoder(t: BorshType) -> Callable[[Any], Any]:
    if t.kind == "int":

        def enc_int(v: Any) -> int:
            if not isinstance(v, int) or isinstance(v, bool):
                raise _Invalid(f"expected int for {t.text}, got {type(v).__name__}")
            if not t.lo <= v <= t.hi:
                raise _Invalid(f"{v} out of range for {t.text}")
            return v

        return enc_int
    if t.kind == "bool":

        def enc_bool(v: Any) -> int:
            if not isinstance(v, bool):
                raise _Invalid(f"expected bool, got {type(v).__name__}")
            return int(v)

        return enc_bool
    if t.kind == "pubkey":

        def enc_pubkey(v: Any) -> bytes:
            if not isinstance(v, Pubkey):
                raise _Invalid(f"expected solders Pubkey, got {type(v).__name__}")
            return bytes(v)

        return enc_pubkey
    if t.kind == "bytes":

        def enc_bytes(v: Any) -> bytes:
            if not isinstance(v, bytes | bytearray | memoryview):
                raise _Invalid(f"expected bytes, got {type(v).__name__}")
            b = bytes(v)
            if len(b) != t.size:
                raise _Invalid(f"expected exactly {t.size} bytes, got {len(b)}")
            return b

        return enc_bytes
    if t.kind == "enum":
        enum = t.enum
        assert enum is not None

        def enc_enum(v: Any) -> int:
            if not isinstance(v, enum):
                raise _Invalid(f"expected {enum.__name__}, got {type(v).__name__}")
            return int(v)

        return enc_enum
    raise AssertionError(t.kind)  # options are handled by the segment


# ------------------------------------------------------------------------ segments


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive fixed-size fields decoded with one ``struct.unpack_from``."""

    names: tuple[str, ...]
    rel_offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    packer: struct.Struct
    #: (position in the run, field name, converter) for values that need one
    converts: tuple[tuple[int, str, Callable[[Any], Any]], ...]
    encoders: tuple[Callable[[Any], Any], ...]


@dataclass(frozen=True, slots=True)
class _Opt:
    """One ``Option<T>`` field: tag byte, then ``T`` only when the tag is 1."""

    name: str
    inner: BorshType
    packer: struct.Struct
    convert: Callable[[Any], Any] | None
    encoder: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class FieldLayout:
    """Where a field lives, as computed by the codec (compared with layout.json by the tests)."""

    name: str
    type: BorshType
    offset_min: int
    offset_max: int


class StructCodec(Generic[T]):
    """Encoder/decoder for one discriminated struct (account, event or instruction args)."""

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        cls: type[T],
        discriminator: bytes,
        fields: Sequence[tuple[str, str]],
        enums: Mapping[str, type[IntEnum]],
    ) -> None:
        if len(discriminator) != 8:
            raise LayoutMismatch(f"{name}: discriminator must be 8 bytes")
        class_fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        layout_fields = [n for n, _ in fields]
        if class_fields != layout_fields:
            raise LayoutMismatch(
                f"{cls.__name__} fields {class_fields} differ from layout {kind} {name} "
                f"fields {layout_fields}"
            )
        self.kind = kind
        self.name = name
        self.cls = cls
        self.discriminator = bytes(discriminator)
        self.types: tuple[BorshType, ...] = tuple(parse_type(t, enums) for _, t in fields)
        self.field_names: tuple[str, ...] = tuple(layout_fields)
        self._segments = self._compile()
        self.min_size = 8 + sum(t.min_size for t in self.types)
        self.max_size = 8 + sum(t.max_size for t in self.types)

    def _compile(self) -> tuple[_Run | _Opt, ...]:
        segments: list[_Run | _Opt] = []
        run: list[tuple[str, BorshType]] = []

        def flush() -> None:
            if not run:
                return
            rel, offs = 0, []
            for _, t in run:
                offs.append(rel)
                rel += t.size
            converts = []
            for i, (n, t) in enumerate(run):
                conv = _decoder(t)
                if conv is not None:
                    converts.append((i, n, conv))
            segments.append(
                _Run(
                    names=tuple(n for n, _ in run),
                    rel_offsets=tuple(offs),
                    sizes=tuple(t.size for _, t in run),
                    packer=struct.Struct("<" + "".join(t.code for _, t in run)),
                    converts=tuple(converts),
                    encoders=tuple(_encoder(t) for _, t in run),
                )
            )
            run.clear()

        for n, t in zip(self.field_names, self.types, strict=True):
            if t.kind == "option":
                flush()
                assert t.inner is not None
                segments.append(
                    _Opt(
                        name=n,
                        inner=t.inner,
                        packer=struct.Struct("<" + t.inner.code),
                        convert=_decoder(t.inner),
                        encoder=_encoder(t.inner),
                    )
                )
            else:
                run.append((n, t))
        flush()
        return tuple(segments)

    # ------------------------------------------------------------------ layout

    @property
    def has_options(self) -> bool:
        return any(isinstance(s, _Opt) for s in self._segments)

    def field_layouts(self) -> list[FieldLayout]:
        """Offsets of every field (including the 8-byte discriminator) when all
        preceding options are ``None`` (``offset_min``) or ``Some``
        (``offset_max``)."""
        out, lo, hi = [], 8, 8
        for n, t in zip(self.field_names, self.types, strict=True):
            out.append(FieldLayout(n, t, lo, hi))
            lo += t.min_size
            hi += t.max_size
        return out

    # ------------------------------------------------------------------ decode

    def check_discriminator(self, data: bytes | memoryview, offset: int = 0) -> None:
        head = bytes(data[offset : offset + 8])
        if len(head) < 8:
            raise DecodeError(
                self.name, "discriminator", offset, f"truncated: {len(head)} of 8 bytes"
            )
        if head != self.discriminator:
            raise DecodeError(
                self.name,
                "discriminator",
                offset,
                f"expected {self.discriminator.hex()}, got {head.hex()}",
            )

    def decode_fields(self, data: bytes | memoryview, offset: int = 8) -> tuple[T, int]:
        """Decode the fields that start at ``offset`` (just after the
        discriminator, which is not checked here) and return the value and the
        offset just past the payload."""
        values: list[Any] = []
        pos = offset
        n = len(data)
        for seg in self._segments:
            if isinstance(seg, _Run):
                end = pos + seg.packer.size
                if end > n:
                    self._truncated(seg, pos, n)
                raw = list(seg.packer.unpack_from(data, pos))
                for i, fname, conv in seg.converts:
                    try:
                        raw[i] = conv(raw[i])
                    except _Invalid as e:
                        raise DecodeError(
                            self.name, fname, pos + seg.rel_offsets[i], str(e)
                        ) from None
                values.extend(raw)
                pos = end
            else:
                if pos >= n:
                    raise DecodeError(self.name, seg.name, pos, "truncated: missing Option tag")
                tag = data[pos]
                if tag == 0:
                    values.append(None)
                    pos += 1
                elif tag == 1:
                    end = pos + 1 + seg.packer.size
                    if end > n:
                        raise DecodeError(
                            self.name,
                            seg.name,
                            pos,
                            f"truncated: Some({seg.inner.text}) needs {seg.packer.size} bytes "
                            f"after the tag, {n - pos - 1} left",
                        )
                    (v,) = seg.packer.unpack_from(data, pos + 1)
                    if seg.convert is not None:
                        try:
                            v = seg.convert(v)
                        except _Invalid as e:
                            raise DecodeError(self.name, seg.name, pos + 1, str(e)) from None
                    values.append(v)
                    pos = end
                else:
                    raise DecodeError(
                        self.name, seg.name, pos, f"invalid Option tag {tag} (must be 0 or 1)"
                    )
        return self.cls(*values), pos

    def _truncated(self, seg: _Run, pos: int, n: int) -> None:
        for fname, rel, size in zip(seg.names, seg.rel_offsets, seg.sizes, strict=True):
            if pos + rel + size > n:
                have = max(0, n - pos - rel)
                raise DecodeError(
                    self.name, fname, pos + rel, f"truncated: need {size} bytes, have {have}"
                )
        raise AssertionError("unreachable")

    def decode(self, data: bytes | memoryview) -> tuple[T, int]:
        """Check the discriminator, decode, and return ``(value, payload_end)``."""
        self.check_discriminator(data)
        return self.decode_fields(data, 8)

    def decode_exact(self, data: bytes | memoryview) -> T:
        """Decode and reject any byte after the payload."""
        value, end = self.decode(data)
        if end != len(data):
            raise DecodeError(
                self.name, None, end, f"{len(data) - end} trailing byte(s) after the payload"
            )
        return value

    # ------------------------------------------------------------------ encode

    def encode_fields(self, value: T) -> bytes:
        """Borsh bytes of the fields (without discriminator)."""
        if type(value) is not self.cls:
            raise EncodeError(
                self.name, "*", f"expected {self.cls.__name__}, got {type(value).__name__}"
            )
        parts: list[bytes] = []
        for seg in self._segments:
            if isinstance(seg, _Run):
                vals = []
                for fname, enc in zip(seg.names, seg.encoders, strict=True):
                    try:
                        vals.append(enc(getattr(value, fname)))
                    except _Invalid as e:
                        raise EncodeError(self.name, fname, str(e)) from None
                parts.append(seg.packer.pack(*vals))
            else:
                v = getattr(value, seg.name)
                if v is None:
                    parts.append(b"\x00")
                else:
                    try:
                        parts.append(b"\x01" + seg.packer.pack(seg.encoder(v)))
                    except _Invalid as e:
                        raise EncodeError(self.name, seg.name, str(e)) from None
        return b"".join(parts)

    def encode(self, value: T) -> bytes:
        """Discriminator followed by the Borsh fields."""
        return self.discriminator + self.encode_fields(value)


# -------------------------------------------------------------------------- base58

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58 (leading zero bytes become ``1``)."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    num = int.from_bytes(data, "big")
    chars = []
    while num:
        num, rem = divmod(num, 58)
        chars.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(chars))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; :class:`ValueError` on a foreign character."""
    num = 0
    for i, c in enumerate(text):
        d = _B58_INDEX.get(c)
        if d is None:
            raise ValueError(f"invalid base58 character {c!r} at position {i}")
        num = num * 58 + d
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\x00" * zeros + body
