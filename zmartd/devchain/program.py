"""A faithful model of the deployed zmart-core program (docs/chain.md §2-§7, §10-§11).

Faithful means: what zmartd sees from this model is what it would see from
the program on devnet — the same account bytes (written with the codec's
encoders, from offset 0, tail never cleared), the same events, the same
System Program CPIs (inner instructions), the same error *codes* in the same
order of checks, and the same bugs:

* ``sell_shares`` passes all its checks and then reverts at the payout: it
  moves lamports out of the program-owned, data-carrying market PDA with a
  System Program transfer, which logs "Transfer: `from` must not carry data"
  and fails with ``InvalidArgument`` (§4.7, §11.1);
* ``create_market`` deposits no ``initial_liquidity`` (§11.2);
* ``withdraw_liquidity`` sweeps everything above rent + 10,000 at any time
  after finalization, zeroing the pot later claims are computed from (§11.3);
* ``aggregate_dispute_votes`` returns to Resolving without flipping, or
  finalizes with ``final_outcome = None`` (§11.14); ``finalize_market``
  overwrites ``was_disputed`` (§11.19); ``resolve_market`` is permissionless
  (§11.13); a second vote / second init / reused market id fails inside the
  System Program with custom error 0 (§11.20);
* all the LMSR quirks (non-monotone exp, dead zone, zero-share buys...) come
  from :mod:`zmartd.chain.quoter`, the chain's exact integer math.

``variant="patched"`` (chosen on the :class:`~zmartd.devchain.bank.Bank`)
fixes the two fund-moving bugs — sells pay out by direct lamport moves, and
``create_market`` transfers ``initial_liquidity`` into the market — and is
**not** the deployed behaviour.

Anchor's account validation is reproduced in its real order: first every
field is deserialised in declaration order (``Account<T>``: uninitialised →
3012, owner → 3007, discriminator → 3001/3002; ``Signer`` → 3010;
``Program<System>`` → 3008), then the ``init``/``init_if_needed`` fields are
checked (seeds → 2006) and created through System Program CPIs, then the
other fields' constraints run in field order (seeds → 2006, ``mut`` → 2000,
``has_one`` → 2001, custom ``constraint = … @ Error``).  Only then does the
handler run its ``require!`` checks in the order of §4.

Two choices the spec leaves open, made explicit:

* ``AnchorError thrown in <file>:<line>`` needs a source line the spec does
  not give; the model names the instruction's file and uses the check's
  ordinal in the handler as the line, so the *form* matches and tooling that
  parses it works, but the number is not the deployed one.
* ``claim_winnings``/``sell_shares`` derive the position seeds from the
  stored ``position.user`` — the only reading under which the spec's
  "someone else's position → ConstraintHasOne 2001" (claim) and
  "``position.user == user`` else Unauthorized" (sell) are reachable.

Compute units are an estimate (the spec did not measure them, §13): a fixed
cost per account, PDA derivation, CPI and event, plus one unit of work per
LMSR cost evaluation, tuned so a buy stays well inside the default 200,000.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from solders.instruction import AccountMeta
from solders.pubkey import Pubkey

from zmartd.chain.accounts import (
    ACCOUNT_CODECS,
    ALLOCATED_LEN,
    decode_account_as,
    encode_account,
)
from zmartd.chain.borsh import DecodeError
from zmartd.chain.errors import ANCHOR_ERRORS, all_errors
from zmartd.chain.events import event_log_line
from zmartd.chain.instructions import INSTRUCTIONS, InstructionSpec, decode_instruction_args
from zmartd.chain.pda import (
    GLOBAL_CONFIG_SEED,
    MARKET_SEED,
    POSITION_SEED,
    SYSTEM_PROGRAM_ID,
    VOTE_SEED,
)
from zmartd.chain.quoter import (
    FeeConfig,
    MarketMath,
    PositionHoldings,
    QuoteError,
    claim_payout,
    quote_buy,
    quote_sell,
    withdrawable,
)
from zmartd.chain.types import (
    ConfigUpdated,
    DisputeAggregated,
    DisputeInitiated,
    DisputeVoteSubmitted,
    GlobalConfig,
    GlobalConfigInitialized,
    LiquidityWithdrawn,
    MarketAccount,
    MarketActivated,
    MarketCancelled,
    MarketCreated,
    MarketFinalized,
    MarketResolved,
    MarketState,
    ProposalAggregated,
    ProposalApproved,
    ProposalVoteSubmitted,
    ProtocolPauseStatusChanged,
    SharesBought,
    SharesSold,
    UserPosition,
    VoteRecord,
    VoteType,
    WinningsClaimed,
)
from zmartd.devchain.failures import InstructionError

if TYPE_CHECKING:  # the bank runs this model; the model only sees its context type
    from zmartd.devchain.bank import InstructionContext

__all__ = ["ZmartCore"]

Event = Any  # any zmartd.chain.types event dataclass
Acct = GlobalConfig | MarketAccount | UserPosition | VoteRecord
A = TypeVar("A", GlobalConfig, MarketAccount, UserPosition, VoteRecord)

_ANCHOR_BY_NAME = {name: code for code, (name, _) in ANCHOR_ERRORS.items()}

#: Errors produced with ``ok_or(ErrorCode::X)?`` (no source location in the log).
_OCCURRED = frozenset({"OverflowError", "UnderflowError", "DivisionByZero"})
#: Errors raised inside the math modules rather than the instruction handler.
_MATH_FILES = {
    "InvalidBParameter": "math/lmsr.rs",
    "ExponentTooLarge": "math/fixed_point.rs",
}

# 10 * 365 days: how far from created_at resolve/finalize accept `now`.
_MAX_MARKET_AGE = 315_360_000
_LN2_SCALED = 693_147_180
_S = 1_000_000_000
_BPS = 10_000

# Compute-unit estimates (see the module docstring).
_CU_DISPATCH = 1_500
_CU_ACCOUNT = 900
_CU_PDA = 1_500
_CU_FIND_PDA = 3_000
_CU_CPI = 1_000
_CU_EVENT = 700
_CU_EXIT = 400
_CU_COST_EVAL = 1_900


class _Abort(Exception):
    """Internal: the instruction failed with an already-logged program error."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


# ---------------------------------------------------------------------------
# Anchor framework emulation
# ---------------------------------------------------------------------------


class _Anchor:
    """One instruction's run: account access, Anchor checks and error logs."""

    def __init__(self, ctx: InstructionContext, spec: InstructionSpec) -> None:
        self.ctx = ctx
        self.spec = spec
        self.program_id = ctx.program_id
        self.names = [a.name for a in spec.accounts]
        self._checks = 0
        #: field name → decoded value to write back at exit (mutable accounts only)
        self.dirty: dict[str, Acct] = {}

    # -- errors ----------------------------------------------------------------
    def _log_error(self, head: str, name: str, code: int, msg: str) -> None:
        self.ctx.msg(
            f"AnchorError {head}. Error Code: {name}. Error Number: {code}. Error Message: {msg}."
        )

    def fail_account(
        self, field: str, name: str, pubkeys: tuple[Pubkey, Pubkey] | None = None
    ) -> NoReturn:
        """An error attributed to an account (``caused by account: <field>``)."""
        code, msg = _error(name)
        self._log_error(f"caused by account: {field}", name, code, msg)
        if pubkeys is not None:
            for label, key in zip(("Left:", "Right:"), pubkeys, strict=True):
                self.ctx.msg(label)
                self.ctx.msg(str(key))
        raise _Abort(code)

    def fail(self, name: str) -> NoReturn:
        """A handler error: ``require!`` (thrown in file:line) or ``ok_or`` (occurred)."""
        code, msg = _error(name)
        if name in _OCCURRED or code < 6000:
            self._log_error("occurred", name, code, msg)
        else:
            src = _MATH_FILES.get(name, f"instructions/{self.spec.name}.rs")
            self._log_error(
                f"thrown in programs/zmart-core/src/{src}:{self._checks}", name, code, msg
            )
        raise _Abort(code)

    def require(self, ok: bool, name: str) -> None:
        self._checks += 1
        if not ok:
            self.fail(name)

    def math(self, exc: QuoteError) -> NoReturn:
        self._checks += 1
        self.fail(exc.name)

    # -- accounts ----------------------------------------------------------------
    def index(self, field: str) -> int:
        return self.names.index(field)

    def key(self, field: str) -> Pubkey:
        return self.ctx.key(self.index(field))

    def lamports(self, field: str) -> int:
        return self.ctx.account(self.index(field)).lamports

    def load(self, field: str, cls: type[A]) -> A:
        """``Account<'info, T>::try_from``: 3012 / 3007 / 3001 / 3002 / 3003."""
        self.ctx.consume(_CU_ACCOUNT)
        acct = self.ctx.account(self.index(field))
        if acct.owner == SYSTEM_PROGRAM_ID and acct.lamports == 0:
            self.fail_account(field, "AccountNotInitialized")
        if acct.owner != self.program_id:
            self.fail_account(field, "AccountOwnedByWrongProgram", (acct.owner, self.program_id))
        return self._deserialize(field, cls, acct.data)

    def _deserialize(self, field: str, cls: type[A], data: bytes) -> A:
        if len(data) < 8:
            self.fail_account(field, "AccountDiscriminatorNotFound")
        if ACCOUNT_CODECS[cls].discriminator != data[:8]:
            self.fail_account(field, "AccountDiscriminatorMismatch")
        try:
            return decode_account_as(cls, data, lenient=True)
        except DecodeError:
            self.fail_account(field, "AccountDidNotDeserialize")

    def signer(self, field: str) -> None:
        """``Signer<'info>``: 3010."""
        if not self.ctx.is_signer(self.index(field)):
            self.fail_account(field, "AccountNotSigner")

    def system_program(self, field: str = "system_program") -> None:
        """``Program<'info, System>``: 3008 / 3009."""
        i = self.index(field)
        if self.ctx.key(i) != SYSTEM_PROGRAM_ID:
            self.fail_account(field, "InvalidProgramId", (self.ctx.key(i), SYSTEM_PROGRAM_ID))
        if not self.ctx.account(i).executable:
            self.fail_account(field, "InvalidProgramExecutable")

    def seeds(self, field: str, seeds: list[bytes], bump: int) -> None:
        """``seeds = [...], bump = <stored>``: create_program_address → 2006."""
        self.ctx.consume(_CU_PDA)
        try:
            expected = Pubkey.create_program_address([*seeds, bytes([bump])], self.program_id)
        except Exception:  # seeds+bump land on the curve: Anchor maps it to 2006 too
            self.fail_account(field, "ConstraintSeeds")
        if self.key(field) != expected:
            self.fail_account(field, "ConstraintSeeds", (self.key(field), expected))

    def find_seeds(self, field: str, seeds: list[bytes]) -> int:
        """``seeds = [...], bump`` on an init field: find_program_address → 2006."""
        self.ctx.consume(_CU_FIND_PDA)
        expected, bump = Pubkey.find_program_address(seeds, self.program_id)
        if self.key(field) != expected:
            self.fail_account(field, "ConstraintSeeds", (self.key(field), expected))
        return bump

    def mut(self, field: str) -> None:
        if not self.ctx.is_writable(self.index(field)):
            self.fail_account(field, "ConstraintMut")

    def has_one(self, field: str, stored: Pubkey, target_field: str) -> None:
        if stored != self.key(target_field):
            self.fail_account(field, "ConstraintHasOne", (stored, self.key(target_field)))

    def constraint(self, ok: bool, field: str, name: str) -> None:
        """``constraint = <expr> @ ErrorCode::<name>``."""
        if not ok:
            self.fail_account(field, name)

    def init(self, field: str, payer: str, space: int, signer_seeds_bump: int) -> None:
        """Anchor ``init``: create the PDA through System Program CPIs.

        A zero-lamport target gets one CreateAccount; a pre-funded one gets
        Transfer (top-up to rent) + Allocate + Assign.  Either way an account
        that already exists fails inside the System Program with custom 0.
        """
        del signer_seeds_bump  # the PDA signature is granted by key below
        target, payer_key = self.key(field), self.key(payer)
        rent = self.ctx.rent_exempt_minimum(space)
        current = self.lamports(field)
        if current == 0:
            data = struct.pack("<IQQ", 0, rent, space) + bytes(self.program_id)
            self._cpi([(payer_key, True, True), (target, True, True)], data, target)
            return
        required = max(rent, 1) - current
        if required > 0:
            self._cpi(
                [(payer_key, True, True), (target, False, True)],
                struct.pack("<IQ", 2, required),
                target,
            )
        self._cpi([(target, True, True)], struct.pack("<IQ", 8, space), target)
        self._cpi([(target, True, True)], struct.pack("<I", 1) + bytes(self.program_id), target)

    def transfer(self, src: str, dst: str, lamports: int, pda: Pubkey | None = None) -> None:
        """``system_program::transfer`` CPI (signed by ``pda`` when given)."""
        self._cpi(
            [(self.key(src), True, True), (self.key(dst), False, True)],
            struct.pack("<IQ", 2, lamports),
            pda,
        )

    def _cpi(self, metas: list[tuple[Pubkey, bool, bool]], data: bytes, pda: Pubkey | None) -> None:
        self.ctx.consume(_CU_CPI)
        self.ctx.invoke(
            SYSTEM_PROGRAM_ID,
            [AccountMeta(k, s, w) for k, s, w in metas],
            data,
            [pda] if pda is not None else [],
        )

    def move_lamports(self, src: str, dst: str, amount: int) -> None:
        """A direct lamport move out of an account the program owns."""
        self.ctx.account(self.index(src)).lamports -= amount
        self.ctx.account(self.index(dst)).lamports += amount

    # -- exit ------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self.ctx.consume(_CU_EVENT)
        self.ctx.log(event_log_line(event))

    def stage(self, field: str, value: Acct) -> None:
        """Remember an account's new value; written at exit like Anchor does."""
        self.dirty[field] = value

    def exit(self) -> None:
        """Serialise every mutable typed account from offset 0 (tail kept)."""
        for field, value in self.dirty.items():
            self.ctx.consume(_CU_EXIT)
            acct = self.ctx.account(self.index(field))
            payload = encode_account(value, pad=False)
            if len(payload) > len(acct.data):  # Borsh writer: "Failed to serialize"
                raise InstructionError("AccountDataTooSmall")
            acct.data = payload + acct.data[len(payload) :]


_PROGRAM_ERRORS = {e.name: e for e in all_errors() if e.source == "program"}


def _error(name: str) -> tuple[int, str]:
    """(code, message) of an Anchor or zmart-core error, by name."""
    if name in _ANCHOR_BY_NAME:
        code = _ANCHOR_BY_NAME[name]
        return code, ANCHOR_ERRORS[code][1]
    known = _PROGRAM_ERRORS.get(name)
    if known is None:  # a typo in the model must not pass for a chain error
        raise LookupError(f"{name!r} is not a zmart-core or Anchor error")
    return known.code, known.msg


_ZERO = Pubkey.default()
#: What ``create_market`` starts from: every number 0, pubkeys zero, Options None.
_EMPTY_MARKET = MarketAccount(
    bytes(32), _ZERO, MarketState.PROPOSED, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, _ZERO,
    None, None, bytes(46), 0, _ZERO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    False, False, None, False, bytes(119), 0,
)  # fmt: skip
#: A freshly allocated (all-zero) position, as the handler sees it after init.
_EMPTY_POSITION = UserPosition(_ZERO, _ZERO, 0, 0, 0, 0, 0, False, 0, bytes(64), 0)


# ---------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------


class ZmartCore:
    """The zmart-core processor to register on a :class:`~zmartd.devchain.bank.Bank`."""

    def __init__(self, program_id: Pubkey) -> None:
        self.program_id = program_id
        self._by_discriminator = {s.discriminator: s for s in INSTRUCTIONS.values()}

    def __call__(self, ctx: InstructionContext) -> None:
        ctx.consume(_CU_DISPATCH)
        data = ctx.data
        if len(data) < 8:
            _dispatch_error(ctx, "InstructionMissing")
        spec = self._by_discriminator.get(data[:8])
        if spec is None:
            _dispatch_error(ctx, "InstructionFallbackNotFound")
        ctx.msg(_log_name(spec.name))
        run = _Anchor(ctx, spec)
        try:
            try:
                args, _trailing = decode_instruction_args(data)  # Borsh ignores trailing bytes
            except DecodeError:
                run.fail("InstructionDidNotDeserialize")
            if len(ctx) < len(spec.accounts):
                run.fail("AccountNotEnoughKeys")
            _HANDLERS[spec.name](run, args)
            run.exit()
        except _Abort as e:
            raise InstructionError.custom(e.code) from None


def _dispatch_error(ctx: InstructionContext, name: str) -> NoReturn:
    code, msg = _error(name)
    ctx.msg(
        f"AnchorError occurred. Error Code: {name}. Error Number: {code}. Error Message: {msg}."
    )
    raise InstructionError.custom(code)


def _log_name(name: str) -> str:
    return "Instruction: " + "".join(part.capitalize() for part in name.split("_"))


def _now(run: _Anchor) -> int:
    return run.ctx.unix_timestamp


def _config_checks(run: _Anchor, config: GlobalConfig, field: str = "global_config") -> None:
    run.seeds(field, [GLOBAL_CONFIG_SEED], config.bump)


def _market_seeds(run: _Anchor, market: MarketAccount, field: str = "market") -> None:
    run.seeds(field, [MARKET_SEED, market.market_id], market.bump)


def _fees(config: GlobalConfig) -> FeeConfig:
    return FeeConfig.from_config(config)


def _u64_add(run: _Anchor, a: int, b: int) -> int:
    if a + b > 0xFFFF_FFFF_FFFF_FFFF:
        run.fail("OverflowError")
    return a + b


def _u32_add(run: _Anchor, a: int, b: int) -> int:
    if a + b > 0xFFFF_FFFF:
        run.fail("OverflowError")
    return a + b


# -- 4.1 ---------------------------------------------------------------------


def _initialize_global_config(run: _Anchor, args: Any) -> None:
    run.signer("admin")
    run.system_program()
    bump = run.find_seeds("global_config", [GLOBAL_CONFIG_SEED])
    run.init("global_config", "admin", ALLOCATED_LEN[GlobalConfig], bump)
    run.mut("admin")
    run.mut("global_config")
    now = _now(run)
    config = GlobalConfig(
        admin=run.key("admin"),
        backend_authority=args.backend_authority,
        protocol_fee_wallet=run.key("protocol_fee_wallet"),
        protocol_fee_bps=300,
        resolver_reward_bps=200,
        liquidity_provider_fee_bps=500,
        proposal_approval_threshold=7000,
        dispute_success_threshold=6000,
        min_resolution_delay=86_400,
        dispute_period=259_200,
        min_resolver_reputation=8000,
        is_paused=False,
        reserved=bytes(64),
        bump=bump,
    )
    run.require(_BPS >= 300 + 200 + 500, "InvalidFeeConfiguration")
    run.stage("global_config", config)
    run.emit(GlobalConfigInitialized(config.admin, config.backend_authority, 300, now))


# -- 4.2 ---------------------------------------------------------------------


def _update_global_config(run: _Anchor, args: Any) -> None:
    run.signer("admin")
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    _config_checks(run, config)
    run.mut("global_config")
    run.constraint(config.admin == run.key("admin"), "global_config", "Unauthorized")
    fee_total = args.protocol_fee_bps + args.resolver_reward_bps + args.liquidity_provider_fee_bps
    run.require(fee_total <= _BPS, "InvalidFeeStructure")
    run.require(args.proposal_approval_threshold <= _BPS, "InvalidThreshold")
    run.require(args.dispute_success_threshold <= _BPS, "InvalidThreshold")
    if args.min_resolution_delay is not None:
        run.require(args.min_resolution_delay > 0, "InvalidTimeLimit")
    if args.dispute_period is not None:
        run.require(args.dispute_period > 0, "InvalidTimeLimit")
    config = replace(
        config,
        protocol_fee_bps=args.protocol_fee_bps,
        resolver_reward_bps=args.resolver_reward_bps,
        liquidity_provider_fee_bps=args.liquidity_provider_fee_bps,
        proposal_approval_threshold=args.proposal_approval_threshold,
        dispute_success_threshold=args.dispute_success_threshold,
        min_resolution_delay=(
            config.min_resolution_delay
            if args.min_resolution_delay is None
            else args.min_resolution_delay
        ),
        dispute_period=config.dispute_period
        if args.dispute_period is None
        else args.dispute_period,
    )
    run.stage("global_config", config)
    run.emit(
        ConfigUpdated(
            args.protocol_fee_bps,
            args.resolver_reward_bps,
            args.liquidity_provider_fee_bps,
            args.proposal_approval_threshold,
            args.dispute_success_threshold,
            config.min_resolution_delay,
            config.dispute_period,
            _now(run),
        )
    )


# -- 4.17 --------------------------------------------------------------------


def _emergency_pause(run: _Anchor, args: Any) -> None:
    del args
    run.signer("admin")
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    _config_checks(run, config)
    run.mut("global_config")
    run.constraint(config.admin == run.key("admin"), "global_config", "Unauthorized")
    config = replace(config, is_paused=not config.is_paused)
    run.stage("global_config", config)
    run.emit(ProtocolPauseStatusChanged(config.is_paused, run.key("admin"), _now(run)))


# -- 4.3 ---------------------------------------------------------------------


def _create_market(run: _Anchor, args: Any) -> None:
    run.signer("creator")
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    run.system_program()
    bump = run.find_seeds("market", [MARKET_SEED, args.market_id])
    run.init("market", "creator", ALLOCATED_LEN[MarketAccount], bump)
    run.mut("creator")
    _config_checks(run, config)
    run.mut("market")
    run.require(not config.is_paused, "ProtocolPaused")
    run.require(args.b_parameter > 0, "InvalidBParameter")
    run.require(args.initial_liquidity > 0, "InvalidLiquidity")
    now = _now(run)
    seed = args.b_parameter // 1000
    market = replace(
        _EMPTY_MARKET,
        market_id=args.market_id,
        creator=run.key("creator"),
        state=MarketState.PROPOSED,
        b_parameter=args.b_parameter,
        initial_liquidity=args.initial_liquidity,
        current_liquidity=args.initial_liquidity,
        shares_yes=seed,
        shares_no=seed,
        created_at=now,
        ipfs_evidence_hash=args.ipfs_question_hash,
        bump=bump,
    )
    run.require(market.reserved == bytes(119), "InvalidReservedField")
    if run.ctx.variant == "patched":  # NOT deployed: actually fund the pot
        run.transfer("creator", "market", args.initial_liquidity)
    run.stage("market", market)
    run.emit(MarketCreated(args.market_id, market.creator, args.b_parameter, 0, now))


# -- 4.13 / 4.15 ---------------------------------------------------------------


def _submit_vote(run: _Anchor, args: Any, vote_type: VoteType) -> None:
    market: MarketAccount = run.load("market", MarketAccount)
    run.signer("user")
    run.system_program()
    market_key, user = run.key("market"), run.key("user")
    seeds = [VOTE_SEED, bytes(market_key), bytes(user), bytes([vote_type.value])]
    bump = run.find_seeds("vote_record", seeds)
    run.init("vote_record", "user", ALLOCATED_LEN[VoteRecord], bump)
    run.mut("vote_record")
    _market_seeds(run, market)
    wanted = MarketState.PROPOSED if vote_type == VoteType.PROPOSAL else MarketState.DISPUTED
    run.constraint(market.state == wanted, "market", "InvalidStateForVoting")
    run.mut("user")
    now = _now(run)
    run.stage("vote_record", VoteRecord(market_key, user, vote_type, args.vote, now, bump))
    event_cls = ProposalVoteSubmitted if vote_type == VoteType.PROPOSAL else DisputeVoteSubmitted
    run.emit(event_cls(market.market_id, user, args.vote, now))


def _submit_proposal_vote(run: _Anchor, args: Any) -> None:
    _submit_vote(run, args, VoteType.PROPOSAL)


def _submit_dispute_vote(run: _Anchor, args: Any) -> None:
    _submit_vote(run, args, VoteType.DISPUTE)


# -- 4.14 / 4.16 ---------------------------------------------------------------


def _aggregate_accounts(run: _Anchor, wanted: MarketState) -> tuple[MarketAccount, GlobalConfig]:
    market: MarketAccount = run.load("market", MarketAccount)
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    run.signer("backend_authority")
    _market_seeds(run, market)
    run.mut("market")
    run.constraint(market.state == wanted, "market", "InvalidStateForVoting")
    _config_checks(run, config)
    run.constraint(
        config.backend_authority == run.key("backend_authority"),
        "backend_authority",
        "Unauthorized",
    )
    run.ctx.consume(_CU_FIND_PDA)
    canonical, _ = Pubkey.find_program_address([GLOBAL_CONFIG_SEED], run.program_id)
    run.require(run.key("global_config") == canonical, "InvalidGlobalConfig")
    return market, config


def _aggregate_proposal_votes(run: _Anchor, args: Any) -> None:
    market, config = _aggregate_accounts(run, MarketState.PROPOSED)
    likes, dislikes = args.final_likes, args.final_dislikes
    total = _u32_add(run, likes, dislikes)
    market = replace(
        market, proposal_likes=likes, proposal_dislikes=dislikes, proposal_total_votes=total
    )
    bps = likes * _BPS // total if total else 0
    run.stage("market", market)
    run.emit(
        ProposalAggregated(
            market.market_id,
            likes,
            dislikes,
            bps // 100,
            bps >= config.proposal_approval_threshold,
            _now(run),
        )
    )


def _aggregate_dispute_votes(run: _Anchor, args: Any) -> None:
    market, config = _aggregate_accounts(run, MarketState.DISPUTED)
    agrees, disagrees = args.final_agrees, args.final_disagrees
    total = _u32_add(run, agrees, disagrees)
    succeeded = total > 0 and agrees * _BPS // total >= config.dispute_success_threshold
    now = _now(run)
    market = replace(
        market,
        dispute_agree=agrees,
        dispute_disagree=disagrees,
        dispute_total_votes=total,
        was_disputed=True,
    )
    if succeeded:  # §11.14: back to Resolving, outcome NOT flipped
        market = replace(market, state=MarketState.RESOLVING)
    else:  # §11.14: Finalized with final_outcome None (refunds), finalized_at stays 0
        market = replace(market, state=MarketState.FINALIZED, resolved_at=now)
    run.stage("market", market)
    run.emit(
        DisputeAggregated(
            market.market_id,
            agrees,
            disagrees,
            agrees * 100 // total if total else 0,
            succeeded,
            now,
        )
    )


# -- 4.4 / 4.5 / 4.18 ----------------------------------------------------------


def _admin_market_accounts(
    run: _Anchor, *, admin_constraint: bool
) -> tuple[MarketAccount, GlobalConfig]:
    """Accounts of approve/cancel (admin constraint on global_config) and
    activate (authority checked in the handler)."""
    signer = run.names[0]
    run.signer(signer)
    market: MarketAccount = run.load("market", MarketAccount)
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    if run.spec.accounts[0].writable:
        run.mut(signer)
    _market_seeds(run, market)
    run.mut("market")
    _config_checks(run, config)
    if admin_constraint:
        run.constraint(config.admin == run.key(signer), "global_config", "Unauthorized")
    return market, config


def _approve_proposal(run: _Anchor, args: Any) -> None:
    del args
    market, config = _admin_market_accounts(run, admin_constraint=True)
    run.require(market.state == MarketState.PROPOSED, "InvalidStateTransition")
    run.require(market.proposal_total_votes > 0, "NoVotesRecorded")
    approval = (market.proposal_likes * _BPS // market.proposal_total_votes) & 0xFFFF
    run.require(approval >= config.proposal_approval_threshold, "InsufficientVotes")
    now = _now(run)
    market = replace(market, state=MarketState.APPROVED, approved_at=now)
    run.stage("market", market)
    run.emit(ProposalApproved(market.market_id, run.key("admin"), now))


def _activate_market(run: _Anchor, args: Any) -> None:
    del args
    market, config = _admin_market_accounts(run, admin_constraint=False)
    authority = run.key("authority")
    run.require(authority in (config.admin, market.creator), "Unauthorized")
    run.require(market.state == MarketState.APPROVED, "InvalidStateTransition")
    run.require(market.current_liquidity >= market.initial_liquidity, "InsufficientLiquidity")
    now = _now(run)
    market = replace(market, state=MarketState.ACTIVE, activated_at=now)
    run.stage("market", market)
    run.emit(MarketActivated(market.market_id, market.creator, market.initial_liquidity, now))


def _cancel_market(run: _Anchor, args: Any) -> None:
    del args
    market, _config = _admin_market_accounts(run, admin_constraint=True)
    run.require(market.state != MarketState.CANCELLED, "MarketAlreadyCancelled")
    run.require(market.state in (MarketState.PROPOSED, MarketState.APPROVED), "CannotCancelMarket")
    now = _now(run)
    market = replace(market, state=MarketState.CANCELLED, cancelled_at=now)
    run.stage("market", market)
    run.emit(MarketCancelled(market.market_id, run.key("admin"), now))


# -- 4.6 ---------------------------------------------------------------------


def _trade_fee_wallet(run: _Anchor, config: GlobalConfig) -> None:
    run.mut("protocol_fee_wallet")
    run.constraint(
        run.key("protocol_fee_wallet") == config.protocol_fee_wallet,
        "protocol_fee_wallet",
        "Unauthorized",
    )


def _buy_shares(run: _Anchor, args: Any) -> None:
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    market: MarketAccount = run.load("market", MarketAccount)
    run.signer("user")
    run.system_program()
    market_key, user = run.key("market"), run.key("user")
    # init_if_needed position (init fields are validated first)
    bump = run.find_seeds("position", [POSITION_SEED, bytes(market_key), bytes(user)])
    pos_acct = run.ctx.account(run.index("position"))
    if pos_acct.owner == SYSTEM_PROGRAM_ID:
        run.init("position", "user", ALLOCATED_LEN[UserPosition], bump)
        position = _EMPTY_POSITION  # all-zero data, as Anchor sees it after init
    else:
        position = run.load("position", UserPosition)
        if len(pos_acct.data) != ALLOCATED_LEN[UserPosition]:
            run.fail_account("position", "ConstraintSpace")
    run.mut("position")
    _config_checks(run, config)
    _market_seeds(run, market)
    run.mut("market")
    run.constraint(market.state == MarketState.ACTIVE, "market", "InvalidMarketState")
    run.mut("user")
    _trade_fee_wallet(run, config)

    run.require(not config.is_paused, "ProtocolPaused")
    try:
        quote = quote_buy(
            MarketMath.from_account(market), _fees(config), args.outcome, args.target_cost
        )
    except QuoteError as e:
        run.ctx.consume(_CU_COST_EVAL * 30)
        run.math(e)
    run.ctx.consume(_CU_COST_EVAL * (quote.search_probes + 3))
    run.transfer("user", "market", quote.lamports_to_market)
    run.transfer("user", "protocol_fee_wallet", quote.lamports_to_protocol_wallet)
    market = replace(
        market,
        shares_yes=quote.new_shares_yes,
        shares_no=quote.new_shares_no,
        total_volume=_u64_add(run, market.total_volume, quote.total_volume_delta),
        current_liquidity=_u64_add(run, market.current_liquidity, quote.current_liquidity_delta),
        accumulated_resolver_fees=_u64_add(
            run, market.accumulated_resolver_fees, quote.fees.resolver
        ),
        accumulated_lp_fees=_u64_add(run, market.accumulated_lp_fees, quote.fees.lp),
    )
    now = _now(run)
    if position.trades_count == 0:
        position = replace(
            position,
            market=market_key,
            user=user,
            shares_yes=0,
            shares_no=0,
            total_invested=0,
            has_claimed=False,
            bump=bump,
        )
    else:
        run.require(position.user == user, "Unauthorized")
        run.require(position.market == market_key, "InvalidMarketId")
    if args.outcome:
        position = replace(position, shares_yes=_u64_add(run, position.shares_yes, quote.shares))
    else:
        position = replace(position, shares_no=_u64_add(run, position.shares_no, quote.shares))
    position = replace(
        position,
        total_invested=_u64_add(run, position.total_invested, quote.total_cost),
        trades_count=_u32_add(run, position.trades_count, 1),
        last_trade_at=now,
    )
    run.stage("market", market)
    run.stage("position", position)
    run.emit(
        SharesBought(
            market.market_id,
            user,
            args.outcome,
            quote.shares,
            quote.total_cost,
            quote.new_price_yes,
            now,
        )
    )


# -- 4.7 ---------------------------------------------------------------------


def _position_accounts(run: _Anchor) -> tuple[MarketAccount, UserPosition]:
    market: MarketAccount = run.load("market", MarketAccount)
    position: UserPosition = run.load("position", UserPosition)
    run.signer("user")
    return market, position


def _position_seeds(run: _Anchor, position: UserPosition) -> None:
    run.seeds(
        "position",
        [POSITION_SEED, bytes(run.key("market")), bytes(position.user)],
        position.bump,
    )


def _sell_shares(run: _Anchor, args: Any) -> None:
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    market, position = _position_accounts(run)
    run.system_program()
    _config_checks(run, config)
    _market_seeds(run, market)
    run.mut("market")
    run.constraint(market.state == MarketState.ACTIVE, "market", "InvalidMarketState")
    _position_seeds(run, position)
    run.mut("position")
    run.constraint(position.user == run.key("user"), "position", "Unauthorized")
    run.mut("user")
    _trade_fee_wallet(run, config)

    run.require(not config.is_paused, "ProtocolPaused")
    held = position.shares_yes if args.outcome else position.shares_no
    run.require(held >= args.shares_to_sell, "InsufficientShares")
    try:
        quote = quote_sell(
            MarketMath.from_account(market),
            _fees(config),
            args.outcome,
            args.shares_to_sell,
            held,
            args.min_proceeds,
        )
    except QuoteError as e:
        run.ctx.consume(_CU_COST_EVAL * 2)
        run.math(e)
    run.ctx.consume(_CU_COST_EVAL * 3)
    market = replace(
        market,
        shares_yes=quote.new_shares_yes,
        shares_no=quote.new_shares_no,
        total_volume=_u64_add(run, market.total_volume, quote.total_volume_delta),
        current_liquidity=quote.new_current_liquidity,
        accumulated_resolver_fees=_u64_add(
            run, market.accumulated_resolver_fees, quote.fees.resolver
        ),
        accumulated_lp_fees=_u64_add(run, market.accumulated_lp_fees, quote.fees.lp),
    )
    now = _now(run)
    side = (
        {"shares_yes": position.shares_yes - args.shares_to_sell}
        if args.outcome
        else {"shares_no": position.shares_no - args.shares_to_sell}
    )
    position = replace(
        position, **side, trades_count=_u32_add(run, position.trades_count, 1), last_trade_at=now
    )
    run.require(not market.is_locked, "Reentrant")
    market = replace(market, is_locked=True)
    market_pda = run.key("market")
    rent = run.ctx.rent_exempt_minimum(len(run.ctx.account(run.index("market")).data))
    for dst, amount in (
        ("user", quote.net_proceeds),
        ("protocol_fee_wallet", quote.fees.protocol),
    ):
        have = run.lamports("market")
        run.require(have >= amount, "InsufficientFunds")
        run.require(have - amount >= rent, "WouldBreakRentExemption")
        if run.ctx.variant == "patched":  # NOT deployed: the fix claims received
            run.move_lamports("market", dst, amount)
        else:  # deployed: System transfer out of a data-carrying PDA → InvalidArgument
            run.transfer("market", dst, amount, pda=market_pda)
    market = replace(market, is_locked=False)
    run.stage("market", market)
    run.stage("position", position)
    run.emit(
        SharesSold(
            market.market_id,
            run.key("user"),
            args.outcome,
            args.shares_to_sell,
            quote.net_proceeds,
            quote.new_price_yes,
            now,
        )
    )


# -- 4.8 / 4.9 / 4.10 --------------------------------------------------------


def _market_role_accounts(
    run: _Anchor, signer_field: str, states: tuple[MarketState, ...], state_error: str
) -> tuple[GlobalConfig, MarketAccount]:
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    market: MarketAccount = run.load("market", MarketAccount)
    run.signer(signer_field)
    _config_checks(run, config)
    _market_seeds(run, market)
    run.mut("market")
    run.constraint(market.state in states, "market", state_error)
    return config, market


def _resolve_market(run: _Anchor, args: Any) -> None:
    _config, market = _market_role_accounts(
        run, "resolver", (MarketState.ACTIVE,), "InvalidMarketState"
    )
    run.mut("resolver")
    now = _now(run)
    run.require(market.proposed_outcome is None, "AlreadyResolved")
    run.require(market.created_at <= now <= market.created_at + _MAX_MARKET_AGE, "InvalidTimestamp")
    run.require(now > market.activated_at, "InvalidTimestamp")
    market = replace(
        market,
        proposed_outcome=args.proposed_outcome,
        resolver=run.key("resolver"),
        ipfs_evidence_hash=args.ipfs_evidence_hash,
        resolution_proposed_at=now,
        resolution_agree=0,
        resolution_disagree=0,
        resolution_total_votes=0,
        state=MarketState.RESOLVING,
    )
    run.stage("market", market)
    run.emit(
        MarketResolved(
            market.market_id, market.resolver, args.proposed_outcome, args.ipfs_evidence_hash, now
        )
    )


def _initiate_dispute(run: _Anchor, args: Any) -> None:
    del args
    config, market = _market_role_accounts(
        run, "initiator", (MarketState.RESOLVING,), "InvalidMarketState"
    )
    now = _now(run)
    run.require(now > market.resolution_proposed_at, "InvalidTimestamp")
    run.require(now < market.resolution_proposed_at + config.dispute_period, "DisputePeriodEnded")
    run.require(market.state != MarketState.DISPUTED, "AlreadyDisputed")
    market = replace(
        market,
        dispute_initiator=run.key("initiator"),
        dispute_initiated_at=now,
        dispute_agree=0,
        dispute_disagree=0,
        dispute_total_votes=0,
        state=MarketState.DISPUTED,
    )
    run.stage("market", market)
    run.emit(
        DisputeInitiated(market.market_id, market.dispute_initiator, market.proposed_outcome, now)
    )


def _finalize_market(run: _Anchor, args: Any) -> None:
    config, market = _market_role_accounts(
        run,
        "backend_authority",
        (MarketState.RESOLVING, MarketState.DISPUTED),
        "InvalidMarketState",
    )
    run.constraint(
        config.backend_authority == run.key("backend_authority"),
        "backend_authority",
        "Unauthorized",
    )
    now = _now(run)
    run.require(market.created_at <= now <= market.created_at + _MAX_MARKET_AGE, "InvalidTimestamp")
    run.require(now > market.resolution_proposed_at, "InvalidTimestamp")
    was_disputed = market.state == MarketState.DISPUTED
    outcome = market.proposed_outcome
    if was_disputed:
        agree, disagree = args.dispute_agree, args.dispute_disagree
        run.require(agree is not None and disagree is not None, "NoVotesRecorded")
        total = _u32_add(run, agree, disagree)
        run.require(total > 0, "NoVotesRecorded")
        market = replace(
            market, dispute_agree=agree, dispute_disagree=disagree, dispute_total_votes=total
        )
        if agree * _BPS // total >= config.dispute_success_threshold and outcome is not None:
            outcome = not outcome
    else:
        run.require(
            now >= market.resolution_proposed_at + config.dispute_period, "DisputePeriodNotEnded"
        )
    if market.initial_liquidity > market.current_liquidity:
        loss = market.initial_liquidity - market.current_liquidity
        run.require(loss <= market.b_parameter * _LN2_SCALED // _S, "BoundedLossExceeded")
    market = replace(
        market,
        final_outcome=outcome,
        was_disputed=was_disputed,
        finalized_at=now,
        state=MarketState.FINALIZED,
    )
    run.stage("market", market)
    run.emit(MarketFinalized(market.market_id, outcome, was_disputed, now))


# -- 4.11 / 4.12 ---------------------------------------------------------------


def _claim_winnings(run: _Anchor, args: Any) -> None:
    del args
    config: GlobalConfig = run.load("global_config", GlobalConfig)
    market, position = _position_accounts(run)
    run.system_program()
    _config_checks(run, config)
    _market_seeds(run, market)
    run.mut("market")
    run.constraint(market.state == MarketState.FINALIZED, "market", "InvalidMarketState")
    _position_seeds(run, position)
    run.mut("position")
    run.has_one("position", position.user, "user")
    run.constraint(not position.has_claimed, "position", "AlreadyClaimed")
    run.mut("user")
    run.mut("resolver")
    run.constraint(run.key("resolver") == market.resolver, "resolver", "InvalidResolver")

    run.require(not market.is_locked, "Reentrant")
    rent = run.ctx.rent_exempt_minimum(len(run.ctx.account(run.index("market")).data))
    try:
        claim = claim_payout(
            MarketMath.from_account(market),
            PositionHoldings.from_account(position),
            final_outcome=market.final_outcome,
            accumulated_resolver_fees=market.accumulated_resolver_fees,
            market_lamports=run.lamports("market"),
            rent_exempt_minimum=rent,
        )
    except QuoteError as e:
        run.math(e)
    run.move_lamports("market", "user", claim.winnings)
    if claim.resolver_paid:
        run.move_lamports("market", "resolver", claim.resolver_paid)
    market = replace(market, accumulated_resolver_fees=claim.accumulated_resolver_fees_after)
    position = replace(position, has_claimed=True, claimed_amount=claim.winnings)
    now = _now(run)
    run.stage("market", market)
    run.stage("position", position)
    run.emit(
        WinningsClaimed(
            run.key("market"), run.key("user"), market.final_outcome, claim.winnings, now
        )
    )


def _withdraw_liquidity(run: _Anchor, args: Any) -> None:
    del args
    market: MarketAccount = run.load("market", MarketAccount)
    run.signer("creator")
    _market_seeds(run, market)
    run.mut("market")
    run.constraint(market.state == MarketState.FINALIZED, "market", "InvalidMarketState")
    run.constraint(market.creator == run.key("creator"), "market", "Unauthorized")
    run.mut("creator")
    rent = run.ctx.rent_exempt_minimum(len(run.ctx.account(run.index("market")).data))
    try:
        amount = withdrawable(run.lamports("market"), rent)
    except QuoteError as e:
        run.math(e)
    run.move_lamports("market", "creator", amount)
    market = replace(market, current_liquidity=0, accumulated_lp_fees=0)
    run.stage("market", market)
    run.emit(LiquidityWithdrawn(market.market_id, market.creator, amount, _now(run)))


_HANDLERS = {
    "initialize_global_config": _initialize_global_config,
    "update_global_config": _update_global_config,
    "emergency_pause": _emergency_pause,
    "create_market": _create_market,
    "submit_proposal_vote": _submit_proposal_vote,
    "aggregate_proposal_votes": _aggregate_proposal_votes,
    "approve_proposal": _approve_proposal,
    "activate_market": _activate_market,
    "cancel_market": _cancel_market,
    "buy_shares": _buy_shares,
    "sell_shares": _sell_shares,
    "resolve_market": _resolve_market,
    "initiate_dispute": _initiate_dispute,
    "submit_dispute_vote": _submit_dispute_vote,
    "aggregate_dispute_votes": _aggregate_dispute_votes,
    "finalize_market": _finalize_market,
    "claim_winnings": _claim_winnings,
    "withdraw_liquidity": _withdraw_liquidity,
}
if set(_HANDLERS) != set(INSTRUCTIONS):
    raise RuntimeError("the zmart-core model and the codec disagree on the instruction set")
