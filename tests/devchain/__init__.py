"""Tests of the local chain double, plus :class:`Chain`, the small harness the
program tests share: it signs and sends real transactions to a
:class:`~zmartd.devchain.bank.Bank` and decodes what comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from zmartd.chain import instructions as ix
from zmartd.chain.accounts import decode_account_as
from zmartd.chain.events import parse_logs
from zmartd.chain.pda import global_config_pda, market_pda, position_pda
from zmartd.chain.types import GlobalConfig, MarketAccount, UserPosition, VoteRecord
from zmartd.devchain.bank import Bank, ExecutionResult

SOL = 1_000_000_000
T0 = 1_762_790_000
QUESTION = b"bafkreiquestion".ljust(46, b"0")
EVIDENCE = b"bafkreievidence".ljust(46, b"0")

A = TypeVar("A", GlobalConfig, MarketAccount, UserPosition, VoteRecord)


@dataclass
class Chain:
    """A bank plus a clock and funded wallets for the protocol roles."""

    variant: str = "deployed"
    bank: Bank = field(init=False)
    now: int = T0
    slot: int = 100
    admin: Keypair = field(default_factory=Keypair)
    backend: Keypair = field(default_factory=Keypair)
    fee_wallet: Keypair = field(default_factory=Keypair)

    def __post_init__(self) -> None:
        self.bank = Bank(variant=self.variant)
        for kp in (self.admin, self.backend, self.fee_wallet):
            self.bank.airdrop(kp.pubkey(), 1_000 * SOL)

    def wallet(self, lamports: int = 1_000 * SOL) -> Keypair:
        kp = Keypair()
        self.bank.airdrop(kp.pubkey(), lamports)
        return kp

    def send(
        self, instructions: list[Instruction], payer: Keypair, *signers: Keypair
    ) -> ExecutionResult:
        msg = MessageV0.try_compile(payer.pubkey(), instructions, [], Hash.new_unique())
        seen = {payer.pubkey()}
        extra = [s for s in signers if not (s.pubkey() in seen or seen.add(s.pubkey()))]  # type: ignore[func-returns-value]
        tx = VersionedTransaction(msg, [payer, *extra])
        res = self.bank.execute(tx, slot=self.slot, unix_timestamp=self.now)
        self.slot += 1
        return res

    def ok(self, instruction: Instruction, payer: Keypair, *signers: Keypair) -> ExecutionResult:
        res = self.send([instruction], payer, *signers)
        assert res.err is None, (res.err, res.logs)
        return res

    def fails(self, instruction: Instruction, payer: Keypair, *signers: Keypair) -> ExecutionResult:
        res = self.send([instruction], payer, *signers)
        assert res.err is not None, res.logs
        return res

    # -- reading state -------------------------------------------------------
    def lamports(self, key: Pubkey) -> int:
        acct = self.bank.get_account(key)
        return 0 if acct is None else acct.lamports

    def decode(self, cls: type[A], key: Pubkey) -> A:
        acct = self.bank.get_account(key)
        assert acct is not None, f"{key} does not exist"
        return decode_account_as(cls, acct.data)

    def config(self) -> GlobalConfig:
        return self.decode(GlobalConfig, global_config_pda()[0])

    def market(self, market_id: bytes) -> MarketAccount:
        return self.decode(MarketAccount, market_pda(market_id)[0])

    def position(self, market_id: bytes, user: Pubkey) -> UserPosition:
        return self.decode(UserPosition, position_pda(market_pda(market_id)[0], user)[0])

    # -- common setup --------------------------------------------------------
    def init_config(self) -> ExecutionResult:
        return self.ok(
            ix.initialize_global_config(
                admin=self.admin.pubkey(),
                backend_authority=self.backend.pubkey(),
                protocol_fee_wallet=self.fee_wallet.pubkey(),
            ),
            self.admin,
        )

    def create(
        self,
        creator: Keypair,
        *,
        b: int = 100 * SOL,
        liquidity: int = SOL // 10,
        market_id: bytes | None = None,
    ) -> bytes:
        mid = market_id if market_id is not None else Pubkey.new_unique().__bytes__()
        self.ok(
            ix.create_market(
                creator=creator.pubkey(),
                market_id=mid,
                b_parameter=b,
                initial_liquidity=liquidity,
                ipfs_question_hash=QUESTION,
            ),
            creator,
        )
        return mid

    def approve(self, market_id: bytes, likes: int = 8, dislikes: int = 2) -> None:
        self.ok(
            ix.aggregate_proposal_votes(
                backend_authority=self.backend.pubkey(),
                market_id=market_id,
                final_likes=likes,
                final_dislikes=dislikes,
            ),
            self.backend,
        )
        self.ok(ix.approve_proposal(admin=self.admin.pubkey(), market_id=market_id), self.admin)

    def activate(self, market_id: bytes) -> None:
        self.ok(ix.activate_market(authority=self.admin.pubkey(), market_id=market_id), self.admin)

    def active_market(self, creator: Keypair, **kw: Any) -> bytes:
        mid = self.create(creator, **kw)
        self.approve(mid)
        self.activate(mid)
        self.now += 10
        return mid

    def buy(self, user: Keypair, market_id: bytes, outcome: bool, target: int) -> Instruction:
        return ix.buy_shares(
            user=user.pubkey(),
            market_id=market_id,
            outcome=outcome,
            target_cost=target,
            protocol_fee_wallet=self.fee_wallet.pubkey(),
        )

    def resolve(self, resolver: Keypair, market_id: bytes, outcome: bool = True) -> None:
        self.ok(
            ix.resolve_market(
                resolver=resolver.pubkey(),
                market_id=market_id,
                proposed_outcome=outcome,
                ipfs_evidence_hash=EVIDENCE,
            ),
            resolver,
        )

    def finalize(
        self, market_id: bytes, agree: int | None = None, disagree: int | None = None
    ) -> ExecutionResult:
        return self.ok(
            ix.finalize_market(
                backend_authority=self.backend.pubkey(),
                market_id=market_id,
                dispute_agree=agree,
                dispute_disagree=disagree,
            ),
            self.backend,
        )


def custom_code(res: ExecutionResult) -> int | str:
    """The failing instruction's custom code (or the runtime error name)."""
    assert isinstance(res.err, dict) and "InstructionError" in res.err, res.err
    inner = res.err["InstructionError"][1]
    return int(inner["Custom"]) if isinstance(inner, dict) else str(inner)


def events(res: ExecutionResult) -> list[Any]:
    return [e.event for e in parse_logs(res.logs).events]
