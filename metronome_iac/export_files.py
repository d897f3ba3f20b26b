"""The stack files an export writes: `catalog.yaml` + `environment.yaml` (checked to load as a stack first;
entries the stack checks refuse are left out, each named) and, for a stack folder of a project,
`Pulumi.<stack>.yaml`."""

from __future__ import annotations

import re
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from metronome_iac.catalog import (
    CATALOG_FILE,
    ENVIRONMENT_FILE,
    Catalog,
    CatalogError,
    Environment,
    catalog_to_yaml,
    dump_yaml,
    environment_to_yaml,
    load_stack,
)
from metronome_iac.catalog_models import KIND_LABELS
from metronome_iac.export_stripe import placeholder_hint

HEADER = (
    "# Exported from {url} by `metronome-iac export`.\n"
    "# Every entry adopts its live object (adopt: {{id: ...}}): the first `pulumi up` creates nothing.\n"
)


def stack_files(catalog: Catalog, environment: Environment, source: str) -> dict[str, str]:
    """{file name: YAML text} for the two stack files."""
    header = HEADER.format(url=source)
    hint = placeholder_hint(environment)
    todo = "".join(f"# {line}\n" for line in textwrap.wrap(f"TODO: {hint}", 106)) if hint else ""
    return {
        CATALOG_FILE: catalog_to_yaml(catalog, header),
        ENVIRONMENT_FILE: environment_to_yaml(environment, header + todo),
    }


def check_loads(files: dict[str, str]) -> None:
    """Raise CatalogError unless `files` load as a stack (checked in a scratch directory)."""
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in files.items():
            (Path(scratch) / name).write_text(text, encoding="utf-8")
        load_stack(scratch)


_ENTRY = re.compile(r"^(?P<label>.+?) '(?P<name>.*)'$")


def loadable(
    catalog: Catalog, environment: Environment, source: str, warn: Callable[[str], None]
) -> tuple[Catalog, Environment]:
    """The export minus the entries the stack checks refuse (a group key without its `exists` filter,
    a reference to an entry left out, ...), each named with its reason; what depends on a dropped entry
    is refused in the next round and dropped in turn."""
    sections = {label: section for section, label in KIND_LABELS.items()}
    models = {"catalog": catalog, "environment": environment}
    while True:
        try:
            check_loads(stack_files(models["catalog"], models["environment"], source))
            return models["catalog"], models["environment"]
        except CatalogError as err:
            live_ids = {
                (section, e.name): (e.adopt or {}).get("id")
                for model in models.values()
                for section in KIND_LABELS
                if section in type(model).model_fields
                for e in getattr(model, section)
            }
            dropped: dict[str, set[str]] = {}
            for problem in err.problems:
                hit = _ENTRY.match(problem.entry or "")
                if not hit or hit["label"] not in sections:
                    raise  # a file-level problem: nothing to leave out
                section = sections[hit["label"]]
                dropped.setdefault(section, set()).add(hit["name"])
                field = f" field '{problem.field}':" if problem.field else ""
                live_id = live_ids.get((section, hit["name"]))
                warn(f"{problem.entry} ({live_id}):{field} {problem.message}: skipped")
            for key, model in models.items():
                update = {
                    section: [e for e in getattr(model, section) if e.name not in names]
                    for section, names in dropped.items()
                    if section in type(model).model_fields
                }
                models[key] = model.model_copy(update=update)


def write_stack(out: Path, catalog: Catalog, environment: Environment, source: str) -> None:
    """Write both files, after checking in a scratch copy that they load."""
    files = stack_files(catalog, environment, source)
    check_loads(files)  # raises CatalogError: never write files that would not load
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


STACK_CONFIG_HEADER = """\
# The {stack} stack, exported from {url} by `metronome-iac export`.
# Set its API token once, encrypted (never commit it in clear):
#   pulumi config set --secret metronome:apiToken <token> --stack {stack}
# and, for a stripe: section, the Stripe key:
#   pulumi config set --secret stripe:apiKey <key> --stack {stack}
"""


def write_stack_config(out: Path, url: str) -> Path | None:
    """`Pulumi.<stack>.yaml` beside the project's `Pulumi.yaml` for a stack exported into
    `<project>/stacks/<stack>`, laid out as the existing stacks' files, with `metronome:baseUrl` the URL
    the export read (so `pulumi up --stack <stack>` adopts from the same account). Never overwrites
    one; returns the path written, or None when `out` is not a stack folder of a project."""
    project = out.resolve().parent.parent
    if out.resolve().parent.name != "stacks" or not (project / "Pulumi.yaml").is_file():
        return None
    path = project / f"Pulumi.{out.name}.yaml"
    if path.exists():
        return None
    config = {"config": {"metronome:baseUrl": url}}
    path.write_text(STACK_CONFIG_HEADER.format(stack=out.name, url=url) + dump_yaml(config), encoding="utf-8")
    return path
