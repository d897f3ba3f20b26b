"""Reading each entry of a stack file: its schema, its name (unique in its section), `adopt` and
`previous_names`; and `Validator`, which collects every problem of one load so all surface at once.

The checks across entries (`catalog_pricing.py`, `catalog_environment.py`, the entry modules) report
through `Validator.add`, and ask it whether a reference is the first cause to report (`dangling`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from metronome_iac.catalog_models import ADOPT_KEYS, KIND_LABELS, SECTIONS, SINGLE
from metronome_iac.catalog_read import Doc, Problem, YamlPath, known, problem_at, pydantic_message
from metronome_iac.catalog_types import Model

Entries = list[tuple[int, Model]]  # a section's valid entries, each with its index in the file


class Validator:
    """Collects problems across both files; entries that fail schema validation skip the cross checks."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.single: dict[str, Model | None] = {}
        # Every name declared per section, valid or not: a reference to an entry that failed its own
        # schema check is not reported again as dangling.
        self.declared: dict[str, set[str]] = {}
        # Entries that failed their schema check, raw: their references are still checked.
        self.failed: list[tuple[Doc, str, int, str, dict[str, Any]]] = []
        # One mistake, one error: what follows from a problem already reported is not reported again.
        # Sections whose entries could not be read (the file is not YAML, the section not a list): a
        # reference into them is not "unknown", the file's own error is the cause.
        self.unknown: set[str] = set()
        # Names declared twice in a section: which entry a reference means is not known, so checks
        # against the referenced entry's fields are skipped (the duplicate name is the cause).
        self.ambiguous: dict[str, set[str]] = {}

    def dangling(self, section: str, ref: Any) -> bool:
        """True when `ref` names no entry of `section`, and that is the first cause to report."""
        return (
            isinstance(ref, str)
            and section not in self.unknown
            and ref not in self.declared.get(section, set())
        )

    def unique(self, section: str, name: str | None) -> bool:
        """False when `name` is declared more than once in `section` (see `ambiguous`)."""
        return name not in self.ambiguous.get(section, set())

    def add(
        self, doc: Doc, path: YamlPath, entry: str | None, field_loc: Iterable[Any], message: str
    ) -> None:
        self.problems.append(problem_at(doc, path, entry, field_loc, message))

    def sections(self, doc: Doc) -> dict[str, Entries]:
        """Validate each entry of each section of one file on its own, so all problems surface at once."""
        name = Path(doc.file).name
        out: dict[str, Entries] = {s: [] for s in SECTIONS[name]}
        if doc.unreadable:
            self.unknown.update(SECTIONS[name])
        data = doc.data
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.add(doc, (), None, (), "the file must be a mapping of sections")
            return out
        allowed = set(SECTIONS[name]) | set(SINGLE[name])
        for key in data:
            if key not in allowed:
                self.add(
                    doc, (key,), None, (), f"unknown section '{key}' (allowed: {', '.join(sorted(allowed))})"
                )
        for key, model in SINGLE[name].items():
            value = data.get(key)
            if value is None:
                self.single[key] = None
                continue
            try:
                self.single[key] = model.model_validate(value)
            except ValidationError as exc:
                self.single[key] = None
                for err in exc.errors():
                    self.add(doc, (key,), f"{key} section", err["loc"], pydantic_message(err, model))
        for section, model in SECTIONS[name].items():
            entries = data.get(section)
            if entries is None:
                continue
            if not isinstance(entries, list):
                self.add(doc, (section,), None, (), f"'{section}' must be a list of entries")
                self.unknown.add(section)
                continue
            label = KIND_LABELS[section]
            seen: dict[str, int] = {}
            adopted: dict[tuple[str, str], str] = {}  # (adopt key, value) -> the entry adopting it
            declared = self.declared.setdefault(section, set())
            for i, raw in enumerate(entries):
                path = (section, i)
                if not isinstance(raw, dict):
                    self.add(doc, path, f"{label} #{i + 1}", (), "each entry must be a mapping")
                    continue
                entry_name = raw.get("name")
                entry = f"{label} '{entry_name}'" if entry_name else f"{label} #{i + 1}"
                if isinstance(entry_name, str):
                    declared.add(entry_name)
                    if entry_name in seen:
                        self.ambiguous.setdefault(section, set()).add(entry_name)
                        self.add(
                            doc,
                            path,
                            entry,
                            ("name",),
                            f"duplicate name: '{entry_name}' is already used by the {label} on line "
                            f"{doc.line((section, seen[entry_name]))}",
                        )
                    else:
                        seen[entry_name] = i
                adopt = raw.get("adopt")
                if isinstance(adopt, dict):
                    bad = set(adopt) - ADOPT_KEYS[section]
                    if bad or len(adopt) != 1:
                        self.add(
                            doc,
                            path,
                            entry,
                            ("adopt",),
                            f"adopt takes exactly one of {sorted(ADOPT_KEYS[section])}, got {sorted(adopt)}",
                        )
                    for key, value in adopt.items():
                        other = adopted.setdefault((key, str(value)), entry)
                        if other != entry:  # two resources over one live object: each undoes the other
                            self.add(
                                doc,
                                path,
                                entry,
                                ("adopt", key),
                                f"{other} already adopts {key} {value!r}; to fix: adopt it once",
                            )
                try:
                    out[section].append((i, model.model_validate(raw)))
                except ValidationError as exc:
                    self.failed.append((doc, section, i, entry, raw))
                    for err in exc.errors():
                        self.add(doc, path, entry, err["loc"], pydantic_message(err, model))
            self.check_previous_names(doc, section, entries, seen)
        return out

    def check_previous_names(
        self, doc: Doc, section: str, entries: list[Any], current: dict[str, int]
    ) -> None:
        """`previous_names`: each old name once (in the whole section), and never another entry's
        current name of the same kind (the engine would not know which resource the state belongs to)."""
        label = KIND_LABELS[section]
        claimed: dict[str, str] = {}  # previous name -> entry that claims it
        for i, raw in enumerate(entries):
            if not isinstance(raw, dict) or not isinstance(raw.get("previous_names"), list):
                continue
            entry_name = raw.get("name")
            entry = f"{label} '{entry_name}'" if entry_name else f"{label} #{i + 1}"
            for j, old in enumerate(raw["previous_names"]):
                if not isinstance(old, str):
                    continue  # reported by the schema check
                where = ("previous_names", j)
                if old == entry_name:
                    self.add(
                        doc,
                        (section, i),
                        entry,
                        where,
                        f"'{old}' is the entry's own name; to fix: remove it from previous_names",
                    )
                elif old in current:
                    self.add(
                        doc,
                        (section, i),
                        entry,
                        where,
                        f"previous name '{old}' is the current name of the {label} on line "
                        f"{doc.line((section, current[old]))}; to fix: remove it from previous_names "
                        "(or rename that entry)",
                    )
                elif old in claimed:
                    self.add(
                        doc,
                        (section, i),
                        entry,
                        where,
                        f"duplicate previous name: '{old}' is already listed by {claimed[old]}; to fix: "
                        "keep it on one entry only",
                    )
                else:
                    claimed[old] = entry


# Top-level reference fields of each kind: (field, referenced section). Checked on raw entries too.
_RAW_REFS: dict[str, tuple[tuple[str, str], ...]] = {
    "products": (("billable_metric", "billable_metrics"),),
    "contracts": (("customer", "customers"), ("rate_card", "rate_cards")),
}


def check_raw_references(v: Validator) -> None:
    """Dangling references of entries that failed their schema check (so all problems show at once)."""
    for doc, section, i, entry, raw in v.failed:
        for field_name, target in _RAW_REFS.get(section, ()):
            ref = raw.get(field_name)
            declared = v.declared.get(target, set())
            if v.dangling(target, ref):
                v.add(
                    doc,
                    (section, i),
                    entry,
                    (field_name,),
                    f"unknown {KIND_LABELS[target]} '{ref}' {known(declared)}",
                )
        if section == "rate_cards" and isinstance(raw.get("rates"), list):
            products = v.declared.get("products", set())
            for j, rate in enumerate(raw["rates"]):
                ref = rate.get("product") if isinstance(rate, dict) else None
                if v.dangling("products", ref):
                    v.add(
                        doc,
                        (section, i),
                        entry,
                        ("rates", j, "product"),
                        f"unknown product '{ref}' {known(products)}",
                    )
