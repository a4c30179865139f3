"""zmart-core instructions: data codec, account lists, builders and decoding (docs/chain.md §4).

Every instruction is ``discriminator ‖ borsh(args)`` plus an ordered list of
accounts with fixed signer/writable flags; the program checks the order and
re-derives every PDA, so a builder that gets one seed or one position wrong
produces a transaction that fails with ``ConstraintSeeds``.  The builders
therefore take only the *inputs* of each derivation (``market_id``, wallets)
and derive the PDAs themselves with :mod:`zmartd.chain.pda`.

Decoding instruction data: the program deserialises arguments with
``BorshDeserialize::deserialize(&mut &data[..])``, which ignores bytes after
the arguments — an instruction with trailing bytes *executes*.  So by
default :func:`decode_instruction` accepts them and returns them in
:attr:`DecodedInstruction.trailing_data` (never silently dropped);
``strict=True`` rejects them.  Extra accounts beyond the declared list are
likewise legal for Anchor ("remaining accounts") and are returned in
:attr:`DecodedInstruction.remaining_accounts`; too few accounts is an error
(the program would have failed with ``AccountNotEnoughKeys``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from zmartd.chain.borsh import DecodeError, StructCodec
from zmartd.chain.pda import (
    PROGRAM_ID,
    SYSTEM_PROGRAM_ID,
    global_config_pda,
    market_pda,
    position_pda,
    vote_record_pda,
)
from zmartd.chain.spec import load_layout
from zmartd.chain.types import (
    ActivateMarketAccounts,
    ActivateMarketArgs,
    AggregateDisputeVotesAccounts,
    AggregateDisputeVotesArgs,
    AggregateProposalVotesAccounts,
    AggregateProposalVotesArgs,
    ApproveProposalAccounts,
    ApproveProposalArgs,
    BuySharesAccounts,
    BuySharesArgs,
    CancelMarketAccounts,
    CancelMarketArgs,
    ClaimWinningsAccounts,
    ClaimWinningsArgs,
    CreateMarketAccounts,
    CreateMarketArgs,
    EmergencyPauseAccounts,
    EmergencyPauseArgs,
    FinalizeMarketAccounts,
    FinalizeMarketArgs,
    InitializeGlobalConfigAccounts,
    InitializeGlobalConfigArgs,
    InitiateDisputeAccounts,
    InitiateDisputeArgs,
    InstructionAccounts,
    InstructionArgs,
    MarketState,
    ResolveMarketAccounts,
    ResolveMarketArgs,
    SellSharesAccounts,
    SellSharesArgs,
    SubmitDisputeVoteAccounts,
    SubmitDisputeVoteArgs,
    SubmitProposalVoteAccounts,
    SubmitProposalVoteArgs,
    UpdateGlobalConfigAccounts,
    UpdateGlobalConfigArgs,
    VoteType,
    WithdrawLiquidityAccounts,
    WithdrawLiquidityArgs,
)

__all__ = [
    "BUILDERS",
    "INSTRUCTIONS",
    "AccountSpec",
    "DecodedInstruction",
    "InstructionSpec",
    "activate_market",
    "aggregate_dispute_votes",
    "aggregate_proposal_votes",
    "approve_proposal",
    "build_instruction",
    "buy_shares",
    "cancel_market",
    "claim_winnings",
    "create_market",
    "decode_instruction",
    "decode_instruction_args",
    "decode_solders_instruction",
    "emergency_pause",
    "encode_instruction_data",
    "finalize_market",
    "initialize_global_config",
    "initiate_dispute",
    "resolve_market",
    "sell_shares",
    "submit_dispute_vote",
    "submit_proposal_vote",
    "update_global_config",
    "withdraw_liquidity",
]


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One entry of an instruction's account list."""

    name: str
    signer: bool
    writable: bool


@dataclass(frozen=True, slots=True)
class InstructionSpec:
    """Everything needed to encode/decode one instruction."""

    name: str
    args: StructCodec[Any]
    accounts_cls: type[Any]
    accounts: tuple[AccountSpec, ...]

    @property
    def discriminator(self) -> bytes:
        return self.args.discriminator


_PAIRS: dict[str, tuple[type[Any], type[Any]]] = {
    "activate_market": (ActivateMarketArgs, ActivateMarketAccounts),
    "aggregate_dispute_votes": (AggregateDisputeVotesArgs, AggregateDisputeVotesAccounts),
    "aggregate_proposal_votes": (AggregateProposalVotesArgs, AggregateProposalVotesAccounts),
    "approve_proposal": (ApproveProposalArgs, ApproveProposalAccounts),
    "buy_shares": (BuySharesArgs, BuySharesAccounts),
    "cancel_market": (CancelMarketArgs, CancelMarketAccounts),
    "claim_winnings": (ClaimWinningsArgs, ClaimWinningsAccounts),
    "create_market": (CreateMarketArgs, CreateMarketAccounts),
    "emergency_pause": (EmergencyPauseArgs, EmergencyPauseAccounts),
    "finalize_market": (FinalizeMarketArgs, FinalizeMarketAccounts),
    "initialize_global_config": (InitializeGlobalConfigArgs, InitializeGlobalConfigAccounts),
    "initiate_dispute": (InitiateDisputeArgs, InitiateDisputeAccounts),
    "resolve_market": (ResolveMarketArgs, ResolveMarketAccounts),
    "sell_shares": (SellSharesArgs, SellSharesAccounts),
    "submit_dispute_vote": (SubmitDisputeVoteArgs, SubmitDisputeVoteAccounts),
    "submit_proposal_vote": (SubmitProposalVoteArgs, SubmitProposalVoteAccounts),
    "update_global_config": (UpdateGlobalConfigArgs, UpdateGlobalConfigAccounts),
    "withdraw_liquidity": (WithdrawLiquidityArgs, WithdrawLiquidityAccounts),
}


def _build() -> dict[str, InstructionSpec]:
    specs: dict[str, InstructionSpec] = {}
    for entry in load_layout()["instructions"]:
        name = entry["name"]
        args_cls, accounts_cls = _PAIRS[name]
        codec: StructCodec[Any] = StructCodec(
            kind="instruction",
            name=name,
            cls=args_cls,
            discriminator=bytes.fromhex(entry["discriminator_hex"]),
            fields=[(a["name"], a["type"]) for a in entry["args"]],
            enums={"MarketState": MarketState, "VoteType": VoteType},
        )
        metas = tuple(
            AccountSpec(a["name"], bool(a["signer"]), bool(a["writable"]))
            for a in sorted(entry["accounts"], key=lambda a: a["index"])
        )
        cls_names = [f.name for f in dataclasses.fields(accounts_cls)]
        if cls_names != [m.name for m in metas]:
            raise RuntimeError(f"{accounts_cls.__name__} fields differ from layout for {name}")
        specs[name] = InstructionSpec(name, codec, accounts_cls, metas)
    if set(specs) != set(_PAIRS):
        raise RuntimeError("layout.json and zmartd.chain.instructions disagree on instructions")
    return specs


#: Instruction name (snake_case, as in the IDL) → spec.
INSTRUCTIONS: dict[str, InstructionSpec] = _build()
_BY_ARGS: dict[type[Any], InstructionSpec] = {s.args.cls: s for s in INSTRUCTIONS.values()}
_BY_DISCRIMINATOR: dict[bytes, InstructionSpec] = {
    s.discriminator: s for s in INSTRUCTIONS.values()
}


# ---------------------------------------------------------------------- data codec


def encode_instruction_data(args: InstructionArgs) -> bytes:
    """``discriminator ‖ borsh(args)``."""
    return _BY_ARGS[type(args)].args.encode(args)


def decode_instruction_args(
    data: bytes | memoryview, *, strict: bool = False
) -> tuple[InstructionArgs, bytes]:
    """Decode instruction data into typed arguments plus any trailing bytes
    (which the program ignores; ``strict`` rejects them)."""
    spec = _BY_DISCRIMINATOR.get(bytes(data[:8]))
    if spec is None:
        raise DecodeError(
            "Instruction",
            "discriminator",
            0,
            f"unknown instruction discriminator {bytes(data[:8]).hex()!r}",
        )
    if strict:
        return cast(InstructionArgs, spec.args.decode_exact(data)), b""
    value, end = spec.args.decode(data)
    return cast(InstructionArgs, value), bytes(data[end:])


# ------------------------------------------------------------------ decode from tx


@dataclass(frozen=True, slots=True)
class DecodedInstruction:
    """A zmart-core instruction with typed arguments and named accounts."""

    name: str
    args: InstructionArgs
    accounts: InstructionAccounts
    #: Accounts passed beyond the declared list (Anchor ignores them).
    remaining_accounts: tuple[Pubkey, ...] = ()
    #: Bytes after the arguments (the program ignores them); normally empty.
    trailing_data: bytes = b""


def decode_instruction(
    data: bytes | memoryview, accounts: Sequence[Pubkey], *, strict: bool = False
) -> DecodedInstruction:
    """Decode instruction data and the instruction's account keys (in
    instruction order, e.g. from ``Instruction.accounts`` or the message's
    ``accounts`` indices resolved to keys)."""
    args, trailing = decode_instruction_args(data, strict=strict)
    spec = _BY_ARGS[type(args)]
    n = len(spec.accounts)
    if len(accounts) < n:
        missing = spec.accounts[len(accounts)]
        raise DecodeError(
            spec.name,
            missing.name,
            len(accounts),
            f"instruction has {len(accounts)} account(s), {n} required",
        )
    if strict and len(accounts) > n:
        raise DecodeError(spec.name, None, n, f"{len(accounts) - n} unexpected extra account(s)")
    named = spec.accounts_cls(*accounts[:n])
    return DecodedInstruction(
        name=spec.name,
        args=args,
        accounts=named,
        remaining_accounts=tuple(accounts[n:]),
        trailing_data=trailing,
    )


def decode_solders_instruction(
    ix: Instruction, *, program_id: Pubkey = PROGRAM_ID, strict: bool = False
) -> DecodedInstruction:
    """Decode a solders :class:`Instruction` addressed to zmart-core."""
    if ix.program_id != program_id:
        raise DecodeError(
            "Instruction", None, 0, f"instruction is for program {ix.program_id}, not {program_id}"
        )
    return decode_instruction(bytes(ix.data), [m.pubkey for m in ix.accounts], strict=strict)


# ------------------------------------------------------------------------ builders


def build_instruction(
    args: InstructionArgs,
    accounts: InstructionAccounts,
    *,
    program_id: Pubkey = PROGRAM_ID,
    remaining_accounts: Sequence[AccountMeta] = (),
) -> Instruction:
    """Assemble an instruction from typed args and a named account list, with
    the spec's signer/writable flags.  The per-instruction builders below
    derive the PDAs; use this directly only when you already have them."""
    spec = _BY_ARGS[type(args)]
    if type(accounts) is not spec.accounts_cls:
        raise TypeError(
            f"{spec.name} needs {spec.accounts_cls.__name__}, got {type(accounts).__name__}"
        )
    metas = [
        AccountMeta(getattr(accounts, a.name), is_signer=a.signer, is_writable=a.writable)
        for a in spec.accounts
    ]
    metas.extend(remaining_accounts)
    return Instruction(program_id, spec.args.encode(args), metas)


def _config(program_id: Pubkey) -> Pubkey:
    return global_config_pda(program_id)[0]


def _market(market_id: bytes, program_id: Pubkey) -> Pubkey:
    return market_pda(market_id, program_id)[0]


def initialize_global_config(
    *,
    admin: Pubkey,
    backend_authority: Pubkey,
    protocol_fee_wallet: Pubkey,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Create the GlobalConfig (first caller becomes admin; §4.1)."""
    return build_instruction(
        InitializeGlobalConfigArgs(backend_authority=backend_authority),
        InitializeGlobalConfigAccounts(
            admin=admin,
            global_config=_config(program_id),
            protocol_fee_wallet=protocol_fee_wallet,
            system_program=SYSTEM_PROGRAM_ID,
        ),
        program_id=program_id,
    )


def update_global_config(
    *,
    admin: Pubkey,
    protocol_fee_bps: int,
    resolver_reward_bps: int,
    liquidity_provider_fee_bps: int,
    proposal_approval_threshold: int,
    dispute_success_threshold: int,
    min_resolution_delay: int | None = None,
    dispute_period: int | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Overwrite the five u16 settings (always) and the two time settings
    (only when not ``None``) — §4.2."""
    return build_instruction(
        UpdateGlobalConfigArgs(
            protocol_fee_bps=protocol_fee_bps,
            resolver_reward_bps=resolver_reward_bps,
            liquidity_provider_fee_bps=liquidity_provider_fee_bps,
            proposal_approval_threshold=proposal_approval_threshold,
            dispute_success_threshold=dispute_success_threshold,
            min_resolution_delay=min_resolution_delay,
            dispute_period=dispute_period,
        ),
        UpdateGlobalConfigAccounts(admin=admin, global_config=_config(program_id)),
        program_id=program_id,
    )


def emergency_pause(*, admin: Pubkey, program_id: Pubkey = PROGRAM_ID) -> Instruction:
    """Toggle ``is_paused`` (§4.17)."""
    return build_instruction(
        EmergencyPauseArgs(),
        EmergencyPauseAccounts(admin=admin, global_config=_config(program_id)),
        program_id=program_id,
    )


def create_market(
    *,
    creator: Pubkey,
    market_id: bytes,
    b_parameter: int,
    initial_liquidity: int,
    ipfs_question_hash: bytes,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Create a market at PDA ``["market", market_id]`` (§4.3)."""
    return build_instruction(
        CreateMarketArgs(
            market_id=bytes(market_id),
            b_parameter=b_parameter,
            initial_liquidity=initial_liquidity,
            ipfs_question_hash=bytes(ipfs_question_hash),
        ),
        CreateMarketAccounts(
            creator=creator,
            market=_market(market_id, program_id),
            global_config=_config(program_id),
            system_program=SYSTEM_PROGRAM_ID,
        ),
        program_id=program_id,
    )


def approve_proposal(
    *, admin: Pubkey, market_id: bytes, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Proposed → Approved (admin; §4.4)."""
    return build_instruction(
        ApproveProposalArgs(),
        ApproveProposalAccounts(
            admin=admin, market=_market(market_id, program_id), global_config=_config(program_id)
        ),
        program_id=program_id,
    )


def activate_market(
    *, authority: Pubkey, market_id: bytes, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Approved → Active (admin or creator; §4.5)."""
    return build_instruction(
        ActivateMarketArgs(),
        ActivateMarketAccounts(
            authority=authority,
            market=_market(market_id, program_id),
            global_config=_config(program_id),
        ),
        program_id=program_id,
    )


def buy_shares(
    *,
    user: Pubkey,
    market_id: bytes,
    outcome: bool,
    target_cost: int,
    protocol_fee_wallet: Pubkey,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Spend at most ``target_cost`` lamports (fees included) on one side (§4.6)."""
    market = _market(market_id, program_id)
    return build_instruction(
        BuySharesArgs(outcome=outcome, target_cost=target_cost),
        BuySharesAccounts(
            global_config=_config(program_id),
            market=market,
            position=position_pda(market, user, program_id)[0],
            user=user,
            protocol_fee_wallet=protocol_fee_wallet,
            system_program=SYSTEM_PROGRAM_ID,
        ),
        program_id=program_id,
    )


def sell_shares(
    *,
    user: Pubkey,
    market_id: bytes,
    outcome: bool,
    shares_to_sell: int,
    min_proceeds: int,
    protocol_fee_wallet: Pubkey,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Sell share-units (§4.7 — note it always reverts on a real cluster)."""
    market = _market(market_id, program_id)
    return build_instruction(
        SellSharesArgs(outcome=outcome, shares_to_sell=shares_to_sell, min_proceeds=min_proceeds),
        SellSharesAccounts(
            global_config=_config(program_id),
            market=market,
            position=position_pda(market, user, program_id)[0],
            user=user,
            protocol_fee_wallet=protocol_fee_wallet,
            system_program=SYSTEM_PROGRAM_ID,
        ),
        program_id=program_id,
    )


def resolve_market(
    *,
    resolver: Pubkey,
    market_id: bytes,
    proposed_outcome: bool,
    ipfs_evidence_hash: bytes,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Active → Resolving; the signer becomes the resolver (§4.8)."""
    return build_instruction(
        ResolveMarketArgs(
            proposed_outcome=proposed_outcome, ipfs_evidence_hash=bytes(ipfs_evidence_hash)
        ),
        ResolveMarketAccounts(
            global_config=_config(program_id),
            market=_market(market_id, program_id),
            resolver=resolver,
        ),
        program_id=program_id,
    )


def initiate_dispute(
    *, initiator: Pubkey, market_id: bytes, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Resolving → Disputed (§4.9)."""
    return build_instruction(
        InitiateDisputeArgs(),
        InitiateDisputeAccounts(
            global_config=_config(program_id),
            market=_market(market_id, program_id),
            initiator=initiator,
        ),
        program_id=program_id,
    )


def finalize_market(
    *,
    backend_authority: Pubkey,
    market_id: bytes,
    dispute_agree: int | None = None,
    dispute_disagree: int | None = None,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Resolving/Disputed → Finalized (backend; §4.10).  Pass both counts for
    a disputed market, neither for an undisputed one."""
    return build_instruction(
        FinalizeMarketArgs(dispute_agree=dispute_agree, dispute_disagree=dispute_disagree),
        FinalizeMarketAccounts(
            global_config=_config(program_id),
            market=_market(market_id, program_id),
            backend_authority=backend_authority,
        ),
        program_id=program_id,
    )


def claim_winnings(
    *, user: Pubkey, market_id: bytes, resolver: Pubkey, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Claim a payout; ``resolver`` must be ``MarketAccount.resolver`` (§4.11)."""
    market = _market(market_id, program_id)
    return build_instruction(
        ClaimWinningsArgs(),
        ClaimWinningsAccounts(
            global_config=_config(program_id),
            market=market,
            position=position_pda(market, user, program_id)[0],
            user=user,
            resolver=resolver,
            system_program=SYSTEM_PROGRAM_ID,
        ),
        program_id=program_id,
    )


def withdraw_liquidity(
    *, creator: Pubkey, market_id: bytes, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Creator sweeps the market's lamports above rent + margin (§4.12)."""
    return build_instruction(
        WithdrawLiquidityArgs(),
        WithdrawLiquidityAccounts(market=_market(market_id, program_id), creator=creator),
        program_id=program_id,
    )


def submit_proposal_vote(
    *, user: Pubkey, market_id: bytes, vote: bool, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Create the user's proposal VoteRecord (``vote`` True = like; §4.13)."""
    market = _market(market_id, program_id)
    return build_instruction(
        SubmitProposalVoteArgs(vote=vote),
        SubmitProposalVoteAccounts(
            market=market,
            vote_record=vote_record_pda(market, user, VoteType.PROPOSAL, program_id)[0],
            user=user,
            system_program=SYSTEM_PROGRAM_ID,
        ),
        program_id=program_id,
    )


def aggregate_proposal_votes(
    *,
    backend_authority: Pubkey,
    market_id: bytes,
    final_likes: int,
    final_dislikes: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Store the backend's proposal tally (no state change; §4.14)."""
    return build_instruction(
        AggregateProposalVotesArgs(final_likes=final_likes, final_dislikes=final_dislikes),
        AggregateProposalVotesAccounts(
            market=_market(market_id, program_id),
            global_config=_config(program_id),
            backend_authority=backend_authority,
        ),
        program_id=program_id,
    )


def submit_dispute_vote(
    *, user: Pubkey, market_id: bytes, vote: bool, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Create the user's dispute VoteRecord (``vote`` True = agrees with the dispute; §4.15)."""
    market = _market(market_id, program_id)
    return build_instruction(
        SubmitDisputeVoteArgs(vote=vote),
        SubmitDisputeVoteAccounts(
            market=market,
            vote_record=vote_record_pda(market, user, VoteType.DISPUTE, program_id)[0],
            user=user,
            system_program=SYSTEM_PROGRAM_ID,
        ),
        program_id=program_id,
    )


def aggregate_dispute_votes(
    *,
    backend_authority: Pubkey,
    market_id: bytes,
    final_agrees: int,
    final_disagrees: int,
    program_id: Pubkey = PROGRAM_ID,
) -> Instruction:
    """Store the dispute tally (see §4.16 for why zmartd should prefer finalize_market)."""
    return build_instruction(
        AggregateDisputeVotesArgs(final_agrees=final_agrees, final_disagrees=final_disagrees),
        AggregateDisputeVotesAccounts(
            market=_market(market_id, program_id),
            global_config=_config(program_id),
            backend_authority=backend_authority,
        ),
        program_id=program_id,
    )


def cancel_market(
    *, admin: Pubkey, market_id: bytes, program_id: Pubkey = PROGRAM_ID
) -> Instruction:
    """Proposed/Approved → Cancelled (admin; §4.18)."""
    return build_instruction(
        CancelMarketArgs(),
        CancelMarketAccounts(
            admin=admin, market=_market(market_id, program_id), global_config=_config(program_id)
        ),
        program_id=program_id,
    )


#: Builder function per instruction name (used by tests and tooling).
BUILDERS: dict[str, Callable[..., Instruction]] = {
    "activate_market": activate_market,
    "aggregate_dispute_votes": aggregate_dispute_votes,
    "aggregate_proposal_votes": aggregate_proposal_votes,
    "approve_proposal": approve_proposal,
    "buy_shares": buy_shares,
    "cancel_market": cancel_market,
    "claim_winnings": claim_winnings,
    "create_market": create_market,
    "emergency_pause": emergency_pause,
    "finalize_market": finalize_market,
    "initialize_global_config": initialize_global_config,
    "initiate_dispute": initiate_dispute,
    "resolve_market": resolve_market,
    "sell_shares": sell_shares,
    "submit_dispute_vote": submit_dispute_vote,
    "submit_proposal_vote": submit_proposal_vote,
    "update_global_config": update_global_config,
    "withdraw_liquidity": withdraw_liquidity,
}
