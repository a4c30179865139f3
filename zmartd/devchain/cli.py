"""``zmartd devchain``: run the local chain double on its own.

    zmartd devchain [--config PATH] [--port N] [--ws-port N] [--seed demo|none]
                    [--state FILE] [--slot-interval SECONDS]

Settings come from ``[devchain]`` (and ``[chain] program_id`` / ``keypair``)
of the config file when it exists, else from the built-in defaults; the
flags override them.  It prints the endpoints on stderr, serves until
SIGINT/SIGTERM and then saves ``--state`` (if given) before exiting 0.
Exit status 2 means invalid configuration or an unusable state file.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import trio

from zmartd.config import ConfigError, load_config
from zmartd.devchain.actor import DevchainSettings, serve_devchain
from zmartd.devchain.node import StateFileError

__all__ = ["add_arguments", "main", "run"]

#: zmartd's default config name: without that file the devchain runs on defaults.
DEFAULT_CONFIG = "zmartd.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="JSON-RPC port (default 8899; 0 = any free)")
    parser.add_argument("--ws-port", type=int, help="PubSub port (default 8900; 0 = any free)")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--seed",
        choices=("demo", "none"),
        help="demo = global config, markets in every state, users (default)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="persist the ledger to FILE and restore it from there",
    )
    parser.add_argument(
        "--slot-interval", type=float, metavar="SECONDS", help="seconds per slot (default 0.4)"
    )


def settings_from(args: argparse.Namespace, config_path: Path | None) -> DevchainSettings:
    """Settings from the config file (if it exists) overridden by the flags."""
    settings = DevchainSettings()
    if config_path is not None and config_path.exists():
        settings = DevchainSettings.from_config(load_config(config_path))
    elif config_path is not None and str(config_path) != DEFAULT_CONFIG:
        raise ValueError(f"config file {config_path} does not exist")
    overrides: dict[str, object] = {}
    for flag, name in (
        ("port", "port"),
        ("ws_port", "ws_port"),
        ("host", "host"),
        ("seed", "seed"),
        ("state", "state_file"),
        ("slot_interval", "slot_interval"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[name] = value
    settings = replace(settings, **overrides)  # type: ignore[arg-type]
    if not 0 <= settings.port <= 65535 or not 0 <= settings.ws_port <= 65535:
        raise ValueError("ports must be 0..65535")
    if settings.port and settings.port == settings.ws_port:
        raise ValueError("--port and --ws-port must differ")
    if not 0.001 <= settings.slot_interval <= 60:
        raise ValueError("--slot-interval must be 0.001..60 seconds")
    return settings


async def run(settings: DevchainSettings) -> int:
    stopping = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            chain = await nursery.start(serve_devchain, settings, stopping)
            print(
                f"zmartd devchain: JSON-RPC {chain.rpc_url}  PubSub {chain.ws_url}  "
                f"program {settings.program_id}  faucet {chain.node.faucet.pubkey()}",
                file=sys.stderr,
                flush=True,
            )
            if chain.seed is not None:
                print(
                    "zmartd devchain: demo seeded: "
                    + ", ".join(
                        f"{m.slug} ({m.state.name.lower()})" for m in chain.seed.markets.values()
                    ),
                    file=sys.stderr,
                    flush=True,
                )
            async for _ in signals:
                stopping.set()
                break
    return 0


def main(args: argparse.Namespace, config_path: Path | None) -> int:
    """Entry point used by ``zmartd devchain``."""
    try:
        settings = settings_from(args, config_path)
    except ConfigError as exc:
        print(f"zmartd devchain: invalid configuration in {config_path}:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"zmartd devchain: {exc}", file=sys.stderr)
        return 2
    # lazy: start-up time (this module's parser is built for every zmartd command)
    from zmartd.observability import configure_logging

    configure_logging()
    try:
        return trio.run(run, settings)
    except BaseExceptionGroup as group:
        # start-up failures surface through the server's nurseries
        leaf = _first_leaf(group)
        if isinstance(leaf, StateFileError | OSError):
            what = "cannot listen: " if isinstance(leaf, OSError) else ""
            print(f"zmartd devchain: {what}{leaf}", file=sys.stderr)
            return 2
        raise
    except (StateFileError, OSError) as exc:
        print(f"zmartd devchain: {exc}", file=sys.stderr)
        return 2


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def standalone(argv: Sequence[str] | None = None) -> int:
    """``python -m zmartd.devchain.cli`` (same flags plus ``--config``)."""
    parser = argparse.ArgumentParser(
        prog="zmartd devchain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-c", "--config", type=Path, metavar="PATH")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return main(args, args.config)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(standalone())
