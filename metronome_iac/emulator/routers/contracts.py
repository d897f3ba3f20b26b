"""Contracts: v1 create/get/list/amend/archive/updateEndDate and v2 get/list/edit.

A contract document keeps its terms in the v2 (flat) shape, a snapshot of the terms at creation (v1
`initial`), the v1 amendments and the v2 edits. v1 `current` is the terms as they are now.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    archive_or_400,
    bad,
    check_cursor,
    check_custom_fields,
    check_limit,
    check_type,
    conflict,
    covers,
    data,
    enum,
    get_or_404,
    id_response,
    json_body,
    not_found,
    opt,
    opt_ts,
    parse_ts,
    ref_or_400,
    refuse_archived,
    refuse_frozen,
    req,
    req_ts,
    store_of,
)
from metronome_iac.emulator.routers import terms
from metronome_iac.emulator.routers.billing_providers import DELIVERY_METHODS
from metronome_iac.emulator.routers.customers import CONFIG, CREATE_PROVIDERS, config_view
from metronome_iac.emulator.store import Store, new_id, now_iso

router = APIRouter()

KIND = "contract"
KEY_SCOPE = "contract"
FREQUENCIES = ("MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY")
EDIT_FIELDS = {
    "customer_id",
    "contract_id",
    "uniqueness_key",
    "add_commits",
    "add_credits",
    "add_overrides",
    "add_discounts",
    "add_scheduled_charges",
    "update_commits",
    "update_credits",
    "archive_commits",
    "archive_credits",
    "archive_scheduled_charges",
    "remove_overrides",
    "update_contract_end_date",
    "update_contract_name",
    "update_net_payment_terms_days",
    "add_billing_provider_configuration_update",
    "allow_contract_ending_before_finalized_invoice",
}
CREATE_ONLY = ("rate_card_id", "rate_card_alias", "starting_at", "package_id", "package_alias")
UNIQUENESS_KEY_MAX = 128  # issue 10 item 6, from Metronome's create-a-contract reference (assumed here)
EDITING_OFF = (
    "Contract editing is not enabled for this client: use /v1/contracts/amend, or contact Metronome to "
    "enable contract editing"
)
AMEND_OFF = "Contract amendments are not available once contract editing is enabled: use /v2/contracts/edit"


# -- helpers ----------------------------------------------------------------------------------------


def get_contract(store: Store, customer_id: str, contract_id: str) -> dict[str, Any]:
    contract = store.get(KIND, contract_id)
    if contract is None or contract["customer_id"] != customer_id:
        raise not_found("contract", contract_id, "contract_id")
    return contract


def _live_contract(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    contract = get_contract(store, req(body, "customer_id"), req(body, "contract_id"))
    return refuse_archived(contract, KIND, "contract_id")


def resolve_rate_card(store: Store, body: dict[str, Any], at: str) -> str | None:
    rate_card_id = opt(body, "rate_card_id")
    alias = opt(body, "rate_card_alias")
    if rate_card_id and alias:
        raise bad("rate_card_id and rate_card_alias are mutually exclusive")
    if alias:
        when = parse_ts(at, "starting_at")
        matches = []
        for seq, card in store.iter_docs("rate_card", archive_filter="NOT_ARCHIVED"):
            for a in card.get("aliases") or []:
                if a["name"] == alias and covers(a, when):
                    matches.append((seq, card["id"]))
        if not matches:
            raise bad(f"rate_card_alias: no rate card has alias '{alias}' at {at}")
        return max(matches)[1]  # an alias points at the card it was most recently assigned to
    if rate_card_id:
        ref_or_400(store, "rate_card", rate_card_id, "rate_card_id", live=True)
    return rate_card_id


def billing_configuration(store: Store, customer_id: str, value: Any, field: str) -> dict[str, Any] | None:
    """A contract's billing provider configuration: by id, or by provider + delivery method."""
    if value is None:
        return None
    check_type(value, dict, field)
    config_id = value.get("billing_provider_configuration_id")
    configs = store.all(CONFIG, parent=customer_id, archive_filter="NOT_ARCHIVED")
    if config_id:
        for config in configs:
            if config["id"] == config_id:
                return config_view(config)
        raise bad(
            f"{field}.billing_provider_configuration_id: '{config_id}' is not a live configuration "
            f"of customer '{customer_id}'"
        )
    provider = enum(value.get("billing_provider"), CREATE_PROVIDERS, f"{field}.billing_provider")
    method = enum(value.get("delivery_method"), DELIVERY_METHODS, f"{field}.delivery_method")
    for config in configs:
        if config["billing_provider"] == provider and config["delivery_method"] == method:
            return config_view(config)
    raise bad(f"{field}: customer '{customer_id}' has no {provider} configuration delivered by {method}")


def _refuse_second_configuration(contract: dict[str, Any], field: str) -> None:
    """Metronome only adds a billing provider configuration to a contract that has none (SDK docstring
    of `add_billing_provider_configuration_update`); one archived on the contract still counts (docs: "A
    new billing_provider_configuration cannot be provisioned on the contract")."""
    bound = contract.get("billing_provider_configuration")
    if not bound:
        return
    state = "archived" if bound.get("archived_at") else "active"
    raise bad(
        f"{field}: contract '{contract['id']}' already has a billing provider configuration "
        f"('{bound.get('id')}', {state}); only a contract without one can get one. To bill through "
        "another configuration, end this contract and start a new one on it"
    )


def _usage_statement_schedule(body: dict[str, Any], starting_at: str) -> dict[str, Any]:
    value = body.get("usage_statement_schedule")
    if value is None:
        return {"frequency": "MONTHLY", "billing_anchor_date": starting_at}
    check_type(value, dict, "usage_statement_schedule")
    out = {
        "frequency": enum(value.get("frequency"), FREQUENCIES, "usage_statement_schedule.frequency"),
        "billing_anchor_date": opt_ts(value, "billing_anchor_date", "usage_statement_schedule.")
        or starting_at,
    }
    if value.get("day") is not None:
        out["day"] = enum(
            value["day"], ("FIRST_OF_MONTH", "CONTRACT_START", "CUSTOM_DATE"), "usage_statement_schedule.day"
        )
    return out


def _check_end(starting_at: str, ending_before: str | None, field: str = "ending_before") -> None:
    if ending_before is not None and parse_ts(ending_before, field) <= parse_ts(starting_at, "starting_at"):
        raise bad(f"{field} must be after starting_at ({starting_at})")


def _claim_grant_keys(store: Store, customer_id: str, items: list[dict[str, Any]], field: str) -> None:
    """Commits and credits may carry their own uniqueness keys (409 on reuse)."""
    for i, item in enumerate(items):
        key = item.get("uniqueness_key")
        if key is None:
            continue
        owner = store.key_owner(f"grant:{customer_id}", key)
        if owner is not None:
            raise conflict(f"{field}[{i}].uniqueness_key: '{key}' was already used by '{owner}'")
        store.claim_key(f"grant:{customer_id}", key, item["id"])


def cwa(contract: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """ContractWithoutAmendments: the v1 `initial` and `current` shape."""
    # usage_filter is a list in v2 but a single optional object in v1: leave it out here.
    shaped = {k: v for k, v in state.items() if k != "usage_filter"}
    return {**shaped, "created_at": contract["created_at"], "created_by": contract["created_by"]}


def v1_view(contract: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": contract["id"],
        "customer_id": contract["customer_id"],
        "initial": cwa(contract, contract["initial"]),
        "current": cwa(contract, contract["terms"]),
        "amendments": contract["amendments"],
        "archived_at": contract.get("archived_at"),
        "custom_fields": contract.get("custom_fields") or {},
        "uniqueness_key": contract.get("uniqueness_key"),
        "package_id": contract.get("package_id"),
        "customer_billing_provider_configuration": contract.get("billing_provider_configuration"),
        "subscriptions": contract["terms"].get("subscriptions") or [],
    }


def check_uniqueness_key(body: dict[str, Any]) -> str | None:
    key = opt(body, "uniqueness_key")
    if key is not None and not 1 <= len(key) <= UNIQUENESS_KEY_MAX:
        raise bad(f"uniqueness_key must be 1 to {UNIQUENESS_KEY_MAX} characters (got {len(key)})")
    return key


def editing_enabled(request: Request) -> bool:
    return request.app.state.settings.contract_editing


def v2_view(contract: dict[str, Any], item_limit: int | None = None) -> dict[str, Any]:
    """ContractV2; with `item_limit`, commits and credits past it are left out and `has_more` says so."""
    terms = dict(contract["terms"])
    has_more = {}
    for field in ("commits", "credits"):
        items = terms.get(field) or []
        has_more[field] = item_limit is not None and len(items) > item_limit
        if has_more[field]:
            terms[field] = items[:item_limit]
    return {
        "id": contract["id"],
        "customer_id": contract["customer_id"],
        "created_at": contract["created_at"],
        "created_by": contract["created_by"],
        **terms,
        "has_more": has_more,
        "archived_at": contract.get("archived_at"),
        "custom_fields": contract.get("custom_fields") or {},
        "uniqueness_key": contract.get("uniqueness_key"),
        "package_id": contract.get("package_id"),
        "customer_billing_provider_configuration": contract.get("billing_provider_configuration"),
    }


# -- v1 ---------------------------------------------------------------------------------------------


@router.post("/v1/contracts/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    customer_id = req(body, "customer_id")
    starting_at = req_ts(body, "starting_at")
    ending_before = opt_ts(body, "ending_before")
    _check_end(starting_at, ending_before)
    key = check_uniqueness_key(body)
    with store.tx():
        get_or_404(store, "customer", customer_id, "customer_id", live=True)
        if key is not None:
            owner = store.key_owner(KEY_SCOPE, key)
            if owner is not None:
                raise conflict(f"uniqueness_key: '{key}' was already used by contract '{owner}'")
        package = _package(store, body, starting_at)
        rate_card_id = resolve_rate_card(store, body, starting_at)
        if package is not None:
            rate_card_id = rate_card_id or package.get("rate_card_id")
        net_terms = opt(body, "net_payment_terms_days", float)
        state: dict[str, Any] = {
            "starting_at": starting_at,
            "ending_before": ending_before,
            "name": opt(body, "name") or (package or {}).get("contract_name"),
            "net_payment_terms_days": net_terms,
            "rate_card_id": rate_card_id,
            "commits": terms.many(store, body, "commits", "commit"),
            "credits": terms.many(store, body, "credits", "credit"),
            "overrides": terms.many(store, body, "overrides", "override"),
            "discounts": terms.many(store, body, "discounts", "discount"),
            "scheduled_charges": terms.many(store, body, "scheduled_charges", "scheduled_charge"),
            "transitions": [],
            "usage_filter": [],
            "usage_statement_schedule": _usage_statement_schedule(body, starting_at),
            "recurring_commits": opt(body, "recurring_commits", list) or [],
            "recurring_credits": opt(body, "recurring_credits", list) or [],
            "subscriptions": opt(body, "subscriptions", list) or [],
        }
        if body.get("multiplier_override_prioritization") is not None:
            state["multiplier_override_prioritization"] = enum(
                body["multiplier_override_prioritization"],
                ("LOWEST_MULTIPLIER", "EXPLICIT"),
                "multiplier_override_prioritization",
            )
        contract_id = new_id()
        transition = opt(body, "transition", dict)
        if transition is not None:
            from_id = req(transition, "from_contract_id", prefix="transition.")
            enum(transition.get("type"), ("RENEWAL", "SUPERSEDE"), "transition.type")
            previous = store.get(KIND, from_id)
            if previous is None or previous["customer_id"] != customer_id:
                raise bad(
                    f"transition.from_contract_id: contract '{from_id}' does not exist for this customer"
                )
            link = {"from_contract_id": from_id, "to_contract_id": contract_id, "type": transition["type"]}
            state["transitions"].append(link)
            previous["terms"]["transitions"].append(link)
            store.update(KIND, previous)
        _claim_grant_keys(store, customer_id, state["commits"], "commits")
        _claim_grant_keys(store, customer_id, state["credits"], "credits")
        now = now_iso()
        contract = {
            "id": contract_id,
            "customer_id": customer_id,
            "uniqueness_key": key,
            "package_id": (package or {}).get("id"),
            "custom_fields": check_custom_fields(store, KIND, body.get("custom_fields")),
            "billing_provider_configuration": billing_configuration(
                store,
                customer_id,
                body.get("billing_provider_configuration"),
                "billing_provider_configuration",
            ),
            "created_at": now,
            "created_by": "emulator",
            "archived_at": None,
            "terms": state,
            "initial": state,
            "amendments": [],
            "edits": [],
        }
        store.insert(KIND, contract, parent=customer_id)
        if key is not None:
            store.claim_key(KEY_SCOPE, key, contract_id)
    return id_response(contract_id)


def _package(store: Store, body: dict[str, Any], starting_at: str) -> dict[str, Any] | None:
    package_id = opt(body, "package_id")
    alias = opt(body, "package_alias")
    if package_id and alias:
        raise bad("package_id and package_alias are mutually exclusive")
    if alias:
        # The package the alias names at the contract's start: of the live packages whose alias window
        # covers it, the one it was most recently assigned to. Archived packages provision nothing.
        when = parse_ts(starting_at, "starting_at")
        matches = [
            (seq, package)
            for seq, package in store.iter_docs("package", archive_filter="NOT_ARCHIVED")
            if any(a["name"] == alias and covers(a, when) for a in package.get("aliases") or [])
        ]
        if not matches:
            raise bad(f"package_alias: no live package has alias '{alias}' at {starting_at}")
        return max(matches, key=lambda m: m[0])[1]
    if package_id:
        package = store.get("package", package_id)
        if package is None or package.get("archived_at"):
            raise bad(f"package_id: package '{package_id}' does not exist or is archived")
        return package
    return None


@router.post("/v1/contracts/get")
async def retrieve(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    return data(v1_view(get_contract(store, req(body, "customer_id"), req(body, "contract_id"))))


def _list(store: Store, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    customer_id = req(body, "customer_id")
    get_or_404(store, "customer", customer_id, "customer_id")
    cursor = check_cursor(body.get("cursor"), "cursor")
    limit = check_limit(body.get("limit"), 20, 100)
    covering = parse_ts(body["covering_date"], "covering_date") if body.get("covering_date") else None
    started = parse_ts(body["starting_at"], "starting_at") if body.get("starting_at") else None
    flt = "ALL" if opt(body, "include_archived", bool) else "NOT_ARCHIVED"

    def wanted(c: dict[str, Any]) -> bool:
        if covering is not None and not covers(c["terms"], covering):
            return False
        return started is None or parse_ts(c["terms"]["starting_at"], "") >= started

    return store.list_page(
        KIND, cursor=cursor, limit=limit, archive_filter=flt, parent=customer_id, where=wanted
    )


@router.post("/v1/contracts/list")
async def list_contracts(request: Request) -> JSONResponse:
    store = store_of(request)
    items, nxt = _list(store, await json_body(request))
    return JSONResponse({"data": [v1_view(c) for c in items], "cursor": nxt})


@router.post("/v1/contracts/amend")
async def amend(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    if editing_enabled(request):
        raise bad(AMEND_OFF)
    refuse_frozen(body, (*CREATE_ONLY[:2], "ending_before", "uniqueness_key"), "by an amendment")
    starting_at = req_ts(body, "starting_at")
    with store.tx():
        contract = _live_contract(store, body)
        amendment = {
            "id": new_id(),
            "starting_at": starting_at,
            "created_at": now_iso(),
            "created_by": "emulator",
            "commits": terms.many(store, body, "commits", "commit"),
            "credits": terms.many(store, body, "credits", "credit"),
            "overrides": terms.many(store, body, "overrides", "override"),
            "discounts": terms.many(store, body, "discounts", "discount"),
            "scheduled_charges": terms.many(store, body, "scheduled_charges", "scheduled_charge"),
        }
        _claim_grant_keys(store, contract["customer_id"], amendment["commits"], "commits")
        _claim_grant_keys(store, contract["customer_id"], amendment["credits"], "credits")
        for field in ("commits", "credits", "overrides", "discounts", "scheduled_charges"):
            contract["terms"][field].extend(amendment[field])
        if body.get("custom_fields") is not None:
            contract["custom_fields"] = {
                **contract.get("custom_fields", {}),
                **check_custom_fields(store, KIND, body["custom_fields"], entity_id=contract["id"]),
            }
        contract["amendments"].append(amendment)
        store.update(KIND, contract)
    return id_response(amendment["id"])


@router.post("/v1/contracts/archive")
async def archive(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    if body.get("void_invoices") is None:
        raise bad("void_invoices is required")
    check_type(body["void_invoices"], bool, "void_invoices")
    with store.tx():
        contract = get_contract(store, req(body, "customer_id"), req(body, "contract_id"))
        archive_or_400(store, KIND, contract["id"])
    return id_response(contract["id"])


@router.post("/v1/contracts/updateEndDate")
async def update_end_date(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    ending_before = opt_ts(body, "ending_before")
    with store.tx():
        contract = _live_contract(store, body)
        _check_end(contract["terms"]["starting_at"], ending_before)
        contract["terms"]["ending_before"] = ending_before
        store.update(KIND, contract)
    return id_response(contract["id"])


# -- v2 ---------------------------------------------------------------------------------------------


@router.post("/v2/contracts/get")
async def retrieve_v2(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    contract = get_contract(store, req(body, "customer_id"), req(body, "contract_id"))
    return data(v2_view(contract, request.app.state.settings.contract_item_limit))


@router.post("/v2/contracts/list")
async def list_v2(request: Request) -> JSONResponse:
    store = store_of(request)
    items, nxt = _list(store, await json_body(request))
    limit = request.app.state.settings.contract_item_limit
    return JSONResponse({"data": [v2_view(c, limit) for c in items], "cursor": nxt})


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
        contract = _live_contract(store, body)
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
        _claim_grant_keys(store, customer_id, added["commits"], "add_commits")
        _claim_grant_keys(store, customer_id, added["credits"], "add_credits")
        for field, items in added.items():
            state.setdefault(field, []).extend(items)
        for field, id_field, items in (
            ("update_commits", "commit_id", state["commits"]),
            ("update_credits", "credit_id", state["credits"]),
        ):
            for i, change in enumerate(opt(body, field, list) or []):
                prefix = f"{field}[{i}]."
                check_type(change, dict, prefix.rstrip("."))
                grant = _find(items, change.get(id_field), prefix + id_field)
                _update_grant(store, grant, change, prefix)
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
            _check_end(state["starting_at"], ending_before, "update_contract_end_date")
            state["ending_before"] = ending_before
        if "update_contract_name" in body:
            state["name"] = opt(body, "update_contract_name")
        if "update_net_payment_terms_days" in body:
            state["net_payment_terms_days"] = opt(body, "update_net_payment_terms_days", float)
        update = body.get("add_billing_provider_configuration_update")
        if update is not None:
            field = "add_billing_provider_configuration_update"
            check_type(update, dict, field)
            _refuse_second_configuration(contract, field)
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
