"""BillableMetric: a Metronome billable metric (what usage events count towards)."""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure
from pydantic import BaseModel, ConfigDict

from .base import InputsBase, MetronomeProvider, declare_props
from .client import client_key, get_live, paginate, request
from .schema import RequiresReplace

ENTITY = "billable_metric"

# Group keys that look like one value per event (Check warns: each value is its own invoice line).
HIGH_CARDINALITY_HINTS = ("request_id", "event_id", "trace_id", "span_id", "transaction_id", "uuid", "guid")


def looks_high_cardinality(key: str) -> bool:
    lowered = key.lower()
    if any(h in lowered for h in HIGH_CARDINALITY_HINTS):
        return True
    return lowered in ("id", "timestamp", "time", "ts", "created_at", "date", "datetime") or lowered.endswith(
        ("_timestamp", "_time", "_ts", "_at")
    )


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class EventTypeFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    in_values: list[str] | None = None
    not_in_values: list[str] | None = None


class PropertyFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    exists: bool | None = None
    in_values: list[str] | None = None
    not_in_values: list[str] | None = None


# Metronome can only rename a metric (its update takes `name` alone): every field that defines what
# is counted replaces the metric. custom_fields change in place through customFields/setValues.
DEFINES_WHAT_IS_COUNTED = RequiresReplace("Metronome can only rename a billable metric")


class Inputs(InputsBase):
    name: str
    aggregation_type: Annotated[Literal["COUNT", "SUM", "MAX", "LATEST", "UNIQUE"], DEFINES_WHAT_IS_COUNTED]
    aggregation_key: Annotated[str | None, DEFINES_WHAT_IS_COUNTED] = None
    event_type_filter: Annotated[EventTypeFilter | None, DEFINES_WHAT_IS_COUNTED] = None
    property_filters: Annotated[list[PropertyFilter] | None, DEFINES_WHAT_IS_COUNTED] = None
    group_keys: Annotated[list[list[str]] | None, DEFINES_WHAT_IS_COUNTED] = None


HINTS = {
    "aggregation_type": "use COUNT, SUM, MAX, LATEST or UNIQUE (upper case)",
    "name": "give the metric a name (shown in Metronome)",
    "group_keys": "write group keys as a list of lists, e.g. [[model, region]]",
}

# ---------------------------------------------------------------------------------------------
# API calls
# ---------------------------------------------------------------------------------------------

_FIELDS = (
    "name",
    "aggregation_type",
    "aggregation_key",
    "event_type_filter",
    "property_filters",
    "group_keys",
)


def to_inputs(obj: dict[str, Any]) -> dict[str, Any]:
    """An API object in input shape (custom_fields including iac_identity)."""
    out = {k: obj.get(k) for k in _FIELDS if obj.get(k) is not None}
    if isinstance(out.get("aggregation_type"), str):
        out["aggregation_type"] = out["aggregation_type"].upper()
    if obj.get("custom_fields"):
        out["custom_fields"] = dict(obj["custom_fields"])
    return out


def _get(client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
    return get_live(client, "GET", f"/v1/billable-metrics/{object_id}", label=label)


def _list_raw(client: metronome.Metronome) -> list[dict[str, Any]]:
    return list(paginate(client, "GET", "/v1/billable-metrics", label="BillableMetric listing"))


# A metric's group keys never change (a change replaces the metric, under a new id): those of the metrics
# this host created or read, per account, so a product's Check needs no look-up for them.
_GROUP_KEYS: dict[tuple[str, str], list[list[str]]] = {}
_GROUP_KEYS_LOCK = threading.Lock()


def remember_group_keys(client: metronome.Metronome, metric_id: str, group_keys: Any) -> None:
    with _GROUP_KEYS_LOCK:
        _GROUP_KEYS[(client_key(client), metric_id)] = [list(keys) for keys in group_keys or []]


def known_group_keys(client: metronome.Metronome, metric_id: str) -> list[list[str]] | None:
    """The metric's group keys if this host has seen them (None: look the metric up)."""
    with _GROUP_KEYS_LOCK:
        return _GROUP_KEYS.get((client_key(client), metric_id))


class BillableMetricProvider(MetronomeProvider[Inputs]):
    kind = "BillableMetric"
    entity = ENTITY
    inputs_model = Inputs
    natural_key = "name"
    hints = HINTS
    # API calls used by MetronomeProvider's create-once / read / adopt / archive
    get_raw = staticmethod(_get)
    list_raw = staticmethod(_list_raw)
    to_inputs = staticmethod(to_inputs)
    create_path = "/v1/billable-metrics/create"
    create_fields = _FIELDS
    archive_path = "/v1/billable-metrics/archive"

    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        failures = []
        if inputs.aggregation_type != "COUNT" and not inputs.aggregation_key:
            failures.append(
                CheckFailure(
                    "aggregation_key",
                    f"aggregation_key is required for aggregation_type {inputs.aggregation_type}; "
                    "to fix: name the property to aggregate (e.g. aggregation_key: tokens) or use COUNT",
                )
            )
        filter_names = {f.name for f in inputs.property_filters or []}
        key = inputs.aggregation_key
        if inputs.aggregation_type != "COUNT" and key and key not in filter_names:
            failures.append(
                CheckFailure(
                    "aggregation_key",
                    f"aggregation_key {key!r} is not one of the property filter names (Metronome refuses "
                    f"it); to fix: add {{name: {key}, exists: true}} to property_filters",
                )
            )
        required = {
            f.name
            for f in inputs.property_filters or []
            if f.exists or (f.in_values and f.exists is not False)
        }
        for i, compound in enumerate(inputs.group_keys or []):
            for j, key in enumerate(compound):
                if key not in required:
                    failures.append(
                        CheckFailure(
                            f"group_keys[{i}][{j}]",
                            f"group key {key!r} is not a property the metric's property_filters require to "
                            f"exist, so events without it would be grouped under an empty value; to fix: add "
                            f"{{name: {key}, exists: true}} to property_filters (or remove the key)",
                        )
                    )
        return failures

    def warnings(self, inputs: Inputs) -> list[str]:
        keys = sorted(
            {k for compound in inputs.group_keys or [] for k in compound if looks_high_cardinality(k)}
        )
        return [
            f"group key {k!r} looks high-cardinality: each distinct value becomes its own invoice line and "
            f"price group. The Stripe-to-Metronome migration guide's advice: avoid high-cardinality "
            f"properties (like request_id) as group keys, and contact Metronome if a key's cardinality "
            f"approaches 1,000; group by low-cardinality dimensions (model, region, tier) instead"
            for k in keys
        ]

    def create_object(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str:
        object_id = super().create_object(client, inputs, label)
        remember_group_keys(client, object_id, inputs.get("group_keys"))
        return object_id

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        live = super().read_live(client, object_id, props)
        if live is not None:
            remember_group_keys(client, object_id, live.get("group_keys"))
        return live

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        if "name" in changed:
            request(
                client, "PUT", f"/v1/billable-metrics/{object_id}", label=label, body={"name": news["name"]}
            )
        return {}


list_objects = BillableMetricProvider.list_objects  # (client): all live metrics, input-shaped
read_object = BillableMetricProvider.read_object  # (client, id): None if archived or missing


class BillableMetric(pulumi.dynamic.Resource, module="metronome", name="BillableMetric"):
    """A Metronome billable metric.

    Project additions: `adopt` ({"id": ...} or {"name": ...}) takes over a live metric instead of
    creating one (fails if a field that cannot change differs; differences are in `adopt_report`).
    `identity` ("<project>/<stack>/<resource name>") is computed here and stored on the metric as the
    custom field `iac_identity` so a retried create never makes a duplicate. Every field but `name`
    forces replacement (Metronome can only rename a metric).
    """

    name: pulumi.Output[str]
    aggregation_type: pulumi.Output[str]
    aggregation_key: pulumi.Output[str]
    event_type_filter: pulumi.Output[dict]
    property_filters: pulumi.Output[list]
    group_keys: pulumi.Output[list]
    custom_fields: pulumi.Output[dict]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        name: pulumi.Input[str],
        aggregation_type: pulumi.Input[str],
        aggregation_key: pulumi.Input[str] | None = None,
        event_type_filter: pulumi.Input[dict] | None = None,
        property_filters: pulumi.Input[list] | None = None,
        group_keys: pulumi.Input[list] | None = None,
        custom_fields: pulumi.Input[dict] | None = None,
        adopt: pulumi.Input[dict] | None = None,
    ) -> None:
        props = declare_props(
            resource_name,
            dict(
                name=name,
                aggregation_type=aggregation_type,
                aggregation_key=aggregation_key,
                event_type_filter=event_type_filter,
                property_filters=property_filters,
                group_keys=group_keys,
                custom_fields=custom_fields,
                adopt=adopt,
            ),
        )
        super().__init__(BillableMetricProvider(), resource_name, props, opts)


__all__ = [
    "BillableMetric",
    "BillableMetricProvider",
    "Inputs",
    "list_objects",
    "read_object",
]
