"""How the chain double fails a transaction: the runtime's error types and texts.

A leaf module (it imports nothing from zmartd) so that the bank and the programs it runs
can both raise these without importing each other.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["InstructionError", "TransactionRejected", "instruction_error_text"]


class TransactionRejected(Exception):
    """Not executed and not recorded (Solana rejects these before execution:
    sanitize failure, bad signature, fee payer not found / cannot pay the fee,
    duplicate signature, too many accounts, unknown program...)."""

    def __init__(self, err: str | dict[str, Any], message: str) -> None:
        self.err = err
        self.message = message
        super().__init__(f"{message} ({json.dumps(err)})")


_INSTRUCTION_ERROR_TEXT = {
    "GenericError": "generic instruction error",
    "InvalidArgument": "invalid program argument",
    "InvalidInstructionData": "invalid instruction data",
    "InvalidAccountData": "invalid account data for instruction",
    "AccountDataTooSmall": "account data too small for instruction",
    "InsufficientFunds": "insufficient funds for instruction",
    "IncorrectProgramId": "incorrect program id for instruction",
    "MissingRequiredSignature": "missing required signature for instruction",
    "AccountAlreadyInitialized": "instruction requires an uninitialized account",
    "UninitializedAccount": "instruction requires an initialized account",
    "UnbalancedInstruction": "sum of account balances before and after instruction do not match",
    "ModifiedProgramId": "instruction illegally modified the program id of an account",
    "ExternalAccountLamportSpend": (
        "instruction spent from the balance of an account it does not own"
    ),
    "ExternalAccountDataModified": "instruction modified data of an account it does not own",
    "ReadonlyLamportChange": "instruction changed the balance of a read-only account",
    "ReadonlyDataModified": "instruction modified data of a read-only account",
    "NotEnoughAccountKeys": "insufficient account keys for instruction",
    "MissingAccount": "An account required by the instruction is missing",
    "PrivilegeEscalation": "Cross-program invocation with unauthorized signer or writable account",
    "ComputationalBudgetExceeded": "Computational budget exceeded",
    "CallDepth": "Cross-program invocation call depth too deep",
    "UnsupportedProgramId": "Unsupported program id",
    "ProgramFailedToComplete": "Program failed to complete",
    "ArithmeticOverflow": "Program arithmetic overflowed",
    "InvalidAccountOwner": "Invalid account owner",
}


def instruction_error_text(err: str | dict[str, Any]) -> str:
    """Solana's display text of an InstructionError (what ``failed: ...`` logs)."""
    if isinstance(err, dict) and "Custom" in err:
        return f"custom program error: {int(err['Custom']):#x}"
    if isinstance(err, str):
        return _INSTRUCTION_ERROR_TEXT.get(err, err)
    return json.dumps(err)


class InstructionError(Exception):
    """An instruction failed; ``err`` is the InstructionError as Solana's JSON
    shows it: a string (``"MissingRequiredSignature"``) or ``{"Custom": n}``."""

    def __init__(self, err: str | dict[str, Any], detail: str = "") -> None:
        self.err = err
        self.detail = detail
        text = instruction_error_text(err)
        super().__init__(f"{text}: {detail}" if detail else text)

    @classmethod
    def custom(cls, code: int, detail: str = "") -> InstructionError:
        return cls({"Custom": code}, detail)
