"""zmart-core events: Borsh codec and extraction from transaction logs (docs/chain.md §5).

The program uses ``emit!`` (not ``emit_cpi!``), so an event exists only as a
log line ``Program data: <base64(discriminator ‖ borsh fields)>`` written
while zmart-core is the executing program.  Other programs (and zmart-core
running a System Program CPI) write ``Program data:`` lines too, so the log
walk tracks the invoke stack and only decodes lines whose innermost running
program is zmart-core.

Events have no legitimate trailing bytes (the program writes exactly the
struct), so trailing bytes are a :class:`DecodeError`.

When the runtime's log budget is exceeded it writes ``Log truncated`` and
drops every later line; the events after that point are lost, and
:attr:`ParsedLogs.truncated` tells the caller to re-derive state from
accounts (docs/chain.md §5).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from solders.pubkey import Pubkey

from zmartd.chain.borsh import DecodeError, StructCodec
from zmartd.chain.pda import PROGRAM_ID
from zmartd.chain.spec import load_layout
from zmartd.chain.types import EVENT_TYPES, Event, MarketState, VoteType

__all__ = [
    "EVENT_CODECS",
    "LogEvent",
    "LogProblem",
    "ParsedLogs",
    "decode_event",
    "decode_event_base64",
    "encode_event",
    "encode_event_base64",
    "event_log_line",
    "parse_logs",
]


def _build() -> dict[type[Any], StructCodec[Any]]:
    by_name = {cls.__name__: cls for cls in EVENT_TYPES}
    codecs: dict[type[Any], StructCodec[Any]] = {}
    for entry in load_layout()["events"]:
        cls = by_name[entry["name"]]
        codecs[cls] = StructCodec(
            kind="event",
            name=entry["name"],
            cls=cls,
            discriminator=bytes.fromhex(entry["discriminator_hex"]),
            fields=[(f["name"], f["type"]) for f in entry["fields"]],
            enums={"MarketState": MarketState, "VoteType": VoteType},
        )
    if set(codecs) != set(EVENT_TYPES):
        raise RuntimeError("layout.json and zmartd.chain.types disagree on the event types")
    return codecs


EVENT_CODECS = _build()
_BY_DISCRIMINATOR: dict[bytes, StructCodec[Any]] = {
    c.discriminator: c for c in EVENT_CODECS.values()
}

_DATA_PREFIX = "Program data: "


def decode_event(data: bytes | memoryview) -> Event:
    """Decode ``discriminator ‖ fields`` of any zmart-core event (exact length)."""
    codec = _BY_DISCRIMINATOR.get(bytes(data[:8]))
    if codec is None:
        raise DecodeError(
            "Event", "discriminator", 0, f"unknown event discriminator {bytes(data[:8]).hex()!r}"
        )
    return cast(Event, codec.decode_exact(data))


def decode_event_base64(payload: str) -> Event:
    """Decode the base64 text of a ``Program data:`` line (without the prefix)."""
    try:
        raw = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise DecodeError("Event", None, 0, f"invalid base64: {e}") from None
    return decode_event(raw)


def encode_event(event: Event) -> bytes:
    return EVENT_CODECS[type(event)].encode(event)


def encode_event_base64(event: Event) -> str:
    return base64.b64encode(encode_event(event)).decode("ascii")


def event_log_line(event: Event) -> str:
    """The log line the program writes for ``event`` (used by test doubles)."""
    return _DATA_PREFIX + encode_event_base64(event)


# ---------------------------------------------------------------------- log walk


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One zmart-core event found in a transaction's logs."""

    event: Event
    #: Index of the top-level instruction that was running.  With
    #: ``instruction_program_ids`` this is the real index in the message;
    #: without it, the ordinal of the ``invoke [1]`` line, which is the same
    #: unless the transaction has precompile instructions (those log nothing).
    instruction_index: int | None
    #: Position among the zmart-core events of this transaction (0, 1, ...).
    event_index: int
    #: Index of the ``Program data:`` line in the log list.
    log_index: int
    #: Invoke depth of zmart-core when it emitted (1 = top-level instruction).
    stack_height: int
    #: ``True``/``False`` once the emitting invocation logged success/failure;
    #: ``None`` when the logs end (truncated) before that.
    invocation_succeeded: bool | None


@dataclass(frozen=True, slots=True)
class LogProblem:
    """A zmart-core ``Program data:`` line that could not be decoded."""

    log_index: int
    instruction_index: int | None
    error: DecodeError


@dataclass(frozen=True, slots=True)
class ParsedLogs:
    events: tuple[LogEvent, ...]
    #: The runtime dropped the tail of the logs ("Log truncated").
    truncated: bool
    #: Undecodable zmart-core event lines (only with ``strict=False``).
    problems: tuple[LogProblem, ...] = ()


def _parse_invoke(line: str) -> tuple[str, int] | None:
    # "Program <id> invoke [<n>]"
    if not line.endswith("]"):
        return None
    head, sep, depth = line[8:-1].rpartition(" invoke [")
    if not sep or not depth.isdigit():
        return None
    return head, int(depth)


def parse_logs(
    logs: Iterable[str],
    program_id: Pubkey = PROGRAM_ID,
    *,
    instruction_program_ids: Sequence[Pubkey | str] | None = None,
    strict: bool = True,
) -> ParsedLogs:
    """Find and decode every zmart-core event in a transaction's log messages.

    ``instruction_program_ids`` — the program id of each top-level instruction
    of the message, in order — lets the walk attribute events to the real
    instruction index even when some top-level instructions (precompiles)
    write no ``invoke`` line.  With ``strict`` (default) an undecodable
    zmart-core data line raises :class:`DecodeError`; otherwise it is
    reported in :attr:`ParsedLogs.problems` and the walk continues.
    """
    pid = str(program_id)
    ix_ids = [str(p) for p in instruction_program_ids] if instruction_program_ids else None
    next_ix = 0  # next candidate position in ix_ids
    ordinal = -1  # count of "invoke [1]" lines seen - 1
    current_ix: int | None = None
    # invoke stack: [program id, index into `pending` of its first event or -1]
    stack: list[str] = []
    pending: list[dict[str, Any]] = []
    open_frames: list[list[int]] = []  # per stack frame: indexes into `pending`
    problems: list[LogProblem] = []
    truncated = False

    for log_index, line in enumerate(logs):
        if line.startswith(_DATA_PREFIX):
            if stack and stack[-1] == pid:
                payload = line[len(_DATA_PREFIX) :]
                try:
                    event = decode_event_base64(payload)
                except DecodeError as e:
                    if strict:
                        raise DecodeError(
                            e.type_name, e.field, e.offset, f"{e.reason} (log line {log_index})"
                        ) from None
                    problems.append(LogProblem(log_index, current_ix, e))
                    continue
                open_frames[-1].append(len(pending))
                pending.append(
                    {
                        "event": event,
                        "instruction_index": current_ix,
                        "log_index": log_index,
                        "stack_height": len(stack),
                        "invocation_succeeded": None,
                    }
                )
            continue
        if line == "Log truncated":
            truncated = True
            break
        if not line.startswith("Program "):
            continue
        invoke = _parse_invoke(line)
        if invoke is not None:
            prog, depth = invoke
            if depth == 1:
                stack.clear()
                open_frames.clear()
                ordinal += 1
                if ix_ids is None:
                    current_ix = ordinal
                else:
                    current_ix = None
                    while next_ix < len(ix_ids):
                        cand = next_ix
                        next_ix += 1
                        if ix_ids[cand] == prog:
                            current_ix = cand
                            break
            stack.append(prog)
            open_frames.append([])
            continue
        rest = line[8:]
        prog, _, outcome = rest.partition(" ")
        if (outcome == "success" or outcome.startswith("failed")) and prog in stack:
            ok = outcome == "success"
            while stack:  # pop to the matching frame, even if inner frames never closed
                top = stack.pop()
                for i in open_frames.pop():
                    pending[i]["invocation_succeeded"] = ok
                if top == prog:
                    break

    events = tuple(LogEvent(event_index=i, **fields) for i, fields in enumerate(pending))
    return ParsedLogs(events=events, truncated=truncated, problems=tuple(problems))
