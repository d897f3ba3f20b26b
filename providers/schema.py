"""Field markers: what a schema field means for the plan, declared on the field itself.

    class Inputs(InputsBase):
        aggregation_type: Annotated[AggregationType, RequiresReplace("the update endpoint takes only name")]

A field marked `RequiresReplace` cannot be changed in place by Metronome, so a change to it shows as
a replacement in the plan (as a Terraform framework attribute carries its RequiresReplace plan
modifier). `unless(old, new)` names the changes of that field that can still be made in place, such
as additions to a list the API can only append to. The provider's diff, the identity fingerprint and
adopt's "cannot change in place" check all read these markers; nothing else lists the fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class RequiresReplace:
    why: str
    unless: Callable[[Any, Any], bool] | None = None

    def replaces(self, old: Any, new: Any) -> bool:
        """Whether changing the field from `old` to `new` (both already known to differ) replaces."""
        return self.unless is None or not self.unless(old, new)


def replacement_rules(model: type[BaseModel]) -> dict[str, RequiresReplace]:
    """{field: its RequiresReplace marker} for the model's top-level fields that carry one."""
    return {
        name: marker
        for name, info in model.model_fields.items()
        for marker in info.metadata
        if isinstance(marker, RequiresReplace)
    }


def replacing_fields(
    rules: Mapping[str, RequiresReplace], old: dict[str, Any], new: dict[str, Any], changed: list[str]
) -> list[str]:
    """The `changed` fields whose change from `old` to `new` replaces the object, per their markers."""
    return [f for f in changed if f in rules and rules[f].replaces(old.get(f), new.get(f))]
