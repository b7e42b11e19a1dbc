"""The probe budget: reservations, limits, the UTC day, persistence."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from watcher.probes.budget import (
    CONSERVATIVE_PRICE,
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    Budget,
    Estimate,
    Price,
    VendorBudget,
    approx_prompt_tokens,
    prompt_token_bound,
)
from watcher.probes.canaries import load_canaries

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PRICE = Price(3, 15)


def budget(tokens=10_000, cost="1", **kw) -> Budget:
    vb = VendorBudget(tokens, cost, default_price=PRICE, prices={"cheap": Price("0.15", "0.6")})
    return Budget({"openai": vb}, **kw)


def test_price_and_estimate():
    assert PRICE.cost(1_000_000, 0) == Decimal(3)
    assert PRICE.cost(1000, 1000) == Decimal("0.018")
    c = load_canaries().get("arith-mul")
    b = budget()
    est = b.estimate("openai", c, "gpt-x")
    assert est.tokens_out == c.max_tokens
    assert est.tokens_in == len(c.prompt.encode()) + MESSAGE_OVERHEAD + REQUEST_OVERHEAD
    assert est.tokens_in >= approx_prompt_tokens(c.prompt)  # the bound is never below chars/4
    assert est.cost == PRICE.cost(est.tokens_in, est.tokens_out)
    assert b.estimate("openai", c, "cheap").price == Price("0.15", "0.6")
    assert b.estimate("openai", c, "gpt-x", max_tokens=500).tokens_out == 500


def test_prompt_bound_counts_system_and_multibyte_text():
    assert prompt_token_bound("abcd") == 4 + MESSAGE_OVERHEAD + REQUEST_OVERHEAD
    assert prompt_token_bound("é", system="s") == 2 + 1 + 2 * MESSAGE_OVERHEAD + REQUEST_OVERHEAD
    assert approx_prompt_tokens("abcde") == 2


def test_unknown_vendor_and_default():
    with pytest.raises(KeyError, match="no probe budget configured for vendor 'x'"):
        budget().remaining("x", T0)
    b = Budget({}, default=VendorBudget(100, None))
    assert b.price("x", "m") == CONSERVATIVE_PRICE
    assert b.remaining("x", T0).tokens == 100 and b.remaining("x", T0).cost is None


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        budget().remaining("openai", datetime(2025, 1, 1))


def test_reserve_settle_and_remaining():
    b = budget(tokens=1000, cost="1")
    est = b.estimate_tokens("openai", "gpt-x", 100, 50)
    r = b.reserve("openai", est, T0)
    assert r is not None
    rem = b.remaining("openai", T0)
    assert (rem.tokens, rem.reserved_tokens, rem.spent_tokens) == (850, 150, 0)
    assert not b.settle(r, 80, 10, now=T0)
    rem = b.remaining("openai", T0)
    assert (rem.tokens, rem.reserved_tokens, rem.spent_tokens) == (910, 0, 90)
    assert rem.spent_cost == PRICE.cost(80, 10)
    assert rem.cost == Decimal(1) - PRICE.cost(80, 10)
    assert rem.resets_at == datetime(2025, 3, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown or already settled"):
        b.settle(r, 1, 1, now=T0)


def test_limits_refuse_what_does_not_fit():
    b = budget(tokens=300, cost="100")
    est = b.estimate_tokens("openai", "gpt-x", 100, 50)
    assert b.reserve("openai", est, T0) and b.reserve("openai", est, T0)
    assert not b.can_spend("openai", est, T0)
    assert b.reserve("openai", est, T0) is None
    assert b.remaining("openai", T0).tokens == 0
    cost_bound = budget(tokens=None, cost=PRICE.cost(150, 0) * 2)
    e2 = cost_bound.estimate_tokens("openai", "gpt-x", 150, 0)
    assert cost_bound.reserve("openai", e2, T0) and cost_bound.reserve("openai", e2, T0)
    assert cost_bound.reserve("openai", e2, T0) is None


def test_cancel_gives_back_and_settle_without_usage_charges_all():
    b = budget(tokens=1000)
    est = b.estimate_tokens("openai", "gpt-x", 100, 50)
    r = b.reserve("openai", est, T0)
    b.cancel(r, T0)
    assert b.remaining("openai", T0).tokens == 1000
    r = b.reserve("openai", est, T0)
    assert not b.settle(r, now=T0)
    assert b.remaining("openai", T0).spent_tokens == 150
    r = b.reserve("openai", est, T0)
    with pytest.raises(ValueError, match="both"):
        b.settle(r, 10, now=T0)


def test_overrun_is_charged_and_stops_the_day():
    b = budget(tokens=10_000)
    est = b.estimate_tokens("openai", "gpt-x", 100, 20)
    r = b.reserve("openai", est, T0)
    assert b.settle(r, 90, 400, now=T0) is True  # the vendor ignored max_tokens
    rem = b.remaining("openai", T0)
    assert rem.stopped and rem.overruns == 1 and rem.spent_tokens == 490 and rem.tokens == 0
    assert not b.can_spend("openai", est, T0)
    assert b.reserve("openai", est, T0) is None
    tomorrow = T0 + timedelta(days=1)
    assert not b.stopped("openai", tomorrow) and b.can_spend("openai", est, tomorrow)


def test_rollover_at_utc_midnight_not_local_midnight():
    b = budget(tokens=1000)
    est = b.estimate_tokens("openai", "gpt-x", 400, 100)
    late = datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)
    assert b.reserve("openai", est, late) and b.reserve("openai", est, late)
    assert not b.can_spend("openai", est, late)
    # 00:30 in Paris (UTC+1) is still 23:30 UTC on the same day.
    paris = datetime(2025, 3, 2, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert not b.can_spend("openai", est, paris)
    midnight = datetime(2025, 3, 2, 0, 0, tzinfo=UTC)
    rem = b.remaining("openai", midnight)
    assert rem.day == date(2025, 3, 2) and rem.tokens == 1000 and rem.spent_tokens == 0
    assert b.can_spend("openai", est, midnight)


def test_reservation_from_yesterday_costs_today_nothing():
    b = budget(tokens=1000)
    est = b.estimate_tokens("openai", "gpt-x", 400, 100)
    r = b.reserve("openai", est, datetime(2025, 3, 1, 23, 59, tzinfo=UTC))
    after = datetime(2025, 3, 2, 0, 1, tzinfo=UTC)
    assert not b.settle(r, 400, 100, now=after)
    assert b.remaining("openai", after).spent_tokens == 0


def test_record_without_reservation():
    b = budget(tokens=100)
    assert not b.record("openai", 30, 20, "gpt-x", T0)
    assert b.remaining("openai", T0).tokens == 50
    assert b.record("openai", 40, 20, "gpt-x", T0)  # 110 > 100
    assert b.stopped("openai", T0)


def test_state_round_trip_folds_open_reservations_into_spent():
    b = budget(tokens=1000)
    est = b.estimate_tokens("openai", "gpt-x", 100, 50)
    r = b.reserve("openai", est, T0)
    b.settle(r, 60, 10, now=T0)
    open_r = b.reserve("openai", est, T0)
    data = json.loads(json.dumps(b.to_dict()))
    assert data["vendors"]["openai"]["spent_tokens"] == 70 + 150
    vb = VendorBudget(1000, "1", default_price=PRICE)
    b2 = Budget.from_dict(data, {"openai": vb})
    rem = b2.remaining("openai", T0)
    assert (rem.spent_tokens, rem.reserved_tokens, rem.tokens) == (220, 0, 780)
    assert rem.spent_cost == PRICE.cost(60, 10) + est.cost
    with pytest.raises(ValueError, match="unknown or already settled"):
        b2.settle(open_r, 1, 1, now=T0)
    # A state saved yesterday is simply a finished day.
    assert b2.remaining("openai", T0 + timedelta(days=1)).spent_tokens == 0


def test_damaged_state_is_refused():
    with pytest.raises(ValueError, match="format"):
        Budget.from_dict({"format": 99})
    with pytest.raises(ValueError, match="damaged"):
        Budget.from_dict(
            {"format": 1, "vendors": {"openai": {"day": "nope", "spent_tokens": 1, "spent_cost": "0"}}}
        )


def test_bad_limits_and_prices():
    with pytest.raises(ValueError):
        Price(-1, 1)
    with pytest.raises(ValueError):
        VendorBudget(-5, None)
    with pytest.raises(ValueError):
        Estimate(-1, 0, PRICE)


# ------------------------------------------------------------------ the guarantee, by property


class BudgetMachine(RuleBasedStateMachine):
    """Random reserve / settle / cancel / record-free sequences over several days and a restart.

    Whatever happens, as long as each settled usage is within its reservation, no
    vendor's spent + reserved ever passes its limits, and no overrun is reported.
    """

    VENDORS = {
        "openai": VendorBudget(
            2_000, "0.01", default_price=Price("2.5", "10"), prices={"mini": Price("0.15", "0.6")}
        ),
        "anthropic": VendorBudget(None, "0.004", default_price=Price(3, 15)),
        "mistral": VendorBudget(1_500, None, default_price=Price("0.1", "0.3")),
    }

    def __init__(self):
        super().__init__()
        self.budget = Budget(self.VENDORS)
        self.now = T0
        self.open = []
        # Our own books: per (vendor, day) what was really charged.
        self.charged: dict[tuple[str, date], tuple[int, Decimal]] = {}

    @rule(
        vendor=st.sampled_from(sorted(VENDORS)),
        model=st.sampled_from(["mini", "big"]),
        tokens_in=st.integers(0, 600),
        tokens_out=st.integers(0, 300),
    )
    def reserve(self, vendor, model, tokens_in, tokens_out):
        est = self.budget.estimate_tokens(vendor, model, tokens_in, tokens_out)
        fits = self.budget.can_spend(vendor, est, self.now)
        r = self.budget.reserve(vendor, est, self.now)
        assert (r is not None) == fits
        if r is not None:
            self.open.append(r)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def settle(self, data):
        r = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        t_in = data.draw(st.integers(0, r.estimate.tokens_in))
        t_out = data.draw(st.integers(0, r.estimate.tokens_out))
        assert self.budget.settle(r, t_in, t_out, now=self.now) is False
        key = (r.vendor, r.day)
        tok, cost = self.charged.get(key, (0, Decimal(0)))
        self.charged[key] = (tok + t_in + t_out, cost + r.estimate.price.cost(t_in, t_out))

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def cancel(self, data):
        r = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        self.budget.cancel(r, self.now)

    @rule(minutes=st.integers(1, 24 * 60))
    def advance(self, minutes):
        self.now += timedelta(minutes=minutes)

    @rule()
    def restart(self):
        """Persist and restore: open reservations become spent, as after a crash."""
        for r in self.open:
            key = (r.vendor, r.day)
            tok, cost = self.charged.get(key, (0, Decimal(0)))
            self.charged[key] = (tok + r.estimate.tokens, cost + r.estimate.cost)
        self.open = []
        data = json.loads(json.dumps(self.budget.to_dict()))
        self.budget = Budget.from_dict(data, self.VENDORS)

    @invariant()
    def within_limits(self):
        for vendor, pol in self.VENDORS.items():
            rem = self.budget.remaining(vendor, self.now)
            assert not rem.stopped
            if pol.daily_tokens is not None:
                assert rem.spent_tokens + rem.reserved_tokens <= pol.daily_tokens
            if pol.daily_cost is not None:
                assert rem.spent_cost + rem.reserved_cost <= pol.daily_cost
        for (vendor, _day), (tok, cost) in self.charged.items():
            pol = self.VENDORS[vendor]
            assert pol.daily_tokens is None or tok <= pol.daily_tokens
            assert pol.daily_cost is None or cost <= pol.daily_cost


TestBudgetMachine = BudgetMachine.TestCase
TestBudgetMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 100), st.integers(0, 400), st.integers(0, 100)),
        max_size=60,
    ),
)
def test_settled_spend_never_passes_the_limit(calls):
    """The plain loop the daemon runs: reserve worst case, settle with actual ≤ reserved."""
    b = budget(tokens=3_000, cost="0.02")
    for est_in, est_out, act_in, act_out in calls:
        est = b.estimate_tokens("openai", "gpt-x", est_in, est_out)
        r = b.reserve("openai", est, T0)
        if r is None:
            continue
        b.settle(r, min(act_in, est_in), min(act_out, est_out), now=T0)
        rem = b.remaining("openai", T0)
        assert rem.spent_tokens <= 3_000 and rem.spent_cost <= Decimal("0.02")
