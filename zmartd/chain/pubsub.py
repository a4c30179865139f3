"""Solana PubSub (WebSocket) client for trio that reports what it may have missed.

A WebSocket feed is only useful to an indexer if it never loses data
silently.  Connections to RPC providers drop, and -- worse -- sometimes stay
open while notifications stop.  This client therefore

* reconnects by itself, with backoff and jitter, trying the endpoints in
  order (primary first), and re-sends every active subscription; the new
  server subscription ids are mapped back to the same client-side
  :class:`Subscription`, so consumers never notice;
* detects silent stalls: with ``track_slots`` (the default) it keeps an
  internal ``slotSubscribe`` open, whose notifications arrive every ~400 ms
  on a live node, and any ``heartbeat_timeout`` seconds without a message is
  treated as a dead connection.  It also sends WebSocket pings (answered by
  every WebSocket server, Solana's included) so idle proxies do not cut the
  connection; without ``track_slots`` the pongs are the liveness signal;
* reports **every** lost connection as a :class:`zmartd.bus.ChainGap` per
  subscription, so the indexer can backfill exactly that range.

Gap semantics (both ends inclusive, overlap with the live feed is possible and
harmless, loss is not):

``from_slot``
    The subscription's *watermark*: a slot below which nothing can still be
    notified, i.e. the highest of the slot of the last notification delivered
    (notifications come in slot order, but that slot may have had more) and
    the latest ``root`` (finalized slot) reported by ``slotNotification``
    while the subscription was live (everything up to it was confirmed, so
    already notified).  The processed ``slot`` of a ``slotNotification`` is
    *not* used: slots just below it may be confirmed after the disconnect.
    ``None`` if nothing was ever seen.
``to_slot``
    With ``track_slots``: the first ``slotNotification`` received after the
    subscription was confirmed on the new connection.  That slot was produced
    after the new subscription existed, so the feed covers it and everything
    later.  Without ``track_slots`` the gap is emitted as soon as the
    subscription is confirmed again, with ``to_slot=None`` (backfill up to
    the present).  If the new connection dies before a slot arrives, the gap
    is emitted with ``to_slot=None`` and a new one starts.

Usage::

    async with open_pubsub("wss://...", gap_channel=gaps_send) as ps:
        async with ps.logs_subscribe(PROGRAM_ID) as sub:
            async for logs in sub:          # zmartd.bus.ProgramLogs
                ...

or start :meth:`PubsubClient.run` in a nursery yourself (``await
nursery.start(client.run)``).
"""

from __future__ import annotations

import itertools
import json
import random
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import trio
from solders.account import Account
from solders.errors import SerdeJSONError
from solders.pubkey import Pubkey
from solders.rpc.responses import AccountNotification, ProgramNotification, parse_notification
from solders.signature import Signature
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from zmartd.bus import ChainGap, ProgramLogs
from zmartd.chain.rpc import Commitment, ProgramAccountsFilter

__all__ = [
    "AccountNote",
    "ProgramAccountNote",
    "PubsubClient",
    "PubsubError",
    "SignatureNote",
    "Subscription",
    "open_pubsub",
]

_COMMITMENTS = ("processed", "confirmed", "finalized")


def _split_ws_url(url: str) -> tuple[str, int, str, bool]:
    """``(host, port, resource, secure)`` of a ``ws://`` / ``wss://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a WebSocket URL: {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, resource, secure


class PubsubError(Exception):
    """The node rejected a subscription (JSON-RPC error ``code``/``message``)."""

    def __init__(self, code: int, message: str, data: Any = None, *, method: str = "") -> None:
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        super().__init__(f"{method} rejected: {code} {message}")


@dataclass(frozen=True, slots=True)
class AccountNote:
    """An ``accountNotification``: the account's new state at ``slot``."""

    slot: int
    account: Account


@dataclass(frozen=True, slots=True)
class ProgramAccountNote:
    """A ``programNotification``: one account owned by the program changed."""

    slot: int
    pubkey: Pubkey
    account: Account


@dataclass(frozen=True, slots=True)
class SignatureNote:
    """A ``signatureNotification``: the transaction reached the commitment.
    ``err`` is the node's transaction-error JSON (``None`` on success)."""

    slot: int
    err: Any


N = TypeVar("N")


class Subscription(Generic[N]):
    """One client-side subscription; iterate it for notifications.

    It survives reconnects: the client re-subscribes on every new connection
    and keeps delivering here.  ``watermark`` is where the gap of the next
    disconnect would start (see the module docstring).
    """

    def __init__(
        self,
        key: int,
        name: str,
        method: str,
        params: list[Any],
        capacity: int,
    ) -> None:
        self.key = key
        self.name = name
        self.method = method
        self.params = params
        self.unsubscribe_method = method.replace("Subscribe", "Unsubscribe")
        self._send, self._recv = trio.open_memory_channel[N](capacity)
        self._confirmed = trio.Event()
        self.error: PubsubError | None = None
        #: Server subscription id on the current connection (None while not subscribed).
        self.server_id: int | None = None
        self.watermark: int | None = None
        #: The subscription was confirmed on this connection and waits for its first slot.
        self._awaiting_slot = False
        #: A gap opened by a disconnect and not yet reported: (from_slot, reason).
        self._pending_gap: tuple[int | None, str] | None = None
        self._finished = False
        #: The connection the subscribe request was last sent on (never twice on one).
        self._sent_on: _Connection | None = None
        self.resubscriptions = 0

    def __aiter__(self) -> Subscription[N]:
        return self

    async def __anext__(self) -> N:
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self.error is not None:
                raise self.error from None
            raise StopAsyncIteration from None

    async def receive(self) -> N:
        return await self.__anext__()

    def _observe(self, slot: int) -> None:
        if self.watermark is None or slot > self.watermark:
            self.watermark = slot


@dataclass
class _Connection:
    """State of one WebSocket connection; discarded when it ends."""

    ws: WebSocketConnection
    url: str
    cancel_scope: trio.CancelScope
    last_activity: float
    #: Reader is blocked handing a message to a slow consumer (not a stall).
    delivering: bool = False
    #: Requests awaiting an answer: a subscription, or what the request was for.
    pending: dict[int, Subscription[Any] | Literal["slot", "unsubscribe"]] = field(
        default_factory=dict
    )
    by_server_id: dict[int, Subscription[Any] | None] = field(default_factory=dict)
    slot_sub_id: int | None = None
    #: Subscribe requests sent and not yet answered.
    in_flight: int = 0
    #: Every subscribe request sent so far was confirmed at least once.
    ready: bool = False
    reason: str | None = None

    def end(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.cancel_scope.cancel()


class PubsubClient:
    """Long-lived Solana PubSub client; see the module docstring.

    ``url`` may be a list: reconnects start with the first URL and move down
    the list while connecting fails.  ``gap_channel`` receives one
    :class:`ChainGap` per subscription per lost connection (``subscription``
    is the subscription's ``name``).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        heartbeat_timeout: float = 30.0,
        ping_interval: float | None = None,
        connect_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        track_slots: bool = True,
        commitment: Commitment = "confirmed",
        gap_channel: trio.MemorySendChannel[ChainGap] | None = None,
        buffer: int = 1024,
        max_message_size: int = 16 * 1024 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("at least one WebSocket URL is required")
        for u in self.urls:
            _split_ws_url(u)  # fail now, not at the first connect
        if heartbeat_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if commitment not in _COMMITMENTS:
            raise ValueError(f"commitment must be one of {_COMMITMENTS}, got {commitment!r}")
        self.heartbeat_timeout = heartbeat_timeout
        self.ping_interval = ping_interval if ping_interval is not None else heartbeat_timeout / 3
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.track_slots = track_slots
        self.commitment: Commitment = commitment
        self.gap_channel = gap_channel
        self.buffer = buffer
        self.max_message_size = max_message_size
        self._rng = rng or random.Random()
        self._subs: dict[int, Subscription[Any]] = {}
        self._keys = itertools.count(1)
        self._ids = itertools.count(1)
        self._conn: _Connection | None = None
        self._running = False
        #: Counters for metrics and tests.
        self.connections = 0
        self.disconnects = 0
        self.gaps_reported = 0
        self.last_slot: int | None = None
        self.last_connect_error: str | None = None
        self._fatal: PubsubError | None = None

    # ------------------------------------------------------------------ public API

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve and reconnect until cancelled.

        Raises :class:`PubsubError` only for a permanent misconfiguration (the
        node rejects ``slotSubscribe`` while ``track_slots`` is on).

        Reports ``started`` at once: subscriptions can be made immediately
        and are sent when a connection is up.
        """
        if self._running:
            raise RuntimeError("PubsubClient.run is already running")
        self._running = True
        task_status.started()
        failures = 0
        try:
            while True:
                url = self.urls[failures % len(self.urls)]
                useful = await self._connect_and_serve(url)
                if self._fatal is not None:
                    raise self._fatal
                if useful:
                    failures = 0
                delay = self._backoff(failures)
                failures += 1
                await trio.sleep(delay)
        finally:
            self._running = False
            self._conn = None
            for sub in self._subs.values():
                if not sub._confirmed.is_set():
                    sub.error = PubsubError(0, "the PubSub client stopped", method=sub.method)
                    sub._confirmed.set()
                sub._send.close()

    @property
    def is_connected(self) -> bool:
        return self._conn is not None and self._conn.reason is None

    def logs_subscribe(
        self,
        mentions: Pubkey | str,
        *,
        commitment: Commitment | None = None,
        name: str = "logs",
    ) -> _SubscriptionContext[ProgramLogs]:
        """Transactions whose account keys include ``mentions`` (one address;
        the node accepts exactly one), as :class:`zmartd.bus.ProgramLogs`."""
        params = [{"mentions": [str(mentions)]}, {"commitment": self._level(commitment)}]
        return _SubscriptionContext(self, name, "logsSubscribe", params)

    def account_subscribe(
        self, pubkey: Pubkey | str, *, commitment: Commitment | None = None, name: str = "account"
    ) -> _SubscriptionContext[AccountNote]:
        params = [str(pubkey), {"commitment": self._level(commitment), "encoding": "base64"}]
        return _SubscriptionContext(self, name, "accountSubscribe", params)

    def program_subscribe(
        self,
        program_id: Pubkey | str,
        *,
        filters: Sequence[ProgramAccountsFilter] = (),
        commitment: Commitment | None = None,
        name: str = "program",
    ) -> _SubscriptionContext[ProgramAccountNote]:
        config: dict[str, Any] = {"commitment": self._level(commitment), "encoding": "base64"}
        if filters:
            config["filters"] = [f.to_json() for f in filters]
        return _SubscriptionContext(self, name, "programSubscribe", [str(program_id), config])

    def signature_subscribe(
        self,
        signature: Signature | str,
        *,
        commitment: Commitment | None = None,
        name: str = "signature",
    ) -> _SubscriptionContext[SignatureNote]:
        """One notification when the transaction reaches ``commitment``, then
        the iteration ends (the node drops the subscription by itself)."""
        params = [str(signature), {"commitment": self._level(commitment)}]
        return _SubscriptionContext(self, name, "signatureSubscribe", params)

    # ------------------------------------------------------------------ internals

    def _level(self, commitment: Commitment | None) -> str:
        level = commitment or self.commitment
        if level not in _COMMITMENTS:
            raise ValueError(f"commitment must be one of {_COMMITMENTS}, got {level!r}")
        return level

    def _backoff(self, failures: int) -> float:
        base = min(self.backoff_max, self.backoff_initial * (2.0 ** min(failures, 30)))
        return base / 2 + self._rng.uniform(0, base / 2)

    async def _add(self, name: str, method: str, params: list[Any]) -> Subscription[Any]:
        if not self._running:
            raise RuntimeError("start PubsubClient.run (or use open_pubsub) before subscribing")
        sub: Subscription[Any] = Subscription(next(self._keys), name, method, params, self.buffer)
        self._subs[sub.key] = sub
        conn = self._conn
        if conn is not None and conn.reason is None:
            await self._send_subscribe(conn, sub)
        await sub._confirmed.wait()
        if sub.error is not None:
            self._subs.pop(sub.key, None)
            raise sub.error
        return sub

    async def _remove(self, sub: Subscription[Any]) -> None:
        self._subs.pop(sub.key, None)
        sub._recv.close()
        conn, server_id = self._conn, sub.server_id
        sub.server_id = None
        if conn is None or server_id is None or conn.reason is not None:
            return
        conn.by_server_id.pop(server_id, None)
        if sub._finished:
            return  # signature subscriptions end on the server by themselves
        request_id = next(self._ids)
        conn.pending[request_id] = "unsubscribe"  # the answer is not awaited
        message = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": sub.unsubscribe_method,
            "params": [server_id],
        }
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(self.connect_timeout),
            suppress(ConnectionClosed),
        ):
            await conn.ws.send_message(json.dumps(message))

    async def _send_subscribe(self, conn: _Connection, sub: Subscription[Any] | None) -> None:
        if sub is not None:
            if sub._sent_on is conn:
                return
            sub._sent_on = conn
        request_id = next(self._ids)
        conn.pending[request_id] = "slot" if sub is None else sub
        conn.in_flight += 1
        if sub is None:
            message = {"jsonrpc": "2.0", "id": request_id, "method": "slotSubscribe"}
        else:
            message = {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": sub.method,
                "params": sub.params,
            }
        try:
            await conn.ws.send_message(json.dumps(message))
        except ConnectionClosed:
            conn.end("connection closed while subscribing")

    async def _connect_and_serve(self, url: str) -> bool:
        """One connection's life.  Returns whether every subscription got
        confirmed on it (a useful connection resets the reconnect backoff)."""
        session: list[_Connection] = []
        failure: str | None = None
        try:
            await self._session(url, session)
        except* (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError) as group:
            first = group.exceptions[0]
            failure = f"{type(first).__name__}: {first}"
        finally:
            self._conn = None
        if not session:
            self.last_connect_error = f"{url}: {failure or 'connection failed'}"
            return False
        conn = session[0]
        conn.end(f"connection error: {failure}" if failure else "connection ended")
        self.disconnects += 1
        await self._on_disconnect(conn.reason or "connection ended")
        return conn.ready

    async def _session(self, url: str, session: list[_Connection]) -> None:
        """Open the socket and the WebSocket, serve until the connection
        ends, and always close the socket.

        The TCP/TLS stream is opened here (not by ``open_websocket_url``)
        because trio-websocket 0.12 never closes a client's socket after the
        *server* closed the WebSocket; owning the stream lets us close it.
        """
        host, port, resource, secure = _split_ws_url(url)
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
        async with trio.open_nursery() as ws_nursery:  # trio-websocket's reader task
            try:
                with trio.fail_after(self.connect_timeout):
                    if secure:
                        stream = await trio.open_ssl_over_tcp_stream(
                            host,
                            port,
                            ssl_context=ssl.create_default_context(),
                            https_compatible=True,
                        )
                    else:
                        stream = await trio.open_tcp_stream(host, port)
                    ws = await wrap_client_stream(
                        ws_nursery,
                        stream,
                        host if port in (80, 443) else f"{host}:{port}",
                        resource,
                        max_message_size=self.max_message_size,
                    )
                conn = _Connection(ws, url, trio.CancelScope(), trio.current_time())
                session.append(conn)
                self._conn = conn
                self.connections += 1
                await self._serve(conn)
                self._conn = None
                with trio.move_on_after(min(self.connect_timeout, self.heartbeat_timeout)):
                    await ws.aclose()  # polite close handshake when we ended it
            finally:
                if stream is not None:
                    await trio.aclose_forcefully(stream)

    async def _serve(self, conn: _Connection) -> None:
        with conn.cancel_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader, conn)
                nursery.start_soon(self._watchdog, conn)
                nursery.start_soon(self._pinger, conn)
                if self.track_slots:
                    await self._send_subscribe(conn, None)
                for sub in list(self._subs.values()):
                    if not sub._finished and sub.key in self._subs:
                        await self._send_subscribe(conn, sub)
                if conn.in_flight == 0:
                    conn.ready = True

    async def _on_disconnect(self, reason: str) -> None:
        """Open a gap for every subscription that was live on the lost connection.

        A gap still waiting for its ``to_slot`` (the connection died before a
        slot arrived) is reported now with ``to_slot=None``.
        """
        for sub in list(self._subs.values()):
            was_live = sub.server_id is not None
            sub.server_id = None
            sub._awaiting_slot = False
            if sub._pending_gap is not None:
                from_slot, first_reason = sub._pending_gap
                sub._pending_gap = None
                await self._report_gap(sub, from_slot, None, first_reason)
            if was_live and not sub._finished:
                sub._pending_gap = (sub.watermark, reason)

    async def _report_gap(
        self, sub: Subscription[Any], from_slot: int | None, to_slot: int | None, reason: str
    ) -> None:
        self.gaps_reported += 1
        if self.gap_channel is None:
            return
        gap = ChainGap(from_slot=from_slot, to_slot=to_slot, reason=reason, subscription=sub.name)
        try:
            await self.gap_channel.send(gap)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.gap_channel = None

    async def _watchdog(self, conn: _Connection) -> None:
        """End the connection after ``heartbeat_timeout`` without a message
        (time spent waiting for a slow consumer does not count)."""
        while True:
            now = trio.current_time()
            since = now if conn.delivering else conn.last_activity
            deadline = since + self.heartbeat_timeout
            if now >= deadline:
                conn.end(f"stall: no message for {self.heartbeat_timeout:g}s")
                return
            await trio.sleep_until(deadline)

    async def _pinger(self, conn: _Connection) -> None:
        while True:
            await trio.sleep(self.ping_interval)
            with trio.move_on_after(self.heartbeat_timeout):
                try:
                    await conn.ws.ping()
                except ConnectionClosed:
                    conn.end("connection closed")
                    return
                if not self.track_slots:
                    conn.last_activity = trio.current_time()

    async def _reader(self, conn: _Connection) -> None:
        while True:
            try:
                raw = await conn.ws.get_message()
            except ConnectionClosed as exc:
                conn.end(f"connection closed: {exc.reason}")
                return
            conn.last_activity = trio.current_time()
            try:
                doc = json.loads(raw)
            except ValueError:
                continue  # not JSON-RPC; nothing a node should send
            conn.delivering = True
            try:
                for message in doc if isinstance(doc, list) else [doc]:
                    if isinstance(message, dict):
                        await self._dispatch(conn, message, raw)
            finally:
                conn.delivering = False
                conn.last_activity = trio.current_time()

    async def _dispatch(self, conn: _Connection, message: dict[str, Any], raw: str | bytes) -> None:
        if "id" in message and ("result" in message or "error" in message):
            await self._on_response(conn, message)
            return
        method = message.get("method")
        params = message.get("params")
        if not isinstance(method, str) or not isinstance(params, dict):
            return
        server_id = params.get("subscription")
        result = params.get("result")
        if method == "slotNotification":
            if server_id == conn.slot_sub_id and isinstance(result, dict):
                slot, root = result.get("slot"), result.get("root")
                if isinstance(slot, int):
                    await self._on_slot(slot, root if isinstance(root, int) else None)
            return
        sub = conn.by_server_id.get(server_id) if isinstance(server_id, int) else None
        if sub is None or not isinstance(result, dict):
            return  # e.g. a late notification for a subscription just removed
        slot = result.get("context", {}).get("slot")
        if not isinstance(slot, int):
            return
        note = self._note(method, result, raw, slot)
        if note is None:
            return
        try:
            await sub._send.send(note)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        sub._observe(slot)
        if method == "signatureNotification":
            sub._finished = True
            conn.by_server_id.pop(sub.server_id or 0, None)
            sub._send.close()

    def _note(self, method: str, result: dict[str, Any], raw: str | bytes, slot: int) -> Any:
        value = result.get("value")
        if method == "logsNotification":
            if not isinstance(value, dict) or not isinstance(value.get("signature"), str):
                return None
            return ProgramLogs(
                signature=value["signature"],
                slot=slot,
                err=value.get("err"),
                logs=tuple(value.get("logs") or ()),
            )
        if method == "signatureNotification":
            if not isinstance(value, dict):
                return None  # "receivedSignature" is not requested
            return SignatureNote(slot=slot, err=value.get("err"))
        if method in ("accountNotification", "programNotification"):
            text = raw.decode() if isinstance(raw, bytes) else raw
            try:
                parsed = parse_notification(text)
            except SerdeJSONError:
                return None  # malformed: skipped, it cannot be delivered anyway
            if isinstance(parsed, AccountNotification):
                return AccountNote(slot=slot, account=parsed.result.value)
            if isinstance(parsed, ProgramNotification):
                keyed = parsed.result.value
                return ProgramAccountNote(slot=slot, pubkey=keyed.pubkey, account=keyed.account)
        return None

    async def _on_response(self, conn: _Connection, message: dict[str, Any]) -> None:
        request_id = message["id"]
        if request_id not in conn.pending:
            return
        sub = conn.pending.pop(request_id)
        error = message.get("error")
        result = message.get("result")
        if sub == "unsubscribe":
            return  # nothing waits for it; the subscription is already gone here
        self._answered(conn)
        if sub == "slot":
            if error is None and isinstance(result, int):
                conn.slot_sub_id = result
            else:  # permanent: a node without slotSubscribe cannot be watched this way
                err = error if isinstance(error, dict) else {}
                self._fatal = PubsubError(
                    int(err.get("code", 0)),
                    f"{err.get('message', result)!s} (use track_slots=False with this node)",
                    err.get("data"),
                    method="slotSubscribe",
                )
                conn.end("slotSubscribe rejected")
            return
        if error is not None or not isinstance(result, int):
            err = error if isinstance(error, dict) else {}
            sub.error = PubsubError(
                int(err.get("code", 0)),
                str(err.get("message", f"unexpected result {result!r}")),
                err.get("data"),
                method=sub.method,
            )
            self._subs.pop(sub.key, None)
            sub._send.close()
            sub._confirmed.set()
            return
        if sub.key not in self._subs:  # removed while the request was in flight
            request_id = next(self._ids)
            conn.pending[request_id] = "unsubscribe"
            unsubscribe = {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": sub.unsubscribe_method,
                "params": [result],
            }
            try:
                await conn.ws.send_message(json.dumps(unsubscribe))
            except ConnectionClosed:
                conn.end("connection closed")
            return
        sub.server_id = result
        conn.by_server_id[result] = sub
        if sub._confirmed.is_set():
            sub.resubscriptions += 1
        sub._confirmed.set()
        if self.track_slots:
            sub._awaiting_slot = True
        elif sub._pending_gap is not None:
            from_slot, reason = sub._pending_gap
            sub._pending_gap = None
            await self._report_gap(sub, from_slot, None, reason)

    @staticmethod
    def _answered(conn: _Connection) -> None:
        conn.in_flight -= 1
        if conn.in_flight == 0:
            conn.ready = True

    async def _on_slot(self, slot: int, root: int | None) -> None:
        """A ``slotNotification``: ``slot`` was just created, ``root`` is the
        node's latest rooted (finalized) slot.

        ``slot`` closes the gaps of subscriptions confirmed on this connection
        (it was produced after they existed).  ``root`` raises the watermark
        of every live subscription: every slot up to it is already confirmed,
        so its notifications were delivered before this message.  A processed
        ``slot`` must not raise the watermark: slots just below it may still
        be confirmed (and notified) after a disconnect.
        """
        self.last_slot = slot
        for sub in list(self._subs.values()):
            if sub.server_id is None:
                continue
            if sub._awaiting_slot:
                sub._awaiting_slot = False
                if sub._pending_gap is not None:
                    from_slot, reason = sub._pending_gap
                    sub._pending_gap = None
                    await self._report_gap(sub, from_slot, slot, reason)
            if root is not None:
                sub._observe(root)


class _SubscriptionContext(Generic[N]):
    """``async with client.xxx_subscribe(...) as sub`` -- subscribes on entry
    (returning once the node confirmed) and unsubscribes on exit."""

    def __init__(self, client: PubsubClient, name: str, method: str, params: list[Any]) -> None:
        self._client = client
        self._name = name
        self._method = method
        self._params = params
        self._sub: Subscription[N] | None = None

    async def __aenter__(self) -> Subscription[N]:
        self._sub = await self._client._add(self._name, self._method, self._params)
        return self._sub

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sub is not None:
            await self._client._remove(self._sub)


@asynccontextmanager
async def open_pubsub(url: str | Sequence[str], **options: Any) -> AsyncIterator[PubsubClient]:
    """Run a :class:`PubsubClient` for the duration of the block."""
    client = PubsubClient(url, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
