"""The sender's small API for other actors (provided as the ``sender`` service).

An actor that wants something done on chain stores an intent through
:meth:`SenderService.submit` -- idempotent on its key: submitting the same
key again returns the stored intent -- and may :meth:`wait` for it to be
final.  The sender picks new intents up at once (``wake``) or, from another
instance or the CLI, at its next scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from zmartd.sender.lifecycle import Signers
from zmartd.services import ServiceKey
from zmartd.storage import intents as store
from zmartd.storage.database import Database
from zmartd.storage.intents import IntentKind, IntentRecord

__all__ = ["SENDER", "SenderService"]

#: how often :meth:`SenderService.wait` re-reads an intent it was not woken for
_WAIT_POLL = 0.5


@dataclass
class SenderService:
    db: Database
    signers: Signers
    #: set to wake the scheduler (a new intent, a retry)
    wakeup: trio.Event = field(default_factory=trio.Event)
    #: set whenever an intent reached a final state
    progress: trio.Event = field(default_factory=trio.Event)
    leader: bool = False
    #: intent id -> why a human must act (its key is not configured)
    needs_human: dict[int, str] = field(default_factory=dict)
    #: the configured keys checked against the chain's GlobalConfig (once readable)
    keys_checked: bool = False
    #: configured keys that are not the program's admin / backend authority
    key_problem: str | None = None

    def wake(self) -> None:
        self.wakeup.set()

    def notify_progress(self) -> None:
        self.progress.set()
        self.progress = trio.Event()

    async def submit(
        self,
        *,
        kind: IntentKind,
        market_id: str,
        args: dict[str, Any],
        key: str,
    ) -> IntentRecord:
        """Store the intent (or find the one stored under ``key``) and wake the sender."""
        intent, created = await store.submit_intent(
            self.db, kind=kind, market_id=market_id, args=args, key=key
        )
        if created or not intent.final:
            self.wake()
        return intent

    async def wait(self, intent_id: int, timeout: float) -> IntentRecord | None:
        """The intent once final, or as it stands after ``timeout`` seconds."""
        with trio.move_on_after(timeout):
            while True:
                intent = await store.get_intent(self.db, intent_id)
                if intent is None or intent.final:
                    return intent
                with trio.move_on_after(_WAIT_POLL):
                    await self.progress.wait()
        return await store.get_intent(self.db, intent_id)


#: The local sender's service (the sender actor provides it while it runs).
SENDER = ServiceKey("sender", SenderService)
