"""Per-channel replay buffers: what makes resume (``since=N``) possible.

Every event delivered on a channel is kept, with its sequence number, in a
bounded ring (``ws.replay_buffer_size`` events, ``ws.replay_buffer_age``
seconds).  A client that reconnects with ``since=N`` gets every buffered
event after N -- or, when N is older than the buffer, a *gap* answer, so it
knows to refetch a REST snapshot.  Nothing is ever silently skipped: the
buffer answers a resume only when it can prove it still holds every event
after N.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Gap", "ReplayBuffers", "Sequenced"]


@dataclass(frozen=True, slots=True)
class Sequenced:
    """One event as sent to clients: already encoded, with its channel seq."""

    channel: str
    seq: int
    at: float  # monotonic time it entered the buffer
    frame: str  # the JSON text frame, encoded once for all subscribers


@dataclass(frozen=True, slots=True)
class Gap:
    """The buffer cannot prove it holds every event after ``since``."""

    channel: str
    since: int
    current: int


class _Ring:
    def __init__(self) -> None:
        self.events: deque[Sequenced] = deque()
        #: seq of the newest event ever seen on this channel (survives trimming)
        self.current = 0
        #: seq of the newest event that was trimmed away (0 = none yet)
        self.trimmed_up_to = 0


class ReplayBuffers:
    """All channels' rings, bounded per channel and in the number of channels."""

    def __init__(
        self, size: int, max_age: float, clock: Callable[[], float], max_channels: int = 100_000
    ) -> None:
        self.size = size
        self.max_age = max_age
        self.clock = clock
        self.max_channels = max_channels
        self._rings: OrderedDict[str, _Ring] = OrderedDict()

    def current(self, channel: str) -> int:
        ring = self._rings.get(channel)
        return ring.current if ring else 0

    def add(self, event: Sequenced) -> None:
        ring = self._rings.get(event.channel)
        if ring is None:
            ring = self._rings[event.channel] = _Ring()
            while len(self._rings) > self.max_channels:
                # Forget the least recently written channel entirely; its
                # clients will get a gap on resume, which is honest.
                self._rings.popitem(last=False)
        else:
            self._rings.move_to_end(event.channel)
        if event.seq <= ring.current:
            return  # duplicate (e.g. Redis redelivery): already buffered or trimmed
        ring.events.append(event)
        ring.current = event.seq
        self._trim(ring)

    def _trim(self, ring: _Ring) -> None:
        horizon = self.clock() - self.max_age
        while ring.events and (len(ring.events) > self.size or ring.events[0].at < horizon):
            ring.trimmed_up_to = ring.events.popleft().seq

    def since(self, channel: str, since: int) -> list[Sequenced] | Gap:
        """Every buffered event with seq > ``since``, oldest first, or a Gap."""
        ring = self._rings.get(channel)
        if ring is None:
            # Never seen (or forgotten) channel: fine only if the client has nothing either.
            return [] if since == 0 else Gap(channel, since, 0)
        self._trim(ring)
        if since > ring.current:
            return Gap(channel, since, ring.current)  # the client is ahead of us: reset
        if since < ring.trimmed_up_to:
            return Gap(channel, since, ring.current)
        first = ring.events[0].seq if ring.events else ring.current + 1
        if since + 1 < first and since < ring.current:
            # Events between since and the first buffered one are missing
            # (sequence numbers came from elsewhere, e.g. another instance).
            return Gap(channel, since, ring.current)
        return [e for e in ring.events if e.seq > since]

    def __len__(self) -> int:
        return sum(len(r.events) for r in self._rings.values())
