"""Loading `stacks/<stack>/{catalog,environment}.yaml` as one validated `Stack`: the module others import.

`load_stack` validates everything (schema, enums, cross references, dates) before any resource is declared
and raises one `CatalogError` listing every problem with file, entry, field, line. The parts:

- `catalog_models.py`: the stack model (`Stack`, `Catalog`, `Environment` and their entries), which
  sections each file holds; `catalog_types.py`: the field types entries share.
- `catalog_read.py`: YAML with line numbers, `Problem` / `CatalogError`, the wording of schema errors.
- `catalog_validator.py`: each entry on its own (schema, names, `adopt`, `previous_names`).
- `catalog_pricing.py`: checks of billable metrics, products and rate cards across entries;
  `catalog_packages.py`: packages, alerts, notifications; `catalog_environment.py`: the Stripe section,
  customers, and contracts with `catalog_contracts.py`.
- `catalog_write.py`: writing stack files (`catalog_to_yaml`, `environment_to_yaml`, `dump_yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metronome_iac.catalog_environment import check_environment
from metronome_iac.catalog_models import (
    CATALOG_FILE,
    ENVIRONMENT_FILE,
    KIND_LABELS,
    SECTIONS,
    Catalog,
    Environment,
    Settings,
    Stack,
)
from metronome_iac.catalog_packages import check_alert, check_notification, check_package
from metronome_iac.catalog_pricing import check_pricing
from metronome_iac.catalog_read import CatalogError, Doc, Problem, read_doc
from metronome_iac.catalog_types import Model
from metronome_iac.catalog_validator import Entries, Validator, check_raw_references
from metronome_iac.catalog_write import catalog_to_yaml, dump_yaml, environment_to_yaml

# What other modules take from here (the loader's API; entry models come from catalog_models).
__all__ = [
    "CATALOG_FILE",
    "ENVIRONMENT_FILE",
    "Catalog",
    "CatalogError",
    "Environment",
    "Problem",
    "Stack",
    "catalog_to_yaml",
    "dump_yaml",
    "environment_to_yaml",
    "load_catalog",
    "load_stack",
]


def _check_references(
    v: Validator,
    cat_doc: Doc,
    env_doc: Doc | None,
    cat: dict[str, Entries],
    env: dict[str, Entries],
    single: dict[str, Model | None],
) -> None:
    check_pricing(v, cat_doc, cat)
    _check_packages_alerts(v, cat_doc, cat)
    if env_doc is not None:
        check_environment(v, cat_doc, env_doc, cat, env, single)


def _check_packages_alerts(v: Validator, doc: Doc, cat: dict[str, Entries]) -> None:
    """Packages, alerts and notifications: their checks live in catalog_packages.py."""
    checks: dict[str, Any] = {
        "packages": lambda entry, report: check_package(entry, v.declared, report),
        "alerts": lambda entry, report: check_alert(entry, v.declared, report),
        "notifications": lambda entry, report: check_notification(entry, report),
    }
    for section, check in checks.items():
        for i, entry in cat[section]:
            label = f"{KIND_LABELS[section]} '{getattr(entry, 'name', i)}'"
            check(entry, lambda loc, msg, p=(section, i), e=label: v.add(doc, p, e, loc, msg))


def _build(v: Validator, cat_doc: Doc | None, env_doc: Doc | None) -> tuple[Catalog, Environment]:
    empty_cat: dict[str, Entries] = {s: [] for s in SECTIONS[CATALOG_FILE]}
    empty_env: dict[str, Entries] = {s: [] for s in SECTIONS[ENVIRONMENT_FILE]}
    v.single = {}
    cat = v.sections(cat_doc) if cat_doc is not None else empty_cat
    env = v.sections(env_doc) if env_doc is not None else empty_env
    single = dict(v.single)
    if cat_doc is not None:
        _check_references(v, cat_doc, env_doc, cat, env, single)
        check_raw_references(v)
    if v.problems:
        raise CatalogError(sorted(v.problems, key=lambda p: (p.file, p.line or 0)))
    catalog = Catalog(**{s: [m for _, m in items] for s, items in cat.items()})
    settings = single.get("settings") or Settings()
    environment = Environment(
        settings=settings,
        stripe=single.get("stripe"),
        **{s: [m for _, m in items] for s, items in env.items()},
    )
    return catalog, environment


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate one promotable `catalog.yaml` on its own (promote uses this)."""
    v = Validator()
    doc = read_doc(Path(path), v.problems, required=True)
    if doc is None:
        raise CatalogError(v.problems)
    catalog, _ = _build(v, doc, None)
    return catalog


def load_stack(stack_dir: str | Path) -> Stack:
    """Load `<stack_dir>/catalog.yaml` and `<stack_dir>/environment.yaml` (optional) as one validated stack.

    Raises CatalogError listing every problem (file:line: entry: field: message).
    """
    stack_dir = Path(stack_dir)
    v = Validator()
    if not stack_dir.is_dir():
        raise CatalogError([Problem(str(stack_dir), None, None, None, "stack directory not found")])
    cat_doc = read_doc(stack_dir / CATALOG_FILE, v.problems, required=True)
    env_doc = read_doc(stack_dir / ENVIRONMENT_FILE, v.problems, required=False)
    if cat_doc is None:
        raise CatalogError(v.problems)
    catalog, environment = _build(v, cat_doc, env_doc or Doc(str(stack_dir / ENVIRONMENT_FILE), None))
    return Stack(name=stack_dir.name, path=stack_dir, catalog=catalog, environment=environment)
