"""The JSON-RPC surface over HTTP, through the project's own ``RpcClient``
(which parses every answer with solders' response types, so a shape error
fails here) and raw requests for the error objects."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from tests.devchain.conftest import SOL, signed, transfer_tx
from zmartd.chain.rpc import (
    DataSize,
    Memcmp,
    PreflightFailed,
    RpcClient,
    RpcError,
    SimulationFailed,
    b58encode,
)
from zmartd.chain.transactions import decode_transaction
from zmartd.devchain.actor import Devchain
from zmartd.devchain.bank import Account

SYSTEM = Pubkey.from_string("11111111111111111111111111111111")


async def raw(chain: Devchain, method: str, params: list[Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or []}
        response = await http.post(chain.rpc_url, json=body)
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    assert doc["id"] == 7
    return doc


async def funded(rpc: RpcClient, lamports: int = 10 * SOL) -> Keypair:
    kp = Keypair()
    result, _ = await rpc.request("zmart_airdrop", [str(kp.pubkey()), lamports])
    assert result["lamports"] == lamports
    return kp


async def advance(rpc: RpcClient, n: int = 1) -> None:
    await rpc.request("zmart_advanceSlots", [n])


async def test_cluster_methods(chain: Devchain) -> None:
    async with RpcClient([chain.rpc_url], commitment="processed") as rpc:
        await advance(rpc, 6)
        assert await rpc.get_slot() == 6
        assert await rpc.get_slot("confirmed") == 5
        assert await rpc.get_slot("finalized") == 2
        assert await rpc.get_block_height() == 6
        latest = await rpc.get_latest_blockhash()
        assert latest.last_valid_block_height == 6 + 150
        assert latest.blockhash == chain.node.blockhash
        for method, expected in (
            ("getHealth", "ok"),
            ("getGenesisHash", str(chain.node.genesis_hash)),
        ):
            assert (await raw(chain, method))["result"] == expected
        version = (await raw(chain, "getVersion"))["result"]
        assert "solana-core" in version and "feature-set" in version
        epoch = (await raw(chain, "getEpochInfo", [{"commitment": "processed"}]))["result"]
        assert epoch["absoluteSlot"] == 6 and epoch["slotsInEpoch"] == 432_000
        assert (await raw(chain, "getBlockTime", [3]))["result"] == chain.node.block_time(3)
        missing = (await raw(chain, "getBlockTime", [99]))["error"]
        assert missing["code"] == -32004
        rent = (await raw(chain, "getMinimumBalanceForRentExemption", [488]))["result"]
        assert rent == 4_287_360
        identity = (await raw(chain, "getIdentity"))["result"]["identity"]
        assert Pubkey.from_string(identity) == chain.node.identity.pubkey()
        valid = await raw(
            chain, "isBlockhashValid", [str(latest.blockhash), {"commitment": "processed"}]
        )
        assert valid["result"]["value"] is True
        fees = await rpc.get_recent_prioritization_fees()
        assert fees and all(f.prioritization_fee == 0 for f in fees)
        # minContextSlot in the future
        err = (await raw(chain, "getSlot", [{"commitment": "processed", "minContextSlot": 100}]))[
            "error"
        ]
        assert err["code"] == -32016 and err["data"] == {"contextSlot": 6}


async def test_send_confirm_and_read_back(chain: Devchain) -> None:
    async with RpcClient([chain.rpc_url], commitment="confirmed") as rpc:
        payer = await funded(rpc)
        dest = Keypair().pubkey()
        blockhash = (await rpc.get_latest_blockhash("processed")).blockhash
        tx = transfer_tx(payer, dest, 2 * SOL, blockhash)
        sig = await rpc.send_transaction(tx)
        assert sig == tx.signatures[0]
        (status,) = await rpc.get_signature_statuses([sig])
        assert status is not None and status.confirmation_status is not None
        assert str(status.confirmation_status) == "TransactionConfirmationStatus.Processed"
        assert await rpc.get_transaction(sig) is None  # not confirmed yet
        assert await rpc.get_account_info(dest) is None
        assert await rpc.get_account_info(dest, commitment="processed") is not None
        await advance(rpc)
        account = await rpc.get_account_info(dest)
        assert account is not None and account.lamports == 2 * SOL
        balance = await raw(chain, "getBalance", [str(dest), {"commitment": "confirmed"}])
        assert balance["result"]["value"] == 2 * SOL
        doc = await rpc.get_transaction(sig)
        assert doc is not None and doc["version"] == 0
        decoded = decode_transaction(doc)
        assert decoded.succeeded and decoded.fee == 5000
        assert decoded.balances[dest].delta == 2 * SOL
        assert decoded.balances[payer.pubkey()].delta == -(2 * SOL + 5000)
        confirmed = await rpc.get_transaction(sig, encoding="base64")
        assert confirmed is not None and confirmed.transaction == tx and confirmed.version == 0
        b58 = await raw(
            chain,
            "getTransaction",
            [
                str(sig),
                {
                    "encoding": "base58",
                    "commitment": "confirmed",
                    "maxSupportedTransactionVersion": 0,
                },
            ],
        )
        assert b58["result"]["transaction"] == [b58encode(bytes(tx)), "base58"]
        # v0 without maxSupportedTransactionVersion is refused like Solana does
        refused = await raw(chain, "getTransaction", [str(sig), {"commitment": "confirmed"}])
        assert refused["error"]["code"] == -32015
        history = await rpc.get_signatures_for_address(dest)
        assert [h.signature for h in history] == [sig]
        accounts = await rpc.get_multiple_accounts([dest, Keypair().pubkey()])
        assert accounts[0] is not None and accounts[1] is None
        await advance(rpc, 4)
        (status,) = await rpc.get_signature_statuses([sig])
        assert status is not None and status.confirmations is None  # finalized


async def test_preflight_failures_and_skip_preflight(chain: Devchain) -> None:
    async with RpcClient([chain.rpc_url], commitment="processed", max_retries=0) as rpc:
        payer = await funded(rpc, SOL)
        blockhash = chain.node.blockhash
        too_much = transfer_tx(payer, Keypair().pubkey(), 5 * SOL, blockhash)
        with pytest.raises(PreflightFailed) as info:
            await rpc.send_transaction(too_much)
        assert info.value.code == -32002
        assert info.value.err == {"InstructionError": [0, {"Custom": 1}]}
        assert info.value.message.startswith(
            "Transaction simulation failed: Error processing "
            "Instruction 0: custom program error: 0x1"
        )
        assert info.value.logs and info.value.units_consumed is not None
        assert chain.node.record(too_much.signatures[0]) is None  # not recorded
        # skipPreflight lands it: a failed transaction that paid its fee
        sig = await rpc.send_transaction(too_much, skip_preflight=True)
        record = chain.node.record(sig)
        assert record is not None and record.err == {"InstructionError": [0, {"Custom": 1}]}
        # unknown blockhash: preflight BlockhashNotFound; with skipPreflight silently dropped
        stale = transfer_tx(payer, Keypair().pubkey(), 1000, Hash.new_unique())
        with pytest.raises(PreflightFailed) as bh:
            await rpc.send_transaction(stale)
        assert bh.value.err == "BlockhashNotFound"
        assert bh.value.message == "Transaction simulation failed: Blockhash not found"
        assert await rpc.send_transaction(stale, skip_preflight=True) == stale.signatures[0]
        assert chain.node.record(stale.signatures[0]) is None
        # fee payer that does not exist
        ghost = transfer_tx(Keypair(), Keypair().pubkey(), 1, blockhash)
        with pytest.raises(PreflightFailed) as acct:
            await rpc.send_transaction(ghost)
        assert acct.value.err == "AccountNotFound"
        # a duplicate
        ok = transfer_tx(payer, Keypair().pubkey(), SOL // 10, blockhash)
        await rpc.send_transaction(ok)
        with pytest.raises(PreflightFailed) as dup:
            await rpc.send_transaction(ok)
        assert dup.value.err == "AlreadyProcessed"
        # bad signature -> -32003
        bad = VersionedTransaction.populate(ok.message, [Keypair().sign_message(b"?")])
        with pytest.raises(RpcError) as sig_err:
            await rpc.send_transaction(bad)
        assert sig_err.value.code == -32003


async def test_simulate_transaction(chain: Devchain) -> None:
    async with RpcClient([chain.rpc_url], commitment="processed") as rpc:
        payer = await funded(rpc)
        dest = Keypair().pubkey()
        old_hash = chain.node.blockhash
        await advance(rpc, 160)  # old_hash expired
        tx = transfer_tx(payer, dest, SOL, old_hash)
        with pytest.raises(SimulationFailed) as info:
            await rpc.simulate_transaction(tx)
        assert info.value.err == "BlockhashNotFound"
        result = await rpc.simulate_transaction(tx, replace_recent_blockhash=True)
        assert result["err"] is None and result["unitsConsumed"] == 150
        assert result["replacementBlockhash"]["blockhash"] == str(chain.node.blockhash)
        fresh = transfer_tx(payer, dest, SOL, chain.node.blockhash)
        verified = await rpc.simulate_transaction(fresh, sig_verify=True)
        assert verified["logs"][0].startswith("Program 11111111111111111111111111111111 invoke")
        with_accounts = await raw(
            chain,
            "simulateTransaction",
            [
                base64.b64encode(bytes(fresh)).decode(),
                {
                    "encoding": "base64",
                    "commitment": "processed",
                    "accounts": {"addresses": [str(dest)], "encoding": "base64"},
                },
            ],
        )
        (acct,) = with_accounts["result"]["value"]["accounts"]
        assert acct["lamports"] == SOL
        assert chain.node.get_account(dest) is None  # nothing committed
        forged = VersionedTransaction.populate(fresh.message, [Keypair().sign_message(b"?")])
        with pytest.raises(RpcError) as bad:
            await rpc.simulate_transaction(forged, sig_verify=True)
        assert bad.value.code == -32003


async def test_fee_for_message_matches_the_fee_charged(chain: Devchain) -> None:
    from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
    from solders.system_program import TransferParams, transfer

    async with RpcClient([chain.rpc_url], commitment="processed") as rpc:
        payer = await funded(rpc)
        await advance(rpc)  # the airdrop (price 0) also wrote payer: min per slot would be 0
        ixs = [
            set_compute_unit_limit(10_000),
            set_compute_unit_price(1_000_000),
            transfer(
                TransferParams(
                    from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=SOL
                )
            ),
        ]
        tx = signed(payer, ixs, chain.node.blockhash)
        message = base64.b64encode(to_bytes_versioned(tx.message)).decode()
        fee = await raw(chain, "getFeeForMessage", [message, {"commitment": "processed"}])
        assert fee["result"]["value"] == 5000 + 10_000
        sig = await rpc.send_transaction(tx)
        record = chain.node.record(sig)
        assert record is not None and record.fee == 15_000
        prio = await rpc.get_recent_prioritization_fees([payer.pubkey()])
        assert prio[-1].prioritization_fee == 1_000_000
        await advance(rpc, 151)
        stale = await raw(chain, "getFeeForMessage", [message, {"commitment": "processed"}])
        assert stale["result"]["value"] is None


async def test_program_accounts_filters_and_encodings(chain: Devchain) -> None:
    owner = Keypair().pubkey()
    keys = [Keypair().pubkey() for _ in range(3)]
    chain.node.set_account(keys[0], Account(10**6, b"\x01abc", owner))
    chain.node.set_account(keys[1], Account(10**6, b"\x02abcdef", owner))
    chain.node.set_account(keys[2], Account(10**6, bytes(200), owner))
    async with RpcClient([chain.rpc_url], commitment="processed") as rpc:
        everything = await rpc.get_program_accounts(owner)
        assert {k for k, _ in everything} == set(keys)
        sized = await rpc.get_program_accounts(owner, filters=[DataSize(4)])
        assert [k for k, _ in sized] == [keys[0]]
        cmp = await rpc.get_program_accounts(owner, filters=[Memcmp(1, b"abcd")])
        assert [k for k, _ in cmp] == [keys[1]]
        both = await rpc.get_program_accounts(owner, filters=[Memcmp(0, b"\x02"), DataSize(7)])
        assert [k for k, _ in both] == [keys[1]]
        # raw: withContext, base64 memcmp, dataSlice, base58 limit
        result = (
            await raw(
                chain,
                "getProgramAccounts",
                [
                    str(owner),
                    {
                        "commitment": "processed",
                        "encoding": "base64",
                        "withContext": True,
                        "dataSlice": {"offset": 1, "length": 2},
                        "filters": [
                            {
                                "memcmp": {
                                    "offset": 0,
                                    "bytes": base64.b64encode(b"\x01").decode(),
                                    "encoding": "base64",
                                }
                            }
                        ],
                    },
                ],
            )
        )["result"]
        assert result["context"]["slot"] == chain.node.slot
        (item,) = result["value"]
        assert item["account"]["data"] == [base64.b64encode(b"ab").decode(), "base64"]
        assert item["account"]["space"] == 4
        # getAccountInfo refuses base58 over 128 bytes; getProgramAccounts does not (Agave)
        too_big = await raw(
            chain,
            "getAccountInfo",
            [str(keys[2]), {"commitment": "processed", "encoding": "base58"}],
        )
        assert too_big["error"]["code"] == -32600
        listed = await raw(
            chain,
            "getProgramAccounts",
            [str(owner), {"commitment": "processed", "filters": [{"dataSize": 200}]}],
        )
        assert listed["result"][0]["account"]["data"] == b58encode(bytes(200))
        small = await raw(
            chain,
            "getAccountInfo",
            [str(keys[0]), {"commitment": "processed", "encoding": "base58"}],
        )
        assert small["result"]["value"]["data"] == [b58encode(b"\x01abc"), "base58"]
        legacy = await raw(chain, "getAccountInfo", [str(keys[0]), {"commitment": "processed"}])
        assert legacy["result"]["value"]["data"] == b58encode(b"\x01abc")
        bad_filter = await raw(
            chain, "getProgramAccounts", [str(owner), {"filters": [{"nope": 1}]}]
        )
        assert bad_filter["error"]["code"] == -32602


async def test_json_rpc_envelope_errors_and_batches(chain: Devchain) -> None:
    async with httpx.AsyncClient() as http:
        parse = (await http.post(chain.rpc_url, content=b"{nope")).json()
        assert parse == {
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "Parse error"},
            "id": None,
        }
        empty = (await http.post(chain.rpc_url, json=[])).json()
        assert empty["error"]["code"] == -32600
        batch = (
            await http.post(
                chain.rpc_url,
                json=[
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "getSlot",
                        "params": [{"commitment": "processed"}],
                    },
                    {"jsonrpc": "2.0", "id": 2, "method": "nope"},
                    {"jsonrpc": "1.0", "id": 3, "method": "getSlot"},
                    {"jsonrpc": "2.0", "id": 4, "method": "getAccountInfo", "params": ["xyz"]},
                    {
                        "jsonrpc": "2.0",
                        "id": 5,
                        "method": "getSignatureStatuses",
                        "params": [["1"] * 300],
                    },
                ],
            )
        ).json()
        assert [r["id"] for r in batch] == [1, 2, 3, 4, 5]
        assert batch[0]["result"] == chain.node.slot
        assert batch[1]["error"] == {"code": -32601, "message": "Method not found"}
        assert batch[2]["error"]["code"] == -32600
        assert batch[3]["error"]["code"] == -32602
        assert batch[4]["error"]["code"] == -32602
        health = await http.get(chain.rpc_url + "/health")
        assert health.text == "ok"
        assert (await http.get(chain.rpc_url)).status_code == 405
    processed = await raw(
        chain, "getSignaturesForAddress", [str(SYSTEM), {"commitment": "processed"}]
    )
    assert processed["error"]["code"] == -32602
    too_many = await raw(chain, "getMultipleAccounts", [[str(SYSTEM)] * 101])
    assert too_many["error"]["code"] == -32602
    garbage = await raw(chain, "sendTransaction", ["AAAA", {"encoding": "base64"}])
    assert garbage["error"]["code"] == -32602


async def test_controls(chain: Devchain) -> None:
    async with RpcClient([chain.rpc_url], commitment="processed") as rpc:
        before = chain.node.unix_timestamp
        warp, _ = await rpc.request("zmart_warpClock", [259_200])
        assert warp["unixTimestamp"] == before + 259_200
        assert (await raw(chain, "getBlockTime", [warp["slot"]]))["result"] == warp["unixTimestamp"]
        await rpc.request("zmart_pause", [])
        status, _ = await rpc.request("zmart_status", [])
        assert status["paused"] is True
        assert chain.node.paused
        await rpc.request("zmart_resume", [])
        assert not chain.node.paused
        advanced, _ = await rpc.request("zmart_advanceSlots", [3])
        assert advanced["slot"] == warp["slot"] + 3
        key = Keypair().pubkey()
        await rpc.request(
            "zmart_setAccount",
            [
                str(key),
                {
                    "lamports": 5 * SOL,
                    "data": base64.b64encode(b"hi").decode(),
                    "owner": str(SYSTEM),
                },
            ],
        )
        account = await rpc.get_account_info(key)
        assert account is not None and account.data == b"hi"
        await rpc.request("zmart_setAccount", [str(key), None])
        assert await rpc.get_account_info(key) is None
        airdrop = await raw(chain, "requestAirdrop", [str(key), SOL])
        sig = airdrop["result"]
        record = chain.node.record(Signature.from_string(sig))
        assert record is not None and record.err is None
        no_state = await raw(chain, "zmart_snapshot")
        assert no_state["error"]["code"] == -32601
        bad = await raw(chain, "zmart_warpClock", [-5])
        assert bad["error"]["code"] == -32602
