"""A whole market lifecycle purely over JSON-RPC, with transactions built by
the chain codec (``zmartd.chain.instructions``) and signed by test keypairs:

initialize config -> create (propose) -> proposal votes -> aggregate ->
approve -> activate -> buy/sell both outcomes -> resolve -> dispute ->
dispute votes -> aggregate -> finalize -> claim -> withdraw liquidity.

After every step: each touched account's bytes equal the codec's encoding of
the predicted struct, the transaction conserves lamports (pre - post = fee)
and its post balances are what ``getMultipleAccounts`` reads back, and the
one event in its logs decodes to the predicted value.  The trade numbers are
pinned to the documented devnet lifecycle (docs/chain.md §10: 1 SOL YES ->
1,835,823,062 shares for 999,928,380; 0.5 SOL NO -> 916,481,020 for
499,942,740; claim 185,350,052 + 27,270,384 resolver fees; creator withdraws
1,246,335,108), which were established independently of this code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.devchain.conftest import SOL, signed
from zmartd.chain import instructions as ix
from zmartd.chain import types as t
from zmartd.chain.accounts import decode_account, encode_account
from zmartd.chain.pda import global_config_pda, market_pda, position_pda, vote_record_pda
from zmartd.chain.quoter import FeeConfig, MarketMath, quote_buy, quote_sell
from zmartd.chain.rpc import RpcClient
from zmartd.chain.transactions import DecodedTransaction, decode_transaction
from zmartd.devchain.actor import Devchain

ZERO = Pubkey.default()
MARKET_RENT = 4_287_360
POSITION_RENT = 2_157_600
VOTE_RENT = 1_468_560
CONFIG_RENT = 2_324_640
DISPUTE_PERIOD = 259_200


class Ledger:
    """Sends one instruction per transaction and checks what came back."""

    def __init__(self, chain: Devchain, rpc: RpcClient) -> None:
        self.chain = chain
        self.rpc = rpc
        self.pid = chain.node.bank.program_id
        self.sent: list[DecodedTransaction] = []

    async def fund(self, lamports: int = 100 * SOL) -> Keypair:
        kp = Keypair()
        await self.rpc.request("zmart_airdrop", [str(kp.pubkey()), lamports])
        return kp

    async def warp(self, seconds: int) -> None:
        await self.rpc.request("zmart_warpClock", [seconds])

    async def send(
        self, payer: Keypair, instruction: Instruction, *, fails: Any = None
    ) -> DecodedTransaction:
        blockhash = (await self.rpc.get_latest_blockhash("processed")).blockhash
        tx = signed(payer, [instruction], blockhash)
        sig = await self.rpc.send_transaction(tx, skip_preflight=fails is not None)
        await self.rpc.request("zmart_advanceSlots", [1])
        doc = await self.rpc.get_transaction(sig, commitment="confirmed")
        assert doc is not None
        decoded = decode_transaction(doc, program_id=self.pid)
        assert decoded.problems == ()
        self.sent.append(decoded)
        meta = doc["meta"]
        # no lamport created or lost: what left the accounts is exactly the fee
        assert sum(meta["preBalances"]) - sum(meta["postBalances"]) == meta["fee"] == 5000
        keys = decoded.account_keys
        accounts = await self.rpc.get_multiple_accounts(list(keys), commitment="confirmed")
        for key, account, post in zip(keys, accounts, meta["postBalances"], strict=True):
            assert (account.lamports if account else 0) == post, key
        if fails is None:
            assert decoded.err is None, (decoded.err, doc["meta"]["logMessages"])
            assert len(decoded.events) == 1
        else:
            assert decoded.err == fails, decoded.err
            assert decoded.events == ()
        return decoded

    async def data(self, key: Pubkey) -> bytes:
        account = await self.rpc.get_account_info(key, commitment="confirmed")
        assert account is not None, key
        assert account.owner == self.pid
        return bytes(account.data)

    async def expect(self, key: Pubkey, predicted: Any) -> None:
        """The account's bytes are exactly the codec's encoding of ``predicted``."""
        assert await self.data(key) == encode_account(predicted)

    async def lamports(self, key: Pubkey) -> int:
        account = await self.rpc.get_account_info(key, commitment="confirmed")
        return account.lamports if account else 0


def event(tx: DecodedTransaction) -> Any:
    return tx.events[0].event


def at(tx: DecodedTransaction) -> int:
    """The transaction's block time (every confirmed devchain transaction has one)."""
    assert tx.block_time is not None, tx.signature
    return tx.block_time


@pytest.mark.parametrize("variant", ["deployed", "patched"])
async def test_full_lifecycle_over_json_rpc(serve: Any, variant: str) -> None:
    chain: Devchain = await serve(program_variant=variant)
    async with RpcClient([chain.rpc_url], commitment="confirmed") as rpc:
        led = Ledger(chain, rpc)
        pid = led.pid
        admin = await led.fund()  # admin and backend authority
        treasury = await led.fund(SOL)
        creator, alice, bob, carol, dave, erin = [await led.fund() for _ in range(6)]
        config_key, config_bump = global_config_pda(pid)

        # -- initialize_global_config
        tx = await led.send(
            admin,
            ix.initialize_global_config(
                admin=admin.pubkey(),
                backend_authority=admin.pubkey(),
                protocol_fee_wallet=treasury.pubkey(),
                program_id=pid,
            ),
        )
        now = at(tx)
        config = t.GlobalConfig(
            admin=admin.pubkey(),
            backend_authority=admin.pubkey(),
            protocol_fee_wallet=treasury.pubkey(),
            protocol_fee_bps=300,
            resolver_reward_bps=200,
            liquidity_provider_fee_bps=500,
            proposal_approval_threshold=7000,
            dispute_success_threshold=6000,
            min_resolution_delay=86_400,
            dispute_period=DISPUTE_PERIOD,
            min_resolver_reputation=8000,
            is_paused=False,
            reserved=bytes(64),
            bump=config_bump,
        )
        await led.expect(config_key, config)
        assert await led.lamports(config_key) == CONFIG_RENT
        assert event(tx) == t.GlobalConfigInitialized(admin.pubkey(), admin.pubkey(), 300, now)

        # -- create_market (proposed)
        market_id = bytes(range(32))
        market_key, market_bump = market_pda(market_id, pid)
        question = b"QmQuestion".ljust(46, b"0")
        tx = await led.send(
            creator,
            ix.create_market(
                creator=creator.pubkey(),
                market_id=market_id,
                b_parameter=100 * SOL,
                initial_liquidity=SOL // 10,
                ipfs_question_hash=question,
                program_id=pid,
            ),
        )
        market = t.MarketAccount(
            market_id=market_id,
            creator=creator.pubkey(),
            state=t.MarketState.PROPOSED,
            b_parameter=100 * SOL,
            initial_liquidity=SOL // 10,
            current_liquidity=SOL // 10,
            shares_yes=100 * SOL // 1000,
            shares_no=100 * SOL // 1000,
            total_volume=0,
            created_at=at(tx),
            approved_at=0,
            activated_at=0,
            resolution_proposed_at=0,
            resolved_at=0,
            finalized_at=0,
            resolver=ZERO,
            proposed_outcome=None,
            final_outcome=None,
            ipfs_evidence_hash=question,
            dispute_initiated_at=0,
            dispute_initiator=ZERO,
            accumulated_protocol_fees=0,
            accumulated_resolver_fees=0,
            accumulated_lp_fees=0,
            proposal_likes=0,
            proposal_dislikes=0,
            proposal_total_votes=0,
            resolution_agree=0,
            resolution_disagree=0,
            resolution_total_votes=0,
            dispute_agree=0,
            dispute_disagree=0,
            dispute_total_votes=0,
            was_disputed=False,
            is_cancelled=False,
            cancelled_at=None,
            is_locked=False,
            reserved=bytes(119),
            bump=market_bump,
        )
        await led.expect(market_key, market)
        # "patched" (NOT the deployed program) really deposits initial_liquidity
        deposit = SOL // 10 if variant == "patched" else 0
        assert await led.lamports(market_key) == MARKET_RENT + deposit
        assert tx.balances[creator.pubkey()].delta == -(MARKET_RENT + deposit + 5000)
        assert event(tx) == t.MarketCreated(
            market_id, creator.pubkey(), 100 * SOL, 0, market.created_at
        )

        # -- proposal votes (VoteRecords only), aggregate, approve, activate
        for voter, vote in ((alice, True), (bob, True), (carol, False)):
            tx = await led.send(
                voter,
                ix.submit_proposal_vote(
                    user=voter.pubkey(), market_id=market_id, vote=vote, program_id=pid
                ),
            )
            key, bump = vote_record_pda(market_key, voter.pubkey(), 0, pid)
            await led.expect(
                key,
                t.VoteRecord(market_key, voter.pubkey(), t.VoteType.PROPOSAL, vote, at(tx), bump),
            )
            assert await led.lamports(key) == VOTE_RENT
            assert event(tx) == t.ProposalVoteSubmitted(market_id, voter.pubkey(), vote, at(tx))
        await led.expect(market_key, market)  # votes do not touch the market
        # a second vote by the same wallet fails in account creation (System 0x0)
        await led.send(
            alice,
            ix.submit_proposal_vote(
                user=alice.pubkey(), market_id=market_id, vote=False, program_id=pid
            ),
            fails={"InstructionError": [0, {"Custom": 0}]},
        )
        tx = await led.send(
            admin,
            ix.aggregate_proposal_votes(
                backend_authority=admin.pubkey(),
                market_id=market_id,
                final_likes=8,
                final_dislikes=2,
                program_id=pid,
            ),
        )
        market = dataclasses.replace(
            market, proposal_likes=8, proposal_dislikes=2, proposal_total_votes=10
        )
        await led.expect(market_key, market)
        assert event(tx) == t.ProposalAggregated(market_id, 8, 2, 80, True, at(tx))
        tx = await led.send(
            admin, ix.approve_proposal(admin=admin.pubkey(), market_id=market_id, program_id=pid)
        )
        market = dataclasses.replace(market, state=t.MarketState.APPROVED, approved_at=at(tx))
        await led.expect(market_key, market)
        assert event(tx) == t.ProposalApproved(market_id, admin.pubkey(), at(tx))
        tx = await led.send(
            creator,
            ix.activate_market(authority=creator.pubkey(), market_id=market_id, program_id=pid),
        )
        market = dataclasses.replace(market, state=t.MarketState.ACTIVE, activated_at=at(tx))
        await led.expect(market_key, market)
        assert event(tx) == t.MarketActivated(market_id, creator.pubkey(), SOL // 10, at(tx))

        # -- buy both outcomes (the documented devnet trades)
        fees = FeeConfig.from_config(config)
        positions: dict[Pubkey, t.UserPosition] = {}
        for user, outcome, budget, shares, cost in (
            (alice, True, SOL, 1_835_823_062, 999_928_380),
            (bob, False, SOL // 2, 916_481_020, 499_942_740),
        ):
            quote = quote_buy(MarketMath.from_account(market), fees, outcome, budget)
            assert (quote.shares, quote.total_cost) == (shares, cost)
            treasury_before = await led.lamports(treasury.pubkey())
            market_before = await led.lamports(market_key)
            tx = await led.send(
                user,
                ix.buy_shares(
                    user=user.pubkey(),
                    market_id=market_id,
                    outcome=outcome,
                    target_cost=budget,
                    protocol_fee_wallet=treasury.pubkey(),
                    program_id=pid,
                ),
            )
            market = dataclasses.replace(
                market,
                shares_yes=quote.new_shares_yes,
                shares_no=quote.new_shares_no,
                total_volume=market.total_volume + quote.total_volume_delta,
                current_liquidity=market.current_liquidity + quote.current_liquidity_delta,
                accumulated_resolver_fees=market.accumulated_resolver_fees + quote.fees.resolver,
                accumulated_lp_fees=market.accumulated_lp_fees + quote.fees.lp,
            )
            await led.expect(market_key, market)
            pos_key, pos_bump = position_pda(market_key, user.pubkey(), pid)
            position = t.UserPosition(
                market=market_key,
                user=user.pubkey(),
                shares_yes=shares if outcome else 0,
                shares_no=0 if outcome else shares,
                total_invested=cost,
                trades_count=1,
                last_trade_at=at(tx),
                has_claimed=False,
                claimed_amount=0,
                reserved=bytes(64),
                bump=pos_bump,
            )
            positions[user.pubkey()] = position
            await led.expect(pos_key, position)
            assert await led.lamports(pos_key) == POSITION_RENT
            assert await led.lamports(treasury.pubkey()) - treasury_before == quote.fees.protocol
            assert await led.lamports(market_key) - market_before == quote.lamports_to_market
            assert tx.balances[user.pubkey()].delta == -(cost + POSITION_RENT + 5000)
            assert event(tx) == t.SharesBought(
                market_id, user.pubkey(), outcome, shares, cost, quote.new_price_yes, at(tx)
            )
        assert await led.lamports(market_key) == 1_463_252_904 + deposit
        assert market.current_liquidity == 195_446_344

        # -- sell both outcomes: the deployed program always reverts (docs/chain.md §11.1)
        for user, outcome, amount in ((alice, True, 200_000_000), (bob, False, 100_000_000)):
            sell = ix.sell_shares(
                user=user.pubkey(),
                market_id=market_id,
                outcome=outcome,
                shares_to_sell=amount,
                min_proceeds=0,
                protocol_fee_wallet=treasury.pubkey(),
                program_id=pid,
            )
            pos_key, _ = position_pda(market_key, user.pubkey(), pid)
            if variant == "deployed":
                await led.send(user, sell, fails={"InstructionError": [0, "InvalidArgument"]})
                await led.expect(market_key, market)
                await led.expect(pos_key, positions[user.pubkey()])
                continue
            position = positions[user.pubkey()]
            held = position.shares_yes if outcome else position.shares_no
            q = quote_sell(MarketMath.from_account(market), fees, outcome, amount, held, 0)
            tx = await led.send(user, sell)
            market = dataclasses.replace(
                market,
                shares_yes=q.new_shares_yes,
                shares_no=q.new_shares_no,
                total_volume=market.total_volume + q.total_volume_delta,
                current_liquidity=q.new_current_liquidity,
                accumulated_resolver_fees=market.accumulated_resolver_fees + q.fees.resolver,
                accumulated_lp_fees=market.accumulated_lp_fees + q.fees.lp,
            )
            await led.expect(market_key, market)
            position = dataclasses.replace(
                position,
                shares_yes=held - amount if outcome else position.shares_yes,
                shares_no=position.shares_no if outcome else held - amount,
                trades_count=position.trades_count + 1,
                last_trade_at=at(tx),
            )
            positions[user.pubkey()] = position
            await led.expect(pos_key, position)
            assert tx.balances[user.pubkey()].delta == q.net_proceeds - 5000
            assert event(tx) == t.SharesSold(
                market_id, user.pubkey(), outcome, amount, q.net_proceeds, q.new_price_yes, at(tx)
            )

        # -- resolve (anyone; the signer becomes the resolver), dispute, dispute votes
        await led.warp(1)  # strictly after activation
        evidence = b"QmEvidence".ljust(46, b"0")
        tx = await led.send(
            dave,
            ix.resolve_market(
                resolver=dave.pubkey(),
                market_id=market_id,
                proposed_outcome=True,
                ipfs_evidence_hash=evidence,
                program_id=pid,
            ),
        )
        market = dataclasses.replace(
            market,
            state=t.MarketState.RESOLVING,
            proposed_outcome=True,
            resolver=dave.pubkey(),
            ipfs_evidence_hash=evidence,
            resolution_proposed_at=at(tx),
        )
        await led.expect(market_key, market)
        assert event(tx) == t.MarketResolved(market_id, dave.pubkey(), True, evidence, at(tx))
        resolved_at = at(tx)
        await led.warp(60)
        tx = await led.send(
            erin, ix.initiate_dispute(initiator=erin.pubkey(), market_id=market_id, program_id=pid)
        )
        market = dataclasses.replace(
            market,
            state=t.MarketState.DISPUTED,
            dispute_initiator=erin.pubkey(),
            dispute_initiated_at=at(tx),
        )
        await led.expect(market_key, market)
        assert event(tx) == t.DisputeInitiated(market_id, erin.pubkey(), True, at(tx))
        for voter, vote in ((alice, True), (bob, True), (carol, False)):
            tx = await led.send(
                voter,
                ix.submit_dispute_vote(
                    user=voter.pubkey(), market_id=market_id, vote=vote, program_id=pid
                ),
            )
            key, bump = vote_record_pda(market_key, voter.pubkey(), 1, pid)
            await led.expect(
                key,
                t.VoteRecord(market_key, voter.pubkey(), t.VoteType.DISPUTE, vote, at(tx), bump),
            )
            assert event(tx) == t.DisputeVoteSubmitted(market_id, voter.pubkey(), vote, at(tx))
        # -- aggregate: 2 of 3 agree (66 % >= 60 %): back to Resolving, outcome NOT flipped
        tx = await led.send(
            admin,
            ix.aggregate_dispute_votes(
                backend_authority=admin.pubkey(),
                market_id=market_id,
                final_agrees=2,
                final_disagrees=1,
                program_id=pid,
            ),
        )
        market = dataclasses.replace(
            market,
            state=t.MarketState.RESOLVING,
            dispute_agree=2,
            dispute_disagree=1,
            dispute_total_votes=3,
            was_disputed=True,
        )
        await led.expect(market_key, market)
        assert event(tx) == t.DisputeAggregated(market_id, 2, 1, 66, True, at(tx))

        # -- finalize: too early inside the window, then after crossing it with the clock
        finalize = ix.finalize_market(
            backend_authority=admin.pubkey(), market_id=market_id, program_id=pid
        )
        await led.send(admin, finalize, fails={"InstructionError": [0, {"Custom": 6027}]})
        now = chain.node.unix_timestamp
        await led.warp(resolved_at + DISPUTE_PERIOD - now)
        tx = await led.send(
            admin,
            ix.finalize_market(
                backend_authority=admin.pubkey(),
                market_id=market_id,
                dispute_agree=None,
                dispute_disagree=None,
                program_id=pid,
            ),
        )
        assert at(tx) == resolved_at + DISPUTE_PERIOD
        market = dataclasses.replace(
            market,
            state=t.MarketState.FINALIZED,
            final_outcome=True,
            was_disputed=False,
            finalized_at=at(tx),
        )
        await led.expect(market_key, market)
        assert event(tx) == t.MarketFinalized(market_id, True, False, at(tx))

        # -- claim: the YES winner gets a pro-rata slice; the resolver its fees
        winner = positions[alice.pubkey()]
        winnings = winner.shares_yes * market.current_liquidity // market.shares_yes
        resolver_fees = market.accumulated_resolver_fees
        if variant == "deployed":
            assert (winnings, resolver_fees) == (185_350_052, 27_270_384)
        dave_before = await led.lamports(dave.pubkey())
        tx = await led.send(
            alice,
            ix.claim_winnings(
                user=alice.pubkey(), market_id=market_id, resolver=dave.pubkey(), program_id=pid
            ),
        )
        market = dataclasses.replace(market, accumulated_resolver_fees=0)
        await led.expect(market_key, market)
        pos_key, _ = position_pda(market_key, alice.pubkey(), pid)
        await led.expect(
            pos_key, dataclasses.replace(winner, has_claimed=True, claimed_amount=winnings)
        )
        assert tx.balances[alice.pubkey()].delta == winnings - 5000
        assert await led.lamports(dave.pubkey()) - dave_before == resolver_fees
        assert event(tx) == t.WinningsClaimed(market_key, alice.pubkey(), True, winnings, at(tx))
        # the loser has nothing to claim
        await led.send(
            bob,
            ix.claim_winnings(
                user=bob.pubkey(), market_id=market_id, resolver=dave.pubkey(), program_id=pid
            ),
            fails={"InstructionError": [0, {"Custom": 6023}]},
        )

        # -- withdraw liquidity: the creator sweeps everything above rent + 10,000
        market_lamports = await led.lamports(market_key)
        tx = await led.send(
            creator,
            ix.withdraw_liquidity(creator=creator.pubkey(), market_id=market_id, program_id=pid),
        )
        amount = market_lamports - (MARKET_RENT + 10_000)
        if variant == "deployed":
            assert amount == 1_246_335_108
        market = dataclasses.replace(market, current_liquidity=0, accumulated_lp_fees=0)
        await led.expect(market_key, market)
        assert await led.lamports(market_key) == MARKET_RENT + 10_000
        assert tx.balances[creator.pubkey()].delta == amount - 5000
        assert event(tx) == t.LiquidityWithdrawn(market_id, creator.pubkey(), amount, at(tx))
        # the whole history of the market is there, newest first, and decodes
        history = await rpc.get_signatures_for_address(market_key)
        mine = [d.signature for d in reversed(led.sent) if market_key in d.account_keys]
        assert [h.signature for h in history] == mine and len(mine) == 23
        decoded = decode_account(await led.data(market_key))
        assert decoded == market
