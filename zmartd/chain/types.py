"""Typed values of zmart-core: accounts, events, instruction arguments and
instruction account lists.

These classes are written out by hand so that editors, mypy and readers see
real field names and types; the byte layout itself is *not* here — it comes
from ``layout.json`` (see :mod:`zmartd.chain.borsh`).  Because a hand-written
class can drift from the layout, the codec refuses at import time to bind a
class whose field names or order differ from the layout, and
``tests/chain/test_codec_layout.py`` additionally checks every Python type
against the layout type.

Conventions (docs/chain.md §3.5):

* unsigned/signed integers are plain ``int``;
* ``pubkey`` is :class:`solders.pubkey.Pubkey`;
* fixed byte arrays (``market_id``, CIDs, ``reserved``) are ``bytes`` of the
  exact array length;
* ``Option<bool>`` outcomes are ``bool | None`` (``True`` = YES, ``False`` =
  NO, ``None`` = not set / INVALID);
* the account ``state`` byte is :class:`MarketState`, but
  ``MarketCreated.state`` is a plain ``u8`` in the program and stays ``int``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from solders.pubkey import Pubkey

__all__ = [
    "ACCOUNT_TYPES",
    "EVENT_TYPES",
    "Account",
    "ActivateMarketAccounts",
    "ActivateMarketArgs",
    "AggregateDisputeVotesAccounts",
    "AggregateDisputeVotesArgs",
    "AggregateProposalVotesAccounts",
    "AggregateProposalVotesArgs",
    "ApproveProposalAccounts",
    "ApproveProposalArgs",
    "BuySharesAccounts",
    "BuySharesArgs",
    "CancelMarketAccounts",
    "CancelMarketArgs",
    "ClaimWinningsAccounts",
    "ClaimWinningsArgs",
    "ConfigUpdated",
    "CreateMarketAccounts",
    "CreateMarketArgs",
    "DisputeAggregated",
    "DisputeInitiated",
    "DisputeVoteSubmitted",
    "EmergencyPauseAccounts",
    "EmergencyPauseArgs",
    "Event",
    "FinalizeMarketAccounts",
    "FinalizeMarketArgs",
    "GlobalConfig",
    "GlobalConfigInitialized",
    "InitializeGlobalConfigAccounts",
    "InitializeGlobalConfigArgs",
    "InitiateDisputeAccounts",
    "InitiateDisputeArgs",
    "InstructionAccounts",
    "InstructionArgs",
    "LiquidityWithdrawn",
    "MarketAccount",
    "MarketActivated",
    "MarketCancelled",
    "MarketCreated",
    "MarketFinalized",
    "MarketResolved",
    "MarketState",
    "ProposalAggregated",
    "ProposalApproved",
    "ProposalVoteSubmitted",
    "ProtocolPauseStatusChanged",
    "ResolveMarketAccounts",
    "ResolveMarketArgs",
    "SellSharesAccounts",
    "SellSharesArgs",
    "SharesBought",
    "SharesSold",
    "SubmitDisputeVoteAccounts",
    "SubmitDisputeVoteArgs",
    "SubmitProposalVoteAccounts",
    "SubmitProposalVoteArgs",
    "UpdateGlobalConfigAccounts",
    "UpdateGlobalConfigArgs",
    "UserPosition",
    "VoteRecord",
    "VoteType",
    "WinningsClaimed",
    "WithdrawLiquidityAccounts",
    "WithdrawLiquidityArgs",
]


class MarketState(IntEnum):
    """``MarketAccount.state`` (docs/chain.md §3.5)."""

    PROPOSED = 0
    APPROVED = 1
    ACTIVE = 2
    RESOLVING = 3
    DISPUTED = 4
    FINALIZED = 5
    CANCELLED = 6


class VoteType(IntEnum):
    """``VoteRecord.vote_type``; also the last seed byte of the vote-record PDA."""

    PROPOSAL = 0
    DISPUTE = 1


# ---------------------------------------------------------------- accounts (§3)


@dataclass(frozen=True, slots=True)
class GlobalConfig:
    """The single protocol configuration (PDA ``["global-config"]``; §3.1).

    Only the five u16 settings and the two time settings can ever change;
    ``admin``, ``backend_authority`` and ``protocol_fee_wallet`` are fixed at
    initialisation."""

    admin: Pubkey
    backend_authority: Pubkey
    protocol_fee_wallet: Pubkey
    protocol_fee_bps: int
    resolver_reward_bps: int
    liquidity_provider_fee_bps: int
    proposal_approval_threshold: int
    dispute_success_threshold: int
    min_resolution_delay: int
    dispute_period: int
    min_resolver_reputation: int
    is_paused: bool
    reserved: bytes
    bump: int


@dataclass(frozen=True, slots=True)
class MarketAccount:
    """One market (PDA ``["market", market_id]``; §3.2).

    Three ``Option`` fields sit in the middle, so every field after
    ``proposed_outcome`` moves by up to 10 bytes: never read those at fixed
    offsets.  ``final_outcome is None`` on a Finalized market means INVALID
    (refunds); ``is_cancelled`` is never set, use ``state``."""

    market_id: bytes
    creator: Pubkey
    state: MarketState
    b_parameter: int
    initial_liquidity: int
    current_liquidity: int
    shares_yes: int
    shares_no: int
    total_volume: int
    created_at: int
    approved_at: int
    activated_at: int
    resolution_proposed_at: int
    resolved_at: int
    finalized_at: int
    resolver: Pubkey
    proposed_outcome: bool | None
    final_outcome: bool | None
    ipfs_evidence_hash: bytes
    dispute_initiated_at: int
    dispute_initiator: Pubkey
    accumulated_protocol_fees: int
    accumulated_resolver_fees: int
    accumulated_lp_fees: int
    proposal_likes: int
    proposal_dislikes: int
    proposal_total_votes: int
    resolution_agree: int
    resolution_disagree: int
    resolution_total_votes: int
    dispute_agree: int
    dispute_disagree: int
    dispute_total_votes: int
    was_disputed: bool
    is_cancelled: bool
    cancelled_at: int | None
    is_locked: bool
    reserved: bytes
    bump: int


@dataclass(frozen=True, slots=True)
class UserPosition:
    """A wallet's holdings in one market (PDA ``["position", market, user]``; §3.3)."""

    market: Pubkey
    user: Pubkey
    shares_yes: int
    shares_no: int
    total_invested: int
    trades_count: int
    last_trade_at: int
    has_claimed: bool
    claimed_amount: int
    reserved: bytes
    bump: int


@dataclass(frozen=True, slots=True)
class VoteRecord:
    """Proof that a wallet voted (PDA ``["vote", market, user, [vote_type]]``; §3.4).

    Its existence is what blocks a second vote; the market counts are
    written separately by the backend."""

    market: Pubkey
    user: Pubkey
    vote_type: VoteType
    vote: bool
    voted_at: int
    bump: int


# ---------------------------------------------------------------- events (§5)


@dataclass(frozen=True, slots=True)
class ConfigUpdated:
    """``ConfigUpdated`` event."""

    protocol_fee_bps: int
    resolver_reward_bps: int
    liquidity_provider_fee_bps: int
    proposal_approval_threshold: int
    dispute_success_threshold: int
    min_resolution_delay: int
    dispute_period: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class DisputeAggregated:
    """``DisputeAggregated`` event."""

    market_id: bytes
    agrees: int
    disagrees: int
    agreement_percentage: int
    dispute_succeeded: bool
    timestamp: int


@dataclass(frozen=True, slots=True)
class DisputeInitiated:
    """``DisputeInitiated`` event."""

    market_id: bytes
    initiator: Pubkey
    disputed_outcome: bool | None
    timestamp: int


@dataclass(frozen=True, slots=True)
class DisputeVoteSubmitted:
    """``DisputeVoteSubmitted`` event."""

    market_id: bytes
    user: Pubkey
    vote: bool
    timestamp: int


@dataclass(frozen=True, slots=True)
class GlobalConfigInitialized:
    """``GlobalConfigInitialized`` event."""

    admin: Pubkey
    backend_authority: Pubkey
    protocol_fee_bps: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class LiquidityWithdrawn:
    """``LiquidityWithdrawn`` event."""

    market_id: bytes
    creator: Pubkey
    amount: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class MarketActivated:
    """``MarketActivated`` event."""

    market_id: bytes
    creator: Pubkey
    initial_liquidity: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class MarketCancelled:
    """``MarketCancelled`` event."""

    market_id: bytes
    cancelled_by: Pubkey
    cancelled_at: int


@dataclass(frozen=True, slots=True)
class MarketCreated:
    """Emitted by ``create_market``.  ``state`` is a plain ``u8`` in the
    program (always 0 in practice), so it is not coerced to :class:`MarketState`."""

    market_id: bytes
    creator: Pubkey
    b_parameter: int
    state: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class MarketFinalized:
    """``MarketFinalized`` event."""

    market_id: bytes
    final_outcome: bool | None
    was_disputed: bool
    timestamp: int


@dataclass(frozen=True, slots=True)
class MarketResolved:
    """``MarketResolved`` event."""

    market_id: bytes
    resolver: Pubkey
    outcome: bool
    evidence_hash: bytes
    timestamp: int


@dataclass(frozen=True, slots=True)
class ProposalAggregated:
    """``ProposalAggregated`` event."""

    market_id: bytes
    likes: int
    dislikes: int
    approval_percentage: int
    approved: bool
    timestamp: int


@dataclass(frozen=True, slots=True)
class ProposalApproved:
    """``ProposalApproved`` event."""

    market_id: bytes
    approved_by: Pubkey
    timestamp: int


@dataclass(frozen=True, slots=True)
class ProposalVoteSubmitted:
    """``ProposalVoteSubmitted`` event."""

    market_id: bytes
    user: Pubkey
    vote: bool
    timestamp: int


@dataclass(frozen=True, slots=True)
class ProtocolPauseStatusChanged:
    """``ProtocolPauseStatusChanged`` event."""

    is_paused: bool
    paused_by: Pubkey
    timestamp: int


@dataclass(frozen=True, slots=True)
class SharesBought:
    """Emitted by ``buy_shares``.  ``cost`` includes fees (lamports that left
    the wallet, excluding first-time position rent); ``new_price_yes`` is the
    post-trade display price scaled by 10^9."""

    market_id: bytes
    user: Pubkey
    outcome: bool
    shares: int
    cost: int
    new_price_yes: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class SharesSold:
    """Emitted by ``sell_shares`` (never on a real cluster, §4.7); ``proceeds`` is net of fees."""

    market_id: bytes
    user: Pubkey
    outcome: bool
    shares: int
    proceeds: int
    new_price_yes: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class WinningsClaimed:
    """Emitted by ``claim_winnings``.  Unlike every other market event it
    carries the market *account address*, not ``market_id``; ``outcome`` is
    the final outcome (``None`` = INVALID refund)."""

    market: Pubkey
    user: Pubkey
    outcome: bool | None
    amount: int
    timestamp: int


# ------------------------------------------------------ instruction arguments (§4)


@dataclass(frozen=True, slots=True)
class ActivateMarketArgs:
    """Arguments of ``activate_market``."""


@dataclass(frozen=True, slots=True)
class AggregateDisputeVotesArgs:
    """Arguments of ``aggregate_dispute_votes``."""

    final_agrees: int
    final_disagrees: int


@dataclass(frozen=True, slots=True)
class AggregateProposalVotesArgs:
    """Arguments of ``aggregate_proposal_votes``."""

    final_likes: int
    final_dislikes: int


@dataclass(frozen=True, slots=True)
class ApproveProposalArgs:
    """Arguments of ``approve_proposal``."""


@dataclass(frozen=True, slots=True)
class BuySharesArgs:
    """Arguments of ``buy_shares``: ``outcome`` True = YES; ``target_cost`` is
    the total lamport budget *including* fees."""

    outcome: bool
    target_cost: int


@dataclass(frozen=True, slots=True)
class CancelMarketArgs:
    """Arguments of ``cancel_market``."""


@dataclass(frozen=True, slots=True)
class ClaimWinningsArgs:
    """Arguments of ``claim_winnings``."""


@dataclass(frozen=True, slots=True)
class CreateMarketArgs:
    """Arguments of ``create_market``."""

    market_id: bytes
    b_parameter: int
    initial_liquidity: int
    ipfs_question_hash: bytes


@dataclass(frozen=True, slots=True)
class EmergencyPauseArgs:
    """Arguments of ``emergency_pause``."""


@dataclass(frozen=True, slots=True)
class FinalizeMarketArgs:
    """Arguments of ``finalize_market``: both counts for a Disputed market,
    both ``None`` for a Resolving one."""

    dispute_agree: int | None
    dispute_disagree: int | None


@dataclass(frozen=True, slots=True)
class InitializeGlobalConfigArgs:
    """Arguments of ``initialize_global_config``."""

    backend_authority: Pubkey


@dataclass(frozen=True, slots=True)
class InitiateDisputeArgs:
    """Arguments of ``initiate_dispute``."""


@dataclass(frozen=True, slots=True)
class ResolveMarketArgs:
    """Arguments of ``resolve_market``."""

    proposed_outcome: bool
    ipfs_evidence_hash: bytes


@dataclass(frozen=True, slots=True)
class SellSharesArgs:
    """Arguments of ``sell_shares``."""

    outcome: bool
    shares_to_sell: int
    min_proceeds: int


@dataclass(frozen=True, slots=True)
class SubmitDisputeVoteArgs:
    """Arguments of ``submit_dispute_vote``."""

    vote: bool


@dataclass(frozen=True, slots=True)
class SubmitProposalVoteArgs:
    """Arguments of ``submit_proposal_vote``."""

    vote: bool


@dataclass(frozen=True, slots=True)
class UpdateGlobalConfigArgs:
    """Arguments of ``update_global_config``: the u16 fields are always
    written; ``None`` leaves a time setting unchanged."""

    protocol_fee_bps: int
    resolver_reward_bps: int
    liquidity_provider_fee_bps: int
    proposal_approval_threshold: int
    dispute_success_threshold: int
    min_resolution_delay: int | None
    dispute_period: int | None


@dataclass(frozen=True, slots=True)
class WithdrawLiquidityArgs:
    """Arguments of ``withdraw_liquidity``."""


# ------------------------------------------------- instruction account lists (§4)


@dataclass(frozen=True, slots=True)
class ActivateMarketAccounts:
    """Accounts of ``activate_market``, in instruction order."""

    authority: Pubkey
    market: Pubkey
    global_config: Pubkey


@dataclass(frozen=True, slots=True)
class AggregateDisputeVotesAccounts:
    """Accounts of ``aggregate_dispute_votes``, in instruction order."""

    market: Pubkey
    global_config: Pubkey
    backend_authority: Pubkey


@dataclass(frozen=True, slots=True)
class AggregateProposalVotesAccounts:
    """Accounts of ``aggregate_proposal_votes``, in instruction order."""

    market: Pubkey
    global_config: Pubkey
    backend_authority: Pubkey


@dataclass(frozen=True, slots=True)
class ApproveProposalAccounts:
    """Accounts of ``approve_proposal``, in instruction order."""

    admin: Pubkey
    market: Pubkey
    global_config: Pubkey


@dataclass(frozen=True, slots=True)
class BuySharesAccounts:
    """Accounts of ``buy_shares``, in instruction order."""

    global_config: Pubkey
    market: Pubkey
    position: Pubkey
    user: Pubkey
    protocol_fee_wallet: Pubkey
    system_program: Pubkey


@dataclass(frozen=True, slots=True)
class CancelMarketAccounts:
    """Accounts of ``cancel_market``, in instruction order."""

    admin: Pubkey
    market: Pubkey
    global_config: Pubkey


@dataclass(frozen=True, slots=True)
class ClaimWinningsAccounts:
    """Accounts of ``claim_winnings``, in instruction order."""

    global_config: Pubkey
    market: Pubkey
    position: Pubkey
    user: Pubkey
    resolver: Pubkey
    system_program: Pubkey


@dataclass(frozen=True, slots=True)
class CreateMarketAccounts:
    """Accounts of ``create_market``, in instruction order."""

    creator: Pubkey
    market: Pubkey
    global_config: Pubkey
    system_program: Pubkey


@dataclass(frozen=True, slots=True)
class EmergencyPauseAccounts:
    """Accounts of ``emergency_pause``, in instruction order."""

    admin: Pubkey
    global_config: Pubkey


@dataclass(frozen=True, slots=True)
class FinalizeMarketAccounts:
    """Accounts of ``finalize_market``, in instruction order."""

    global_config: Pubkey
    market: Pubkey
    backend_authority: Pubkey


@dataclass(frozen=True, slots=True)
class InitializeGlobalConfigAccounts:
    """Accounts of ``initialize_global_config``, in instruction order."""

    admin: Pubkey
    global_config: Pubkey
    protocol_fee_wallet: Pubkey
    system_program: Pubkey


@dataclass(frozen=True, slots=True)
class InitiateDisputeAccounts:
    """Accounts of ``initiate_dispute``, in instruction order."""

    global_config: Pubkey
    market: Pubkey
    initiator: Pubkey


@dataclass(frozen=True, slots=True)
class ResolveMarketAccounts:
    """Accounts of ``resolve_market``, in instruction order."""

    global_config: Pubkey
    market: Pubkey
    resolver: Pubkey


@dataclass(frozen=True, slots=True)
class SellSharesAccounts:
    """Accounts of ``sell_shares``, in instruction order."""

    global_config: Pubkey
    market: Pubkey
    position: Pubkey
    user: Pubkey
    protocol_fee_wallet: Pubkey
    system_program: Pubkey


@dataclass(frozen=True, slots=True)
class SubmitDisputeVoteAccounts:
    """Accounts of ``submit_dispute_vote``, in instruction order."""

    market: Pubkey
    vote_record: Pubkey
    user: Pubkey
    system_program: Pubkey


@dataclass(frozen=True, slots=True)
class SubmitProposalVoteAccounts:
    """Accounts of ``submit_proposal_vote``, in instruction order."""

    market: Pubkey
    vote_record: Pubkey
    user: Pubkey
    system_program: Pubkey


@dataclass(frozen=True, slots=True)
class UpdateGlobalConfigAccounts:
    """Accounts of ``update_global_config``, in instruction order."""

    admin: Pubkey
    global_config: Pubkey


@dataclass(frozen=True, slots=True)
class WithdrawLiquidityAccounts:
    """Accounts of ``withdraw_liquidity``, in instruction order."""

    market: Pubkey
    creator: Pubkey


#: Any decoded zmart-core account.
Account = GlobalConfig | MarketAccount | UserPosition | VoteRecord

#: Any decoded zmart-core event.
Event = (
    ConfigUpdated
    | DisputeAggregated
    | DisputeInitiated
    | DisputeVoteSubmitted
    | GlobalConfigInitialized
    | LiquidityWithdrawn
    | MarketActivated
    | MarketCancelled
    | MarketCreated
    | MarketFinalized
    | MarketResolved
    | ProposalAggregated
    | ProposalApproved
    | ProposalVoteSubmitted
    | ProtocolPauseStatusChanged
    | SharesBought
    | SharesSold
    | WinningsClaimed
)

#: The typed arguments of any zmart-core instruction.
InstructionArgs = (
    ActivateMarketArgs
    | AggregateDisputeVotesArgs
    | AggregateProposalVotesArgs
    | ApproveProposalArgs
    | BuySharesArgs
    | CancelMarketArgs
    | ClaimWinningsArgs
    | CreateMarketArgs
    | EmergencyPauseArgs
    | FinalizeMarketArgs
    | InitializeGlobalConfigArgs
    | InitiateDisputeArgs
    | ResolveMarketArgs
    | SellSharesArgs
    | SubmitDisputeVoteArgs
    | SubmitProposalVoteArgs
    | UpdateGlobalConfigArgs
    | WithdrawLiquidityArgs
)

#: The named account list of any zmart-core instruction.
InstructionAccounts = (
    ActivateMarketAccounts
    | AggregateDisputeVotesAccounts
    | AggregateProposalVotesAccounts
    | ApproveProposalAccounts
    | BuySharesAccounts
    | CancelMarketAccounts
    | ClaimWinningsAccounts
    | CreateMarketAccounts
    | EmergencyPauseAccounts
    | FinalizeMarketAccounts
    | InitializeGlobalConfigAccounts
    | InitiateDisputeAccounts
    | ResolveMarketAccounts
    | SellSharesAccounts
    | SubmitDisputeVoteAccounts
    | SubmitProposalVoteAccounts
    | UpdateGlobalConfigAccounts
    | WithdrawLiquidityAccounts
)

ACCOUNT_TYPES: tuple[type[Account], ...] = (GlobalConfig, MarketAccount, UserPosition, VoteRecord)
EVENT_TYPES: tuple[type[Event], ...] = (
    ConfigUpdated,
    DisputeAggregated,
    DisputeInitiated,
    DisputeVoteSubmitted,
    GlobalConfigInitialized,
    LiquidityWithdrawn,
    MarketActivated,
    MarketCancelled,
    MarketCreated,
    MarketFinalized,
    MarketResolved,
    ProposalAggregated,
    ProposalApproved,
    ProposalVoteSubmitted,
    ProtocolPauseStatusChanged,
    SharesBought,
    SharesSold,
    WinningsClaimed,
)
