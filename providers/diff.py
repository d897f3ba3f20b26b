"""Normalisation and diff rules shared by every resource.

Values are compared after `normalize`, so these never show as changes:
- keys missing vs None vs empty list/dict (the API fills such defaults in);
- 3 vs 3.0 vs "3" (gRPC Structs turn ints into floats; Metronome returns some numbers as strings);
- timestamps written differently ("...Z", "+00:00", ".000Z");
- order of lists whose order carries no meaning (everything but ORDER_SENSITIVE keys).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from pulumi.dynamic import DiffResult
from pulumi.output import Unknown
from pulumi.runtime import rpc

from .schema import RequiresReplace, replacing_fields

UNKNOWN = rpc.UNKNOWN
PROVIDER_KEY = "__provider"

# Lists whose order means something: tiers apply in order; a presentation group key is shown in its
# order. A pricing group key is matched as a set (rates name their values by key), and schedule items
# carry their own dates, so their order means nothing.
ORDER_SENSITIVE = frozenset({"tiers", "presentation_group_key"})

_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
# Under keys that always hold a time, the other spellings RFC 3339 / ISO 8601 readers take too.
_LENIENT_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?)?$"
)


def _is_time_key(key: str | None) -> bool:
    return key is not None and (key in ("timestamp", "ending_before") or key.endswith("_at"))


def _looks_like_time(value: str, key: str | None) -> bool:
    return bool(_TIMESTAMP.match(value) or (_is_time_key(key) and _LENIENT_TIMESTAMP.match(value)))


@functools.lru_cache(maxsize=4096)
def canonical_time(value: str) -> str:
    """RFC 3339 in UTC with a Z and whole seconds (sub-second parts kept only when non-zero).

    Cached: a catalog spells few distinct times (a card's thousands of rates mostly share one start)."""
    text = value.strip().upper()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if parsed.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return parsed.strftime(fmt)


@functools.lru_cache(maxsize=4096)
def instant(value: str) -> datetime:
    """An RFC 3339 time (any spelling canonical_time takes) as an aware UTC datetime (cached, immutable)."""
    return datetime.fromisoformat(canonical_time(value).replace("Z", "+00:00"))


def canonical_timestamps(value: Any, key: str | None = None) -> Any:
    """Every RFC 3339 string in `value` (recursively) in the canonical spelling. What needs no change is
    returned as it is, not copied (a card's thousands of rates are mostly canonical already)."""
    if isinstance(value, str):
        return _canonical_if_time(value, key) if _may_be_time(value) else value
    if isinstance(value, dict):
        return _rebuilt(value, lambda k, v: canonical_timestamps(v, k))
    if isinstance(value, list):
        return _rebuilt(value, lambda _, v: canonical_timestamps(v, key))
    return value


def _rebuilt(container: Any, convert: Callable[[Any, Any], Any]) -> Any:
    """`container` (a dict or list) with `convert(key or index, item)` applied to each non-scalar item:
    the same object when nothing changed, else a copy with the changed items."""
    out = None
    items = container.items() if isinstance(container, dict) else enumerate(container)
    for k, v in items:
        if type(v) in _SCALARS:
            continue
        new = convert(k, v)
        if new is not v:
            if out is None:
                out = dict(container) if isinstance(container, dict) else list(container)
            out[k] = new
    return container if out is None else out


# Leaves that hold no text: the recursive helpers skip them without a call, which keeps a rate card's
# thousands of rates cheap.
_SCALARS = frozenset({int, float, bool, type(None)})


def _may_be_time(value: str) -> bool:
    """A quick necessary condition for both timestamp patterns (YYYY-...), before the regexes."""
    return len(value) >= 10 and value[4] == "-"


def _canonical_if_time(value: str, key: str | None) -> str:
    if not _looks_like_time(value, key):
        return value
    try:
        return canonical_time(value)
    except ValueError:
        return value


def _number(value: float | int) -> float | int:
    as_float = float(value)
    return int(as_float) if as_float.is_integer() and abs(as_float) < 2**53 else as_float


def normalize(value: Any, key: str | None = None) -> Any:
    """The comparable form of a value (never sent to the API)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, str):
        if value == UNKNOWN:
            return value
        if _NUMBER.match(value):
            return _number(float(value))
        if _looks_like_time(value, key):
            try:
                return canonical_time(value)
            except ValueError:
                return value
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == PROVIDER_KEY:
                continue
            nv = normalize(v, k)
            if nv is None or nv == [] or nv == {}:
                continue
            out[k] = nv
        return out
    if isinstance(value, (list, tuple)):
        items = [normalize(v, key) for v in value]
        if key not in ORDER_SENSITIVE:
            items.sort(key=lambda v: json.dumps(v, sort_keys=True, default=str))
        return items
    return value


def mark_unknowns(value: Any) -> Any:
    """Preview unknowns arrive as `pulumi.output.Unknown` objects in check/diff: make them the
    wire sentinel string, which the rest of the code (and the host's serializer) understands.
    A value holding none is returned as it is (tuples become lists either way)."""
    if isinstance(value, dict):
        return _rebuilt(value, lambda _, v: v if type(v) is str else mark_unknowns(v))
    if isinstance(value, list):
        return _rebuilt(value, lambda _, v: v if type(v) is str else mark_unknowns(v))
    if isinstance(value, tuple):
        return [mark_unknowns(v) for v in value]
    if isinstance(value, Unknown):
        return UNKNOWN
    return value


def contains_unknown(value: Any) -> bool:
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple)):
        return False
    return any(
        v == UNKNOWN if type(v) is str else type(v) not in _SCALARS and contains_unknown(v) for v in value
    )


def changed_fields(olds: dict[str, Any], news: dict[str, Any], fields: Iterable[str]) -> list[str]:
    """Input fields whose normalised values differ (a field holding an unknown counts as changed)."""
    return [field for field in fields if field_changed(field, olds.get(field), news.get(field))]


def field_changed(field: str, old: Any, new: Any) -> bool:
    """Whether one field's normalised values differ; an unknown counts as a change.

    Equal values are equal normalised, so only what differs as written is normalised: a list whose
    order means nothing is compared as a multiset, items written identically paired off first (a
    card's thousands of rates with one price changed normalise two rates, not all of them)."""
    if contains_unknown(new):
        return True
    if old == new:
        return False
    if isinstance(old, list) and isinstance(new, list) and field not in ORDER_SENSITIVE:
        old, new = _unmatched(old, new)
    return normalize({field: old}).get(field) != normalize({field: new}).get(field)


def _unmatched(old: list[Any], new: list[Any]) -> tuple[list[Any], list[Any]]:
    """The items of two unordered lists left once items written identically are paired off: first the
    common head and tail (state and inputs keep one order, so an edit leaves a short middle), then
    the middle by each item's repr (equal repr, equal value)."""
    head = 0
    shortest = min(len(old), len(new))
    while head < shortest and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < shortest - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    old, new = old[head : len(old) - tail], new[head : len(new) - tail]
    pending: dict[str, list[Any]] = {}
    for item in old:
        pending.setdefault(repr(item), []).append(item)
    new_left = []
    for item in new:
        same = pending.get(repr(item))
        if same:
            same.pop()
        else:
            new_left.append(item)
    return [item for items in pending.values() for item in items], new_left


def compute_diff(
    olds: dict[str, Any],
    news: dict[str, Any],
    fields: Iterable[str],
    replace_rules: Mapping[str, RequiresReplace],
    *,
    delete_before_replace: bool = False,
) -> DiffResult:
    """DiffResult over `fields` only; `replaces` lists the changed fields whose `RequiresReplace`
    marker says the change replaces the object."""
    changed = changed_fields(olds, news, fields)
    replaces = replacing_fields(replace_rules, olds, news, changed)
    return DiffResult(
        changes=bool(changed),
        replaces=replaces,
        stables=[],
        delete_before_replace=delete_before_replace if replaces else False,
    )


def without_empty(value: Any) -> Any:
    """`value` with None, empty lists and empty maps dropped at every level (what a read-back echoes for
    fields nobody set)."""
    if isinstance(value, dict):
        return {k: without_empty(v) for k, v in value.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [without_empty(v) for v in value]
    return value


def describe(value: Any) -> str:
    return json.dumps(normalize(value), sort_keys=True, default=str) if value is not None else "(none)"


def match_items(
    live: list[dict[str, Any]],
    templates: list[dict[str, Any]],
    anchors: tuple[str, ...] = ("product_id", "type"),
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Pair live items with declared ones: exact matches first, then by anchor keys, then in order.

    Unpaired live items come back with template None (out-of-band additions).
    """
    free = list(range(len(live)))
    pairs: dict[int, dict[str, Any]] = {}
    rest = []
    for t in templates:
        hit = next((i for i in free if normalize(project(live[i], t)) == normalize(t)), None)
        if hit is None:
            rest.append(t)
        else:
            free.remove(hit)
            pairs[hit] = t
    for t in list(rest):
        hit = next((i for i in free if all(live[i].get(a) == t.get(a) for a in anchors)), None)
        if hit is not None:
            free.remove(hit)
            pairs[hit] = t
            rest.remove(t)
    for t in rest:
        if free:
            pairs[free.pop(0)] = t
    return [(item, pairs.get(i)) for i, item in enumerate(live)]


def project(live: Any, template: Any) -> Any:
    """`live` restricted to the keys `template` declares (recursively).

    Used to read nested objects the API expands (ids, echoed defaults, computed amounts) back
    into the declared shape: a declared value that changed still shows, server-side extras don't.
    """
    if isinstance(template, dict) and isinstance(live, dict):
        return {k: project(live[k], v) for k, v in template.items() if k in live and live[k] is not None}
    if (
        isinstance(template, list)
        and isinstance(live, list)
        and template
        and all(isinstance(t, dict) for t in template)
    ):
        if all(isinstance(v, dict) for v in live):
            return [project(item, t) if t is not None else item for item, t in match_items(live, template)]
    return live
