"""Decoded transactions + account data → the rows one unit of work writes.

Pure (no I/O), so it is tested without a chain or a database.

Where each kind of row comes from, and why:

* **Trades, votes, events, claims, withdrawals, config changes** come from
  the events of successful transactions (docs/chain.md §5): they are facts about
  one transaction, keyed by ``(signature, instruction index, event index)``.
* **Markets, positions and the global config** come from *account data*
  fetched after the transaction (``getMultipleAccounts`` at ``confirmed``,
  with its context slot): events do not carry every field
  (``current_liquidity``, accumulated fees, the Option fields, tallies), and a
  transaction whose logs were truncated has lost its event anyway.  The row's
  ``slot`` is the context slot of that read, so the storage slot guard keeps
  the newest state whatever order transactions arrive in.  The market's
  ``price_yes`` is recomputed from the account's shares with the chain's own
  integer math (:func:`zmartd.chain.lmsr.price_yes`), which is exactly the
  ``new_price_yes`` the latest trade emitted.
* **Failed transactions** (``meta.err``) produce no effect at all (every sell
  on the deployed program, §11.1); they are recorded for analytics only.

Fees per recipient are not in the events: they are recomputed from the
trade amount with the fee bps in force (§9.6), tracked from
``GlobalConfigInitialized``/``ConfigUpdated`` events in processing order, and
the protocol share is cross-checked against the protocol wallet's balance
change when the transaction carries it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from solders.pubkey import Pubkey

from zmartd.chain import lmsr
from zmartd.chain import types as t
from zmartd.chain.accounts import decode_account
from zmartd.chain.borsh import DecodeError
from zmartd.chain.transactions import DecodedTransaction
from zmartd.storage.chain import EventKey
from zmartd.storage.indexer import (
    ChainEventRow,
    FailedTransaction,
    GlobalConfigState,
)
from zmartd.storage.positions import PositionState
from zmartd.storage.records import MarketChainState
from zmartd.storage.trades import TradeEvent, TradeFee
from zmartd.storage.votes import ChainVote

__all__ = [
    "AccountSnapshot",
    "Effects",
    "FeeBps",
    "build_effects",
    "config_state",
    "event_json",
    "market_state",
    "position_state",
    "touched_accounts",
]

_ZERO = Pubkey.default()
_BPS = 10_000


@dataclass(frozen=True, slots=True)
class FeeBps:
    """Trade fee bps in force (defaults of ``initialize_global_config``, §3.1)."""

    protocol: int = 300
    resolver: int = 200
    lp: int = 500

    @property
    def total(self) -> int:
        return self.protocol + self.resolver + self.lp


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Account data read at one context slot (``None`` = no such account)."""

    slot: int
    accounts: Mapping[Pubkey, bytes | None]


@dataclass
class Effects:
    """Everything one unit of work writes, before exactly-once filtering."""

    #: one entry per transaction: (signature, its exactly-once keys)
    keys: list[tuple[str, list[EventKey]]] = field(default_factory=list)
    events: list[ChainEventRow] = field(default_factory=list)
    trades: list[TradeEvent] = field(default_factory=list)
    fees: list[TradeFee] = field(default_factory=list)
    votes: list[ChainVote] = field(default_factory=list)
    markets: list[MarketChainState] = field(default_factory=list)
    positions: list[PositionState] = field(default_factory=list)
    config: GlobalConfigState | None = None
    failed: list[FailedTransaction] = field(default_factory=list)
    #: (market_id, created at, slot) of MarketCreated events
    creations: list[tuple[str, datetime, int]] = field(default_factory=list)
    #: newest transaction of the unit: (slot, signature, block time)
    newest: tuple[int, str, datetime | None] | None = None
    #: fee bps after this unit (config events applied in order)
    bps: FeeBps = field(default_factory=FeeBps)


def _time(ts: int | None) -> datetime | None:
    return None if not ts else datetime.fromtimestamp(ts, UTC)


def _key(pk: Pubkey) -> str | None:
    return None if pk == _ZERO else str(pk)


def _hash_text(raw: bytes) -> str | None:
    text = raw.rstrip(b"\x00").decode("utf-8", "replace")
    return text or None


#: field names of each event/struct dataclass met so far (dataclasses.fields()
#: per value cost ~4 % of a backfill's CPU)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def event_json(value: Any) -> Any:
    """Event fields as JSON builtins: pubkeys base58, bytes hex, enums int."""
    names = _FIELD_NAMES.get(type(value))
    if names is not None:
        return {name: event_json(getattr(value, name)) for name in names}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
        return event_json(value)
    if isinstance(value, Pubkey):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    return value


# ---------------------------------------------------------------- accounts → rows


def market_state(
    address: Pubkey, m: t.MarketAccount, slot: int, question_hash: str | None = None
) -> MarketChainState:
    """A MarketAccount as the ``markets`` row (``question_hash``: the CID from
    ``create_market``; while no outcome is proposed the account still holds it)."""
    try:
        price = lmsr.price_yes(m.b_parameter, m.shares_yes, m.shares_no)
    except lmsr.QuoteError:  # b below MIN_B (never tradable) or past the math's range
        price = 500_000_000
    evidence = _hash_text(m.ipfs_evidence_hash)
    if question_hash is None and m.proposed_outcome is None and m.state != t.MarketState.CANCELLED:
        question_hash = evidence
    return MarketChainState(
        market_id=m.market_id.hex(),
        address=str(address),
        creator=str(m.creator),
        state=int(m.state),
        b_parameter=m.b_parameter,
        initial_liquidity=m.initial_liquidity,
        current_liquidity=m.current_liquidity,
        shares_yes=m.shares_yes,
        shares_no=m.shares_no,
        total_volume=m.total_volume,
        created_at=_time(m.created_at) or datetime.fromtimestamp(0, UTC),
        slot=slot,
        price_yes=price,
        approved_at=_time(m.approved_at),
        activated_at=_time(m.activated_at),
        resolution_proposed_at=_time(m.resolution_proposed_at),
        resolved_at=_time(m.resolved_at),
        finalized_at=_time(m.finalized_at),
        dispute_initiated_at=_time(m.dispute_initiated_at),
        cancelled_at=_time(m.cancelled_at) if m.cancelled_at is not None else None,
        resolver=_key(m.resolver),
        proposed_outcome=m.proposed_outcome,
        final_outcome=m.final_outcome,
        ipfs_question_hash=question_hash,
        ipfs_evidence_hash=evidence,
        dispute_initiator=_key(m.dispute_initiator),
        accumulated_resolver_fees=m.accumulated_resolver_fees,
        accumulated_lp_fees=m.accumulated_lp_fees,
        proposal_likes=m.proposal_likes,
        proposal_dislikes=m.proposal_dislikes,
        proposal_total_votes=m.proposal_total_votes,
        dispute_agree=m.dispute_agree,
        dispute_disagree=m.dispute_disagree,
        dispute_total_votes=m.dispute_total_votes,
        was_disputed=m.was_disputed,
    )


def position_state(address: Pubkey, p: t.UserPosition, market_id: str, slot: int) -> PositionState:
    return PositionState(
        market_id=market_id,
        wallet=str(p.user),
        address=str(address),
        shares_yes=p.shares_yes,
        shares_no=p.shares_no,
        total_invested=p.total_invested,
        trades_count=p.trades_count,
        last_trade_at=_time(p.last_trade_at) or datetime.fromtimestamp(0, UTC),
        slot=slot,
        has_claimed=p.has_claimed,
        claimed_amount=p.claimed_amount,
    )


def config_state(address: Pubkey, c: t.GlobalConfig, slot: int) -> GlobalConfigState:
    return GlobalConfigState(
        address=str(address),
        admin=str(c.admin),
        backend_authority=str(c.backend_authority),
        protocol_fee_wallet=str(c.protocol_fee_wallet),
        protocol_fee_bps=c.protocol_fee_bps,
        resolver_reward_bps=c.resolver_reward_bps,
        liquidity_provider_fee_bps=c.liquidity_provider_fee_bps,
        proposal_approval_threshold=c.proposal_approval_threshold,
        dispute_success_threshold=c.dispute_success_threshold,
        min_resolution_delay=c.min_resolution_delay,
        dispute_period=c.dispute_period,
        is_paused=c.is_paused,
        slot=slot,
    )


def touched_accounts(txs: Iterable[DecodedTransaction]) -> set[Pubkey]:
    """The program accounts whose state successful ``txs`` may have changed."""
    out: set[Pubkey] = set()
    for tx in txs:
        if not tx.succeeded:
            continue
        for ix in tx.instructions:
            for name in ("market", "position", "global_config"):
                key = getattr(ix.decoded.accounts, name, None)
                if isinstance(key, Pubkey):
                    out.add(key)
        for ev in tx.events:
            if isinstance(ev.event, t.WinningsClaimed):
                out.add(ev.event.market)
    return out


def _decode_snapshot(
    snapshot: AccountSnapshot | None, question_hashes: Mapping[str, str | None]
) -> tuple[list[MarketChainState], list[PositionState], GlobalConfigState | None]:
    if snapshot is None:
        return [], [], None
    markets: dict[Pubkey, MarketChainState] = {}
    positions: list[tuple[Pubkey, t.UserPosition]] = []
    config = None
    for key, data in snapshot.accounts.items():
        if data is None:
            continue
        try:
            acc = decode_account(data)
        except DecodeError:
            continue  # not a zmart account (a wrong key in a foreign instruction)
        if isinstance(acc, t.MarketAccount):
            markets[key] = market_state(
                key, acc, snapshot.slot, question_hashes.get(acc.market_id.hex())
            )
        elif isinstance(acc, t.UserPosition):
            positions.append((key, acc))
        elif isinstance(acc, t.GlobalConfig):
            config = config_state(key, acc, snapshot.slot)
    out_positions = [
        position_state(key, p, markets[p.market].market_id, snapshot.slot)
        for key, p in positions
        if p.market in markets
    ]
    return list(markets.values()), out_positions, config


# ---------------------------------------------------------------- fees


def _pre_fee(total: int, bps: int) -> int:
    """c with c + c·bps//10000 = total (buy cost incl. fees → pre-fee cost)."""
    guess = total * _BPS // (_BPS + bps)
    for c in range(guess + 2, max(guess - 3, -1), -1):
        if c + c * bps // _BPS == total:
            return c
    return guess


def _gross(net: int, bps: int) -> int:
    """g with g - g·bps//10000 = net (sell proceeds net of fees → gross)."""
    if bps >= _BPS:
        return net
    guess = net * _BPS // (_BPS - bps)
    for g in range(max(guess - 2, 0), guess + 3):
        if g - g * bps // _BPS == net:
            return g
    return guess


def _split(base: int, bps: FeeBps) -> tuple[int, int, int]:
    if bps.total == 0:
        return 0, 0, 0
    protocol, resolver, lp, _ = lmsr.fee_split(base, bps.protocol, bps.resolver, bps.lp)
    return protocol, resolver, lp


# ---------------------------------------------------------------- transactions → rows


def _failed(tx: DecodedTransaction) -> FailedTransaction:
    signer = str(tx.account_keys[0]) if tx.account_keys else None
    pe = tx.program_error
    return FailedTransaction(
        signature=str(tx.signature),
        slot=tx.slot,
        block_time=_time(tx.block_time),
        err=tx.err,
        instructions=tuple(i.decoded.name for i in tx.instructions),
        failed_instruction_index=tx.failed_instruction_index,
        error_code=pe.code if pe is not None else None,
        error_name=pe.name if pe is not None else None,
        signer=signer,
    )


def _tx_keys(tx: DecodedTransaction) -> list[EventKey]:
    """Exactly-once keys: one per event; one (instruction, 0) per zmart
    instruction without an event (failed, or truncated logs); (0, 0) if the
    transaction only mentions the program."""
    sig, bt = str(tx.signature), _time(tx.block_time)
    keys: dict[tuple[int, int], EventKey] = {}
    with_event: set[int] = set()
    for ev in tx.events:
        ix = ev.instruction_index or 0
        with_event.add(ix)
        keys[(ix, ev.event_index)] = EventKey(
            signature=sig,
            instruction_index=ix,
            event_index=ev.event_index,
            slot=tx.slot,
            block_time=bt,
        )
    for ins in tx.instructions:
        if ins.instruction_index not in with_event:
            k = (ins.instruction_index, 0)
            keys.setdefault(
                k,
                EventKey(
                    signature=sig,
                    instruction_index=k[0],
                    event_index=0,
                    slot=tx.slot,
                    block_time=bt,
                ),
            )
    if not keys:
        keys[(0, 0)] = EventKey(
            signature=sig, instruction_index=0, event_index=0, slot=tx.slot, block_time=bt
        )
    return list(keys.values())


_WALLET_FIELDS = (
    "user",
    "creator",
    "initiator",
    "resolver",
    "approved_by",
    "cancelled_by",
    "paused_by",
    "admin",
)


def build_effects(
    txs: Sequence[DecodedTransaction],
    snapshot: AccountSnapshot | None,
    *,
    bps: FeeBps,
    question_hashes: Mapping[str, str | None] | None = None,
) -> Effects:
    """The rows for ``txs`` (in chain order) and the account ``snapshot`` read after them."""
    hashes: dict[str, str | None] = dict(question_hashes or {})
    for tx in txs:  # the question CID is only in create_market's arguments (§11.22)
        if tx.succeeded:
            for ins in tx.instructions:
                if isinstance(ins.decoded.args, t.CreateMarketArgs):
                    hashes[ins.decoded.args.market_id.hex()] = _hash_text(
                        ins.decoded.args.ipfs_question_hash
                    )
    eff = Effects(bps=bps)
    eff.markets, eff.positions, eff.config = _decode_snapshot(snapshot, hashes)
    by_address = {m.address: m.market_id for m in eff.markets}
    for tx in txs:
        sig = str(tx.signature)
        eff.keys.append((sig, _tx_keys(tx)))
        bt = _time(tx.block_time)
        if eff.newest is None or tx.slot >= eff.newest[0]:
            eff.newest = (tx.slot, sig, bt)
        if not tx.succeeded:
            eff.failed.append(_failed(tx))
            continue
        fee_wallets = [
            getattr(i.decoded.accounts, "protocol_fee_wallet", None) for i in tx.instructions
        ]
        for ev in tx.events:
            e = ev.event
            ix = ev.instruction_index or 0
            market_id = e.market_id.hex() if hasattr(e, "market_id") else None
            if isinstance(e, t.WinningsClaimed):
                market_id = by_address.get(str(e.market))
            wallet = next((str(getattr(e, f)) for f in _WALLET_FIELDS if hasattr(e, f)), None)
            at = bt or _time(getattr(e, "timestamp", None)) or datetime.fromtimestamp(0, UTC)
            eff.events.append(
                ChainEventRow(
                    signature=sig,
                    instruction_index=ix,
                    event_index=ev.event_index,
                    slot=tx.slot,
                    block_time=bt,
                    name=type(e).__name__,
                    market_id=market_id,
                    wallet=wallet,
                    data=event_json(e),
                )
            )
            if isinstance(e, t.SharesBought | t.SharesSold):
                buy = isinstance(e, t.SharesBought)
                amount = e.cost if isinstance(e, t.SharesBought) else e.proceeds
                eff.trades.append(
                    TradeEvent(
                        market_id=e.market_id.hex(),
                        wallet=str(e.user),
                        side="buy" if buy else "sell",
                        outcome="YES" if e.outcome else "NO",
                        shares=e.shares,
                        amount=amount,
                        price_yes=e.new_price_yes,
                        block_time=at,
                        slot=tx.slot,
                        signature=sig,
                        instruction_index=ix,
                        event_index=ev.event_index,
                    )
                )
                base = _pre_fee(amount, eff.bps.total) if buy else _gross(amount, eff.bps.total)
                protocol, resolver, lp = _split(base, eff.bps)
                wallet_key = fee_wallets[0] if len(fee_wallets) == 1 else None
                balance = tx.balances.get(wallet_key) if isinstance(wallet_key, Pubkey) else None
                if buy and balance is not None and balance.delta != protocol:
                    # the bps assumption was wrong (config history unknown): the
                    # protocol share is the observed transfer; the rest keeps the ratio
                    rest = base * eff.bps.total // _BPS - balance.delta if eff.bps.total else 0
                    protocol = balance.delta
                    share = eff.bps.resolver + eff.bps.lp
                    resolver = rest * eff.bps.resolver // share if share else 0
                    lp = max(rest - resolver, 0)
                eff.fees.append(
                    TradeFee(
                        signature=sig,
                        instruction_index=ix,
                        event_index=ev.event_index,
                        base_amount=base,
                        protocol_fee=protocol,
                        resolver_fee=resolver,
                        lp_fee=lp,
                    )
                )
            elif isinstance(e, t.ProposalVoteSubmitted | t.DisputeVoteSubmitted):
                eff.votes.append(
                    ChainVote(
                        kind="proposal" if isinstance(e, t.ProposalVoteSubmitted) else "dispute",
                        market_id=e.market_id.hex(),
                        wallet=str(e.user),
                        vote=e.vote,
                        signature=sig,
                        slot=tx.slot,
                        voted_at=at,
                    )
                )
            elif isinstance(e, t.MarketCreated):
                eff.creations.append((e.market_id.hex(), at, tx.slot))
            elif isinstance(e, t.GlobalConfigInitialized):
                eff.bps = dataclasses.replace(FeeBps(), protocol=e.protocol_fee_bps)
            elif isinstance(e, t.ConfigUpdated):
                eff.bps = FeeBps(
                    e.protocol_fee_bps, e.resolver_reward_bps, e.liquidity_provider_fee_bps
                )
    return eff
