"""Compatibility with an independent client: solana-py reads accounts and
sends a transaction against the devchain.

solana-py's synchronous ``Client`` only exists in releases that require
solders < 0.28 (it was removed in 0.40, the first release that accepts the
solders 0.29 this project uses, hence the dev extra's ``solana>=0.40.3``).  So
the test drives solana-py's own ``AsyncClient`` on a private asyncio loop in a
worker thread -- the client code and its response parsing are solana-py's,
which is what makes it an independent check.  It is skipped (with that reason)
when solana-py is not installed at all.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest
import trio
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer

from tests.devchain.conftest import SOL, signed
from zmartd.devchain.actor import Devchain

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("solana") is None,
    reason="solana-py is not installed (dev extra 'solana>=0.40.3')",
)

SYSTEM = Pubkey.from_string("11111111111111111111111111111111")


async def _exercise(url: str, program_id: Pubkey, market: Pubkey) -> dict[str, Any]:
    from solana.rpc.async_api import AsyncClient
    from solana.rpc.commitment import Confirmed, Processed
    from solana.rpc.models import TxOpts

    out: dict[str, Any] = {}
    async with AsyncClient(url, commitment=Confirmed) as client:
        out["healthy"] = await client.is_connected()
        payer = Keypair()
        airdrop = await client.request_airdrop(payer.pubkey(), 5 * SOL)
        await client.confirm_transaction(airdrop.value, Confirmed, sleep_seconds=0.05)
        out["payer_balance"] = (await client.get_balance(payer.pubkey())).value
        info = (await client.get_account_info(market)).value
        out["market_owner"] = info.owner if info else None
        out["market_len"] = len(info.data) if info else None
        accounts = (await client.get_program_accounts(program_id, filters=[488])).value
        out["markets"] = len(accounts)
        blockhash = (await client.get_latest_blockhash(Processed)).value.blockhash
        dest = Keypair().pubkey()
        tx = signed(
            payer,
            [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=SOL))],
            blockhash,
        )
        sent = await client.send_transaction(tx, opts=TxOpts(preflight_commitment=Processed))
        await client.confirm_transaction(sent.value, Confirmed, sleep_seconds=0.05)
        out["dest_balance"] = (await client.get_balance(dest)).value
        fetched = await client.get_transaction(sent.value, max_supported_transaction_version=0)
        meta = fetched.value.transaction.meta if fetched.value else None
        out["fee"] = meta.fee if meta else None
        statuses = (await client.get_signature_statuses([sent.value])).value
        out["status_err"] = statuses[0].err if statuses[0] else "missing"
    return out


async def test_solana_py_reads_accounts_and_sends_a_transaction(serve: Any) -> None:
    chain: Devchain = await serve(seed="demo", slot_interval=0.02)
    market = next(iter(chain.seed.markets.values())).address
    program_id = chain.node.bank.program_id
    result = await trio.to_thread.run_sync(
        lambda: asyncio.run(_exercise(chain.rpc_url, program_id, market))
    )
    assert result["healthy"] is True
    assert result["payer_balance"] == 5 * SOL
    assert result["market_owner"] == program_id and result["market_len"] == 488
    assert result["markets"] == len(chain.seed.markets)
    assert result["dest_balance"] == SOL
    assert result["fee"] == 5000
    assert result["status_err"] is None
