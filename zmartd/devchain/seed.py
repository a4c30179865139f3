"""``--seed demo``: a chain with something to look at.

A new user of the Quickstart should see real data at once: a global config,
markets in every state, users with positions, votes and a little price
history.  Everything is made of real, signed zmart-core transactions
executed by the node (so the history, the events in the logs and the
indexer's backfill are as real as the accounts), starting five days in the
past and catching up with the wall clock at the end, so dispute windows
and price histories have a plausible shape.

Keys are deterministic (:func:`demo_keypair`), so the demo wallets can be
used from a wallet or a script: ``Keypair.from_seed(sha256(b"zmartd demo
<name>"))``.  The admin and backend authority is the daemon's
``chain.keypair`` when one is configured (zmartd can then aggregate and
finalize the demo markets), else the demo's own ``admin`` key.

Seeding takes well under a second; it raises :class:`SeedError` if any
step fails, since a half-seeded demo would mislead more than help.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from zmartd.chain import instructions as ix
from zmartd.chain.pda import global_config_pda, market_pda
from zmartd.chain.types import MarketState
from zmartd.devchain.node import Node, Rejected
from zmartd.model.demo import demo_keypair

__all__ = [
    "DEMO_MARKETS",
    "DEMO_WALLETS",
    "DemoMarket",
    "DemoSeed",
    "SeedError",
    "demo_keypair",
    "seed_demo",
]

SOL = 1_000_000_000
HOUR = 3600
DAY = 24 * HOUR
#: b = 100 SOL: the smallest b for which the deployed math trades at all.
B_PARAMETER = 100 * SOL
INITIAL_LIQUIDITY = SOL // 10
DEMO_WALLETS = ("admin", "treasury", "alice", "bob", "carol", "dave", "erin", "frank")
#: community-pick's voters: enough votes (10 likes, 2 dislikes) for the aggregator to
#: approve it on its first cycle -- the Quickstart shows zmartd's write side at work.
COMMUNITY_VOTERS = tuple(f"voter{i:02d}" for i in range(1, 13))
COMMUNITY_LIKES = 10

#: slug -> (question, final state)
DEMO_MARKETS: dict[str, tuple[str, MarketState]] = {
    "sol-200": ("Will SOL close above $200 on Dec 31?", MarketState.ACTIVE),
    "eth-etf": ("Will an ETH staking ETF launch this year?", MarketState.ACTIVE),
    "rain-paris": ("Will it rain in Paris tomorrow?", MarketState.RESOLVING),
    "world-cup": ("Will Brazil reach the World Cup final?", MarketState.DISPUTED),
    "btc-100k": ("Did BTC trade above $100k last month?", MarketState.FINALIZED),
    "mars-2030": ("Will humans land on Mars by 2030?", MarketState.APPROVED),
    "new-lang": ("Will the team ship the Rust rewrite this quarter?", MarketState.PROPOSED),
    "community-pick": (
        "Will the community pick ZMART for the next hackathon?",
        MarketState.PROPOSED,
    ),
    "dup-market": ("Duplicate of sol-200 (cancelled by the admin)", MarketState.CANCELLED),
}


class SeedError(RuntimeError):
    """A demo seeding step failed (the program or the node rejected it)."""


def _question_hash(slug: str) -> bytes:
    """A 46-byte ASCII CID-like value, right-padded with ``0`` like the original clients."""
    text = "Qm" + hashlib.sha256(slug.encode()).hexdigest()[:30]
    return text.encode().ljust(46, b"0")


@dataclass
class DemoMarket:
    slug: str
    question: str
    market_id: bytes
    address: Pubkey
    state: MarketState
    creator: str


@dataclass
class DemoSeed:
    admin: Keypair
    backend: Keypair
    protocol_fee_wallet: Pubkey
    global_config: Pubkey
    wallets: dict[str, Keypair] = field(default_factory=dict)
    markets: dict[str, DemoMarket] = field(default_factory=dict)


class _Seeder:
    def __init__(self, node: Node, authority: Keypair | None) -> None:
        self.node = node
        self.program_id = node.bank.program_id
        self.wallets = {name: demo_keypair(name) for name in DEMO_WALLETS}
        self.admin = authority or self.wallets["admin"]
        self.treasury = self.wallets["treasury"].pubkey()

    def send(self, payer: Keypair, instruction: Instruction, what: str) -> None:
        node = self.node
        message = MessageV0.try_compile(payer.pubkey(), [instruction], [], node.blockhash)
        tx = VersionedTransaction(message, [payer])
        try:
            record = node.submit(tx, verify=False)
        except Rejected as exc:
            raise SeedError(f"demo seed: {what} was rejected: {exc.message}") from None
        if record.err is not None:
            raise SeedError(f"demo seed: {what} failed: {record.err}; logs: {record.logs[-3:]}")
        node.advance_slot()  # one transaction per slot keeps signatures unique

    def at(self, when: int) -> None:
        self.node.set_clock(when)

    def run(self, start: int) -> DemoSeed:
        node, pid = self.node, self.program_id
        node.start_clock_at(start)
        for name, kp in self.wallets.items():
            node.faucet_transfer(kp.pubkey(), 1000 * SOL if name != "treasury" else SOL)
        if self.admin.pubkey() not in {kp.pubkey() for kp in self.wallets.values()}:
            node.faucet_transfer(self.admin.pubkey(), 1000 * SOL)
        node.advance_slot()
        admin = self.admin
        w = self.wallets
        self.send(
            admin,
            ix.initialize_global_config(
                admin=admin.pubkey(),
                backend_authority=admin.pubkey(),
                protocol_fee_wallet=self.treasury,
                program_id=pid,
            ),
            "initialize_global_config",
        )
        seed = DemoSeed(
            admin=admin,
            backend=admin,
            protocol_fee_wallet=self.treasury,
            global_config=global_config_pda(pid)[0],
            wallets=dict(w),
        )
        creators = {
            "sol-200": "alice",
            "eth-etf": "bob",
            "rain-paris": "alice",
            "world-cup": "bob",
            "btc-100k": "alice",
            "mars-2030": "carol",
            "new-lang": "dave",
            "community-pick": "alice",
            "dup-market": "erin",
        }
        t = start + 10 * 60
        for slug, (question, state) in DEMO_MARKETS.items():
            market_id = hashlib.sha256(f"zmartd demo market {slug}".encode()).digest()
            creator = creators[slug]
            self.at(t)
            t += 5 * 60
            self.send(
                w[creator],
                ix.create_market(
                    creator=w[creator].pubkey(),
                    market_id=market_id,
                    b_parameter=B_PARAMETER,
                    initial_liquidity=INITIAL_LIQUIDITY,
                    ipfs_question_hash=_question_hash(slug),
                    program_id=pid,
                ),
                f"create_market {slug}",
            )
            seed.markets[slug] = DemoMarket(
                slug, question, market_id, market_pda(market_id, pid)[0], state, creator
            )
            if state is MarketState.CANCELLED:
                self.send(
                    admin,
                    ix.cancel_market(admin=admin.pubkey(), market_id=market_id, program_id=pid),
                    f"cancel_market {slug}",
                )
                continue
            if slug == "community-pick":  # voted on chain, left for zmartd to aggregate
                for i, name in enumerate(COMMUNITY_VOTERS):
                    member = demo_keypair(name)
                    node.faucet_transfer(member.pubkey(), SOL)
                    self.send(
                        member,
                        ix.submit_proposal_vote(
                            user=member.pubkey(),
                            market_id=market_id,
                            vote=i < COMMUNITY_LIKES,
                            program_id=pid,
                        ),
                        f"proposal vote {slug}",
                    )
                continue
            likes = ["carol", "dave", "erin"] if state is not MarketState.PROPOSED else ["erin"]
            for voter in likes:
                self.send(
                    w[voter],
                    ix.submit_proposal_vote(
                        user=w[voter].pubkey(), market_id=market_id, vote=True, program_id=pid
                    ),
                    f"proposal vote {slug}",
                )
            self.send(
                w["frank"],
                ix.submit_proposal_vote(
                    user=w["frank"].pubkey(), market_id=market_id, vote=False, program_id=pid
                ),
                f"proposal vote {slug}",
            )
            self.send(
                admin,
                ix.aggregate_proposal_votes(
                    backend_authority=admin.pubkey(),
                    market_id=market_id,
                    final_likes=len(likes),
                    final_dislikes=1,
                    program_id=pid,
                ),
                f"aggregate_proposal_votes {slug}",
            )
            if state is MarketState.PROPOSED:
                continue
            self.send(
                admin,
                ix.approve_proposal(admin=admin.pubkey(), market_id=market_id, program_id=pid),
                f"approve {slug}",
            )
            if state is MarketState.APPROVED:
                continue
            self.send(
                w[creator],
                ix.activate_market(
                    authority=w[creator].pubkey(), market_id=market_id, program_id=pid
                ),
                f"activate {slug}",
            )
        # Day 0-1: trading builds a price history on every active market.
        trades = [
            ("carol", True, 2 * SOL),
            ("dave", False, 1 * SOL),
            ("erin", True, SOL // 2),
            ("frank", True, 3 * SOL),
            ("dave", False, 2 * SOL),
        ]
        active = [
            m
            for m in seed.markets.values()
            if m.state
            in (
                MarketState.ACTIVE,
                MarketState.RESOLVING,
                MarketState.DISPUTED,
                MarketState.FINALIZED,
            )
        ]
        t = start + 2 * HOUR
        for i, (user, outcome, amount) in enumerate(trades):
            for j, market in enumerate(active):
                self.at(t + i * 3 * HOUR + j * 7 * 60)
                # every other market leans the other way
                self.buy(market, user, outcome if j % 2 == 0 else not outcome, amount)
        # btc-100k resolves on day 1 and is finalized after the 72 h window, then claimed.
        btc = seed.markets["btc-100k"]
        self.at(start + DAY)
        self.send(
            w["carol"],
            ix.resolve_market(
                resolver=w["carol"].pubkey(),
                market_id=btc.market_id,
                proposed_outcome=True,
                ipfs_evidence_hash=_question_hash("btc-100k evidence"),
                program_id=pid,
            ),
            "resolve btc-100k",
        )
        # rain-paris resolves shortly after: its 72 h dispute window has passed by the end of
        # the story, so zmartd's market monitor finalizes it on its first cycle (nobody else
        # can: finalize_market is the backend authority's)
        rain = seed.markets["rain-paris"]
        self.at(start + DAY + 10 * 60)
        self.send(
            w["dave"],
            ix.resolve_market(
                resolver=w["dave"].pubkey(),
                market_id=rain.market_id,
                proposed_outcome=False,
                ipfs_evidence_hash=_question_hash("rain evidence"),
                program_id=pid,
            ),
            "resolve rain-paris",
        )
        self.at(start + DAY + 3 * DAY + 60)
        self.send(
            admin,
            ix.finalize_market(
                backend_authority=admin.pubkey(), market_id=btc.market_id, program_id=pid
            ),
            "finalize btc-100k",
        )
        self.send(
            w["carol"],
            ix.claim_winnings(
                user=w["carol"].pubkey(),
                market_id=btc.market_id,
                resolver=w["carol"].pubkey(),
                program_id=pid,
            ),
            "claim btc-100k",
        )
        # Day 4-5: more trading, then one market resolving and one disputed.
        t = start + 4 * DAY + 2 * HOUR
        for i, (user, outcome, amount) in enumerate(trades[:3]):
            for j, slug in enumerate(("sol-200", "eth-etf")):
                self.at(t + i * 2 * HOUR + j * 5 * 60)
                self.buy(seed.markets[slug], user, outcome if j == 0 else not outcome, amount)
        cup = seed.markets["world-cup"]
        self.at(start + 4 * DAY + 12 * HOUR)
        self.send(
            w["erin"],
            ix.resolve_market(
                resolver=w["erin"].pubkey(),
                market_id=cup.market_id,
                proposed_outcome=True,
                ipfs_evidence_hash=_question_hash("cup evidence"),
                program_id=pid,
            ),
            "resolve world-cup",
        )
        self.at(start + 4 * DAY + 14 * HOUR)
        self.send(
            w["frank"],
            ix.initiate_dispute(
                initiator=w["frank"].pubkey(), market_id=cup.market_id, program_id=pid
            ),
            "dispute world-cup",
        )
        for voter, vote in (("carol", True), ("dave", True), ("alice", False)):
            self.send(
                w[voter],
                ix.submit_dispute_vote(
                    user=w[voter].pubkey(), market_id=cup.market_id, vote=vote, program_id=pid
                ),
                "dispute vote world-cup",
            )
        return seed

    def buy(self, market: DemoMarket, user: str, outcome: bool, amount: int) -> None:
        kp = self.wallets[user]
        self.send(
            kp,
            ix.buy_shares(
                user=kp.pubkey(),
                market_id=market.market_id,
                outcome=outcome,
                target_cost=amount,
                protocol_fee_wallet=self.treasury,
                program_id=self.program_id,
            ),
            f"buy {market.slug}",
        )


def seed_demo(
    node: Node, *, authority: Keypair | None = None, start: int | None = None
) -> DemoSeed:
    """Fill a fresh ``node`` with the demo (see the module docstring).
    ``start`` is the unix time the story begins (default: five days and a
    few hours ago); the clock ends at the wall clock's present."""
    now = node.unix_timestamp
    begin = start if start is not None else now - 5 * DAY
    seeder = _Seeder(node, authority)
    seed = seeder.run(begin)
    node.set_clock(max(now, node.unix_timestamp))
    return seed
