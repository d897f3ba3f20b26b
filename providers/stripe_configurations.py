"""Setting and archiving customers' Stripe billing provider configurations, for the StripeIntegration.

While live the integration owns each listed customer's Stripe configuration on the connected account: an
update sets the wanted configuration first and then archives any other active one (a changed
collection method or Stripe customer id), so a customer is never left without one nor invoiced twice.
Refused (at preview for a change while live; in `up`, before anything is set, always): any change that
would archive a configuration an active contract is billed through. Metronome archives it on the
contract at once (the contract stops invoicing through Stripe) and cannot give that contract another
configuration; the message names the contracts and the ways forward (end them and start their
follow-ons on the new configuration, or make the change in the Metronome dashboard with Metronome's help).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import metronome

from .client import MetronomeError, archive, raw_request, request, retry_after_seconds
from .contract_api import active_contracts
from .stripe_account import LOOKUP_WORKERS

BATCH_SIZE = 100  # configurations per setCustomerBillingProviderConfigurations call
MAX_SET_ATTEMPTS = 6
IDEMPOTENT_RETRIES = 10  # per-customer idempotent calls made for every customer at go-live
ARCHIVE_PATH = "/v1/archiveCustomerBillingProviderConfigurations"

# ---------------------------------------------------------------------------------------------
# What is refused, and why
# ---------------------------------------------------------------------------------------------


def removal_refused(still_active: dict[str, list[str]]) -> str:
    listed = "; ".join(f"{cid} (configuration {', '.join(ids)})" for cid, ids in sorted(still_active.items()))
    return (
        f"customers with an active Stripe configuration cannot be dropped from a live integration: {listed}. "
        "Dropping a customer from this list would not stop Metronome invoicing it through Stripe; it would "
        "only stop this stack from managing it. To stop invoicing a customer through Stripe deliberately: "
        f"archive its configuration(s) with POST {ARCHIVE_PATH} "
        "{customer_id, customer_billing_provider_configuration_ids: [<ids above>]} (at once, Metronome "
        "archives it on the contracts that use it too and stops sending them to Stripe), then remove the "
        "customer from this list: this check passes once the customer has no active Stripe configuration"
    )


def _describe_configuration(config: dict[str, Any]) -> str:
    conf = config.get("configuration") or {}
    method = conf.get("stripe_collection_method") or "charge_automatically"
    return f"{config['id']} (Stripe customer {conf.get('stripe_customer_id')}, {method})"


def _describe_contract(contract: dict[str, Any]) -> str:
    """`contract <id> ('<name>', stack contract <resource name>)`: the resource name is read from the
    uniqueness key the provider gives its contracts ("iac:<project>/<stack>/<name>#<fingerprint>")."""
    extra = [f"'{contract['name']}'"] if contract.get("name") else []
    key = str(contract.get("uniqueness_key") or "")
    if "iac:" in key:
        resource = key.split("iac:", 1)[1].split("#", 1)[0].rsplit("/", 1)[-1]
        if resource:
            extra.append(f"stack contract {resource}")
    return f"contract {contract['id']}" + (f" ({', '.join(extra)})" if extra else "")


def replacement_refused(
    blocked: dict[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]],
    wanted: list[dict[str, str]],
    going_live: bool = False,
) -> str:
    """Why setting `wanted` is refused: it would archive configurations that active contracts bill through.
    `going_live`: the configurations were set outside the stack before it went live."""
    by_customer = {w["customer_id"]: w for w in wanted}
    parts = []
    for cid in sorted(blocked):
        want = by_customer[cid]
        for config, contracts in blocked[cid]:
            listed = ", ".join(_describe_contract(c) for c in contracts)
            parts.append(
                f"customer {cid}: the wanted configuration (Stripe customer {want['stripe_customer_id']}, "
                f"{want['collection_method']}) would replace configuration "
                f"{_describe_configuration(config)}, which active contract(s) bill through: {listed}"
            )
    lead = (
        "going live is refused where a customer already has a Stripe configuration (set outside this stack) "
        "that active contracts are billed through and the stack declares a different one"
        if going_live
        else "a change to a customer's Stripe customer id or collection method is refused while active "
        "contracts are billed through its current Stripe configuration"
    )
    return (
        f"{lead}: {'; '.join(parts)}. Setting the new "
        "configuration means archiving the current one, and Metronome then archives it on those contracts "
        "at once: they would stop invoicing through Stripe, and Metronome cannot move a contract to another "
        "billing provider configuration (none can be provisioned on a contract that has had one). Nothing "
        "was changed. To proceed, either: (1) end those contracts (set their ending_before) and, once they "
        "have ended and their final invoices have reached Stripe, make this change in the same `pulumi up` "
        "as their follow-on contracts (e.g. a renewal starting where they end), which are created on the "
        "new configuration; or (2) make the change in the Metronome dashboard with Metronome's help, then "
        "set this stack's stripe_customer_id / collection method to match. To fix for now: keep the "
        "customer's stripe_customer_id and collection method as they are"
        + (" in Metronome (declare the configuration it already has)" if going_live else "")
    )


# ---------------------------------------------------------------------------------------------
# Wanted and live configurations
# ---------------------------------------------------------------------------------------------


def desired_configurations(inputs: dict[str, Any]) -> list[dict[str, str]]:
    """One Stripe configuration per customer: its override or the default collection method."""
    default = inputs.get("collection_method") or "charge_automatically"
    return [
        {
            "customer_id": c["customer_id"],
            "stripe_customer_id": c["stripe_customer_id"],
            "collection_method": c.get("collection_method") or default,
        }
        for c in inputs.get("customers") or []
    ]


def _is_stripe(config: dict[str, Any], delivery_method_id: str | None) -> bool:
    """An active Stripe configuration (on `delivery_method_id` when given: other connected Stripe
    accounts are not this resource's business)."""
    return (
        config.get("billing_provider") == "stripe"
        and not config.get("archived_at")
        and (delivery_method_id is None or config.get("delivery_method_id") in (None, delivery_method_id))
    )


def _matches(config: dict[str, Any], want: dict[str, str]) -> bool:
    conf = config.get("configuration") or {}
    return (
        conf.get("stripe_customer_id") == want["stripe_customer_id"]
        and (conf.get("stripe_collection_method") or "charge_automatically") == want["collection_method"]
    )


def stripe_configurations(
    client: metronome.Metronome,
    customer_ids: list[str],
    delivery_method_id: str | None,
    label: str,
    *,
    missing_ok: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """{customer_id: its active Stripe configurations}; one get per customer (the get is not paged)."""

    def look(customer_id: str) -> tuple[str, list[dict[str, Any]]]:
        try:
            page = request(
                client,
                "POST",
                "/v1/getCustomerBillingProviderConfigurations",
                label=label,
                body={"customer_id": customer_id},
            )
        except MetronomeError as err:
            if err.status_code != 404:
                raise
            if missing_ok:
                return customer_id, []
            raise MetronomeError(f"{label}: Metronome customer {customer_id} does not exist") from None
        configs = [c for c in (page or {}).get("data") or [] if _is_stripe(c, delivery_method_id)]
        return customer_id, configs

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        return dict(pool.map(look, customer_ids))


def missing_customers(client: metronome.Metronome, customer_ids: list[str], label: str) -> list[str]:
    """The ids of `customer_ids` that are no Metronome customer (archived ones count as existing)."""

    def gone(customer_id: str) -> str | None:
        try:
            request(client, "GET", f"/v1/customers/{customer_id}", label=label)
        except MetronomeError as err:
            if err.status_code in (400, 404):
                return customer_id
            raise
        return None

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        return sorted(c for c in pool.map(gone, customer_ids) if c is not None)


def customers_missing(ids: list[str]) -> str:
    return (
        f"Metronome customer(s) {', '.join(ids)} do not exist, so no Stripe configuration was set for them. "
        "To fix: reference the "
        "customers' ids as Metronome has them (a Customer resource's id), or remove them from customers"
    )


def set_leave_in_draft(client: metronome.Metronome, customer_ids: list[str], leave: bool, label: str) -> None:
    """Set each customer's `leave_stripe_invoices_in_draft` (updateConfig), so invoices reach Stripe as the
    stack says and not by Metronome's default (drafts)."""

    def one(customer_id: str) -> None:
        # Idempotent, and one per customer at go-live: more patience than one read gets.
        try:
            raw_request(
                client,
                "POST",
                f"/v1/customers/{customer_id}/updateConfig",
                body={"leave_stripe_invoices_in_draft": leave},
                max_retries=IDEMPOTENT_RETRIES,
            )
        except metronome.APIError as err:
            raise MetronomeError.from_api(label, err) from None

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        list(pool.map(one, customer_ids))


def existing_configurations(
    client: metronome.Metronome, wanted: list[dict[str, str]], delivery_method_id: str, label: str
) -> dict[str, str]:
    """{customer_id: config id} for customers that already have the wanted Stripe configuration."""
    live = stripe_configurations(client, [w["customer_id"] for w in wanted], delivery_method_id, label)
    return matching_configurations(wanted, live)


def matching_configurations(
    wanted: list[dict[str, str]], live: dict[str, list[dict[str, Any]]]
) -> dict[str, str]:
    """{customer_id: the first live configuration that is the wanted one} (customers without none)."""
    found = {}
    for want in wanted:
        hits = [c["id"] for c in live.get(want["customer_id"], []) if _matches(c, want)]
        if hits:
            found[want["customer_id"]] = hits[0]
    return found


def replaced_configurations(
    wanted: list[dict[str, str]], live: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """{customer_id: the active Stripe configurations an apply would archive}: all but the one it keeps
    (the first matching the wanted configuration; when none matches, a new one is set)."""
    kept = matching_configurations(wanted, live)
    return {
        w["customer_id"]: [c for c in live.get(w["customer_id"], []) if c["id"] != kept.get(w["customer_id"])]
        for w in wanted
    }


def blocked_replacements(
    client: metronome.Metronome,
    wanted: list[dict[str, str]],
    live: dict[str, list[dict[str, Any]]],
    label: str,
) -> dict[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """{customer_id: [(configuration to be archived, the active contracts billed through it)]}, only
    where there are such contracts (active: not archived, not ended). One contract listing per customer
    that has something to archive."""
    replaced = {cid: configs for cid, configs in replaced_configurations(wanted, live).items() if configs}

    def look(customer_id: str) -> tuple[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
        contracts = active_contracts(client, customer_id, label)
        found = []
        for config in replaced[customer_id]:
            using = [
                c
                for c in contracts
                if (c.get("customer_billing_provider_configuration") or {}).get("id") == config["id"]
            ]
            if using:
                found.append((config, using))
        return customer_id, found

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        return {cid: found for cid, found in pool.map(look, sorted(replaced)) if found}


def set_configurations(
    client: metronome.Metronome,
    wanted: list[dict[str, str]],
    delivery_method_id: str,
    label: str,
    sleep: Callable[[float], None] = time.sleep,
    found: dict[str, str] | None = None,
) -> dict[str, str]:
    """Every wanted configuration exists afterwards; returns {customer_id: config id}.

    Existing ones are looked up first (or passed in as `found`), so a retried `up` re-uses them. The
    set call itself goes out with the SDK retries off: after an ambiguous failure (5xx, connection) the
    batch is looked up again and only what is still missing is sent, so a configuration is never set twice.
    """
    found = (
        dict(found)
        if found is not None
        else existing_configurations(client, wanted, delivery_method_id, label)
    )
    missing = [w for w in wanted if w["customer_id"] not in found]
    for start in range(0, len(missing), BATCH_SIZE):
        batch = missing[start : start + BATCH_SIZE]
        delay = 0.5
        for attempt in range(MAX_SET_ATTEMPTS):
            body = {
                "data": [
                    {
                        "customer_id": w["customer_id"],
                        "billing_provider": "stripe",
                        # Named by id: with several Stripe accounts connected Metronome requires it.
                        "delivery_method_id": delivery_method_id,
                        "configuration": {
                            "stripe_customer_id": w["stripe_customer_id"],
                            "stripe_collection_method": w["collection_method"],
                        },
                    }
                    for w in batch
                ]
            }
            try:
                response = raw_request(
                    client, "POST", "/v1/setCustomerBillingProviderConfigurations", body=body, max_retries=0
                )
            except metronome.RateLimitError as err:
                sleep(retry_after_seconds(err.response) or delay)
            except (metronome.APIConnectionError, metronome.InternalServerError) as err:
                again = existing_configurations(client, batch, delivery_method_id, label)
                found.update(again)
                batch = [w for w in batch if w["customer_id"] not in again]
                if not batch:
                    break
                # Metronome answers a set naming an unknown customer with a 500 (and its configurations
                # with [], not 404: reported): a customer that does not exist is said so, not retried.
                missing = missing_customers(client, [w["customer_id"] for w in batch], label)
                if missing:
                    raise MetronomeError(f"{label}: {customers_missing(missing)}") from None
                if attempt == MAX_SET_ATTEMPTS - 1:
                    raise MetronomeError.from_api(label, err) from None
                sleep(retry_after_seconds(getattr(err, "response", None)) or delay)
            except metronome.APIError as err:
                raise MetronomeError.from_api(label, err) from None
            else:
                for config in (response or {}).get("data") or []:
                    found[config["customer_id"]] = config["id"]
                break
            delay = min(delay * 2, 8.0)
        else:
            raise MetronomeError(
                f"{label}: setting Stripe configurations kept failing; run `pulumi up` again"
            )
    return {w["customer_id"]: found[w["customer_id"]] for w in wanted if w["customer_id"] in found}


def archive_replaced(
    client: metronome.Metronome, ids: dict[str, str], replaced: dict[str, list[str]], label: str
) -> None:
    """Archive each customer's replaced configurations (one call per customer: the API takes one).

    Runs only after the new configurations exist, so a customer is never without one. A failure leaves
    new and replaced both active; the error says so per customer, and the next `up` finishes the job
    (set_configurations finds the new ones, the replaced ones are found again and archived).
    """

    def one(customer_id: str) -> tuple[str, str] | None:
        body = {
            "customer_id": customer_id,
            "customer_billing_provider_configuration_ids": replaced[customer_id],
        }
        try:
            archive(client, ARCHIVE_PATH, body, label=label)  # "already archived" counts as done
        except MetronomeError as err:
            return customer_id, str(err).removeprefix(f"{label}: ")
        return None

    todo = sorted(cid for cid, old in replaced.items() if old)
    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        failed = dict(f for f in pool.map(one, todo) if f is not None)
    for customer_id in todo:
        if customer_id not in failed:
            print(
                f"{label}: customer {customer_id}: archived replaced Stripe configuration(s) "
                f"{', '.join(replaced[customer_id])}; active now: {ids[customer_id]}",
                file=sys.stderr,
                flush=True,
            )
    if failed:
        lines = "; ".join(
            f"customer {cid}: new configuration {ids[cid]} is active AND replaced "
            f"{', '.join(replaced[cid])} is still active ({why})"
            for cid, why in sorted(failed.items())
        )
        raise MetronomeError(
            f"{label}: the new Stripe configurations are set, but archiving the replaced ones failed for "
            f"{len(failed)} customer(s), which therefore have two active Stripe configurations: {lines}. "
            "Every other customer has exactly its new configuration. Until this step succeeds the stack "
            "keeps its previous state, so contracts keep referencing the configuration ids recorded there. "
            "Run `pulumi up` again to finish: it finds the new configurations (nothing is set twice) and "
            "archives the replaced ones."
        )
