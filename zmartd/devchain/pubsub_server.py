"""The devchain's Solana PubSub (WebSocket) endpoint.

Subscriptions: ``accountSubscribe``, ``programSubscribe`` (with filters),
``logsSubscribe`` (``"all"`` / ``{"mentions": [key]}``), ``signatureSubscribe``
(one-shot), ``slotSubscribe``, ``rootSubscribe`` and their ``*Unsubscribe``.
A notification is sent when its commitment level is *reached*, never earlier:
processed ones as the transaction executes, confirmed and finalized ones as
the node's slots make them so (:class:`~zmartd.devchain.node.NodeObserver`).
The default commitment is ``finalized``, as on Solana.

Each connection has a bounded outgoing queue; a client too slow to drain it
is disconnected (Solana drops slow subscribers too) rather than making the
node wait.  :meth:`PubsubServer.drop_connections` closes every TCP connection
*abruptly* (no WebSocket close frame), which is what a provider outage looks
like to a client -- the case the PubSub client's gap reporting exists for.
The WebSocket layer is trio-websocket on a TCP stream we own
(``wrap_server_stream``), precisely so that the socket can be cut.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgspec
import trio
from solders.pubkey import Pubkey
from solders.signature import Signature
from trio_websocket import ConnectionClosed, wrap_server_stream

from zmartd.devchain.bank import Account
from zmartd.devchain.node import COMMITMENTS, Commitment, Node, SlotInfo, TxRecord
from zmartd.devchain.rpc_server import RpcFault, parse_filters
from zmartd.devchain.rpc_wire import ACCOUNT_ENCODINGS, WireError, account_json, deleted_account

__all__ = ["QUEUE_SIZE", "PubsubServer"]

#: Outgoing messages buffered per connection before it is dropped as too slow.
QUEUE_SIZE = 20_000
_RANK = {level: i for i, level in enumerate(COMMITMENTS)}
_log = logging.getLogger("zmartd.devchain.pubsub")
_encoder = msgspec.json.Encoder()


@dataclass(eq=False)
class _Sub:
    id: int
    kind: str
    conn: _Conn
    level: Commitment = "finalized"
    key: Pubkey | None = None
    signature: Signature | None = None
    encoding: str = "base64"
    filters: list[Callable[[bytes], bool]] = field(default_factory=list)
    #: logs: None = all transactions, else the mentioned key
    mentions: Pubkey | None = None


@dataclass(eq=False)
class _Conn:
    id: int
    stream: trio.SocketStream
    send: trio.MemorySendChannel[str]
    recv: trio.MemoryReceiveChannel[str]
    cancel: trio.CancelScope
    subs: dict[int, _Sub] = field(default_factory=dict)
    closed: bool = False


class PubsubServer:
    """Serves PubSub for one node; register it with ``node.subscribe(server)``
    (done by the constructor)."""

    def __init__(self, node: Node, *, queue_size: int = QUEUE_SIZE) -> None:
        self.node = node
        self.queue_size = queue_size
        self.connections: dict[int, _Conn] = {}
        self._conn_ids = itertools.count(1)
        self._sub_ids = itertools.count(1)
        self._subs: dict[int, _Sub] = {}
        self._accounts: dict[Pubkey, set[_Sub]] = {}
        self._programs: dict[Pubkey, set[_Sub]] = {}
        self._logs: set[_Sub] = set()
        self._signatures: dict[Signature, set[_Sub]] = {}
        self._slots: set[_Sub] = set()
        self._roots: set[_Sub] = set()
        self._last_root = -1
        self.dropped_slow = 0
        node.subscribe(self)

    # ------------------------------------------------------------------ serving

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on ``host:port`` (0 = any free port) until cancelled;
        ``task_status`` receives the bound port."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(trio.serve_listeners, self._handle, listeners, handler_nursery=nursery)
            )
            task_status.started(bound)

    def drop_connections(self) -> int:
        """Cut every connection's TCP socket now (no close frame); returns how many."""
        conns = list(self.connections.values())
        for conn in conns:
            self._cut(conn)
        return len(conns)

    def _cut(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._forget(conn)
        conn.stream.socket.close()
        conn.cancel.cancel()

    async def _handle(self, stream: trio.SocketStream) -> None:
        send, recv = trio.open_memory_channel[str](self.queue_size)
        with trio.CancelScope() as scope:
            conn = _Conn(next(self._conn_ids), stream, send, recv, scope)
            try:
                async with trio.open_nursery() as nursery:
                    request = await wrap_server_stream(nursery, stream)
                    ws = await request.accept()
                    self.connections[conn.id] = conn
                    nursery.start_soon(self._writer, conn, ws)
                    while True:
                        try:
                            message = await ws.get_message()
                        except ConnectionClosed:
                            break
                        reply = self._on_request(conn, message)
                        if reply is not None:
                            self._enqueue(conn, reply)
                    nursery.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            except Exception:  # trio-websocket handshake errors etc.: drop the connection
                _log.debug("pubsub connection %s ended with an error", conn.id, exc_info=True)
        conn.closed = True
        self._forget(conn)
        if stream.socket.fileno() != -1:
            with trio.move_on_after(0.5) as cleanup:
                cleanup.shield = True
                await trio.aclose_forcefully(stream)

    async def _writer(self, conn: _Conn, ws: Any) -> None:
        async for text in conn.recv:
            await ws.send_message(text)

    def _enqueue(self, conn: _Conn, message: dict[str, Any]) -> None:
        if conn.closed:
            return
        try:
            conn.send.send_nowait(_encoder.encode(message).decode())
        except trio.WouldBlock:
            self.dropped_slow += 1
            _log.warning("pubsub connection %s is too slow; dropping it", conn.id)
            self._cut(conn)

    # ------------------------------------------------------------------ requests

    def _on_request(self, conn: _Conn, message: str | bytes) -> dict[str, Any] | None:
        try:
            request = msgspec.json.decode(message)
        except msgspec.DecodeError:
            return _error(None, RpcFault(-32700, "Parse error"))
        if not isinstance(request, dict):
            return _error(None, RpcFault(-32600, "Invalid request"))
        req_id = request.get("id")
        method = request.get("method")
        params = request.get("params") or []
        if (
            request.get("jsonrpc") != "2.0"
            or not isinstance(method, str)
            or not isinstance(params, list)
        ):
            return _error(req_id, RpcFault(-32600, "Invalid request"))
        try:
            if method.endswith("Unsubscribe"):
                result: Any = self._unsubscribe(conn, method, params)
            else:
                handler = self._HANDLERS.get(method)
                if handler is None:
                    raise RpcFault(-32601, "Method not found")
                sub = handler(self, conn, params)
                result = sub.id
                response = {"jsonrpc": "2.0", "result": result, "id": req_id}
                # The subscription id must reach the client before any notification.
                self._enqueue(conn, response)
                self._after_subscribe(sub)
                return None
        except RpcFault as fault:
            return _error(req_id, fault)
        except WireError as exc:
            return _error(req_id, RpcFault(exc.code, exc.message))
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    @staticmethod
    def _config(params: Sequence[Any], index: int) -> dict[str, Any]:
        if index >= len(params) or params[index] is None:
            return {}
        cfg = params[index]
        if not isinstance(cfg, dict):
            raise RpcFault(-32602, "Invalid params: expected a configuration object")
        return cfg

    @staticmethod
    def _level(cfg: dict[str, Any]) -> Commitment:
        level = cfg.get("commitment") or "finalized"
        if level not in COMMITMENTS:
            raise RpcFault(-32602, f"Invalid params: unknown commitment {level!r}")
        return level

    @staticmethod
    def _key(params: Sequence[Any], what: str) -> Pubkey:
        if not params or not isinstance(params[0], str):
            raise RpcFault(-32602, f"Invalid params: missing {what}")
        try:
            return Pubkey.from_string(params[0])
        except ValueError:
            raise RpcFault(-32602, f"Invalid params: invalid {what} {params[0]!r}") from None

    def _new(self, conn: _Conn, kind: str, **fields: Any) -> _Sub:
        sub = _Sub(next(self._sub_ids), kind, conn, **fields)
        conn.subs[sub.id] = sub
        self._subs[sub.id] = sub
        return sub

    def _encoding(self, cfg: dict[str, Any]) -> str:
        encoding = cfg.get("encoding") or "base64"
        if encoding not in ACCOUNT_ENCODINGS:
            raise RpcFault(-32602, f"Invalid params: unsupported encoding: {encoding}")
        return str(encoding)

    def _account_subscribe(self, conn: _Conn, params: list[Any]) -> _Sub:
        key = self._key(params, "pubkey")
        cfg = self._config(params, 1)
        sub = self._new(
            conn, "account", key=key, level=self._level(cfg), encoding=self._encoding(cfg)
        )
        self._accounts.setdefault(key, set()).add(sub)
        return sub

    def _program_subscribe(self, conn: _Conn, params: list[Any]) -> _Sub:
        key = self._key(params, "program id")
        cfg = self._config(params, 1)
        filters = parse_filters(cfg.get("filters"))
        sub = self._new(
            conn,
            "program",
            key=key,
            level=self._level(cfg),
            encoding=self._encoding(cfg),
            filters=filters,
        )
        self._programs.setdefault(key, set()).add(sub)
        return sub

    def _logs_subscribe(self, conn: _Conn, params: list[Any]) -> _Sub:
        spec = params[0] if params else None
        mentions: Pubkey | None = None
        if spec in ("all", "allWithVotes"):
            pass
        elif isinstance(spec, dict) and isinstance(spec.get("mentions"), list):
            keys = spec["mentions"]
            if len(keys) != 1:
                raise RpcFault(-32602, "Invalid Request: Only 1 address supported")
            mentions = self._key(keys, "mentions address")
        else:
            raise RpcFault(-32602, 'Invalid params: expected "all" or {"mentions": [key]}')
        cfg = self._config(params, 1)
        sub = self._new(conn, "logs", level=self._level(cfg), mentions=mentions)
        self._logs.add(sub)
        return sub

    def _signature_subscribe(self, conn: _Conn, params: list[Any]) -> _Sub:
        if not params or not isinstance(params[0], str):
            raise RpcFault(-32602, "Invalid params: missing signature")
        try:
            signature = Signature.from_string(params[0])
        except ValueError:
            raise RpcFault(-32602, f"Invalid params: invalid signature {params[0]!r}") from None
        cfg = self._config(params, 1)
        sub = self._new(conn, "signature", signature=signature, level=self._level(cfg))
        self._signatures.setdefault(signature, set()).add(sub)
        return sub

    def _slot_subscribe(self, conn: _Conn, params: list[Any]) -> _Sub:
        sub = self._new(conn, "slot", level="processed")
        self._slots.add(sub)
        return sub

    def _root_subscribe(self, conn: _Conn, params: list[Any]) -> _Sub:
        sub = self._new(conn, "root", level="finalized")
        self._roots.add(sub)
        return sub

    _HANDLERS: dict[str, Callable[[PubsubServer, _Conn, list[Any]], _Sub]] = {
        "accountSubscribe": _account_subscribe,
        "programSubscribe": _program_subscribe,
        "logsSubscribe": _logs_subscribe,
        "signatureSubscribe": _signature_subscribe,
        "slotSubscribe": _slot_subscribe,
        "rootSubscribe": _root_subscribe,
    }

    def _after_subscribe(self, sub: _Sub) -> None:
        """A signature that already reached the commitment is notified at once."""
        if sub.kind != "signature" or sub.signature is None:
            return
        record = self.node.record(sub.signature)
        if record is not None and _RANK[self.node.level_of(record)] >= _RANK[sub.level]:
            self._notify_signature(sub, record)

    def _unsubscribe(self, conn: _Conn, method: str, params: list[Any]) -> bool:
        kind = method[: -len("Unsubscribe")]
        if kind not in ("account", "program", "logs", "signature", "slot", "root"):
            raise RpcFault(-32601, "Method not found")
        sub_id = params[0] if params else None
        sub = conn.subs.get(sub_id) if isinstance(sub_id, int) else None
        if sub is None or sub.kind != kind:
            raise RpcFault(-32602, "Invalid subscription id.")
        self._remove(sub)
        return True

    def _remove(self, sub: _Sub) -> None:
        sub.conn.subs.pop(sub.id, None)
        self._subs.pop(sub.id, None)
        if sub.kind == "account" and sub.key is not None:
            _discard(self._accounts, sub.key, sub)
        elif sub.kind == "program" and sub.key is not None:
            _discard(self._programs, sub.key, sub)
        elif sub.kind == "signature" and sub.signature is not None:
            _discard(self._signatures, sub.signature, sub)
        else:
            self._logs.discard(sub)
            self._slots.discard(sub)
            self._roots.discard(sub)

    def _forget(self, conn: _Conn) -> None:
        self.connections.pop(conn.id, None)
        for sub in list(conn.subs.values()):
            self._remove(sub)

    @property
    def subscription_count(self) -> int:
        return len(self._subs)

    # ------------------------------------------------------------------ node events

    def _notify(self, sub: _Sub, method: str, result: Any) -> None:
        self._enqueue(
            sub.conn,
            {
                "jsonrpc": "2.0",
                "method": method,
                "params": {"result": result, "subscription": sub.id},
            },
        )

    def on_slot(self, info: SlotInfo, root: int) -> None:
        for sub in list(self._slots):
            self._notify(
                sub, "slotNotification", {"parent": info.parent, "root": root, "slot": info.slot}
            )
        if root != self._last_root:
            self._last_root = root
            for sub in list(self._roots):
                self._notify(sub, "rootNotification", root)

    def on_transaction(self, level: Commitment, record: TxRecord) -> None:
        if self._logs:
            keys: set[Pubkey] | None = None
            for sub in list(self._logs):
                if sub.level != level:
                    continue
                if sub.mentions is not None:
                    if keys is None:
                        keys = set(record.account_keys)
                    if sub.mentions not in keys:
                        continue
                self._notify(
                    sub,
                    "logsNotification",
                    {
                        "context": {"slot": record.slot},
                        "value": {
                            "signature": str(record.signature),
                            "err": record.err,
                            "logs": record.logs,
                        },
                    },
                )
        subs = self._signatures.get(record.signature)
        if subs:
            for sub in list(subs):
                if _RANK[level] >= _RANK[sub.level]:
                    self._notify_signature(sub, record)

    def _notify_signature(self, sub: _Sub, record: TxRecord) -> None:
        self._notify(
            sub,
            "signatureNotification",
            {"context": {"slot": record.slot}, "value": {"err": record.err}},
        )
        self._remove(sub)

    def on_accounts(
        self, level: Commitment, slot: int, accounts: Sequence[tuple[Pubkey, Account | None]]
    ) -> None:
        if not self._accounts and not self._programs:
            return
        context = {"slot": slot}
        for key, account in accounts:
            for sub in list(self._accounts.get(key, ())):
                if sub.level == level:
                    value = _account_value(account or deleted_account(), sub.encoding)
                    self._notify(sub, "accountNotification", {"context": context, "value": value})
            if account is None:
                continue
            for sub in list(self._programs.get(account.owner, ())):
                if sub.level != level or not all(f(account.data) for f in sub.filters):
                    continue
                self._notify(
                    sub,
                    "programNotification",
                    {
                        "context": context,
                        "value": {
                            "pubkey": str(key),
                            "account": _account_value(account, sub.encoding),
                        },
                    },
                )


def _account_value(account: Account, encoding: str) -> dict[str, Any]:
    """Notifications encode any size (no 128-byte base58 limit), as Agave does."""
    return account_json(account, encoding, base58_limit=False)


def _discard(index: dict[Any, set[_Sub]], key: Any, sub: _Sub) -> None:
    subs = index.get(key)
    if subs is not None:
        subs.discard(sub)
        if not subs:
            del index[key]


def _error(req_id: Any, fault: RpcFault) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": fault.to_json(), "id": req_id}
