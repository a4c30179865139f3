"""Integer primitives of zmart-core's LMSR, transcribed bit for bit (docs/chain.md §9).

The chain does not compute the textbook LMSR: it uses a Padé(2,2) "exp", a
three-term atanh series for "ln", floor division everywhere and checked u64
arithmetic that aborts the transaction with a program error.  A quote that is
"close" is useless to a wallet (a buy that the chain rejects, a price that is
off by one unit in an event we must reconcile), so this module reproduces the
algorithm exactly, quirks included:

* the exp is non-monotone — it peaks at x = 2√3 and falls back towards 1, so
  the cost function *decreases* when the trailing side grows past a lead of
  ≈ 3.46·b (§9.2, §11 item 8);
* the truncated ln makes C jump down by ≈ 1.43·10⁻⁴·b when a market leaves
  exact balance, which is why small first buys fail with ``UnderflowError``
  (§9.3, §11 item 9);
* the buy search stops within 10⁶ share-units, so small budgets fill zero
  shares at zero cost (§9.7).

Only Python ints are used — never floats — and every place where the Rust code
would overflow, underflow or divide by zero raises :class:`QuoteError` carrying
the same :class:`~zmartd.chain.errors.ProgramError` the chain would return.
"""

from __future__ import annotations

from functools import cache

from zmartd.chain.errors import ProgramError, all_errors

__all__ = [
    "BPS_DENOMINATOR",
    "BUY_GROSS_UP_DENOMINATOR",
    "BUY_GROSS_UP_NUMERATOR",
    "LN2",
    "MAX_B_DECLARED",
    "MAX_EXP",
    "MAX_TARGET_COST",
    "MIN_B",
    "MIN_TRADE_AMOUNT",
    "SEARCH_MAX_ITERATIONS",
    "SEARCH_TOLERANCE",
    "SEARCH_UPPER_BOUND_FACTOR",
    "U64_MAX",
    "QuoteError",
    "S",
    "cost_function",
    "exp_fixed",
    "expneg_fixed",
    "fdiv",
    "fee_split",
    "fmul",
    "ln_fixed",
    "lse",
    "price_yes",
    "shares_for_cost",
]

#: Fixed-point one (10⁹); also lamports per SOL and share-units per share.
S = 1_000_000_000
U64_MAX = (1 << 64) - 1
#: ln 2 as the chain truncates it (not rounded: the true value is 0.6931471805…).
LN2 = 693_147_180
#: Largest exponent accepted by exp; beyond it ``ExponentTooLarge``.
MAX_EXP = 20 * S
#: Smallest b the math accepts (100 SOL).  ``create_market`` only checks b > 0.
MIN_B = 100 * S
#: Declared in the Rust source but enforced nowhere (kept for documentation).
MAX_B_DECLARED = 1_000_000 * S
#: Minimum buy budget (``target_cost``) and minimum sell gross proceeds, lamports.
MIN_TRADE_AMOUNT = 10_000
#: Buys gross the budget up by a hard-coded 10 %, whatever the configured fees.
BUY_GROSS_UP_NUMERATOR = 10_000
BUY_GROSS_UP_DENOMINATOR = 11_000
#: The fill search stops once its bracket is at most this many share-units wide.
SEARCH_TOLERANCE = 1_000_000
SEARCH_MAX_ITERATIONS = 50
#: The fill search's upper bound is this many times b: the per-buy share cap.
SEARCH_UPPER_BOUND_FACTOR = 20
BPS_DENOMINATOR = 10_000
#: Largest ``target_cost`` whose ``* 10,000`` still fits a u64 (§9.5 step 2).
MAX_TARGET_COST = U64_MAX // BUY_GROSS_UP_NUMERATOR

_HALF_S = S // 2
_TWO_S = 2 * S


@cache
def _program_errors() -> dict[str, ProgramError]:
    return {e.name: e for e in all_errors() if e.source == "program"}


class QuoteError(Exception):
    """The chain would reject this trade/claim with ``error``.

    ``error`` is the exact :class:`ProgramError` (name, current code, message)
    that ``buy_shares``/``sell_shares``/``claim_winnings``/``withdraw_liquidity``
    would return for the same inputs, so the REST layer can show the chain's own
    wording and the local chain double can fail with the same code.
    """

    error: ProgramError

    def __init__(self, name: str, detail: str = "") -> None:
        known = _program_errors().get(name)
        if known is None:  # a typo here must not masquerade as a chain error
            raise LookupError(f"{name!r} is not a zmart-core program error")
        self.error = known
        self.detail = detail
        text = str(known)
        super().__init__(f"{text} — {detail}" if detail else text)

    @property
    def name(self) -> str:
        return self.error.name

    @property
    def code(self) -> int:
        return self.error.code


# ---------------------------------------------------------------------------
# §9.1 arithmetic primitives
# ---------------------------------------------------------------------------


def fmul(a: int, c: int) -> int:
    """``(a·c) // S`` in 128 bits; ``OverflowError`` if the result exceeds u64."""
    r = a * c // S
    if r > U64_MAX:
        raise QuoteError("OverflowError", "fixed_mul result exceeds u64")
    return r


def fdiv(a: int, c: int) -> int:
    """``(a·S) // c`` in 128 bits; ``DivisionByZero`` / ``OverflowError``."""
    if c == 0:
        raise QuoteError("DivisionByZero", "fixed_div by zero")
    r = a * S // c
    if r > U64_MAX:
        raise QuoteError("OverflowError", "fixed_div result exceeds u64")
    return r


def _add(a: int, c: int, what: str) -> int:
    r = a + c
    if r > U64_MAX:
        raise QuoteError("OverflowError", what)
    return r


def _sub(a: int, c: int, what: str) -> int:
    if c > a:
        raise QuoteError("UnderflowError", what)
    return a - c


def _mul(a: int, c: int, what: str) -> int:
    r = a * c
    if r > U64_MAX:
        raise QuoteError("OverflowError", what)
    return r


# ---------------------------------------------------------------------------
# §9.2 exp / ln approximations
# ---------------------------------------------------------------------------


def exp_fixed(x: int) -> int:
    """The chain's "exp": Padé(2,2) ``(1 + x/2 + x²/12) / (1 - x/2 + x²/12)``.

    Not an exponential: it rises to ≈ 13.93 at x = 2√3 and then falls back
    towards 1 (exp(6) = 7.0, exp(20) ≈ 1.82).  ``ExponentTooLarge`` above
    ``MAX_EXP`` (20·S).
    """
    if x > MAX_EXP:
        raise QuoteError("ExponentTooLarge", f"exponent {x} > {MAX_EXP}")
    t = fmul(x, x) // 12
    h = x // 2
    num = _add(_add(S, h, "exp numerator"), t, "exp numerator")
    if h <= S:
        den = (S - h) + t
    elif S + t >= h:
        den = (S + t) - h
    else:  # impossible for integers in range (x² - 6x + 12 > 0); Rust returns u64::MAX
        return U64_MAX
    return fdiv(num, den)


def expneg_fixed(x: int) -> int:
    """``fdiv(S, exp(x))`` — the chain's e^(-x)."""
    return fdiv(S, exp_fixed(x))


def ln_fixed(z: int) -> int:
    """The chain's "ln": range reduction by 2 plus three atanh-series terms.

    Only ever called with S < z ≤ 2S by the cost function.  Just below 2S it is
    ≈ 1.43·10⁻⁴ too small, while z = 2S exactly reduces to LN2 — the source of
    the cost jump at balance.  ``ln(0)`` is ``InvalidInput``.
    """
    if z == 0:
        raise QuoteError("InvalidInput", "ln(0)")
    if z == S:
        return 0
    k = 0
    while z >= _TWO_S:
        z //= 2
        k += 1
    while z < _HALF_S:
        z *= 2
        k -= 1
    if z >= S:
        y = fdiv(z - S, z + S)
    else:  # unreachable from trading; computes ln(1/z) with the wrong sign on-chain too
        inv = fdiv(S, z)
        y = fdiv(_sub(inv, S, "ln inv - S"), _add(inv, S, "ln inv + S"))
    y2 = fmul(y, y)
    y3 = fmul(y2, y)
    y5 = fmul(y3, y2)
    inner = _add(_add(y, y3 // 3, "ln series"), y5 // 5, "ln series")
    series = _mul(inner, 2, "ln series")
    if k >= 0:
        return _add(series, _mul(k, LN2, "ln k*LN2"), "ln result")
    return _sub(series, _mul(-k, LN2, "ln k*LN2"), "ln result")


def lse(x: int, y: int) -> int:
    """log-sum-exp as the chain does it: ``max + ln(S + expneg(|x - y|))``."""
    if x >= y:
        hi, d = x, x - y
    else:
        hi, d = y, y - x
    return _add(hi, ln_fixed(_add(S, expneg_fixed(d), "lse S + expneg")), "lse result")


# ---------------------------------------------------------------------------
# §9.3 cost function, §9.4 displayed price
# ---------------------------------------------------------------------------


def _require_b(b: int) -> None:
    if b < MIN_B:
        raise QuoteError("InvalidBParameter", f"b = {b} < MIN_B = {MIN_B}")


def cost_function(b: int, q_yes: int, q_no: int) -> int:
    """``C(q) = fmul(b, lse(fdiv(q_yes, b), fdiv(q_no, b)))`` in lamports.

    q enters only through fdiv(q, b), so C is blind to changes smaller than
    b/S share-units and quantised to ≈ b/S lamports.  ``InvalidBParameter``
    when b < 100 SOL; ``ExponentTooLarge`` when the sides differ by > 20·b.
    """
    _require_b(b)
    return fmul(b, lse(fdiv(q_yes, b), fdiv(q_no, b)))


def price_yes(b: int, q_yes: int, q_no: int) -> int:
    """Displayed YES price (S-scaled), the ``new_price_yes`` event field.

    Uses fdiv of the *difference* (C uses the difference of two fdivs).  Caps at
    0.933012701 for a lead of 2√3·b and then falls; ``ExponentTooLarge`` beyond
    a lead of 20·b.  It is not a marginal cost and must not be used to quote.
    """
    _require_b(b)
    if q_yes >= q_no:
        e = exp_fixed(fdiv(q_yes - q_no, b))
        return fdiv(e, _add(e, S, "price e + S"))
    e = exp_fixed(fdiv(q_no - q_yes, b))
    return fdiv(S, _add(S, e, "price S + e"))


# ---------------------------------------------------------------------------
# §9.6 fee split, §9.5 fill search
# ---------------------------------------------------------------------------


def fee_split(
    amount: int, protocol_bps: int, resolver_bps: int, lp_bps: int
) -> tuple[int, int, int, int]:
    """``(protocol, resolver, lp, total)`` of a trade amount (§9.6).

    total = amount·(p+r+l) // 10,000 (checked u64 multiply → ``OverflowError``);
    protocol and resolver are floor shares of *total*, LP gets the remainder;
    a zero fee total is ``DivisionByZero`` (so zero fees disable trading).
    """
    bps = protocol_bps + resolver_bps + lp_bps
    total = _mul(amount, bps, "fee amount * total_bps") // BPS_DENOMINATOR
    if bps == 0:
        raise QuoteError("DivisionByZero", "fee split with all fee bps = 0")
    protocol = _mul(total, protocol_bps, "fee total * protocol_bps") // bps
    resolver = _mul(total, resolver_bps, "fee total * resolver_bps") // bps
    lp = total - protocol - resolver
    return protocol, resolver, lp, total


def shares_for_cost(
    b: int, q_yes: int, q_no: int, outcome_yes: bool, budget: int
) -> tuple[int, int]:
    """The chain's fill search: ``(shares, probes)`` for a pre-fee ``budget``.

    Bisection over [0, 20·b] on ``C(q + mid) - C(q)`` that stops when the
    bracket is ≤ 10⁶ share-units wide or after 50 rounds, returning ``lo``
    (or ``mid`` on an exact hit).  A negative cost difference at any probe is
    ``UnderflowError`` — this is what kills small buys on balanced markets and
    buys of the trailing side of lopsided ones.  ``probes`` counts the cost
    evaluations, a proxy for the compute units the chain will burn.
    """
    c0 = cost_function(b, q_yes, q_no)
    hi = _mul(SEARCH_UPPER_BOUND_FACTOR, b, "search upper bound 20*b")
    lo = 0
    probes = 0
    for _ in range(SEARCH_MAX_ITERATIONS):
        if hi - lo <= SEARCH_TOLERANCE:
            break
        mid = lo + (hi - lo) // 2
        probes += 1
        if outcome_yes:
            c = cost_function(b, _add(q_yes, mid, "q_yes + mid"), q_no)
        else:
            c = cost_function(b, q_yes, _add(q_no, mid, "q_no + mid"))
        if c < c0:
            raise QuoteError("UnderflowError", "cost difference negative in fill search")
        c -= c0
        if c < budget:
            lo = mid + 1
        elif c > budget:
            hi = mid
        else:
            return mid, probes
    return lo, probes
