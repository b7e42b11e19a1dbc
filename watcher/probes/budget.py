"""The daily token and cost budget for probes, per vendor, per UTC day.

Every probe is a billed request (docs/detection.md §4.4), so the daemon spends
through a :class:`Budget`:

1. ``est = budget.estimate(vendor, canary, model)``: the worst case of one call;
2. ``r = budget.reserve(vendor, est, now)``: ``None`` means "not today", else the
   worst case is held against the day's limits until
3. ``budget.settle(r, tokens_in, tokens_out, now)`` with the usage the vendor
   reported (``settle(r, now=now)`` with no usage charges the whole reservation,
   for a timeout whose billing is unknown), or ``budget.cancel(r, now)`` when the
   request never left.

**The guarantee.** Spent plus reserved never exceeds ``daily_tokens`` or
``daily_cost`` as long as every call's real usage is within its reservation,
i.e. the vendor honours ``max_tokens`` and bills no hidden prompt. The input side
of the estimate is a bound, not a guess: a byte-level BPE token covers at least
one UTF-8 byte, so the prompt's UTF-8 length plus :data:`MESSAGE_OVERHEAD` per
message and :data:`REQUEST_OVERHEAD` per call cannot be beaten by the tokenisers
in use. (The familiar characters/4 is the *typical* count, shown by
:func:`approx_prompt_tokens`; it is too low for non-English text to be a limit.)
Reasoning models bill hidden reasoning as output: pass the ``max_tokens`` that is
really sent (``estimate(..., max_tokens=...)``).

When usage does exceed its reservation, the real usage is charged anyway, the
vendor is *stopped* for the rest of the UTC day (``remaining().stopped``,
``settle`` returns True) and the caller should log it: the limit may then have been
passed by that one overrun, and no further request is allowed to pass it again.

Days roll over at 00:00 UTC. A reservation made before midnight and settled after
it is charged to the day it was made on, which is closed, so it costs the new day
nothing. ``to_dict``/``from_dict`` carry the state across restarts; open
reservations are saved as spent, since a request in flight at a crash may have
been billed. Money is :class:`~decimal.Decimal` so that sums are exact. The
class is not thread-safe: use it from one event loop.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

MESSAGE_OVERHEAD = 8
"""Tokens reserved per chat message for role markers and the template around it."""
REQUEST_OVERHEAD = 8
"""Tokens reserved per request for the reply priming and the like."""
STATE_FORMAT = 1

Number = int | float | str | Decimal


def _dec(value: Number, what: str) -> Decimal:
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what} must be a finite number ≥ 0, got {value!r}")
    return d


@dataclass(frozen=True, slots=True)
class Price:
    """List price of a model, in currency units per million tokens."""

    input_per_m: Decimal
    output_per_m: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_per_m", _dec(self.input_per_m, "input price"))
        object.__setattr__(self, "output_per_m", _dec(self.output_per_m, "output price"))

    def cost(self, tokens_in: int, tokens_out: int) -> Decimal:
        return (tokens_in * self.input_per_m + tokens_out * self.output_per_m) / 1_000_000


CONSERVATIVE_PRICE = Price(Decimal(15), Decimal(75))
"""The dearest list price in detection.md §4.4: an unpriced model is over-counted, never under."""


@dataclass(frozen=True, slots=True)
class VendorBudget:
    """One vendor's daily limits and prices. ``None`` for a limit means no limit on that side."""

    daily_tokens: int | None
    daily_cost: Decimal | None
    default_price: Price = CONSERVATIVE_PRICE
    """For models not in ``prices``."""
    prices: Mapping[str, Price] = field(default_factory=dict)
    """By model id as sent to the API."""

    def __post_init__(self) -> None:
        if self.daily_tokens is not None and (isinstance(self.daily_tokens, bool) or self.daily_tokens < 0):
            raise ValueError(f"daily_tokens must be an integer ≥ 0, got {self.daily_tokens!r}")
        if self.daily_cost is not None:
            object.__setattr__(self, "daily_cost", _dec(self.daily_cost, "daily_cost"))
        object.__setattr__(self, "prices", dict(self.prices))

    def price(self, model: str) -> Price:
        return self.prices.get(model, self.default_price)


class _CanaryLike(Protocol):
    prompt: str
    system: str | None
    max_tokens: int


def prompt_token_bound(prompt: str, system: str | None = None) -> int:
    """An upper bound on the input tokens of a chat request with this prompt (see the module doc)."""
    parts = [prompt] if system is None else [system, prompt]
    return sum(len(p.encode("utf-8")) + MESSAGE_OVERHEAD for p in parts) + REQUEST_OVERHEAD


def approx_prompt_tokens(prompt: str, system: str | None = None) -> int:
    """The usual rough count, characters / 4 rounded up: for display, never for limits."""
    return math.ceil((len(prompt) + len(system or "")) / 4)


@dataclass(frozen=True, slots=True)
class Estimate:
    """The worst case of one call, priced."""

    tokens_in: int
    tokens_out: int
    price: Price
    model: str = ""

    def __post_init__(self) -> None:
        if self.tokens_in < 0 or self.tokens_out < 0:
            raise ValueError("token counts must be ≥ 0")

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    @property
    def cost(self) -> Decimal:
        return self.price.cost(self.tokens_in, self.tokens_out)


@dataclass(frozen=True, slots=True, eq=False)
class Reservation:
    """Proof that a worst case is held; give it back to :meth:`Budget.settle` or :meth:`Budget.cancel`."""

    id: int
    vendor: str
    day: date
    estimate: Estimate


@dataclass(frozen=True, slots=True)
class Remaining:
    """What is left of one vendor's day. ``tokens``/``cost`` are None when that side has no limit."""

    vendor: str
    day: date
    tokens: int | None
    cost: Decimal | None
    spent_tokens: int
    spent_cost: Decimal
    reserved_tokens: int
    reserved_cost: Decimal
    stopped: bool
    """True after an overrun: nothing more is spent until the next UTC day."""
    overruns: int
    resets_at: datetime


@dataclass(slots=True)
class _Ledger:
    day: date
    spent_tokens: int = 0
    spent_cost: Decimal = Decimal(0)
    reserved_tokens: int = 0
    reserved_cost: Decimal = Decimal(0)
    stopped: bool = False
    overruns: int = 0


def utc_day(now: datetime) -> date:
    """The UTC calendar day of an aware datetime."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (use datetime.now(UTC))")
    return now.astimezone(UTC).date()


class Budget:
    """Per-vendor, per-UTC-day accounting of probe tokens and cost."""

    def __init__(
        self, vendors: Mapping[str, VendorBudget] | None = None, default: VendorBudget | None = None
    ):
        self._vendors = dict(vendors or {})
        self._default = default
        self._ledgers: dict[str, _Ledger] = {}
        self._open: dict[int, Reservation] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ config

    def policy(self, vendor: str) -> VendorBudget:
        try:
            return self._vendors[vendor]
        except KeyError:
            if self._default is None:
                raise KeyError(f"no probe budget configured for vendor {vendor!r}") from None
            return self._default

    def price(self, vendor: str, model: str) -> Price:
        return self.policy(vendor).price(model)

    # ------------------------------------------------------------------ estimates

    def estimate(
        self, vendor: str, canary: _CanaryLike, model: str, *, max_tokens: int | None = None
    ) -> Estimate:
        """The worst case of sending ``canary`` to ``model``: the prompt bound plus ``max_tokens``."""
        out = canary.max_tokens if max_tokens is None else max_tokens
        return Estimate(
            prompt_token_bound(canary.prompt, canary.system), out, self.price(vendor, model), model
        )

    def estimate_tokens(self, vendor: str, model: str, tokens_in: int, tokens_out: int) -> Estimate:
        """An estimate from token counts the caller worked out itself."""
        return Estimate(tokens_in, tokens_out, self.price(vendor, model), model)

    # ------------------------------------------------------------------ spending

    def _ledger(self, vendor: str, now: datetime) -> _Ledger:
        day = utc_day(now)
        self.policy(vendor)  # unknown vendors fail here, before any state is made
        led = self._ledgers.get(vendor)
        if led is None or led.day < day:
            led = self._ledgers[vendor] = _Ledger(day)
        return led

    def _fits(self, vendor: str, led: _Ledger, tokens: int, cost: Decimal) -> bool:
        pol = self.policy(vendor)
        if led.stopped:
            return False
        if (
            pol.daily_tokens is not None
            and led.spent_tokens + led.reserved_tokens + tokens > pol.daily_tokens
        ):
            return False
        return pol.daily_cost is None or led.spent_cost + led.reserved_cost + cost <= pol.daily_cost

    def can_spend(self, vendor: str, est: Estimate, now: datetime) -> bool:
        """Whether ``est`` fits in what is left of the vendor's day (and the vendor is not stopped)."""
        return self._fits(vendor, self._ledger(vendor, now), est.tokens, est.cost)

    def reserve(self, vendor: str, est: Estimate, now: datetime) -> Reservation | None:
        """Hold ``est`` against the day's limits, or return None when it does not fit."""
        led = self._ledger(vendor, now)
        if not self._fits(vendor, led, est.tokens, est.cost):
            return None
        led.reserved_tokens += est.tokens
        led.reserved_cost += est.cost
        r = Reservation(next(self._ids), vendor, led.day, est)
        self._open[r.id] = r
        return r

    def _close(self, r: Reservation, now: datetime) -> _Ledger | None:
        """Forget an open reservation; its ledger if that day is still the current one."""
        if self._open.get(r.id) is not r:
            raise ValueError(f"reservation {r.id} for {r.vendor} is unknown or already settled")
        del self._open[r.id]
        led = self._ledger(r.vendor, now)
        if led.day != r.day:
            return None
        led.reserved_tokens -= r.estimate.tokens
        led.reserved_cost -= r.estimate.cost
        return led

    def settle(
        self, r: Reservation, tokens_in: int | None = None, tokens_out: int | None = None, *, now: datetime
    ) -> bool:
        """Replace the reservation by the real usage. True means an overrun (log it): the vendor is stopped today.

        With no usage given, the whole reservation is charged.
        """
        if (tokens_in is None) != (tokens_out is None):
            raise ValueError("give both tokens_in and tokens_out, or neither")
        est = r.estimate
        t_in = est.tokens_in if tokens_in is None else tokens_in
        t_out = est.tokens_out if tokens_out is None else tokens_out
        if t_in < 0 or t_out < 0:
            raise ValueError("token counts must be ≥ 0")
        overrun = t_in > est.tokens_in or t_out > est.tokens_out
        led = self._close(r, now)
        if led is not None:
            led.spent_tokens += t_in + t_out
            led.spent_cost += est.price.cost(t_in, t_out)
            if overrun:
                led.stopped = True
                led.overruns += 1
        return overrun

    def cancel(self, r: Reservation, now: datetime) -> None:
        """Give a reservation back unspent: only when the request surely never reached the vendor."""
        self._close(r, now)

    def record(self, vendor: str, tokens_in: int, tokens_out: int, model: str, now: datetime) -> bool:
        """Charge usage that had no reservation. True if the day's limit is now passed (the vendor is stopped)."""
        if tokens_in < 0 or tokens_out < 0:
            raise ValueError("token counts must be ≥ 0")
        led = self._ledger(vendor, now)
        pol = self.policy(vendor)
        led.spent_tokens += tokens_in + tokens_out
        led.spent_cost += pol.price(model).cost(tokens_in, tokens_out)
        over = (
            pol.daily_tokens is not None and led.spent_tokens + led.reserved_tokens > pol.daily_tokens
        ) or (pol.daily_cost is not None and led.spent_cost + led.reserved_cost > pol.daily_cost)
        if over and not led.stopped:
            led.stopped = True
            led.overruns += 1
        return over

    # ------------------------------------------------------------------ reading

    def remaining(self, vendor: str, now: datetime) -> Remaining:
        led = self._ledger(vendor, now)
        pol = self.policy(vendor)
        used_t = led.spent_tokens + led.reserved_tokens
        used_c = led.spent_cost + led.reserved_cost
        tokens = None if pol.daily_tokens is None else max(0, pol.daily_tokens - used_t)
        cost = None if pol.daily_cost is None else max(Decimal(0), pol.daily_cost - used_c)
        if led.stopped:
            tokens = 0 if tokens is not None else None
            cost = Decimal(0) if cost is not None else None
        resets = datetime.combine(led.day + timedelta(days=1), time(0), tzinfo=UTC)
        return Remaining(
            vendor,
            led.day,
            tokens,
            cost,
            led.spent_tokens,
            led.spent_cost,
            led.reserved_tokens,
            led.reserved_cost,
            led.stopped,
            led.overruns,
            resets,
        )

    def stopped(self, vendor: str, now: datetime) -> bool:
        return self._ledger(vendor, now).stopped

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state. Open reservations are folded into spent (see the module doc)."""
        return {
            "format": STATE_FORMAT,
            "vendors": {
                v: {
                    "day": led.day.isoformat(),
                    "spent_tokens": led.spent_tokens + led.reserved_tokens,
                    "spent_cost": str(led.spent_cost + led.reserved_cost),
                    "stopped": led.stopped,
                    "overruns": led.overruns,
                }
                for v, led in sorted(self._ledgers.items())
            },
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        vendors: Mapping[str, VendorBudget] | None = None,
        default: VendorBudget | None = None,
    ) -> Budget:
        """Restore state saved by :meth:`to_dict` under the current limits and prices."""
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"budget state has format {data.get('format')!r}, expected {STATE_FORMAT}")
        b = cls(vendors, default)
        for v, raw in dict(data.get("vendors", {})).items():
            try:
                led = _Ledger(
                    date.fromisoformat(raw["day"]),
                    int(raw["spent_tokens"]),
                    _dec(raw["spent_cost"], "spent_cost"),
                    stopped=bool(raw.get("stopped", False)),
                    overruns=int(raw.get("overruns", 0)),
                )
            except (KeyError, TypeError, ValueError, ArithmeticError) as e:
                raise ValueError(f"budget state for vendor {v!r} is damaged: {e!r}") from None
            if led.spent_tokens < 0:
                raise ValueError(f"budget state for vendor {v!r} is damaged: negative spent_tokens")
            b._ledgers[v] = led
        return b
