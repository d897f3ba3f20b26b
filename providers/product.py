"""Product: a Metronome contract-pricing product (what a rate card puts a price on)."""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure, DiffResult
from pydantic import BaseModel, ConfigDict, field_validator

from .base import InputsBase, MetronomeProvider, Timestamp, current_hour, declare_props, is_hour_aligned
from .billable_metric import BillableMetricProvider, known_group_keys, remember_group_keys
from .client import get_client, get_live, paginate, request
from .diff import UNKNOWN, canonical_time
from .schema import RequiresReplace

ENTITY = "contract_product"  # custom-field entity of contract-pricing products ("Product (Contracts)")

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class QuantityConversion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversion_factor: float
    operation: Literal["MULTIPLY", "DIVIDE"]
    name: str | None = None


class QuantityRounding(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decimal_places: int
    rounding_method: Literal["ROUND_UP", "ROUND_DOWN", "ROUND_HALF_UP"]


class Inputs(InputsBase):
    name: str
    # A product's type never changes (Metronome: create a new product and archive the old one).
    type: Annotated[
        Literal["USAGE", "FIXED", "COMPOSITE", "SUBSCRIPTION", "PRO_SERVICE"],
        RequiresReplace("Metronome cannot change a product's type"),
    ]
    # Everything else, billable_metric_id included, changes in place through a time-versioned update
    # (`starting_at`, hour-aligned); custom_fields through customFields/setValues.
    billable_metric_id: str | None = None
    # Rates are keyed by the product's pricing group values, and once the key changed in place Metronome
    # refuses rates with the old keys, so the old per-group rates could not even be ended (the rate card
    # update would fail after the product changed, leaving them active). A new product takes the new
    # rates; the old one's rates are ended, then it is archived.
    pricing_group_key: Annotated[
        list[str] | None, RequiresReplace("rates keyed by the old pricing group values could not be ended")
    ] = None
    presentation_group_key: list[str] | None = None
    quantity_conversion: QuantityConversion | None = None
    quantity_rounding: QuantityRounding | None = None
    tags: list[str] | None = None
    is_refundable: bool = True  # Metronome's default; stated so a missing value never diffs
    composite_product_ids: list[str] | None = None
    composite_tags: list[str] | None = None
    update_starting_at: Timestamp | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        return "PRO_SERVICE" if value == "PROFESSIONAL_SERVICE" else value


HINTS = {
    "type": "use USAGE, FIXED, COMPOSITE, SUBSCRIPTION or PRO_SERVICE",
    "billable_metric_id": "reference the metric's id (billable_metric_id=metric.id)",
    "update_starting_at": "use an hour boundary such as 2026-01-01T00:00:00Z",
}

USAGE_ONLY = (
    "billable_metric_id",
    "pricing_group_key",
    "presentation_group_key",
    "quantity_conversion",
    "quantity_rounding",
)
STATE_FIELDS = (
    "name",
    "billable_metric_id",
    "pricing_group_key",
    "presentation_group_key",
    "quantity_conversion",
    "quantity_rounding",
    "tags",
    "is_refundable",
    "composite_product_ids",
    "composite_tags",
)

# ---------------------------------------------------------------------------------------------
# API calls
# ---------------------------------------------------------------------------------------------


def latest_state(obj: dict[str, Any]) -> dict[str, Any]:
    """initial + every update in starting_at order, scheduled ones included: what was last declared."""
    if not obj.get("initial"):
        return dict(obj.get("current") or {})
    state = dict(obj["initial"])
    for upd in sorted(obj.get("updates") or [], key=lambda u: canonical_time(u["starting_at"])):
        state.update({k: v for k, v in upd.items() if v is not None})
    return state


def to_inputs(obj: dict[str, Any]) -> dict[str, Any]:
    state = latest_state(obj)
    out: dict[str, Any] = {k: state[k] for k in STATE_FIELDS if state.get(k) is not None}
    out["type"] = "PRO_SERVICE" if obj.get("type") == "PROFESSIONAL_SERVICE" else obj.get("type")
    if obj.get("custom_fields"):
        out["custom_fields"] = dict(obj["custom_fields"])
    return out


def _get(client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
    return get_live(client, "POST", "/v1/contract-pricing/products/get", label=label, body={"id": object_id})


def _list_raw(client: metronome.Metronome) -> list[dict[str, Any]]:
    return list(
        paginate(
            client,
            "POST",
            "/v1/contract-pricing/products/list",
            label="Product listing",
            body={"archive_filter": "NOT_ARCHIVED"},
        )
    )


_LOOKUPS_OFF: set[str] = set()  # base URLs whose look-up failed once in this run: check stays quick
_LOOKUPS_LOCK = threading.Lock()
_METRIC_LOCKS: dict[tuple[str, str], threading.Lock] = {}  # one look-up per metric, however many checks


def metric_group_keys(metric_id: str) -> list[list[str]] | None:
    """The live metric's group keys, None when it cannot be looked up (missing, archived, no access,
    API down). A metric this host created or read needs no look-up (`known_group_keys`). One retry at
    most, and after a failure no further look-ups: this is a preview-time courtesy, and the API checks
    again at create. The host checks 4 resources at a time: products of one metric wait for the first
    one's look-up instead of repeating it."""
    try:
        client = get_client()
    except Exception:  # noqa: BLE001 - no token: skip the courtesy
        return None
    base_url = str(client.base_url)
    key = (base_url, metric_id)
    with _LOOKUPS_LOCK:
        lock = _METRIC_LOCKS.setdefault(key, threading.Lock())
    with lock:
        known = known_group_keys(client, metric_id)
        if known is not None:
            return known
        with _LOOKUPS_LOCK:
            if base_url in _LOOKUPS_OFF:
                return None
        try:
            quick = client.with_options(max_retries=1)
            metric = BillableMetricProvider.get_raw(quick, metric_id, f"BillableMetric {metric_id}")
        except Exception:  # noqa: BLE001 - unreachable, 5xx after the retry, a bad answer: skip
            with _LOOKUPS_LOCK:
                _LOOKUPS_OFF.add(base_url)
            return None
        if metric is None:
            return None
        remember_group_keys(client, metric_id, metric.get("group_keys"))
        return known_group_keys(client, metric_id)


def _metric_and_keys(values: Any) -> tuple[Any, ...]:
    """What a product's group-key check depends on (an inputs model, or the previous inputs)."""
    get = values.get if isinstance(values, dict) else lambda f: getattr(values, f, None)
    return (
        get("type"),
        get("billable_metric_id"),
        frozenset(get("pricing_group_key") or []),
        frozenset(get("presentation_group_key") or []),
    )


_TYPES: dict[str, str] = {}  # product id -> type: a product's type never changes (ids are UUIDs)
_TYPES_LOCK = threading.Lock()
_TYPE_LOOKUPS: dict[str, threading.Lock] = {}  # one look-up per product at a time


def remember_type(product_id: str, product_type: Any) -> None:
    """Note a product's type seen by this host (created, read or diffed), so Check needs no look-up."""
    if (
        isinstance(product_id, str)
        and isinstance(product_type, str)
        and UNKNOWN not in (product_id, product_type)
    ):
        with _TYPES_LOCK:
            _TYPES[product_id] = product_type


def product_type(product_id: str) -> str | None:
    """The product's type: known to the host, else looked up once (concurrent checks of one product wait
    for one look-up). None when it cannot be looked up (missing, archived, no access, API down): like
    `metric_group_keys`, a preview-time courtesy; the API checks again when the rates are added."""
    with _TYPES_LOCK:
        if product_id in _TYPES:
            return _TYPES[product_id]
        lock = _TYPE_LOOKUPS.setdefault(product_id, threading.Lock())
    with lock:
        with _TYPES_LOCK:
            if product_id in _TYPES:
                return _TYPES[product_id]
        base_url = ""
        try:
            client = get_client()
            base_url = str(client.base_url)
            if base_url in _LOOKUPS_OFF:
                return None
            product = _get(client.with_options(max_retries=1), product_id, f"Product {product_id}")
        except Exception:  # noqa: BLE001 - no token, unreachable, 5xx after the retry: skip the courtesy
            _LOOKUPS_OFF.add(base_url)
            return None
        if product is None:
            return None
        found = to_inputs(product)["type"]
        remember_type(product_id, found)
        return found


class ProductProvider(MetronomeProvider[Inputs]):
    kind = "Product"
    entity = ENTITY
    inputs_model = Inputs
    natural_key = "name"
    hints = HINTS
    # API calls used by MetronomeProvider's create-once / read / adopt / archive
    get_raw = staticmethod(_get)
    list_raw = staticmethod(_list_raw)
    to_inputs = staticmethod(to_inputs)
    create_path = "/v1/contract-pricing/products/create"
    create_fields = ("type", *STATE_FIELDS)
    archive_path = "/v1/contract-pricing/products/archive"
    archive_id_field = "product_id"

    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        failures = []
        if inputs.type == "USAGE" and not inputs.billable_metric_id:
            failures.append(
                CheckFailure(
                    "billable_metric_id",
                    "a USAGE product needs billable_metric_id; to fix: set billable_metric_id=<metric>.id "
                    "(or use type FIXED/SUBSCRIPTION for products not priced on usage)",
                )
            )
        if inputs.type != "USAGE":
            for field in USAGE_ONLY:
                if getattr(inputs, field) is not None:
                    failures.append(
                        CheckFailure(
                            field,
                            f"{field} applies to USAGE products only; to fix: remove it or use type USAGE",
                        )
                    )
        if inputs.type != "COMPOSITE":
            for field in ("composite_product_ids", "composite_tags"):
                if getattr(inputs, field):
                    failures.append(
                        CheckFailure(field, f"{field} applies to COMPOSITE products only; to fix: remove it")
                    )
        if inputs.update_starting_at and inputs.update_starting_at != UNKNOWN:
            if not is_hour_aligned(inputs.update_starting_at):
                failures.append(
                    CheckFailure(
                        "update_starting_at",
                        f"{inputs.update_starting_at} is not on an hour boundary (Metronome refuses it); "
                        "to fix: use a whole hour such as 2026-01-01T00:00:00Z",
                    )
                )
        if _metric_and_keys(inputs) != _metric_and_keys(olds):  # else checked when they were set
            failures.extend(self.group_key_failures(inputs))
        return failures

    @staticmethod
    def group_key_failures(inputs: Inputs) -> list[CheckFailure]:
        """pricing + presentation keys must be one of the live metric's group keys (else the API refuses).

        Only when the metric already exists (its id is known at preview); a metric created in the same
        run is checked by the API at create. A failed look-up is not a check failure.
        """
        wanted = set(inputs.pricing_group_key or []) | set(inputs.presentation_group_key or [])
        metric_id = inputs.billable_metric_id
        if inputs.type != "USAGE" or not wanted or not metric_id or metric_id == UNKNOWN:
            return []
        group_keys = metric_group_keys(metric_id)
        if group_keys is None or any(wanted == set(keys) for keys in group_keys):
            return []
        field = "pricing_group_key" if inputs.pricing_group_key else "presentation_group_key"
        return [
            CheckFailure(
                field,
                f"pricing_group_key + presentation_group_key {sorted(wanted)} is not one of billable metric "
                f"{metric_id}'s group_keys {group_keys}; to fix: use one of those key sets, or add this one "
                "to the metric (which replaces the metric)",
            )
        ]

    # The host remembers every product type it sees, for the rate card's Check (`product_type`).
    def create_object(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str:
        object_id = super().create_object(client, inputs, label)
        remember_type(object_id, inputs.get("type"))
        return object_id

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        live = super().read_live(client, object_id, props)
        remember_type(object_id, (live or {}).get("type"))
        return live

    def diff_inputs(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        remember_type(_id, olds.get("type"))
        return super().diff_inputs(_id, olds, news)

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        if not changed:
            return {}
        body: dict[str, Any] = {
            "product_id": object_id,
            # Hour-aligned, as Metronome requires; the current hour makes the change effective now.
            "starting_at": news.get("update_starting_at") or current_hour(),
        }
        for field in changed:
            value = news.get(field)
            if value is None and field in (
                "pricing_group_key",
                "presentation_group_key",
                "tags",
                "composite_product_ids",
                "composite_tags",
            ):
                value = []  # a removed list is an empty list
            body[field] = value
        request(client, "POST", "/v1/contract-pricing/products/update", label=label, body=body)
        return {}


list_objects = ProductProvider.list_objects  # (client): all live products, input-shaped (latest state)
read_object = ProductProvider.read_object  # (client, id): None if archived or missing


class Product(pulumi.dynamic.Resource, module="metronome", name="Product"):
    """A Metronome contract-pricing product.

    Project additions: `adopt` ({"id": ...} or {"name": ...}) takes over a live product instead of
    creating one (differences land in `adopt_report`; a differing `type` fails). `identity` is stored
    as the custom field `iac_identity` so a retried create never duplicates. `type` and
    `pricing_group_key` force replacement; other changes are time-versioned updates effective at
    `update_starting_at` (hour-aligned) or, by default, the start of the current hour.
    """

    name: pulumi.Output[str]
    type: pulumi.Output[str]
    billable_metric_id: pulumi.Output[str]
    pricing_group_key: pulumi.Output[list]
    presentation_group_key: pulumi.Output[list]
    quantity_conversion: pulumi.Output[dict]
    quantity_rounding: pulumi.Output[dict]
    tags: pulumi.Output[list]
    is_refundable: pulumi.Output[bool]
    composite_product_ids: pulumi.Output[list]
    composite_tags: pulumi.Output[list]
    custom_fields: pulumi.Output[dict]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        name: pulumi.Input[str],
        type: pulumi.Input[str],
        billable_metric_id: pulumi.Input[str] | None = None,
        pricing_group_key: pulumi.Input[list] | None = None,
        presentation_group_key: pulumi.Input[list] | None = None,
        quantity_conversion: pulumi.Input[dict] | None = None,
        quantity_rounding: pulumi.Input[dict] | None = None,
        tags: pulumi.Input[list] | None = None,
        is_refundable: pulumi.Input[bool] | None = None,
        composite_product_ids: pulumi.Input[list] | None = None,
        composite_tags: pulumi.Input[list] | None = None,
        custom_fields: pulumi.Input[dict] | None = None,
        update_starting_at: pulumi.Input[str] | None = None,
        adopt: pulumi.Input[dict] | None = None,
    ) -> None:
        props = declare_props(
            resource_name,
            dict(
                name=name,
                type=type,
                billable_metric_id=billable_metric_id,
                pricing_group_key=pricing_group_key,
                presentation_group_key=presentation_group_key,
                quantity_conversion=quantity_conversion,
                quantity_rounding=quantity_rounding,
                tags=tags,
                is_refundable=is_refundable,
                composite_product_ids=composite_product_ids,
                composite_tags=composite_tags,
                custom_fields=custom_fields,
                update_starting_at=update_starting_at,
                adopt=adopt,
            ),
        )
        super().__init__(ProductProvider(), resource_name, props, opts)


__all__ = ["Inputs", "Product", "ProductProvider", "list_objects", "read_object"]
