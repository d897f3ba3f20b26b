"""The money rule for contracts: never invoice (or grant) the customer again without being told to.

A plan (`contract_terms.plan_terms`, `contract_recurring.plan_recurring`) re-invoices when it archives a
commit, credit or scheduled charge and adds one in its place, or ends a subscription or a recurring
commit or credit and adds one over the periods it already billed or granted (Metronome cannot archive
those: a changed subscription or recurring grant nothing updates in place is ended and added again).
`reinvoiced` names each such pair with what would move again; the contract refuses the change at preview
(diff) and against the live contract before any edit is sent (update), naming the contract, the item and
the amount, unless the entry sets `allow_reinvoice`. Pure additions, pure removals and renewals (another
grant, another period) are not re-adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from .contract_recurring import RecurringPlan
from .contract_recurring import describe_item as describe_recurring
from .contract_terms import TermsPlan, describe_item
from .diff import UNKNOWN, instant, normalize

# Terms whose drop and re-add moves money: a commit is invoiced again, a credit granted again, a
# scheduled charge's past dates invoiced again.
MONEY_TERMS = ("commits", "credits", "scheduled_charges")
MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "SEMI_ANNUAL": 6, "ANNUAL": 12}
DAYS = {"WEEKLY": 7, "DAILY": 1}
# (product id, billing frequency, at) -> the rate card's price for a subscription, None if unknown.
PriceOf = Callable[[str, str, datetime], float | None]


@dataclasses.dataclass
class Reinvoice:
    """One term that the plan would bill or grant again."""

    field: str
    dropped: dict[str, Any]
    added: dict[str, Any]
    amount: float | None  # None: not known here (a subscription whose price could not be read)
    verb: str  # "invoiced" or "granted"
    detail: str = ""  # how the amount comes about, e.g. "2 MONTHLY periods from 2026-01-01..."

    def describe(self) -> str:
        what = self.field[:-1].replace("_", " ")
        if self.field in MONEY_TERMS:
            dropped, added = describe_item(self.dropped), describe_item(self.added)
            action = "archived"
        else:
            dropped, added = (
                describe_recurring(self.field, self.dropped),
                describe_recurring(self.field, self.added),
            )
            action = "ended"
        amount = f"{self.amount:g}" if self.amount is not None else "its rate card price"
        detail = f" ({self.detail})" if self.detail else ""
        return (
            f"{what} {dropped} would be {action} and {added} added in its place: "
            f"{amount} {self.verb} again{detail}"
        )


def _schedule_total(schedule: dict[str, Any] | None) -> float | None:
    if not schedule:
        return None
    items = schedule.get("schedule_items") or []
    recurring = schedule.get("recurring_schedule") or {}
    total = 0.0
    for item in items:
        total += _amount(item)
    if recurring:
        total += _amount(recurring)
    return total if items or recurring else None


def _amount(item: dict[str, Any]) -> float:
    amount = item.get("amount")
    if amount is None and item.get("unit_price") is not None:
        amount = float(item["unit_price"]) * float(item.get("quantity") or 1)
    return float(amount or 0)


def money_of(item: dict[str, Any]) -> tuple[float, str]:
    """What adding `item` moves: a commit's invoiced total (its access total when it has no invoice
    schedule), a credit's granted total."""
    invoiced = _schedule_total(item.get("invoice_schedule"))
    if invoiced is not None:
        return invoiced, "invoiced"
    access = _schedule_total(item.get("access_schedule")) or 0.0
    return access, ("granted" if "type" not in item else "invoiced")


def _window(item: dict[str, Any]) -> tuple[Any, Any] | None:
    """The span of a grant's access schedule (None when it cannot be told, e.g. a preview unknown)."""
    try:
        items = (item.get("access_schedule") or {}).get("schedule_items") or []
        return min(instant(i["starting_at"]) for i in items), max(instant(i["ending_before"]) for i in items)
    except (KeyError, TypeError, ValueError):
        return None


def _same_grant(dropped: dict[str, Any], added: dict[str, Any]) -> bool:
    """`added` stands for `dropped` again: the same name; or, unless both are named (two distinct grants),
    the same product or type over an overlapping access period. (Last year's commit dropped and next
    year's added is a renewal, not a re-add.)"""
    if dropped.get("name") and added.get("name"):
        return normalize(dropped["name"]) == normalize(added["name"])
    if dropped.get("type") != added.get("type") and dropped.get("product_id") != added.get("product_id"):
        return False
    a, b = _window(dropped), _window(added)
    return a is None or b is None or (a[0] < b[1] and b[0] < a[1])


def _step(start: datetime, frequency: str | None, n: int) -> datetime:
    if frequency in DAYS:
        return start + timedelta(days=DAYS[frequency] * n)
    months = MONTHS.get(frequency or "MONTHLY", 1) * n
    month = start.month - 1 + months
    year, month = start.year + month // 12, month % 12 + 1
    for day in (start.day, 30, 29, 28):
        try:
            return start.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _charge_dates(schedule: dict[str, Any]) -> list[tuple[datetime, float]]:
    """A charge schedule's (date, amount) items, a recurring schedule expanded by its frequency."""
    out = [(instant(i["timestamp"]), _amount(i)) for i in schedule.get("schedule_items") or []]
    recurring = schedule.get("recurring_schedule")
    if recurring:
        start, end = instant(recurring["starting_at"]), instant(recurring["ending_before"])
        dates = []
        while _step(start, recurring.get("frequency"), len(dates)) < end:
            dates.append(_step(start, recurring.get("frequency"), len(dates)))
        each = _amount(recurring)
        if recurring.get("amount_distribution") != "EACH" and dates:
            each = each / len(dates)
        out += [(d, each) for d in dates]
    return out


def _charged_again(dropped: dict[str, Any], added: dict[str, Any], now: datetime) -> float:
    """What re-adding charge `added` in place of `dropped` invoices again: its dates already past (the
    dropped charge invoiced them), when the dropped one had invoiced any."""
    try:
        if not any(d <= now for d, _ in _charge_dates(dropped.get("schedule") or {})):
            return 0.0
        return sum(a for d, a in _charge_dates(added.get("schedule") or {}) if d <= now)
    except (KeyError, TypeError, ValueError):
        return 0.0  # unknown dates (a preview): decided against the live contract at update


def _one_off(plan: TermsPlan, now: datetime) -> list[Reinvoice]:
    out = []
    for name in MONEY_TERMS:
        dropped = list(plan.drops.get(name) or [])
        for added in plan.adds.get(name) or []:
            if name == "scheduled_charges":
                hit = next((d for d in dropped if _same_charge(d, added)), None)
                if hit is None:
                    continue
                amount = _charged_again(hit, added, now)
                if amount <= 0:
                    continue
                dropped.remove(hit)
                out.append(Reinvoice(name, hit, added, amount, "invoiced", "its dates already past"))
                continue
            hit = next((d for d in dropped if _same_grant(d, added)), None)
            if hit is not None:
                dropped.remove(hit)
                amount, verb = money_of(added)
                out.append(Reinvoice(name, hit, added, amount, verb))
    return out


def _same_charge(dropped: dict[str, Any], added: dict[str, Any]) -> bool:
    if dropped.get("name") and added.get("name"):
        return normalize(dropped["name"]) == normalize(added["name"])
    return dropped.get("product_id") == added.get("product_id")


def _frequency(field: str, item: dict[str, Any]) -> str | None:
    if field == "subscriptions":
        return (item.get("subscription_rate") or {}).get("billing_frequency")
    return item.get("recurrence_frequency")


def _product(field: str, item: dict[str, Any]) -> Any:
    return (
        (item.get("subscription_rate") or {}).get("product_id")
        if field == "subscriptions"
        else item.get("product_id")
    )


def _periods_again(
    field: str, dropped: dict[str, Any], end: str | None, added: dict[str, Any], start: str, now: datetime
) -> list[datetime]:
    """The starts of the added term's periods that the dropped one already billed or granted: those
    beginning while both run, up to now (the dropped one ends now)."""
    try:
        old_start = instant(dropped.get("starting_at") or start)
        old_end = min(instant(end) if end and end != UNKNOWN else now, now)
        new_start = instant(added.get("starting_at") or start)
        new_end = instant(added["ending_before"]) if added.get("ending_before") else None
    except (TypeError, ValueError):
        return []
    frequency = _frequency(field, added)
    out = []
    n = 0
    while n < 10000:
        at = _step(new_start, frequency, n)
        if at >= old_end or (new_end is not None and at >= new_end):
            break
        # A period of the added term that overlaps the dropped one's run was billed by it already.
        if _step(new_start, frequency, n + 1) > old_start:
            out.append(at)
        n += 1
    return out


def _recurring(plan: RecurringPlan, start: str, price_of: PriceOf | None, now: datetime) -> list[Reinvoice]:
    out = []
    for field in ("subscriptions", "recurring_commits", "recurring_credits"):
        ended = list(plan.ends.get(field) or [])
        for added in plan.adds.get(field) or []:
            hit = next(
                (
                    (live, end)
                    for live, end in ended
                    if (live.get("name") and normalize(live["name"]) == normalize(added.get("name")))
                    or (not live.get("name") and _product(field, live) == _product(field, added))
                ),
                None,
            )
            if hit is None:
                continue
            periods = _periods_again(field, hit[0], hit[1], added, start, now)
            if not periods:
                continue
            ended.remove(hit)
            frequency = _frequency(field, added) or "MONTHLY"
            detail = f"{len(periods)} {frequency} period(s) from {periods[0]:%Y-%m-%dT%H:%M:%SZ}"
            out.append(_recurring_amount(field, hit[0], added, periods, detail, price_of))
    return out


def _recurring_amount(
    field: str,
    dropped: dict[str, Any],
    added: dict[str, Any],
    periods: list[datetime],
    detail: str,
    price_of: PriceOf | None,
) -> Reinvoice:
    if field == "subscriptions":
        quantity = float(added.get("initial_quantity") or 0)
        rate = added.get("subscription_rate") or {}
        price = (
            price_of(rate.get("product_id"), rate.get("billing_frequency"), periods[0]) if price_of else None
        )
        amount = None if price is None else price * quantity * len(periods)
        return Reinvoice(field, dropped, added, amount, "invoiced", f"{detail}, quantity {quantity:g}")
    invoice = added.get("invoice_amount") if field == "recurring_commits" else None
    each = invoice or added.get("access_amount") or {}
    per_period = float(each.get("unit_price") or 0) * float(each.get("quantity") or 1)
    verb = "invoiced" if invoice else "granted"
    return Reinvoice(field, dropped, added, per_period * len(periods), verb, detail)


def reinvoiced(
    plan: TermsPlan,
    recurring: RecurringPlan | None = None,
    contract_start: str = "",
    price_of: PriceOf | None = None,
) -> list[Reinvoice]:
    """Every term the plans would bill or grant again (see the module docstring)."""
    now = datetime.now(timezone.utc)
    out = _one_off(plan, now)
    if recurring is not None:
        out += _recurring(recurring, contract_start, price_of, now)
    return out


def reinvoice_refused(label: str, pairs: list[Reinvoice]) -> str:
    return (
        f"{label}: this change would drop and re-add {len(pairs)} term(s), re-invoicing the customer: "
        f"{'; '.join(p.describe() for p in pairs)}. Metronome cannot make this change in place. To fix: "
        "revert the change (a renamed product keeps its object with previous_names; give the commit a "
        "name so a replaced product can be updated in place), or set allow_reinvoice: true on the "
        "contract if a new term is meant"
    )
