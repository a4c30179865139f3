"""Error codes of zmart-core and of the Anchor framework, by number.

Transactions fail on chain with ``{"InstructionError": [i, {"Custom": N}]}``
and a log line ``... custom program error: 0x...``.  The number alone means
nothing to an operator, so every place that reports a failed transaction maps
it through :func:`lookup`.  Codes are the *current* ones (docs/chain.md §6); the
stale IDL numbered everything after 6004 one lower, which is why the table is
read from the vendored ``layout.json`` and never typed in by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from zmartd.chain.spec import load_layout

__all__ = ["ANCHOR_ERRORS", "ProgramError", "all_errors", "from_logs", "lookup"]


@dataclass(frozen=True, slots=True)
class ProgramError:
    """One error the program (or Anchor on its behalf) can return."""

    code: int
    name: str
    msg: str
    #: ``"program"`` for zmart-core's own ``#[error_code]`` enum, ``"anchor"`` for
    #: framework errors (account validation, instruction decoding).
    source: str

    def __str__(self) -> str:
        return f"{self.name} ({self.code}): {self.msg}"


#: Anchor framework errors zmart-core can return (code → name, message), as
#: Anchor 0.32 words them; the chain double raises them and :func:`lookup` names them.
ANCHOR_ERRORS: dict[int, tuple[str, str]] = {
    100: ("InstructionMissing", "8 byte instruction identifier not provided"),
    101: ("InstructionFallbackNotFound", "Fallback functions are not supported"),
    102: (
        "InstructionDidNotDeserialize",
        "The program could not deserialize the given instruction",
    ),
    2000: ("ConstraintMut", "A mut constraint was violated"),
    2001: ("ConstraintHasOne", "A has one constraint was violated"),
    2004: ("ConstraintOwner", "An owner constraint was violated"),
    2006: ("ConstraintSeeds", "A seeds constraint was violated"),
    2019: ("ConstraintSpace", "A space constraint was violated"),
    3001: ("AccountDiscriminatorNotFound", "No discriminator was found on the account"),
    3002: ("AccountDiscriminatorMismatch", "Account discriminator did not match what was expected"),
    3003: ("AccountDidNotDeserialize", "Failed to deserialize the account"),
    3005: ("AccountNotEnoughKeys", "Not enough account keys given to the instruction"),
    3007: (
        "AccountOwnedByWrongProgram",
        "The given account is owned by a different program than expected",
    ),
    3008: ("InvalidProgramId", "Program ID was not as expected"),
    3009: ("InvalidProgramExecutable", "Program account is not executable"),
    3010: ("AccountNotSigner", "The given account did not sign"),
    3012: ("AccountNotInitialized", "The program expected this account to be already initialized"),
}


@cache
def _table() -> dict[int, ProgramError]:
    layout = load_layout()
    table: dict[int, ProgramError] = {}
    for raw_code, name in layout["anchor_framework_errors_commonly_seen"].items():
        code = int(raw_code)
        table[code] = ProgramError(code, name, name, "anchor")
    for code, (name, msg) in ANCHOR_ERRORS.items():
        table[code] = ProgramError(code, name, msg, "anchor")
    for entry in layout["errors"]:
        table[entry["code"]] = ProgramError(entry["code"], entry["name"], entry["msg"], "program")
    return table


def all_errors() -> list[ProgramError]:
    """Every known error, program errors first in code order."""
    return sorted(_table().values(), key=lambda e: (e.source != "program", e.code))


def lookup(code: int) -> ProgramError | None:
    """The error with this number, or ``None`` when zmart-core and the common
    Anchor errors do not define it (e.g. System Program errors 0 and 1)."""
    return _table().get(code)


_CUSTOM_RE = re.compile(r"custom program error: (0x[0-9a-fA-F]+)")
_ANCHOR_RE = re.compile(r"AnchorError.*Error Number: (\d+)")


def from_logs(logs: list[str]) -> ProgramError | None:
    """Find the program error in a transaction's or simulation's log lines.

    Anchor logs ``AnchorError ... Error Number: 6029`` before the runtime's
    ``custom program error: 0x178d``; either is enough.  Unknown codes are
    reported with the name ``Custom`` so that the number is never lost.
    """
    for line in reversed(logs):
        m = _ANCHOR_RE.search(line) or _CUSTOM_RE.search(line)
        if m is None:
            continue
        text = m.group(1)
        code = int(text, 16) if text.startswith("0x") else int(text)
        unknown = ProgramError(code, "Custom", f"custom program error {code}", "unknown")
        return lookup(code) or unknown
    return None
