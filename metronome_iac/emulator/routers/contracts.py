"""Contracts: v1 create/get/list/amend/archive/updateEndDate and v2 get/list (edits: contract_edits.py).

A contract document keeps its terms in the v2 (flat) shape, a snapshot of the terms at creation (v1
`initial`), the v1 amendments and the v2 edits. v1 `current` is the terms as they are now. A contract
made from a package takes the package's rate card and terms, placed at its start (package_terms.py).
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
from metronome_iac.emulator.routers import package_terms, recurring_terms, terms
from metronome_iac.emulator.routers.billing_providers import DELIVERY_METHODS
from metronome_iac.emulator.routers.customers import CONFIG, CREATE_PROVIDERS, config_view
from metronome_iac.emulator.store import Store, new_id, now_iso

router = APIRouter()

KIND = "contract"
KEY_SCOPE = "contract"
FREQUENCIES = ("MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY")
CREATE_ONLY = ("rate_card_id", "rate_card_alias", "starting_at", "package_id", "package_alias")
UNIQUENESS_KEY_MAX = 128  # issue 10 item 6, from Metronome's create-a-contract reference (assumed here)
# What an amendment takes (metronome/types/v1/contract_amend_params.py): it adds terms from its start.
AMEND_FIELDS = {
    "contract_id",
    "customer_id",
    "starting_at",
    "commits",
    "credits",
    "custom_fields",
    "discounts",
    "netsuite_sales_order_id",
    "overrides",
    "professional_services",
    "reseller_royalties",
    "salesforce_opportunity_id",
    "scheduled_charges",
    "total_contract_value",
}
AMEND_OFF = "Contract amendments are not available once contract editing is enabled: use /v2/contracts/edit"


# -- helpers ----------------------------------------------------------------------------------------


def get_contract(store: Store, customer_id: str, contract_id: str) -> dict[str, Any]:
    contract = store.get(KIND, contract_id)
    if contract is None or contract["customer_id"] != customer_id:
        raise not_found("contract", contract_id, "contract_id")
    return contract


def live_contract(store: Store, body: dict[str, Any]) -> dict[str, Any]:
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


def refuse_second_configuration(contract: dict[str, Any], field: str) -> None:
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
    # `day` and `invoice_generation_starting_at` shape the statements; a read shows neither
    # (ContractV2.UsageStatementSchedule: billing_anchor_date, frequency).
    day = value.get("day")
    if day is not None:
        enum(day, ("FIRST_OF_MONTH", "CONTRACT_START", "CUSTOM_DATE"), "usage_statement_schedule.day")
    if day == "CUSTOM_DATE" and value.get("billing_anchor_date") is None:
        raise bad("usage_statement_schedule.billing_anchor_date is required when day is CUSTOM_DATE")
    opt_ts(value, "invoice_generation_starting_at", "usage_statement_schedule.")
    return out


def check_end(starting_at: str, ending_before: str | None, field: str = "ending_before") -> None:
    if ending_before is not None and parse_ts(ending_before, field) <= parse_ts(starting_at, "starting_at"):
        raise bad(f"{field} must be after starting_at ({starting_at})")


def claim_grant_keys(store: Store, customer_id: str, items: list[dict[str, Any]], field: str) -> None:
    """Commits and credits may carry their own uniqueness keys (409 on reuse)."""
    for i, item in enumerate(items):
        key = item.get("uniqueness_key")
        if key is None:
            continue
        owner = store.key_owner(f"grant:{customer_id}", key)
        if owner is not None:
            raise conflict(f"{field}[{i}].uniqueness_key: '{key}' was already used by '{owner}'")
        store.claim_key(f"grant:{customer_id}", key, item["id"])


def terms_view(state: dict[str, Any]) -> dict[str, Any]:
    """Stored terms as answered: subscriptions with their current and coming quantities."""
    subs = [recurring_terms.subscription_view(s) for s in state.get("subscriptions") or []]
    return {**state, "subscriptions": subs}


def cwa(contract: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """ContractWithoutAmendments: the v1 `initial` and `current` shape."""
    # usage_filter is a list in v2 but a single optional object in v1: leave it out here.
    shaped = {k: v for k, v in terms_view(state).items() if k != "usage_filter"}
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
        "subscriptions": terms_view(contract["terms"])["subscriptions"],
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
    terms = terms_view(contract["terms"])
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
    key = check_uniqueness_key(body)
    with store.tx():
        get_or_404(store, "customer", customer_id, "customer_id", live=True)
        if key is not None:
            owner = store.key_owner(KEY_SCOPE, key)
            if owner is not None:
                raise conflict(f"uniqueness_key: '{key}' was already used by contract '{owner}'")
        if body.get("package_id") is not None or body.get("package_alias") is not None:
            refuse_beside_package(body)
        package = _package(store, body, starting_at)
        contract_id = new_id()
        if package is not None:
            state = package_terms.provision(store, package, starting_at, contract_id)
        else:
            state = _terms(store, body, starting_at, contract_id)
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
        claim_grant_keys(store, customer_id, state["commits"], "commits")
        claim_grant_keys(store, customer_id, state["credits"], "credits")
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
                body.get("billing_provider_configuration") or package_terms.billing(package),
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


# What a create with a package may carry (ContractCreateParams.package_id: "only customer_id, starting_at,
# package_id, uniqueness_key, transition, and custom_fields are allowed"); package_alias instead of the id.
WITH_PACKAGE = {
    "customer_id",
    "starting_at",
    "package_id",
    "package_alias",
    "uniqueness_key",
    "transition",
    "custom_fields",
}


def refuse_beside_package(body: dict[str, Any]) -> None:
    extra = sorted(k for k, v in body.items() if k not in WITH_PACKAGE and v is not None)
    if extra:
        raise bad(
            f"{', '.join(extra)}: not allowed with a package (only customer_id, starting_at, package_id or "
            "package_alias, uniqueness_key, transition and custom_fields are)"
        )


def _terms(store: Store, body: dict[str, Any], starting_at: str, contract_id: str) -> dict[str, Any]:
    """The terms of a contract created without a package, checked and in their response shapes."""
    ending_before = opt_ts(body, "ending_before")
    check_end(starting_at, ending_before)
    state: dict[str, Any] = {
        "starting_at": starting_at,
        "ending_before": ending_before,
        "name": opt(body, "name"),
        "net_payment_terms_days": opt(body, "net_payment_terms_days", float),
        "rate_card_id": resolve_rate_card(store, body, starting_at),
        "commits": terms.many(store, body, "commits", "commit"),
        "credits": terms.many(store, body, "credits", "credit"),
        "overrides": terms.many(store, body, "overrides", "override"),
        "discounts": terms.many(store, body, "discounts", "discount"),
        "scheduled_charges": terms.many(store, body, "scheduled_charges", "scheduled_charge"),
        "transitions": [],
        "usage_filter": [],
        "usage_statement_schedule": _usage_statement_schedule(body, starting_at),
    }
    if body.get("multiplier_override_prioritization") is not None:
        state["multiplier_override_prioritization"] = enum(
            body["multiplier_override_prioritization"],
            ("LOWEST_MULTIPLIER", "EXPLICIT"),
            "multiplier_override_prioritization",
        )
    view = {**state, "id": contract_id}
    raw_subs = opt(body, "subscriptions", list) or []
    state["subscriptions"] = [
        recurring_terms.subscription(store, item, f"subscriptions[{i}].", view)
        for i, item in enumerate(raw_subs)
    ]
    temporary = {
        raw["temporary_id"]: sub["id"]
        for raw, sub in zip(raw_subs, state["subscriptions"], strict=True)
        if isinstance(raw, dict) and raw.get("temporary_id")
    }
    for field, commit in (("recurring_commits", True), ("recurring_credits", False)):
        state[field] = [
            recurring_terms.recurring(store, item, f"{field}[{i}].", view, temporary, commit)
            for i, item in enumerate(opt(body, field, list) or [])
        ]
    for field in recurring_terms.THRESHOLD_AMOUNTS:
        if body.get(field) is not None:
            state[field] = recurring_terms.threshold_configuration(store, body[field], field)
    return state


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
    unknown = sorted(set(body) - AMEND_FIELDS)
    if unknown:
        raise bad(f"{', '.join(unknown)}: not accepted by /v1/contracts/amend")
    starting_at = req_ts(body, "starting_at")
    with store.tx():
        contract = live_contract(store, body)
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
        claim_grant_keys(store, contract["customer_id"], amendment["commits"], "commits")
        claim_grant_keys(store, contract["customer_id"], amendment["credits"], "credits")
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
        contract = live_contract(store, body)
        check_end(contract["terms"]["starting_at"], ending_before)
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
