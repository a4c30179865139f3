"""The node without servers: slots, blockhash expiry, commitment-consistent
reads, the status cache, history paging, the clock, observers, persistence."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.devchain.conftest import SOL, FakeClock, funded, transfer_tx
from zmartd.devchain.bank import Account, Bank
from zmartd.devchain.node import (
    FAUCET_LAMPORTS,
    MAX_PROCESSING_AGE,
    STATUS_CACHE_SLOTS,
    Commitment,
    Node,
    Rejected,
    SlotInfo,
    StateFileError,
    TxRecord,
)


def test_slots_advance_with_new_blockhashes_and_times(node: Node, clock: FakeClock) -> None:
    first = node.blockhash
    clock.now += 5
    node.advance_slot(3)
    assert node.slot == 3 and node.block_height == 3
    assert node.blockhash != first
    assert node.block_time(3) == int(clock.now)
    assert node.block_time(0) == int(clock.now) - 5
    assert node.block_time(4) is None
    assert node.commitment_slot("processed") == 3
    assert node.commitment_slot("confirmed") == 2
    assert node.commitment_slot("finalized") == 0
    node.advance_slot(10)
    assert node.commitment_slot("finalized") == 13 - 4


def test_blockhash_expires_after_150_blocks(node: Node) -> None:
    payer = funded(node)
    old = node.blockhash
    blockhash, last_valid = node.blockhash_at("processed")
    assert blockhash == old and last_valid == node.block_height + MAX_PROCESSING_AGE
    node.advance_slot(MAX_PROCESSING_AGE)
    assert node.is_blockhash_valid(old)
    node.submit(transfer_tx(payer, Keypair().pubkey(), 1 * SOL, old))
    node.advance_slot()
    assert not node.is_blockhash_valid(old)
    with pytest.raises(Rejected) as info:
        node.submit(transfer_tx(payer, Keypair().pubkey(), 2 * SOL, old))
    assert info.value.err == "BlockhashNotFound"
    assert not node.is_blockhash_valid(Hash.new_unique())


def test_duplicate_and_badly_signed_transactions_are_rejected(node: Node) -> None:
    payer = funded(node)
    tx = transfer_tx(payer, Keypair().pubkey(), SOL, node.blockhash)
    node.submit(tx)
    with pytest.raises(Rejected) as dup:
        node.submit(tx)
    assert dup.value.err == "AlreadyProcessed"
    forged = transfer_tx(payer, Keypair().pubkey(), SOL, node.blockhash)
    wrong = Keypair()
    from solders.transaction import VersionedTransaction

    bad = VersionedTransaction.populate(forged.message, [wrong.sign_message(b"x")])
    with pytest.raises(Rejected) as sig:
        node.submit(bad)
    assert sig.value.kind == "signature"
    nobody = Keypair()
    with pytest.raises(Rejected) as unfunded:
        node.submit(transfer_tx(nobody, Keypair().pubkey(), 1, node.blockhash))
    assert unfunded.value.err == "AccountNotFound"
    assert node.record(bad.signatures[0]) is None


def test_reads_at_lower_commitment_see_the_state_of_that_slot(node: Node) -> None:
    payer = funded(node)
    node.advance_slot(5)  # the funding is finalized now
    dest = Keypair().pubkey()
    node.submit(transfer_tx(payer, dest, 1 * SOL, node.blockhash))
    assert node.get_account(dest, "processed").lamports == 1 * SOL  # type: ignore[union-attr]
    assert node.get_account(dest, "confirmed") is None
    node.advance_slot()
    node.submit(transfer_tx(payer, dest, 2 * SOL, node.blockhash))
    assert node.get_account(dest, "processed").lamports == 3 * SOL  # type: ignore[union-attr]
    assert node.get_account(dest, "confirmed").lamports == 1 * SOL  # type: ignore[union-attr]
    assert node.get_account(dest, "finalized") is None
    owned = dict(node.accounts_owned_by(Pubkey.default(), "confirmed"))
    assert owned[dest].lamports == 1 * SOL
    assert dest not in dict(node.accounts_owned_by(Pubkey.default(), "finalized"))
    node.advance_slot(5)
    for level in ("processed", "confirmed", "finalized"):
        assert node.get_account(dest, level).lamports == 3 * SOL  # type: ignore[union-attr]
    assert not node._journal  # pruned once finalized


class Recorder:
    def __init__(self) -> None:
        self.slots: list[tuple[int, int]] = []
        self.txs: list[tuple[Commitment, str]] = []
        self.accounts: list[tuple[Commitment, int, Pubkey, int | None]] = []

    def on_slot(self, info: SlotInfo, root: int) -> None:
        self.slots.append((info.slot, root))

    def on_transaction(self, level: Commitment, record: TxRecord) -> None:
        self.txs.append((level, str(record.signature)))

    def on_accounts(
        self, level: Commitment, slot: int, accounts: Sequence[tuple[Pubkey, Account | None]]
    ) -> None:
        for key, account in accounts:
            self.accounts.append((level, slot, key, account.lamports if account else None))


def test_observers_get_each_commitment_level_once_with_the_slot_state(node: Node) -> None:
    payer = funded(node)
    node.advance_slot(5)
    rec = Recorder()
    node.subscribe(rec)
    dest = Keypair().pubkey()
    sig = str(node.submit(transfer_tx(payer, dest, SOL, node.blockhash)).signature)
    tx_slot = node.slot
    node.submit(transfer_tx(payer, dest, 2 * SOL, node.blockhash))
    assert [t for t in rec.txs if t[1] == sig] == [("processed", sig)]
    node.advance_slot()
    assert ("confirmed", sig) in rec.txs
    node.advance_slot(4)
    assert [level for level, s in rec.txs if s == sig] == ["processed", "confirmed", "finalized"]
    dest_events = [
        (lvl, slot, lamports) for lvl, slot, key, lamports in rec.accounts if key == dest
    ]
    # processed twice (one per tx), confirmed/finalized once with the end-of-slot value
    assert dest_events == [
        ("processed", tx_slot, SOL),
        ("processed", tx_slot, 3 * SOL),
        ("confirmed", tx_slot, 3 * SOL),
        ("finalized", tx_slot, 3 * SOL),
    ]
    assert rec.slots[-1] == (node.slot, node.commitment_slot("finalized"))


def test_status_cache_and_history_search(node: Node) -> None:
    payer = funded(node)
    record = node.submit(transfer_tx(payer, Keypair().pubkey(), SOL, node.blockhash))
    node.advance_slot(STATUS_CACHE_SLOTS + 1)
    assert node.signature_status(record.signature, search_history=False) is None
    assert node.signature_status(record.signature, search_history=True) is record
    assert node.level_of(record) == "finalized"


def test_signatures_for_address_pages_newest_first(node: Node) -> None:
    payer = funded(node)
    dest = Keypair().pubkey()
    sigs = []
    for i in range(5):
        sigs.append(node.submit(transfer_tx(payer, dest, SOL + i, node.blockhash)).signature)
        node.advance_slot()
    node.advance_slot(5)
    page = node.signatures_for_address(dest, "finalized", limit=2)
    assert [r.signature for r in page] == [sigs[4], sigs[3]]
    page2 = node.signatures_for_address(dest, "finalized", before=sigs[3], limit=10)
    assert [r.signature for r in page2] == [sigs[2], sigs[1], sigs[0]]
    between = node.signatures_for_address(dest, "finalized", before=sigs[4], until=sigs[1])
    assert [r.signature for r in between] == [sigs[3], sigs[2]]
    assert node.signatures_for_address(Keypair().pubkey(), "confirmed") == []
    # not yet confirmed: invisible at confirmed
    late = node.submit(transfer_tx(payer, dest, 7, node.blockhash)).signature
    assert late not in [r.signature for r in node.signatures_for_address(dest, "confirmed")]
    node.advance_slot()
    assert node.signatures_for_address(dest, "confirmed")[0].signature == late


def test_warp_clock_opens_a_slot_with_the_new_time(node: Node, clock: FakeClock) -> None:
    before = node.unix_timestamp
    slot = node.slot
    assert node.warp_clock(259_200) == before + 259_200
    assert node.slot == slot + 1
    with pytest.raises(ValueError):
        node.warp_clock(-1)
    # time never runs backwards, even if the wall clock does
    clock.now -= 1000
    node.advance_slot()
    assert node.unix_timestamp == before + 259_200
    assert node.set_clock(before) == before + 259_200


def test_lamports_are_conserved_and_fees_accounted(node: Node) -> None:
    total = node.bank.total_lamports()
    payer = funded(node)
    record = node.submit(transfer_tx(payer, Keypair().pubkey(), SOL, node.blockhash))
    assert sum(record.pre_balances) - sum(record.post_balances) == record.fee == 5000
    fees = sum(r.fee for r in node._records.values())
    assert node.bank.total_lamports() == total - fees
    assert node.get_account(node.faucet.pubkey()).lamports < FAUCET_LAMPORTS  # type: ignore[union-attr]


def test_mint_and_set_account_are_journaled(node: Node) -> None:
    node.advance_slot(5)
    key = Keypair().pubkey()
    assert node.mint(key, 5) == 5
    node.set_account(key, Account(lamports=9, data=b"\x01\x02", owner=Bank().program_id))
    assert node.get_account(key, "confirmed") is None
    node.advance_slot()
    assert node.get_account(key, "confirmed").data == b"\x01\x02"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        node.mint(key, 0)


def test_state_round_trip_restores_ledger_history_and_clock(node: Node, clock: FakeClock) -> None:
    payer = funded(node)
    dest = Keypair().pubkey()
    record = node.submit(transfer_tx(payer, dest, SOL, node.blockhash))
    node.warp_clock(1000)
    node.advance_slot(3)
    restored = Node.from_bytes(node.to_bytes(), finalized_lag=4, clock=clock)
    assert restored.slot == node.slot and restored.block_height == node.block_height
    assert restored.blockhash == node.blockhash
    assert restored.unix_timestamp == node.unix_timestamp
    assert restored.get_account(dest).lamports == SOL  # type: ignore[union-attr]
    copy = restored.record(record.signature)
    assert copy is not None and copy.logs == record.logs and copy.slot == record.slot
    assert [r.signature for r in restored.signatures_for_address(dest, "processed")] == [
        record.signature
    ]
    assert restored.is_blockhash_valid(node.blockhash)
    with pytest.raises(Rejected):
        restored.submit(record.tx)  # still AlreadyProcessed after a restart
    restored.advance_slot()
    assert restored.faucet_transfer(Keypair().pubkey(), SOL).err is None
    with pytest.raises(StateFileError):
        Node.from_bytes(b"not a ledger")
