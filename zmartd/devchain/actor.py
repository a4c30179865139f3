"""Running the devchain: the JSON-RPC and PubSub servers, the slot clock,
webhooks and the state file around one node -- as the ``devchain`` actor of
zmartd (``[chain] mode = "local"``) or standalone (``zmartd devchain``).

The actor is first in the tree so the actors after it can reach the chain
through the ``devchain`` service, a :class:`Devchain` with the real URLs
(``port = 0`` picks free ports, so the configured ones may not be the bound
ones).  It is *ready* when both servers answer: seeding runs before that,
and is fast (a few hundred milliseconds), so that a client never sees a
half-seeded chain.

The ledger lives in memory.  With ``state_file`` it is restored at start
(no seeding then), saved every ``autosave_interval`` seconds when it
changed, on ``zmart_snapshot`` and at a clean stop -- so a reload that
restarts the actor keeps the chain.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from zmartd.chain.pda import PROGRAM_ID
from zmartd.config import Config, chain_endpoints
from zmartd.context import ActorContext
from zmartd.devchain.bank import Bank
from zmartd.devchain.node import Node, StateFileError
from zmartd.devchain.pubsub_server import PubsubServer
from zmartd.devchain.rpc_server import JsonRpc, RpcFault, asgi_app, serve_http
from zmartd.devchain.seed import seed_demo
from zmartd.devchain.webhooks import WebhookEmitter
from zmartd.services import ServiceKey

__all__ = ["DEVCHAIN", "Devchain", "DevchainSettings", "run", "serve_devchain"]

log = structlog.get_logger("zmartd.devchain")


@dataclass(frozen=True)
class DevchainSettings:
    """Everything a devchain needs; :meth:`from_config` reads ``[devchain]``
    and ``[chain]``."""

    host: str = "127.0.0.1"
    port: int = 8899
    ws_port: int = 8900
    seed: str = "demo"
    state_file: Path | None = None
    slot_interval: float = 0.4
    confirmed_lag: int = 1
    finalized_lag: int = 32
    program_id: Pubkey = PROGRAM_ID
    program_variant: str = "deployed"
    webhook_url: str = ""
    webhook_auth_header: str = ""
    webhook_duplicates: int = 1
    webhook_shuffle: bool = False
    #: Admin and backend authority of the seeded global config (the daemon's
    #: ``chain.keypair``, so that zmartd can aggregate and finalize); None =
    #: the demo's own deterministic admin key.
    authority: Keypair | None = None
    autosave_interval: float = 30.0

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> DevchainSettings:
        d = cfg.devchain
        settings = cls(
            host=d.host,
            port=d.port,
            ws_port=d.ws_port,
            seed=d.seed,
            state_file=d.state_file,
            slot_interval=d.slot_interval,
            finalized_lag=d.finalized_lag,
            program_id=cfg.chain.program_id,
            program_variant=d.program_variant,
            webhook_url=d.webhook_url,
            webhook_auth_header=d.webhook_auth_header.reveal(),
            webhook_duplicates=d.webhook_duplicates,
            webhook_shuffle=d.webhook_shuffle,
            authority=cfg.chain.signer(),
        )
        return replace(settings, **overrides)


@dataclass
class Devchain:
    """A running devchain; provided to other actors as the ``devchain`` service."""

    settings: DevchainSettings
    node: Node
    rpc: JsonRpc
    pubsub: PubsubServer
    rpc_url: str
    ws_url: str
    webhooks: WebhookEmitter | None = None
    #: what the seed created (names -> keys), None if not seeded
    seed: Any = None
    saved_generation: int = -1

    def save_state(self) -> Path | None:
        """Write the whole ledger to ``state_file`` now (atomically)."""
        path = self.settings.state_file
        if path is None:
            return None
        generation = self.node.generation
        _write_atomic(path, self.node.to_bytes())
        self.saved_generation = generation
        return path


#: The running chain double (the indexer and others see it as
#: :data:`zmartd.model.services.LOCAL_CHAIN`, which names only its endpoints).
DEVCHAIN = ServiceKey("devchain", Devchain)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def build_node(settings: DevchainSettings) -> tuple[Node, Any]:
    """Restore the node from the state file, or create (and seed) a new one.
    Returns ``(node, seed result or None)``."""
    path = settings.state_file
    if path is not None and path.exists():
        node = Node.from_bytes(
            path.read_bytes(),
            confirmed_lag=settings.confirmed_lag,
            finalized_lag=settings.finalized_lag,
        )
        if node.bank.program_id != settings.program_id:
            raise StateFileError(
                f"{path} holds a ledger for program {node.bank.program_id}, but the "
                f"configured program id is {settings.program_id}"
            )
        log.info(
            "devchain state restored",
            path=str(path),
            slot=node.slot,
            transactions=node.transaction_count,
        )
        return node, None
    bank = Bank(program_id=settings.program_id, variant=settings.program_variant)
    node = Node(bank, confirmed_lag=settings.confirmed_lag, finalized_lag=settings.finalized_lag)
    seeded = None
    if settings.seed == "demo":
        started = time.perf_counter()
        seeded = seed_demo(node, authority=settings.authority)
        log.info(
            "devchain seeded with demo data",
            markets=len(seeded.markets),
            transactions=node.transaction_count,
            seconds=round(time.perf_counter() - started, 3),
        )
    elif settings.seed != "none":
        raise ValueError(f"unknown seed {settings.seed!r} (use 'demo' or 'none')")
    return node, seeded


async def _slot_clock(node: Node, interval: float) -> None:
    """Produce a slot every ``interval`` seconds (on a fixed schedule, so
    slow requests do not make the chain drift), unless paused."""
    next_at = trio.current_time() + interval
    while True:
        await trio.sleep_until(next_at)
        next_at += interval
        now = trio.current_time()
        if next_at < now:  # fell behind (debugger, overload): do not burst
            next_at = now + interval
        if not node.paused:
            node.advance_slot()


async def _autosave(chain: Devchain) -> None:
    while True:
        await trio.sleep(chain.settings.autosave_interval)
        if chain.node.generation != chain.saved_generation:
            generation = chain.node.generation
            data = chain.node.to_bytes()
            path = chain.settings.state_file
            assert path is not None
            await trio.to_thread.run_sync(_write_atomic, path, data)
            chain.saved_generation = generation


def _url_host(host: str) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


async def serve_devchain(
    settings: DevchainSettings,
    stopping: trio.Event,
    *,
    node: Node | None = None,
    task_status: trio.TaskStatus[Devchain] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Build (or take) the node, serve JSON-RPC and PubSub, run the slot
    clock, webhooks and autosave until ``stopping`` is set; then save the
    state and return.  ``task_status`` receives the :class:`Devchain` once
    both servers listen."""
    seeded = None
    if node is None:
        node, seeded = build_node(settings)
    pubsub = PubsubServer(node)
    rpc = JsonRpc(node)
    pubsub_scope = trio.CancelScope()

    async def _pubsub(*, task_status: trio.TaskStatus[int]) -> None:
        with pubsub_scope:
            await pubsub.serve(settings.host, settings.ws_port, task_status=task_status)

    async with trio.open_nursery() as nursery:
        ws_port = await nursery.start(_pubsub)
        http_stop = trio.Event()
        urls = await nursery.start(
            partial(
                serve_http,
                asgi_app(rpc),
                settings.host,
                settings.port,
                shutdown_trigger=http_stop.wait,
            )
        )
        port = int(urls[0].rsplit(":", 1)[1])
        host = _url_host(settings.host)
        chain = Devchain(
            settings=settings,
            node=node,
            rpc=rpc,
            pubsub=pubsub,
            rpc_url=f"http://{host}:{port}",
            ws_url=f"ws://{host}:{ws_port}",
            seed=seeded,
        )
        rpc.add_method(
            "zmart_dropConnections", lambda params: {"dropped": pubsub.drop_connections()}
        )
        rpc.add_method("zmart_snapshot", lambda params: _snapshot(chain))
        background = trio.CancelScope()

        async def _background() -> None:
            with background:
                async with trio.open_nursery() as inner:
                    inner.start_soon(_slot_clock, node, settings.slot_interval)
                    if settings.webhook_url:
                        chain.webhooks = WebhookEmitter(
                            node,
                            settings.webhook_url,
                            program_id=settings.program_id,
                            auth_header=settings.webhook_auth_header,
                            duplicates=settings.webhook_duplicates,
                            shuffle=settings.webhook_shuffle,
                        )
                        await inner.start(chain.webhooks.run)
                    if settings.state_file is not None:
                        inner.start_soon(_autosave, chain)

        nursery.start_soon(_background)
        if settings.state_file is not None and seeded is not None:
            chain.save_state()
        log.info(
            "devchain listening",
            rpc=chain.rpc_url,
            ws=chain.ws_url,
            slot=node.slot,
            program=str(settings.program_id),
            faucet=str(node.faucet.pubkey()),
        )
        task_status.started(chain)
        await stopping.wait()
        background.cancel()
        http_stop.set()
        pubsub.drop_connections()
        pubsub_scope.cancel()
        nursery.cancel_scope.deadline = trio.current_time() + 3.0
    if settings.state_file is not None:
        path = chain.save_state()
        log.info("devchain state saved", path=str(path), slot=node.slot)


def _snapshot(chain: Devchain) -> dict[str, Any]:
    path = chain.save_state()
    if path is None:
        raise RpcFault(-32601, "zmart_snapshot: this devchain has no state file (--state)")
    return {"path": str(path), "slot": chain.node.slot}


async def run(
    ctx: ActorContext, stopping: trio.Event, *, task_status: trio.TaskStatus[None]
) -> None:
    """The ``devchain`` actor (enabled when ``chain.mode = "local"``)."""
    settings = DevchainSettings.from_config(ctx.config)
    expected = chain_endpoints(ctx.config)
    async with trio.open_nursery() as nursery:
        chain: Devchain = await nursery.start(serve_devchain, settings, stopping)
        ctx.services.provide(DEVCHAIN, chain)
        ctx.log.info(
            "devchain ready",
            rpc=chain.rpc_url,
            ws=chain.ws_url,
            configured_rpc=expected.rpc_urls[0],
        )
        task_status.started()
        await stopping.wait()
        ctx.services.withdraw(DEVCHAIN, chain)
