"""The bank's runtime semantics: what a Solana cluster does with a signed
transaction before and around the programs it invokes."""

from __future__ import annotations

import pytest
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import (
    CreateAccountParams,
    TransferParams,
    create_account,
    transfer,
)
from solders.transaction import Transaction, VersionedTransaction

from zmartd.chain.borsh import b58encode
from zmartd.devchain.bank import (
    COMPUTE_BUDGET_PROGRAM_ID,
    SYSTEM_PROGRAM_ID,
    Account,
    Bank,
    InstructionContext,
    InstructionError,
    TransactionRejected,
    rent_exempt_minimum,
)

SOL = 1_000_000_000
BLOCKHASH = Hash.new_unique()
SYS = str(SYSTEM_PROGRAM_ID)
CB = str(COMPUTE_BUDGET_PROGRAM_ID)


def v0(payer: Keypair, ixs: list[Instruction], *extra: Keypair) -> VersionedTransaction:
    msg = MessageV0.try_compile(payer.pubkey(), ixs, [], BLOCKHASH)
    return VersionedTransaction(msg, [payer, *extra])


def run(bank: Bank, tx: VersionedTransaction | Transaction, **kw: object):  # type: ignore[no-untyped-def]
    return bank.execute(tx, slot=10, unix_timestamp=1_700_000_000, **kw)  # type: ignore[arg-type]


@pytest.fixture
def bank() -> Bank:
    return Bank()


@pytest.fixture
def alice(bank: Bank) -> Keypair:
    kp = Keypair()
    bank.airdrop(kp.pubkey(), 10 * SOL)
    return kp


def test_transfer_moves_lamports_charges_fee_and_logs(bank: Bank, alice: Keypair) -> None:
    bob = Pubkey.new_unique()
    total = bank.total_lamports()
    tx = v0(
        alice, [transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=SOL))]
    )
    res = run(bank, tx)
    assert res.err is None
    assert res.fee == 5000
    assert res.logs == [f"Program {SYS} invoke [1]", f"Program {SYS} success"]
    assert res.account_keys == [alice.pubkey(), bob, SYSTEM_PROGRAM_ID]
    assert res.pre_balances == [10 * SOL, 0, 1]
    assert res.post_balances == [9 * SOL - 5000, SOL, 1]
    assert set(res.changed_accounts) == {alice.pubkey(), bob}
    assert res.signature == tx.signatures[0]
    assert bank.get_account(bob) == Account(SOL, b"", SYSTEM_PROGRAM_ID)
    # the fee is burnt: the ledger shrinks by exactly the fee
    assert bank.total_lamports() == total - 5000
    assert res.compute_units_consumed == 150


def test_legacy_transaction_is_accepted(bank: Bank, alice: Keypair) -> None:
    bob = Pubkey.new_unique()
    ix = transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=SOL))
    legacy = Transaction.new_signed_with_payer([ix], alice.pubkey(), [alice], BLOCKHASH)
    assert run(bank, legacy).err is None
    ix2 = transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=2 * SOL))
    msg = Message.new_with_blockhash([ix2], alice.pubkey(), BLOCKHASH)
    assert run(bank, VersionedTransaction(msg, [alice])).err is None
    assert bank.get_account(bob).lamports == 3 * SOL  # type: ignore[union-attr]


def test_insufficient_lamports_fails_with_system_error_1_and_only_fee_charged(
    bank: Bank, alice: Keypair
) -> None:
    bob = Pubkey.new_unique()
    tx = v0(
        alice,
        [
            transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=SOL)),
            transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=100 * SOL)),
        ],
    )
    res = run(bank, tx)
    assert res.err == {"InstructionError": [1, {"Custom": 1}]}
    assert res.logs[-3:] == [
        f"Program {SYS} invoke [1]",
        f"Transfer: insufficient lamports {9 * SOL - 5000}, need {100 * SOL}",
        f"Program {SYS} failed: custom program error: 0x1",
    ]
    # the first (successful) transfer is rolled back too; only the fee stays
    assert bank.get_account(bob) is None
    assert bank.get_account(alice.pubkey()).lamports == 10 * SOL - 5000  # type: ignore[union-attr]
    assert res.post_balances == [10 * SOL - 5000, 0, 1]
    assert res.changed_accounts == [alice.pubkey()]
    assert bank.has_processed(res.signature)


def test_transfer_from_non_signer_is_missing_signature(bank: Bank, alice: Keypair) -> None:
    carol = Keypair()
    bank.airdrop(carol.pubkey(), SOL)
    ix = transfer(TransferParams(from_pubkey=carol.pubkey(), to_pubkey=alice.pubkey(), lamports=1))
    # strip the signer flag so only alice signs
    ix = Instruction(
        ix.program_id, ix.data, [AccountMeta(carol.pubkey(), False, True), ix.accounts[1]]
    )
    res = run(bank, v0(alice, [ix]))
    assert res.err == {"InstructionError": [0, "MissingRequiredSignature"]}
    assert f"Transfer: `from` account {carol.pubkey()} must sign" in res.logs


def test_create_account_and_already_in_use(bank: Bank, alice: Keypair) -> None:
    new = Keypair()
    owner = Pubkey.new_unique()
    rent = rent_exempt_minimum(100)
    assert rent == (128 + 100) * 6960
    params = CreateAccountParams(
        from_pubkey=alice.pubkey(), to_pubkey=new.pubkey(), lamports=rent, space=100, owner=owner
    )
    res = run(bank, v0(alice, [create_account(params)], new))
    assert res.err is None
    assert res.fee == 10_000  # two signatures
    assert bank.get_account(new.pubkey()) == Account(rent, bytes(100), owner)
    params = CreateAccountParams(
        from_pubkey=alice.pubkey(), to_pubkey=new.pubkey(), lamports=rent + 1, space=1, owner=owner
    )
    again = run(bank, v0(alice, [create_account(params)], new))
    assert again.err == {"InstructionError": [0, {"Custom": 0}]}
    assert (
        f"Create Account: account Address {{ address: {new.pubkey()}, base: None }} already in use"
        in again.logs
    )


def test_new_account_below_rent_minimum_fails_insufficient_funds_for_rent(
    bank: Bank, alice: Keypair
) -> None:
    bob = Pubkey.new_unique()
    tx = v0(
        alice, [transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=1000))]
    )
    res = run(bank, tx)
    assert res.err == {"InsufficientFundsForRent": {"account_index": 1}}
    assert res.logs[-1] == f"Program {SYS} success"  # the instruction itself succeeded
    assert bank.get_account(bob) is None
    ok = v0(
        alice,
        [transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=890_880))],
    )
    assert run(bank, ok).err is None


def test_priority_fee_charged_from_limit_and_price(bank: Bank, alice: Keypair) -> None:
    bob = Pubkey.new_unique()
    ixs = [
        set_compute_unit_limit(300_000),
        set_compute_unit_price(1_001),
        transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=SOL)),
    ]
    res = run(bank, v0(alice, ixs))
    assert res.err is None
    # ceil(1,001 µlamports * 300,000 / 10^6) = ceil(300.3) = 301
    assert res.fee == 5000 + 301
    assert res.logs[:4] == [
        f"Program {CB} invoke [1]",
        f"Program {CB} success",
        f"Program {CB} invoke [1]",
        f"Program {CB} success",
    ]
    assert res.compute_units_consumed == 450


def test_priority_fee_uses_default_limit_per_instruction(bank: Bank, alice: Keypair) -> None:
    bob = Pubkey.new_unique()
    t = transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=SOL))
    res = run(bank, v0(alice, [set_compute_unit_price(10), t, t]))
    # default limit 2 * 200,000 = 400,000 → 10 * 400,000 / 10^6 = 4
    assert res.fee == 5004


def test_duplicate_or_bad_compute_budget_instruction_rejected(bank: Bank, alice: Keypair) -> None:
    with pytest.raises(TransactionRejected) as e:
        run(bank, v0(alice, [set_compute_unit_price(1), set_compute_unit_price(2)]))
    assert e.value.err == {"DuplicateInstruction": 1}
    bad = Instruction(COMPUTE_BUDGET_PROGRAM_ID, b"\x09", [])
    with pytest.raises(TransactionRejected) as e:
        run(bank, v0(alice, [bad]))
    assert e.value.err == {"InstructionError": [0, "InvalidInstructionData"]}


def test_fee_is_charged_when_an_instruction_fails_and_ledger_conserves_lamports(
    bank: Bank, alice: Keypair
) -> None:
    total = bank.total_lamports()
    burnt = 0
    bob = Pubkey.new_unique()
    for lamports in (SOL, 50 * SOL, 2 * SOL):
        res = run(
            bank,
            v0(
                alice,
                [
                    set_compute_unit_price(5_000),
                    transfer(
                        TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=lamports)
                    ),
                ],
            ),
        )
        burnt += res.fee
        assert sum(res.pre_balances) - sum(res.post_balances) == res.fee
    assert bank.total_lamports() + burnt == total
    assert bank.get_account(bob).lamports == 3 * SOL  # type: ignore[union-attr]


def test_bad_signature_rejected_and_nothing_recorded(bank: Bank, alice: Keypair) -> None:
    bob = Pubkey.new_unique()
    msg = MessageV0.try_compile(
        alice.pubkey(),
        [transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=SOL))],
        [],
        BLOCKHASH,
    )
    forged = VersionedTransaction.populate(msg, [Keypair().sign_message(bytes(msg))])
    with pytest.raises(TransactionRejected) as e:
        run(bank, forged)
    assert e.value.err == "SignatureFailure"
    assert e.value.message == "Transaction signature verification failure"
    assert bank.get_account(alice.pubkey()).lamports == 10 * SOL  # type: ignore[union-attr]
    assert not bank.has_processed(forged.signatures[0])
    # the node may skip verification (sigVerify=false simulation)
    assert run(bank, forged, verify_signatures=False, commit=False).err is None


def test_unknown_or_broke_fee_payer_rejected(bank: Bank) -> None:
    ghost = Keypair()
    ix = transfer(
        TransferParams(from_pubkey=ghost.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=1)
    )
    with pytest.raises(TransactionRejected) as e:
        run(bank, v0(ghost, [ix]))
    assert e.value.err == "AccountNotFound"
    bank.airdrop(ghost.pubkey(), 4_999)
    with pytest.raises(TransactionRejected) as e:
        run(bank, v0(ghost, [ix]))
    assert e.value.err == "InsufficientFundsForFee"
    assert bank.get_account(ghost.pubkey()).lamports == 4_999  # type: ignore[union-attr]


def test_fee_that_would_leave_payer_below_rent_is_rejected(bank: Bank) -> None:
    payer = Keypair()
    bank.airdrop(payer.pubkey(), 890_880 + 4_999)
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=payer.pubkey(), lamports=0))
    with pytest.raises(TransactionRejected) as e:
        run(bank, v0(payer, [ix]))
    assert e.value.err == {"InsufficientFundsForRent": {"account_index": 0}}


def test_already_processed(bank: Bank, alice: Keypair) -> None:
    tx = v0(
        alice,
        [
            transfer(
                TransferParams(from_pubkey=alice.pubkey(), to_pubkey=alice.pubkey(), lamports=1)
            )
        ],
    )
    run(bank, tx)
    with pytest.raises(TransactionRejected) as e:
        run(bank, tx)
    assert e.value.err == "AlreadyProcessed"


def test_simulation_does_not_commit(bank: Bank, alice: Keypair) -> None:
    bob = Pubkey.new_unique()
    tx = v0(
        alice, [transfer(TransferParams(from_pubkey=alice.pubkey(), to_pubkey=bob, lamports=SOL))]
    )
    res = run(bank, tx, commit=False)
    assert res.err is None and res.post_balances[1] == SOL
    assert bank.get_account(bob) is None
    assert not bank.has_processed(tx.signatures[0])
    assert run(bank, tx).err is None  # the same signature can then really land


def test_unknown_program_rejected(bank: Bank, alice: Keypair) -> None:
    ix = Instruction(Pubkey.new_unique(), b"", [AccountMeta(alice.pubkey(), True, True)])
    with pytest.raises(TransactionRejected) as e:
        run(bank, v0(alice, [ix]))
    assert e.value.err == "ProgramAccountNotFound"
    data_acct = Pubkey.new_unique()
    bank.set_account(data_acct, Account(SOL, b"x", Pubkey.new_unique()))
    with pytest.raises(TransactionRejected) as e:
        run(bank, v0(alice, [Instruction(data_acct, b"", [])]))
    assert e.value.err == "InvalidProgramForExecution"


def _register_cpi_probe(bank: Bank) -> Pubkey:
    """A tiny program that CPIs a system transfer out of a PDA it owns."""
    pid = Pubkey.new_unique()

    def probe(ctx: InstructionContext) -> None:
        ctx.consume(1_000)
        ctx.msg("probe")
        src, dst = ctx.key(0), ctx.key(1)
        signer = [src] if ctx.data == b"sign" else []
        ctx.invoke(
            SYSTEM_PROGRAM_ID,
            [AccountMeta(src, True, True), AccountMeta(dst, False, True)],
            bytes([2, 0, 0, 0]) + (7).to_bytes(8, "little"),
            signer,
        )

    bank.register_program(pid, probe)
    return pid


def test_cpi_logs_inner_instructions_and_privilege_escalation(bank: Bank, alice: Keypair) -> None:
    pid = _register_cpi_probe(bank)
    dst = Pubkey.new_unique()
    bank.airdrop(dst, SOL)
    metas = [
        AccountMeta(alice.pubkey(), False, True),
        AccountMeta(dst, False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ]
    res = run(bank, v0(alice, [Instruction(pid, b"sign", metas)]))
    assert res.err is None
    assert res.logs == [
        f"Program {pid} invoke [1]",
        "Program log: probe",
        f"Program {SYS} invoke [2]",
        f"Program {SYS} success",
        f"Program {pid} consumed 1150 of 200000 compute units",
        f"Program {pid} success",
    ]
    keys = res.account_keys
    assert res.inner_instructions == [
        {
            "index": 0,
            "instructions": [
                {
                    "programIdIndex": keys.index(SYSTEM_PROGRAM_ID),
                    "accounts": [keys.index(alice.pubkey()), keys.index(dst)],
                    "data": b58encode(bytes([2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0])),
                    "stackHeight": 2,
                }
            ],
        }
    ]
    # without the PDA-signer grant the callee's signer flag is an escalation
    other = Keypair()
    bank.airdrop(other.pubkey(), SOL)
    res = run(
        bank,
        v0(
            alice,
            [Instruction(pid, b"nosign", [AccountMeta(other.pubkey(), False, True), *metas[1:]])],
        ),
    )
    assert res.err == {"InstructionError": [0, "PrivilegeEscalation"]}
    assert f"{other.pubkey()}'s signer privilege escalated" in res.logs
    assert res.logs[-1] == (
        f"Program {pid} failed: "
        "Cross-program invocation with unauthorized signer or writable account"
    )


def test_compute_budget_exceeded(bank: Bank, alice: Keypair) -> None:
    pid = _register_cpi_probe(bank)
    metas = [
        AccountMeta(alice.pubkey(), True, True),
        AccountMeta(alice.pubkey(), False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ]
    res = run(bank, v0(alice, [set_compute_unit_limit(500), Instruction(pid, b"x", metas)]))
    assert res.err == {"InstructionError": [1, "ComputationalBudgetExceeded"]}
    assert res.logs[-2] == f"Program {pid} consumed 350 of 350 compute units"
    assert res.compute_units_consumed == 500


def test_program_that_mints_lamports_is_caught(bank: Bank, alice: Keypair) -> None:
    pid = Pubkey.new_unique()

    def minter(ctx: InstructionContext) -> None:
        ctx.account(0).lamports += 1

    def failing(ctx: InstructionContext) -> None:
        ctx.account(0).lamports += 5
        raise InstructionError.custom(6000)

    bank.register_program(pid, minter)
    res = run(bank, v0(alice, [Instruction(pid, b"", [AccountMeta(alice.pubkey(), True, True)])]))
    assert res.err == {"InstructionError": [0, "UnbalancedInstruction"]}
    bank.register_program(pid, failing)
    res = run(bank, v0(alice, [Instruction(pid, b"1", [AccountMeta(alice.pubkey(), True, True)])]))
    assert res.err == {"InstructionError": [0, {"Custom": 6000}]}
    assert res.logs[-1] == f"Program {pid} failed: custom program error: 0x1770"
    assert bank.get_account(alice.pubkey()).lamports == 10 * SOL - 10_000  # type: ignore[union-attr]


def test_builtin_accounts_and_persistence_round_trip(bank: Bank, alice: Keypair) -> None:
    prog = bank.get_account(bank.program_id)
    assert prog is not None and prog.executable and prog.lamports == 1_141_440
    assert bank.get_account(SYSTEM_PROGRAM_ID).lamports == 1  # type: ignore[union-attr]
    tx = v0(
        alice,
        [
            transfer(
                TransferParams(from_pubkey=alice.pubkey(), to_pubkey=alice.pubkey(), lamports=1)
            )
        ],
    )
    run(bank, tx)
    again = Bank.from_bytes(bank.to_bytes())
    assert dict(again.accounts()) == dict(bank.accounts())
    assert again.has_processed(tx.signatures[0])
    with pytest.raises(ValueError):
        Bank.from_bytes(b"{}")
    with pytest.raises(ValueError):
        Bank(variant="mainnet")


def test_signature_count_must_match_header(bank: Bank, alice: Keypair) -> None:
    msg = MessageV0.try_compile(
        alice.pubkey(),
        [
            transfer(
                TransferParams(from_pubkey=alice.pubkey(), to_pubkey=alice.pubkey(), lamports=1)
            )
        ],
        [],
        BLOCKHASH,
    )
    bad = VersionedTransaction.populate(msg, [Signature.default(), Signature.default()])
    with pytest.raises(TransactionRejected) as e:
        run(bank, bad)
    assert e.value.err == "SanitizeFailure"
