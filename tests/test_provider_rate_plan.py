"""Rate schedule planning and folding (in-process): how declared rate changes become addRates."""

from __future__ import annotations

from providers.rate_schedule import fold_schedule, plan_rate_changes

HOUR = "2026-06-01T10:00:00Z"
PAST = "2026-01-01T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"
FIAT = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"


def rate(start: str = PAST, price: float = 3, end: str | None = None, entitled: bool = True, pid: str = "p1"):
    out = {"product_id": pid, "starting_at": start, "rate_type": "FLAT", "price": price, "entitled": entitled}
    if end:
        out["ending_before"] = end
    return out


def entry(r: dict) -> dict:
    """A getRateSchedule entry for a rate."""
    return {
        "product_id": r["product_id"],
        "starting_at": r["starting_at"],
        "ending_before": r.get("ending_before"),
        "entitled": r["entitled"],
        "rate": {
            "rate_type": r["rate_type"],
            "price": r["price"],
            "credit_type": {"id": FIAT, "name": "USD"},
        },
    }


def live(*rates: dict, declared: list[dict]) -> list[dict]:
    return fold_schedule([entry(r) for r in rates], FIAT, declared, keep_last=True)


def test_unchanged_adds_nothing():
    declared = [rate()]
    assert plan_rate_changes(live(rate(), declared=declared), declared, HOUR) == []


def test_new_rate_is_added():
    assert plan_rate_changes(live(declared=[]), [rate()], HOUR) == [rate()]


def test_past_price_change_ends_old_and_starts_new_at_the_hour():
    adds = plan_rate_changes(live(rate(), declared=[rate()]), [rate(price=4)], HOUR)
    assert adds == [rate(end=HOUR), rate(start=HOUR, price=4)]
    # ... and the resulting schedule folds back into the declared rate.
    folded = fold_schedule([entry(r) for r in adds], FIAT, [rate(price=4)])
    assert folded == [rate(price=4)]


def test_future_price_change_rewrites_in_place():
    declared = [rate(start=FUTURE)]
    assert plan_rate_changes(
        live(rate(start=FUTURE), declared=declared), [rate(start=FUTURE, price=4)], HOUR
    ) == [rate(start=FUTURE, price=4)]


def test_end_change_keeps_price_history():
    chain = [rate(end=HOUR), rate(start=HOUR, price=4)]
    adds = plan_rate_changes(live(*chain, declared=[rate(price=4)]), [rate(price=4, end=FUTURE)], HOUR)
    assert adds == [rate(start=HOUR, price=4, end=FUTURE)]


def test_removed_rate_is_ended_not_left_active():
    assert plan_rate_changes(live(rate(), declared=[rate()]), [], HOUR) == [rate(end=HOUR)]
    # Ended history matching nothing declared is not shown.
    assert fold_schedule([entry(rate(end=HOUR))], FIAT, []) == []


def test_removed_future_rate_gets_a_hidden_tombstone():
    adds = plan_rate_changes(live(rate(start=FUTURE), declared=[rate(start=FUTURE)]), [], HOUR)
    assert adds == [rate(start=FUTURE, entitled=False, end="2099-01-01T01:00:00Z")]
    assert fold_schedule([entry(r) for r in adds], FIAT, []) == []
    assert plan_rate_changes(live(*adds, declared=[]), [], HOUR) == []  # nothing more to do


def test_declared_price_steps_are_not_folded_together():
    declared = [rate(end="2026-03-01T00:00:00Z"), rate(start="2026-03-01T00:00:00Z", price=4)]
    assert fold_schedule([entry(r) for r in declared], FIAT, declared) == declared
    assert plan_rate_changes(live(*declared, declared=declared), declared, HOUR) == []


def test_out_of_band_rate_shows_and_is_ended():
    extra = rate(start="2026-02-01T00:00:00Z", price=9, pid="p2")
    folded = fold_schedule([entry(rate()), entry(extra)], FIAT, [rate()])
    assert extra in folded
    assert plan_rate_changes(live(rate(), extra, declared=[rate()]), [rate()], HOUR) == [
        {**extra, "ending_before": HOUR}
    ]
