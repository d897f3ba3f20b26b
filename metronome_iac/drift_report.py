"""The drift report: what differs (desired and live values, down to the differing leaves), what is missing
live, what is live but not in the catalog, and the catalog's warnings; as text or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STRIPE_KIND = "stripe_configurations"  # report entries for customers' Stripe billing provider configurations
KIND_LABEL = {
    "billable_metrics": "billable metric",
    "products": "product",
    "rate_cards": "rate card",
    "customers": "customer",
    "contracts": "contract",
    "packages": "package",
    "alerts": "alert",
    "customer_alerts": "alert",
    "notifications": "notification",
    STRIPE_KIND: "Stripe configuration of customer",
    "stripe_connection": "Stripe connection",
}
# What stands in for the id of a referenced object that is missing live: it names that object.
MISSING_PREFIX = "<missing "


def missing_ref(section: str, name: str) -> str:
    """The desired id of a reference whose target is missing live, e.g. "<missing billable metric 'x'>"."""
    return f"{MISSING_PREFIX}{KIND_LABEL[section]} '{name}'>"


def is_missing(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MISSING_PREFIX) and value.endswith(">")


@dataclass
class FieldDrift:
    field: str
    desired: Any
    live: Any
    # For list/dict fields: the differing leaves, e.g. {"path": "rates[input_tokens_product
    # {model: large, region: us} from 2026-01-01T00:00:00Z].price", "desired": 310, "live": 300}.
    details: list[dict[str, Any]] = field(default_factory=list)
    # `pulumi up` could only restore the desired value by replacing the object (for a contract: refused
    # unless allow_replacement; the usual way back is declaring what is live).
    replaces: bool = False


@dataclass
class Report:
    stack: str
    project: str
    base_url: str | None
    drifted: list[dict[str, Any]] = field(default_factory=list)  # {kind, name, id, fields: [FieldDrift]}
    missing: list[dict[str, Any]] = field(default_factory=list)  # {kind, name, id}
    unmanaged: list[dict[str, Any]] = field(default_factory=list)  # {kind, id, name, identity}
    matched: int = 0
    # What the catalog declares that needs something this check cannot see (never drift by itself).
    warnings: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not (self.drifted or self.missing or self.unmanaged)

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "project": self.project,
            "base_url": self.base_url,
            "in_sync": self.in_sync,
            "matched": self.matched,
            "drifted": [{**d, "fields": [_field_json(f) for f in d["fields"]]} for d in self.drifted],
            "missing": self.missing,
            "unmanaged": self.unmanaged,
            **({"warnings": self.warnings} if self.warnings else {}),  # only when there is one
        }


def _field_json(f: FieldDrift) -> dict[str, Any]:
    out = asdict(f)
    for key in ("details", "replaces"):  # only when there is something to say
        if not out[key]:
            out.pop(key)
    return out


def _rate_label(rate: dict[str, Any], names: dict[str, str]) -> str:
    product = names.get(str(rate.get("product_id")), str(rate.get("product_id")))
    groups = rate.get("pricing_group_values") or {}
    group_text = "{" + ", ".join(f"{k}: {v}" for k, v in sorted(groups.items())) + "}" if groups else ""
    return " ".join(p for p in (product, group_text, f"from {rate.get('starting_at')}") if p)


def leaf_differences(
    path: str, want: Any, have: Any, names: dict[str, str], out: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The differing leaves of two normalised values; rates are matched by their identity
    (product, pricing group values, start), other lists of objects by position."""
    if want == have:
        return out
    if isinstance(want, dict) and isinstance(have, dict):
        for key in [*want, *(k for k in have if k not in want)]:
            leaf_differences(f"{path}.{key}", want.get(key), have.get(key), names, out)
        return out
    if isinstance(want, list) and isinstance(have, list) and all(isinstance(x, dict) for x in want + have):
        if path.rsplit(".", 1)[-1] == "rates":
            wants = {_rate_label(r, names): r for r in want}
            haves = {_rate_label(r, names): r for r in have}
            for key in [*wants, *(k for k in haves if k not in wants)]:
                leaf_differences(f"{path}[{key}]", wants.get(key), haves.get(key), names, out)
            return out
        if len(want) == len(have):
            for i, (a, b) in enumerate(zip(want, have, strict=True)):
                leaf_differences(f"{path}[{i}]", a, b, names, out)
            return out
    out.append({"path": path, "desired": want, "live": have})
    return out


def _show(value: Any) -> str:
    from providers.diff import describe

    if is_missing(value):  # a reference whose target is gone: say which object is gone
        return f"the id of {value[len(MISSING_PREFIX) : -1]}, which is missing live"
    return describe(value)


REPLACE_NOTE = {
    "": "`pulumi up` can restore this only by replacing the object; or declare what is live",
    "contracts": "restoring this replaces the contract (archived, its invoices voided), which `pulumi up` "
    "refuses unless allow_replacement: declare what the live contract has instead",
}


def render(report: Report) -> str:
    lines = [
        f"drift check: stack {report.stack} (project {report.project}, {report.base_url or 'default URL'})"
    ]
    for d in report.drifted:
        lines.append(f"  ~ {KIND_LABEL[d['kind']]} '{d['name']}' ({d['id']}): differs from the catalog")
        for f in d["fields"]:
            for leaf in f.details or [{"path": f.field, "desired": f.desired, "live": f.live}]:
                lines.append(
                    f"      {leaf['path']}: desired {_show(leaf['desired'])}, live {_show(leaf['live'])}"
                )
            if f.replaces:
                lines.append(f"      ! {f.field}: {REPLACE_NOTE.get(d['kind'], REPLACE_NOTE[''])}")
    for m in report.missing:
        where = f" (was {m['id']})" if m.get("id") else ""
        why = m.get("detail") or "archived or never created"
        lines.append(f"  - {KIND_LABEL[m['kind']]} '{m['name']}': missing live ({why}){where}")
    for u in report.unmanaged:
        if u["kind"] == STRIPE_KIND:
            lines.append(
                f"  + Stripe configuration {u['id']} of customer '{u['name']}' "
                f"({u['stripe_customer_id']}, {u['collection_method']}): {u['detail']}"
            )
            continue
        tag = f", tagged {u['identity']}" if u.get("identity") else ""
        lines.append(
            f"  + {KIND_LABEL[u['kind']]} {u['id']} ('{u.get('name')}'{tag}): live but not in the catalog"
        )
    lines += [f"  warning: {w}" for w in report.warnings]
    if report.in_sync:
        lines.append(f"in sync: {report.matched} objects match the catalog")
    else:
        lines.append(
            f"drift: {len(report.drifted)} changed, {len(report.missing)} missing, "
            f"{len(report.unmanaged)} not in the catalog"
        )
    return "\n".join(lines)
