"""The devchain as zmartd's first actor (``[chain] mode = "local"``): ready
means answering RPC, the ``devchain`` service carries the bound URLs, the
state file is written at a clean stop, and ``zmartd devchain`` parses."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from zmartd.app import Daemon
from zmartd.chain.rpc import RpcClient
from zmartd.cli import build_parser
from zmartd.config import load_config
from zmartd.devchain.actor import DEVCHAIN, DevchainSettings
from zmartd.devchain.cli import settings_from
from zmartd.devchain.node import Node
from zmartd.model.services import HTTP_URLS
from zmartd.tree import TREE

CONFIG = """
[daemon]
data_dir = "{data}"
shutdown_timeout = 5
[http]
port = 0
graceful_timeout = 0.2
[log]
level = "warning"
format = "json"
[chain]
mode = "local"
[devchain]
port = 0
ws_port = 0
seed = "demo"
slot_interval = 0.05
finalized_lag = 2
state_file = "{state}"
"""


async def test_actor_provides_the_devchain_and_saves_state(tmp_path: Path) -> None:
    assert TREE[0].name == "devchain"
    state = tmp_path / "ledger.state"
    path = tmp_path / "zmartd.toml"
    path.write_text(CONFIG.format(data=tmp_path / "var", state=state))
    config = load_config(path)
    assert TREE[0].enabled(config)
    daemon = Daemon(config, path, [d for d in TREE if d.name in ("devchain", "http")])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon.run)
        with trio.fail_after(10):
            await daemon.ready.wait()
        chain = daemon.services.get_nowait(DEVCHAIN)
        assert chain.seed is not None and ":0" not in chain.rpc_url
        async with RpcClient([chain.rpc_url], commitment="confirmed") as rpc:
            first = await rpc.get_slot()
            await trio.sleep(0.3)
            assert await rpc.get_slot() > first  # the slot clock runs
        urls: list[str] = await daemon.services.get(HTTP_URLS)
        async with httpx.AsyncClient() as http:
            ready = await http.get(urls[0] + "/ready")
        assert ready.status_code == 200
        await daemon.shutdown()
        nursery.cancel_scope.cancel()
    restored = Node.from_bytes(state.read_bytes())
    assert restored.slot >= chain.node.slot - 1
    assert DEVCHAIN not in daemon.services


def test_mode_rpc_disables_the_actor(tmp_path: Path) -> None:
    path = tmp_path / "zmartd.toml"
    path.write_text('[chain]\nmode = "rpc"\nrpc_urls = ["https://api.devnet.solana.com"]\n')
    assert not TREE[0].enabled(load_config(path))


def test_cli_flags_override_the_config(tmp_path: Path) -> None:
    path = tmp_path / "zmartd.toml"
    path.write_text(CONFIG.format(data=tmp_path / "var", state=tmp_path / "s"))
    args = build_parser().parse_args(
        [
            "devchain",
            "--config",
            str(path),
            "--port",
            "9999",
            "--seed",
            "none",
            "--state",
            str(tmp_path / "other"),
        ]
    )
    settings = settings_from(args, path)
    assert (settings.port, settings.ws_port, settings.seed) == (9999, 0, "none")
    assert settings.state_file == tmp_path / "other"
    assert settings.slot_interval == 0.05
    defaults = settings_from(build_parser().parse_args(["devchain"]), Path("zmartd.toml"))
    assert defaults == DevchainSettings() or not Path("zmartd.toml").exists()
