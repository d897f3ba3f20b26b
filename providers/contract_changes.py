"""How a change reaches a live contract: through /v2/contracts/edit on an account with contract
editing, or through /v1/contracts/amend and /v1/contracts/updateEndDate on one without (an account has
one or the other: the SDK's `contracts.amend` docstring, "Once contract editing is enabled, access to
this endpoint will be removed"). The kind is the setting `metronome:contractEditing`, else learned from
the first edit refused as not enabled. What an amendment cannot do is refused before anything is sent
(at preview too, once the kind is known), never dropped.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import metronome

from .base import current_hour
from .client import MetronomeError, client_key, data_of, raw_request, request
from .config import get_settings
from .contract_billing import BPC, billing_change
from .contract_money import PriceOf, reinvoice_refused, reinvoiced
from .contract_recurring import RecurringPlan, live_subscription_ids, plan_recurring, recurring_edit
from .contract_recurring import amend_cannot as recurring_amend_cannot
from .contract_terms import TermsPlan, amend_changes, edit_changes, plan_terms
from .contract_thresholds import amend_cannot as threshold_amend_cannot
from .contract_thresholds import threshold_edit
from .diff import UNKNOWN, instant, normalize
from .identity import edit_uniqueness_key

MISSING = object()
# What an amendment cannot carry, by the edit key that would have carried it.
AMEND_CANNOT = {
    "update_contract_name": "change the contract's name",
    "update_net_payment_terms_days": "change net_payment_terms_days",
    "add_billing_provider_configuration_update": "add a billing provider configuration to the contract",
}
_EDITING_LOCK = threading.Lock()
_EDITING: dict[str, bool] = {}  # learned per account (base URL) in this host


def contract_editing(client: metronome.Metronome) -> bool | None:
    """Whether the account has contract editing: the setting `metronome:contractEditing`, else what this
    host learned from an edit refused as not enabled; None while unknown (an edit is tried first)."""
    setting = get_settings().contract_editing
    if setting is not None:
        return setting
    with _EDITING_LOCK:
        return _EDITING.get(client_key(client))


def learn_contract_editing(client: metronome.Metronome, enabled: bool) -> None:
    with _EDITING_LOCK:
        _EDITING[client_key(client)] = enabled


def editing_not_enabled(err: MetronomeError) -> bool:
    """An edit refused because the account has no contract editing ("Contract editing must be enabled to
    use this endpoint", SDK edit docstring; the exact answer is not documented: a 4xx naming editing)."""
    text = str(err).lower()
    return (
        err.status_code in (400, 403, 404)
        and "editing" in text
        and ("not enabled" in text or "disabled" in text)
    )


def amend_refused(label: str, cannot: list[str]) -> str:
    return (
        f"{label}: this Metronome account has no contract editing, and amendments (/v1/contracts/amend) "
        f"only add commits, credits, overrides, discounts and scheduled charges, with "
        f"/v1/contracts/updateEndDate moving the end; this change would also {'; '.join(cannot)}, which they "
        "cannot do. Nothing was changed. To "
        "fix: revert those changes; or end this contract (ending_before) and start a new one with the new "
        "terms; or ask Metronome to enable contract editing and set metronome:contractEditing: on"
    )


def scalar_changes(live: dict[str, Any], news: dict[str, Any], changed: list[str]) -> dict[str, Any]:
    """The edit keys for the contract's own fields (name, end, payment terms) that differ from live."""
    edit: dict[str, Any] = {}
    if normalize(live.get("name")) != normalize(news.get("name")):
        edit["update_contract_name"] = news.get("name") or ""  # cleared explicitly, not null
    if normalize(live.get("ending_before")) != normalize(news.get("ending_before")):
        edit["update_contract_end_date"] = news.get("ending_before")  # None = open-ended
    if "net_payment_terms_days" in changed:
        edit["update_net_payment_terms_days"] = news.get("net_payment_terms_days")
    return edit


def price_lookup(rate_card_id: Any) -> PriceOf:
    """A subscription's price on the contract's rate card (one getRateSchedule call, made only to name
    the amount a refused change would invoice again); None when it cannot be read."""

    def price_of(product_id: str, frequency: str, at: Any) -> float | None:
        from .client import get_client, paginate

        if not isinstance(rate_card_id, str) or rate_card_id == UNKNOWN:
            return None
        body = {
            "rate_card_id": rate_card_id,
            "starting_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "selectors": [{"product_id": product_id}],
        }
        try:
            for entry in paginate(
                get_client(),
                "POST",
                "/v1/contract-pricing/rate-cards/getRateSchedule",
                label=f"Rate card {rate_card_id}",
                body=body,
            ):
                rate = entry.get("rate") or {}
                if entry.get("billing_frequency") in (None, frequency) and rate.get("price") is not None:
                    return float(rate["price"])
        except MetronomeError:
            return None
        return None

    return price_of


def _refusal(
    plan: TermsPlan, recurring: RecurringPlan, have: dict[str, Any], news: dict[str, Any], label: str
) -> str | None:
    """The money rule's refusal of the plans, if any (unless allow_reinvoice)."""
    if news.get("allow_reinvoice"):
        return None
    pairs = reinvoiced(
        plan,
        recurring,
        str(have.get("starting_at") or news.get("starting_at") or ""),
        price_lookup(news.get("rate_card_id")),
    )
    return reinvoice_refused(label, pairs) if pairs else None


def preview_refusals(
    old: dict[str, Any], new: dict[str, Any], editing: bool | None, label: str
) -> str | None:
    """What a preview can already refuse, from the recorded terms: a term dropped and re-added so that it
    bills again (unless allow_reinvoice), and, on an account known to have no contract editing, what an
    amendment cannot do."""
    plan = plan_terms(old, new)
    recurring = plan_recurring(old, new)
    refusal = _refusal(plan, recurring, old, new, label)
    if refusal:
        return refusal
    if editing is not False:
        return None
    _, cannot = amend_changes(plan)
    cannot += recurring_amend_cannot(recurring) + threshold_amend_cannot(old, new)
    if normalize(old.get("name")) != normalize(new.get("name")):
        cannot.append(AMEND_CANNOT["update_contract_name"])
    if normalize(old.get("net_payment_terms_days")) != normalize(new.get("net_payment_terms_days")):
        cannot.append(AMEND_CANNOT["update_net_payment_terms_days"])
    if new.get(BPC) and not old.get(BPC):
        cannot.append(AMEND_CANNOT["add_billing_provider_configuration_update"])
    return amend_refused(label, cannot) if cannot else None


def apply_change(
    client: metronome.Metronome,
    object_id: str,
    live_obj: dict[str, Any],
    live: dict[str, Any],
    news: dict[str, Any],
    changed: list[str],
    label: str,
) -> None:
    """Turn the live contract (`live_obj`, and `live` in input shape) into `news`."""
    plan = plan_terms(live, news, live_obj)
    recurring = plan_recurring(live, news, live_obj)
    refusal = _refusal(plan, recurring, live_obj, news, label)  # refused at preview too (diff)
    if refusal:
        raise MetronomeError(refusal)
    scalars = scalar_changes(live, news, changed)
    billing = billing_change(live_obj, live, news, changed, label)
    terms, cannot = edit_changes(plan)
    if cannot:
        raise MetronomeError(
            f"{label}: existing {', '.join(cannot)} cannot be done by an edit; "
            "replace the contract (allow_replacement: true)"
        )
    further = {**recurring_edit(recurring, live_subscription_ids(live)), **threshold_edit(live, news)}
    edit = {**scalars, **terms, **further, **billing}
    if not edit:
        return
    if contract_editing(client) is not False:
        try:
            send_edit(client, object_id, news["customer_id"], edit, label)
            return
        except MetronomeError as err:
            if not editing_not_enabled(err) or contract_editing(client) is True:
                raise
            learn_contract_editing(client, False)
            print(
                f"{label}: contract editing is not enabled on this account: using /v1/contracts/amend "
                "(set metronome:contractEditing: off to see what amendments cannot do at preview)",
                file=sys.stderr,
                flush=True,
            )
    cannot = recurring_amend_cannot(recurring) + threshold_amend_cannot(live, news)
    amend(client, object_id, live_obj, news, plan, {**scalars, **billing}, cannot, label)


def send_edit(
    client: metronome.Metronome, object_id: str, customer_id: str, edit: dict[str, Any], label: str
) -> None:
    body = {"customer_id": customer_id, "contract_id": object_id, **edit}
    body["uniqueness_key"] = edit_uniqueness_key(
        object_id, {"edit": edit, "seq": edit_count(client, body, label)}
    )
    try:
        request(client, "POST", "/v2/contracts/edit", label=label, body=body)
    except MetronomeError as err:
        if err.status_code != 409:
            raise
        print(f"{label}: edit {body['uniqueness_key']} was already applied", file=sys.stderr)


def edit_count(client: metronome.Metronome, body: dict[str, Any], label: str) -> int:
    """How many edits the contract has had: makes a repeated identical change a new edit."""
    try:
        history = request(
            client,
            "POST",
            "/v2/contracts/getEditHistory",
            label=label,
            body={"customer_id": body["customer_id"], "contract_id": body["contract_id"]},
        )
    except MetronomeError:
        return -1
    return len(data_of(history) or [])


def amend(
    client: metronome.Metronome,
    object_id: str,
    live_obj: dict[str, Any],
    news: dict[str, Any],
    plan: TermsPlan,
    other: dict[str, Any],
    further: list[str],
    label: str,
) -> None:
    """The change on an account without contract editing: an amendment adds terms, the end date moves
    through updateEndDate; anything else (`further`: what else the change needs) is refused before
    anything is sent."""
    body, cannot = amend_changes(plan)
    cannot += further + [AMEND_CANNOT[k] for k in other if k in AMEND_CANNOT]
    if cannot:
        raise MetronomeError(amend_refused(label, cannot))
    ids = {"customer_id": news["customer_id"], "contract_id": object_id}
    end = other.get("update_contract_end_date", MISSING)
    later = end is not MISSING and (
        end is None or not live_obj.get("ending_before") or instant(end) > instant(live_obj["ending_before"])
    )
    if later:  # moved out first, so terms added past the old end fit
        request(
            client, "POST", "/v1/contracts/updateEndDate", label=label, body={**ids, "ending_before": end}
        )
    if body:
        start = max(instant(live_obj["starting_at"]), instant(current_hour()))
        amendment = {**ids, "starting_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"), **body}
        # Amendments take no uniqueness key: never replayed blindly. A failed one is found (or not) by
        # the next `up`, which computes what to add against the live contract again.
        try:
            raw_request(client, "POST", "/v1/contracts/amend", body=amendment, max_retries=0)
        except metronome.APIError as err:
            raise MetronomeError(
                f"{MetronomeError.from_api(label, err)} (the amendment may or may not have been applied: "
                "run `pulumi up` again, which reads the contract and adds only what is missing)",
                getattr(err, "status_code", None),
            ) from None
    if end is not MISSING and not later:
        request(
            client, "POST", "/v1/contracts/updateEndDate", label=label, body={**ids, "ending_before": end}
        )
