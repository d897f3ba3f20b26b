"""Writing stack files: models and plain data as YAML a person reads (`name` first, `adopt` last, 330 not
330.0). Export and the Stripe importer write whole files; promote and the scale benchmark use `dump_yaml`
and `as_written`.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from metronome_iac.catalog_models import Catalog, Environment
from metronome_iac.catalog_packages import CATALOG_SECTIONS as PACKAGE_SECTIONS
from metronome_iac.catalog_types import Model


def _dump_model(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


def _section(items: list[Model], first: tuple[str, ...] = ("name",)) -> list[dict[str, Any]]:
    out = []
    for item in items:
        d = _dump_model(item)
        # `name` first, `adopt` last: easier to read.
        ordered = {k: d[k] for k in first if k in d}
        ordered.update({k: v for k, v in d.items() if k not in first and k != "adopt"})
        if "adopt" in d:
            ordered["adopt"] = d["adopt"]
        out.append(ordered)
    return out


def as_written(value: Any) -> Any:
    """Numbers as a person writes them: the models hold prices as floats, the YAML says 330, not 330.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: as_written(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_written(v) for v in value]
    return value


def dump_yaml(data: Any, header: str = "") -> str:
    text = yaml.safe_dump(
        as_written(data), sort_keys=False, allow_unicode=True, default_flow_style=False, width=110
    )
    return header + text


def catalog_to_yaml(catalog: Catalog, header: str = "") -> str:
    data = {
        "billable_metrics": _section(catalog.billable_metrics),  # type: ignore[arg-type]
        "products": _section(catalog.products),  # type: ignore[arg-type]
        "rate_cards": _section(catalog.rate_cards),  # type: ignore[arg-type]
    }
    for section in PACKAGE_SECTIONS:  # only when there are any: older catalogs stay as they were
        if getattr(catalog, section):
            data[section] = _section(getattr(catalog, section))
    return dump_yaml(data, header)


def environment_to_yaml(environment: Environment, header: str = "") -> str:
    data: dict[str, Any] = {}
    settings = _dump_model(environment.settings)
    if settings:
        data["settings"] = settings
    if environment.stripe is not None:
        data["stripe"] = environment.stripe.model_dump(mode="json", exclude_none=True)
    data["customers"] = _section(environment.customers)  # type: ignore[arg-type]
    data["contracts"] = _section(environment.contracts)  # type: ignore[arg-type]
    return dump_yaml(data, header)
