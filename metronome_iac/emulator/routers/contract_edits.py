"""Contract edits: `/v2/contracts/edit` and `/v2/contracts/getEditHistory` (accounts with contract editing).

An edit adds terms (`add_*`), archives or removes them (`archive_commits`, `archive_credits`,
`archive_scheduled_charges`, `remove_overrides`), changes them in place (`update_*`: commits and credits,
scheduled charges' schedule items, subscriptions, recurring commits and credits, threshold configurations)
and changes the contract's end, name, payment terms and first billing provider configuration
(metronome/types/v2/contract_edit_params.py). Subscriptions and recurring grants are never archived: an
edit ends them (`ending_before`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    bad,
    check_type,
    conflict,
    data,
    enum,
    json_body,
    opt,
    opt_ts,
    req,
    store_of,
)
from metronome_iac.emulator.routers import recurring_terms, terms
from metronome_iac.emulator.routers.contracts import (
    KIND,
    billing_configuration,
    check_end,
    check_uniqueness_key,
    claim_grant_keys,
    editing_enabled,
    get_contract,
    live_contract,
    refuse_second_configuration,
)
from metronome_iac.emulator.store import Store, new_id, now_iso

router = APIRouter()

EDITING_OFF = (
    "Contract editing is not enabled for this client: use /v1/contracts/amend, or contact Metronome to "
    "enable contract editing"
)
THRESHOLDS = ("spend_threshold_configuration", "prepaid_balance_threshold_configuration")
EDIT_FIELDS = {
    "customer_id",
    "contract_id",
    "uniqueness_key",
    "add_commits",
    "add_credits",
    "add_overrides",
    "add_discounts",
    "add_scheduled_charges",
    "add_subscriptions",
    "add_recurring_commits",
    "add_recurring_credits",
    "update_commits",
    "update_credits",
    "update_scheduled_charges",
    "update_subscriptions",
    "update_recurring_commits",
    "update_recurring_credits",
    "archive_commits",
    "archive_credits",
    "archive_scheduled_charges",
    "remove_overrides",
    "update_contract_end_date",
    "update_contract_name",
    "update_net_payment_terms_days",
    "add_billing_provider_configuration_update",
    "allow_contract_ending_before_finalized_invoice",
    *(f"{verb}_{field}" for verb in ("add", "update") for field in THRESHOLDS),
}


def _ref(ref: Any, field: str) -> Any:
    """The `id` of an `{id}` reference (archive_commits, remove_overrides, schedule item changes...)."""
    check_type(ref, dict, field)
    return ref.get("id")


def _find(items: list[dict[str, Any]], item_id: Any, field: str) -> dict[str, Any]:
    for item in items:
        if item["id"] == item_id:
            return item
    raise bad(f"{field}: '{item_id}' is not on this contract")


def _update_schedule(store: Store, schedule: dict[str, Any], change: Any, field: str, access: bool) -> None:
    """add/remove/update schedule items of an access or invoice schedule."""
    check_type(change, dict, field)
    items = schedule.setdefault("schedule_items", [])
    for i, item in enumerate(opt(change, "add_schedule_items", list) or []):
        prefix = f"{field}.add_schedule_items[{i}]."
        items.append(terms.access_item(item, prefix) if access else terms.invoice_item(item, prefix))
    for i, item in enumerate(opt(change, "remove_schedule_items", list) or []):
        target = _find(
            items, _ref(item, f"{field}.remove_schedule_items[{i}]"), f"{field}.remove_schedule_items[{i}].id"
        )
        items.remove(target)
    for i, item in enumerate(opt(change, "update_schedule_items", list) or []):
        prefix = f"{field}.update_schedule_items[{i}]."
        target = _find(items, _ref(item, prefix.rstrip(".")), prefix + "id")
        merged = {**target, **{k: v for k, v in item.items() if v is not None}}
        if not access and ("unit_price" in item or "quantity" in item) and "amount" not in item:
            merged.pop("amount")  # recomputed from unit_price x quantity
        elif not access and "amount" in item and "unit_price" not in item and "quantity" not in item:
            merged.pop("unit_price", None)  # a new amount alone: unit price = amount, quantity 1
            merged.pop("quantity", None)
        checked = terms.access_item(merged, prefix) if access else terms.invoice_item(merged, prefix)
        target.update(checked)


def _update_grant(store: Store, grant: dict[str, Any], change: dict[str, Any], prefix: str) -> None:
    for f in ("name", "description", "netsuite_sales_order_id"):
        if f in change:
            grant[f] = opt(change, f, str, prefix)
    if "priority" in change:
        grant["priority"] = opt(change, "priority", float, prefix)
    for f in ("applicable_product_ids", "applicable_product_tags"):
        if f in change:
            grant[f] = change[f]
    if change.get("product_id") is not None:
        grant["product"] = terms.product_ref(store, change["product_id"], prefix + "product_id")
    if change.get("rate_type") is not None:
        grant["rate_type"] = enum(change["rate_type"], terms.RATE_TARGETS, prefix + "rate_type")
    if change.get("specifiers") is not None:
        grant["specifiers"] = change["specifiers"]
    if change.get("access_schedule") is not None:
        _update_schedule(
            store, grant["access_schedule"], change["access_schedule"], prefix + "access_schedule", True
        )
    if change.get("invoice_schedule") is not None:
        schedule = grant.setdefault("invoice_schedule", {"schedule_items": []})
        _update_schedule(store, schedule, change["invoice_schedule"], prefix + "invoice_schedule", False)


def _updates(body: dict[str, Any], field: str, id_field: str, items: list[dict[str, Any]]):
    """(item, change, prefix) for each entry of `body[field]`, the item found by its id."""
    for i, change in enumerate(opt(body, field, list) or []):
        prefix = f"{field}[{i}]."
        check_type(change, dict, prefix.rstrip("."))
        yield _find(items, change.get(id_field), prefix + id_field), change, prefix


def _recurring_edits(
    store: Store, body: dict[str, Any], state: dict[str, Any], contract: dict[str, Any]
) -> dict:
    """Subscriptions, recurring commits and credits added and changed; what was added, by list."""
    view = {**state, "id": contract["id"]}
    subs = [
        recurring_terms.subscription(store, item, f"add_subscriptions[{i}].", view)
        for i, item in enumerate(opt(body, "add_subscriptions", list) or [])
    ]
    temporary = {
        raw["temporary_id"]: sub["id"]
        for raw, sub in zip(opt(body, "add_subscriptions", list) or [], subs, strict=True)
        if isinstance(raw, dict) and raw.get("temporary_id")
    }
    state.setdefault("subscriptions", []).extend(subs)
    added = {"subscriptions": subs}
    for field, commit in (("recurring_commits", True), ("recurring_credits", False)):
        added[field] = [
            recurring_terms.recurring(store, item, f"add_{field}[{i}].", view, temporary, commit)
            for i, item in enumerate(opt(body, f"add_{field}", list) or [])
        ]
        state.setdefault(field, []).extend(added[field])
    for sub, change, prefix in _updates(
        body, "update_subscriptions", "subscription_id", state["subscriptions"]
    ):
        recurring_terms.update_subscription(sub, change, prefix, state)
    for field, id_field, commit in (
        ("recurring_commits", "recurring_commit_id", True),
        ("recurring_credits", "recurring_credit_id", False),
    ):
        for grant, change, prefix in _updates(body, f"update_{field}", id_field, state[field]):
            recurring_terms.update_recurring(grant, change, prefix, commit)
    for field in THRESHOLDS:
        recurring_terms.set_threshold_configuration(store, state, body, field)
    return added


@router.post("/v2/contracts/edit")
async def edit(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    if not editing_enabled(request):
        raise bad(EDITING_OFF)
    unknown = sorted(set(body) - EDIT_FIELDS)
    if unknown:
        raise bad(f"{', '.join(unknown)}: not accepted by /v2/contracts/edit (start a new contract instead)")
    key = check_uniqueness_key(body)
    with store.tx():
        contract = live_contract(store, body)
        state = contract["terms"]
        customer_id = contract["customer_id"]
        if key is not None:
            owner = store.key_owner(f"edit:{contract['id']}", key)
            if owner is not None:
                raise conflict(f"uniqueness_key: '{key}' was already used by edit '{owner}'")
        edit_id = new_id()
        added = {
            "commits": terms.many(store, body, "add_commits", "commit"),
            "credits": terms.many(store, body, "add_credits", "credit"),
            "overrides": terms.many(store, body, "add_overrides", "override"),
            "discounts": terms.many(store, body, "add_discounts", "discount"),
            "scheduled_charges": terms.many(store, body, "add_scheduled_charges", "scheduled_charge"),
        }
        claim_grant_keys(store, customer_id, added["commits"], "add_commits")
        claim_grant_keys(store, customer_id, added["credits"], "add_credits")
        for field, items in added.items():
            state.setdefault(field, []).extend(items)
        for field, id_field in (("update_commits", "commit_id"), ("update_credits", "credit_id")):
            for grant, change, prefix in _updates(
                body, field, id_field, state[field.removeprefix("update_")]
            ):
                _update_grant(store, grant, change, prefix)
        for charge, change, prefix in _updates(
            body, "update_scheduled_charges", "scheduled_charge_id", state["scheduled_charges"]
        ):
            if change.get("invoice_schedule") is not None:
                _update_schedule(
                    store, charge["schedule"], change["invoice_schedule"], prefix + "invoice_schedule", False
                )
            if "netsuite_sales_order_id" in change:
                charge["netsuite_sales_order_id"] = opt(change, "netsuite_sales_order_id", str, prefix)
        added.update(_recurring_edits(store, body, state, contract))
        now = now_iso()
        for field, items in (
            ("archive_commits", state["commits"]),
            ("archive_credits", state["credits"]),
            ("archive_scheduled_charges", state["scheduled_charges"]),
        ):
            for i, ref in enumerate(opt(body, field, list) or []):
                target = _find(items, _ref(ref, f"{field}[{i}]"), f"{field}[{i}].id")
                target["archived_at"] = target.get("archived_at") or now
        for i, ref in enumerate(opt(body, "remove_overrides", list) or []):
            target = _find(
                state["overrides"], _ref(ref, f"remove_overrides[{i}]"), f"remove_overrides[{i}].id"
            )
            state["overrides"].remove(target)
        if "update_contract_end_date" in body:
            ending_before = opt_ts(body, "update_contract_end_date")
            check_end(state["starting_at"], ending_before, "update_contract_end_date")
            state["ending_before"] = ending_before
        if "update_contract_name" in body:
            state["name"] = opt(body, "update_contract_name")
        if "update_net_payment_terms_days" in body:
            state["net_payment_terms_days"] = opt(body, "update_net_payment_terms_days", float)
        update = body.get("add_billing_provider_configuration_update")
        if update is not None:
            field = "add_billing_provider_configuration_update"
            check_type(update, dict, field)
            refuse_second_configuration(contract, field)
            schedule = req(update, "schedule", dict, f"{field}.")
            enum(
                schedule.get("effective_at"),
                ("START_OF_CURRENT_PERIOD", "START_OF_NEXT_PERIOD"),
                f"{field}.schedule.effective_at",
            )
            contract["billing_provider_configuration"] = billing_configuration(
                store,
                customer_id,
                req(update, "billing_provider_configuration", dict, f"{field}."),
                f"{field}.billing_provider_configuration",
            )
        # The history echoes the request, with added items in their response shape (ids, product refs).
        record = {
            **{k: v for k, v in body.items() if k not in ("customer_id", "contract_id")},
            **{f"add_{field}": items for field, items in added.items() if items},
            "id": edit_id,
            "timestamp": now,
        }
        contract["edits"].append(record)
        store.update(KIND, contract)
        if key is not None:
            store.claim_key(f"edit:{contract['id']}", key, edit_id)
    return data({"id": contract["id"], "edit": {"id": edit_id}})


@router.post("/v2/contracts/getEditHistory")
async def edit_history(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    contract = get_contract(store, req(body, "customer_id"), req(body, "contract_id"))
    return data(contract["edits"])
