"""Reading the stack files, and the one error path of the catalog.

A file is parsed as YAML keeping the line of every mapping key and sequence item (`Doc`), so a problem
found anywhere later is reported as one `Problem` with file, line, entry and field; `CatalogError` holds
every problem of a load. Pydantic's errors are worded here too (an unknown field gets a did-you-mean).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

# --------------------------------------------------------------------------------------------------
# errors


@dataclass(frozen=True)
class Problem:
    """One validation problem, located as precisely as the YAML allows."""

    file: str
    line: int | None
    entry: str | None  # "<kind> '<name>'" or None for file-level problems
    field: str | None  # dotted path inside the entry, e.g. "rates[1].tiers"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.entry:
            parts.append(self.entry)
        if self.field:
            parts.append(f"field '{self.field}'")
        return ": ".join(parts) + f": {self.message}"


class CatalogError(Exception):
    """Raised by the loaders; `problems` holds every problem found, `str()` is a readable list."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.problems)
        lines = [f"catalog has {n} problem{'s' if n != 1 else ''}:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# YAML with line numbers


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (the models normalise them) and rejects duplicate keys."""


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same loader on libyaml's parser where PyYAML has it: a 1,000-customer stack parses in a
    sixth of the time (the program parses the catalog on every preview and up). The pure-Python
    `_Loader` words syntax errors better, so a file that does not parse is read again with it."""


def _construct_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)
_FastLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)


YamlPath = tuple[Any, ...]


@dataclass
class Doc:
    """A parsed YAML file: plain data plus the line of every mapping key and sequence item."""

    file: str
    data: Any
    lines: dict[YamlPath, int] = field(default_factory=dict)
    unreadable: bool = False  # not YAML: its sections are unknown, not empty (see Validator.unknown)

    def line(self, path: Iterable[Any]) -> int | None:
        # The deepest known prefix: a missing field reports its parent's line.
        p = tuple(path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]


def _record_lines(node: yaml.Node, path: YamlPath, lines: dict[YamlPath, int], problems: list[str]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key == "<<":
                continue
            if key in seen:
                problems.append(f"{key_node.start_mark.line + 1}:duplicate key '{key}'")
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, path + (key,), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _record_lines(item, path + (i,), lines, problems)


def _compose(text: str, loader_class: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def parse_yaml(text: str, file: str) -> tuple[Doc, list[Problem]]:
    problems: list[Problem] = []
    try:
        try:
            node, data = _compose(text, _FastLoader)
        except yaml.YAMLError:
            node, data = _compose(text, _Loader)  # raises again, with the clearer message
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        msg = str(getattr(exc, "problem", None) or exc)
        return Doc(file, None, unreadable=True), [Problem(file, line, None, None, f"invalid YAML: {msg}")]
    doc = Doc(file, data)
    if node is not None:
        dup: list[str] = []
        _record_lines(node, (), doc.lines, dup)
        for d in dup:
            line, msg = d.split(":", 1)
            problems.append(Problem(file, int(line), None, None, msg))
    return doc, problems


def read_doc(path: Path, problems: list[Problem], required: bool) -> Doc | None:
    """The file parsed, its problems added to `problems`; None (and "file not found" if required) when
    it does not exist."""
    if not path.exists():
        if required:
            problems.append(Problem(str(path), None, None, None, "file not found"))
        return None
    doc, found = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    problems.extend(found)
    return doc


# --------------------------------------------------------------------------------------------------
# problems inside an entry


def _field_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fields_at(model: type[BaseModel], loc: Iterable[Any]) -> set[str]:
    """The field names of the model found at `loc` inside `model` (list indexes and dict keys skipped)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return set()
        current = _model_in(info.annotation)
    return (
        set(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else set()
    )


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as `list[Rate] | None` (None when there is none)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def pydantic_message(err: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        loc = tuple(err.get("loc") or ())
        fields = _fields_at(model, loc[:-1]) if model is not None and loc else set()
        close = difflib.get_close_matches(str(loc[-1]), sorted(fields), n=1) if loc else []
        if close:
            return f"unknown field: did you mean `{close[0]}`?"
        return "unknown field (check the spelling; see docs/architecture.md 'Catalog files')"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "").replace("'", "")
        return f"must be one of {expected}; got {err.get('input')!r}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg


def known(names: Iterable[str]) -> str:
    """What an unknown reference could have named, for its message."""
    names = sorted(names)
    return f"(known: {', '.join(names)})" if names else "(none declared)"


def problem_at(
    doc: Doc, path: YamlPath, entry: str | None, field_loc: Iterable[Any], message: str
) -> Problem:
    """The problem of the field at `field_loc` inside the entry at `path`, on the deepest line known."""
    loc = tuple(field_loc)
    return Problem(doc.file, doc.line(path + loc), entry, _field_path(loc) or None, message)
