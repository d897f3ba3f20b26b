"""The Pulumi program: declare the current stack's catalog (`stacks/<stack>/`)."""

from __future__ import annotations

from pathlib import Path

import pulumi

from metronome_iac.catalog import CatalogError, load_stack
from metronome_iac.program import declare
from metronome_iac.registration import project_frames_only, registered

STACKS_DIR = Path(__file__).resolve().parent / "stacks"

try:
    stack = load_stack(STACKS_DIR / pulumi.get_stack())
except CatalogError as err:
    # RunError prints the message without a Python traceback: the catalog problems are the point.
    raise pulumi.RunError(str(err)) from None

project_frames_only(Path(__file__).resolve().parent)
resources = declare(stack)
for section, by_name in resources.items():
    if by_name:
        pulumi.export(section, {name: r.id for name, r in by_name.items()})
pulumi.run(registered(resources))
