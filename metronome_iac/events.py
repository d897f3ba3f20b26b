"""Translate Stripe meter events into Metronome usage events, and check events against a stack's catalog.

`metronome-iac events translate` reads Stripe meter events (JSON Lines) and writes Metronome ingest events
(JSON Lines), so the same usage can be sent to both systems during the parallel run.
`metronome-iac events check --stack NAME` checks Metronome events against the stack's billable metrics and
customers. Exit codes (as every command): 0 all good, 1 could not run (the stack, alias or input file cannot
be read), 2 some events could not be translated / would be dropped or mis-billed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import yaml

from metronome_iac.cli import EXIT_ATTENTION, EXIT_OK, CommandError, missing_stack, warn

# Stripe's default payload keys for a meter (customer_mapping / value_settings).
STRIPE_CUSTOMER_KEY = "stripe_customer_id"
STRIPE_VALUE_KEY = "value"
NUMERIC_AGGREGATIONS = {"SUM", "MAX", "LATEST"}


class EventError(ValueError):
    """An event that cannot be translated or that fails a check; `code` groups problems for counting."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# ---------------------------------------------------------------------------------------------- helpers


def to_number(value: Any) -> int | float:
    """'1200' -> 1200, '1.5' -> 1.5; Stripe sends meter payload values as strings."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a number")
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return int(number) if number == number.to_integral_value() else float(number)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def unix_to_rfc3339(timestamp: Any) -> str:
    """Unix seconds (int or digit string, as Stripe takes them) -> RFC 3339 UTC."""
    if isinstance(timestamp, bool) or timestamp is None:
        raise ValueError(f"timestamp {timestamp!r} is not unix seconds")
    try:
        seconds = to_number(timestamp)
    except ValueError:
        raise ValueError(f"timestamp {timestamp!r} is not unix seconds") from None
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    if isinstance(seconds, float) and not seconds.is_integer():
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def stripe_time(value: Any) -> str:
    """A meter event's time in RFC 3339 UTC: Unix seconds (v1 meter events) or an RFC 3339 string
    with an offset (v2 meter events, the high-throughput stream)."""
    try:
        if isinstance(value, str) and "T" in value:
            moment = parse_rfc3339(value).astimezone(timezone.utc)
            if moment.microsecond:
                return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return unix_to_rfc3339(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise EventError("bad_timestamp", str(exc)) from None


def parse_rfc3339(value: Any) -> datetime:
    if not isinstance(value, str) or "T" not in value:
        raise ValueError(f"timestamp {value!r} is not an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"timestamp {value!r} is not an RFC 3339 string") from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return moment


def event_hash(event: Mapping[str, Any]) -> str:
    """A stable id for an event without a Stripe identifier: replaying the same event gives the same id."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return "stripe-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------- catalog view


@dataclass
class MetricView:
    """What the checks need from a billable metric."""

    name: str
    aggregation_type: str
    aggregation_key: str | None = None
    in_values: list[str] | None = None
    not_in_values: list[str] = field(default_factory=list)
    property_filters: list[dict[str, Any]] = field(default_factory=list)
    group_keys: list[list[str]] = field(default_factory=list)

    def matches_event_type(self, event_type: str) -> bool:
        if self.in_values is not None and event_type not in self.in_values:
            return False
        return event_type not in self.not_in_values

    def unmatched_filters(self, properties: Mapping[str, Any]) -> list[str]:
        """Why the event fails each property filter it fails, one phrase per filter ("property `region`
        missing"); empty when it passes them all. Metronome drops such events from the metric."""
        failed = []
        for flt in self.property_filters:
            name = flt["name"]
            present = name in properties and properties[name] is not None
            value = str(properties.get(name)) if present else None
            if not present and (flt.get("exists") is True or flt.get("in_values")):
                failed.append(f"property `{name}` missing")
            elif flt.get("exists") is False and present:
                failed.append(f"property `{name}` present (the filter wants it absent)")
            elif flt.get("in_values") and value not in flt["in_values"]:
                failed.append(f"property `{name}` is {value!r}, not one of {', '.join(flt['in_values'])}")
            elif flt.get("not_in_values") and value in flt["not_in_values"]:
                failed.append(f"property `{name}` is {value!r}, which the filter excludes")
        return failed


@dataclass
class StackView:
    metrics: list[MetricView]
    aliases: set[str]
    stripe_to_alias: dict[str, str]
    name: str = "the stack"  # for messages: "stack prod"
    environment_file: str = "the stack's environment.yaml"  # where customers and their aliases live

    def accepted_event_types(self) -> str:
        """The event types the metrics accept, for a message: "input_tokens, output_tokens"."""
        named = sorted({t for m in self.metrics for t in m.in_values or [] if t not in m.not_in_values})
        others = [
            f"any but {', '.join(sorted(m.not_in_values))} (metric {m.name})"
            for m in self.metrics
            if m.in_values is None
        ]
        return ", ".join(named + others) or "none (it has no billable metrics)"

    @property
    def numeric_keys(self) -> set[str]:
        return {
            m.aggregation_key
            for m in self.metrics
            if m.aggregation_key and m.aggregation_type in NUMERIC_AGGREGATIONS
        }


def _plain(obj: Any) -> Any:
    """Catalog models -> plain dicts (the models use the YAML field names)."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="python")
    return obj


def _metric_view(raw: Mapping[str, Any]) -> MetricView:
    etf = raw.get("event_type_filter") or {}
    return MetricView(
        name=raw["name"],
        aggregation_type=str(raw.get("aggregation_type") or "").upper(),
        aggregation_key=raw.get("aggregation_key"),
        in_values=list(etf["in_values"]) if etf.get("in_values") is not None else None,
        not_in_values=list(etf.get("not_in_values") or []),
        property_filters=[dict(p) for p in raw.get("property_filters") or []],
        group_keys=[list(g) for g in raw.get("group_keys") or []],
    )


def alias_map_from_customers(customers: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """stripe customer id -> first ingest alias, from environment.yaml customers."""
    mapping = {}
    for customer in customers:
        stripe_id = customer.get("stripe_customer_id")
        aliases = customer.get("ingest_aliases") or []
        if stripe_id and aliases:
            mapping[stripe_id] = aliases[0]
    return mapping


def load_stack_view(stack_dir: Path) -> StackView:
    """Read a stack through the catalog loader, so a broken catalog fails here with its precise error."""
    from metronome_iac.catalog import ENVIRONMENT_FILE, load_stack

    stack = load_stack(stack_dir)
    customers = [_plain(c) for c in stack.environment.customers]
    return StackView(
        metrics=[_metric_view(_plain(m)) for m in stack.catalog.billable_metrics],
        aliases={a for c in customers for a in c.get("ingest_aliases") or []},
        stripe_to_alias=alias_map_from_customers(customers),
        name=f"stack {stack_dir.name}",
        environment_file=str(stack_dir / ENVIRONMENT_FILE),
    )


def load_alias_file(path: Path) -> dict[str, str]:
    """A YAML/JSON mapping `{cus_...: alias}`, or an environment.yaml (its customers are used)."""
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of stripe customer id -> ingest alias")
    if "customers" in data and isinstance(data["customers"], list):
        return alias_map_from_customers(data["customers"])
    return {str(k): str(v) for k, v in data.items()}


# ---------------------------------------------------------------------------------------------- translate


def translate_event(
    stripe_event: Mapping[str, Any],
    aliases: Mapping[str, str] | None = None,
    numeric_keys: Iterable[str] = (),
    customer_key: str = STRIPE_CUSTOMER_KEY,
    value_key: str = STRIPE_VALUE_KEY,
    alias_hint: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """One Stripe meter event -> one Metronome ingest event.

    `aliases` maps stripe customer ids to ingest aliases; when given, an unmapped customer is an error
    (sending it would be dropped by Metronome). Without it the Stripe id is used as the alias.
    `numeric_keys` are payload keys a metric aggregates: their string values become numbers.
    `alias_hint(stripe customer id)`: where to add a missing alias, for the error message.
    """
    if not isinstance(stripe_event, Mapping):
        raise EventError("not_an_object", "event is not a JSON object")
    event_name = stripe_event.get("event_name")
    if not isinstance(event_name, str) or not event_name:
        raise EventError("missing_event_name", "event_name is missing or not a string")
    payload = stripe_event.get("payload")
    if not isinstance(payload, Mapping):
        raise EventError("missing_payload", "payload is missing or not an object")
    stripe_customer = payload.get(customer_key)
    if not isinstance(stripe_customer, str) or not stripe_customer:
        raise EventError("missing_customer", f"payload.{customer_key} is missing")
    if aliases is not None:
        if stripe_customer not in aliases:
            where = alias_hint(stripe_customer) if alias_hint else "add it to the alias map"
            raise EventError(
                "unknown_customer",
                f"payload.{customer_key} {stripe_customer!r} has no ingest alias: {where}",
            )
        customer_id = aliases[stripe_customer]
    else:
        customer_id = stripe_customer
    if "timestamp" not in stripe_event:
        raise EventError("missing_timestamp", "timestamp (unix seconds) is missing")
    timestamp = stripe_time(stripe_event["timestamp"])

    properties: dict[str, Any] = {}
    for key, value in payload.items():
        if key == customer_key:
            continue
        if key == value_key or key in set(numeric_keys):
            try:
                value = to_number(value)
            except ValueError as exc:
                raise EventError("non_numeric_value", f"payload.{key}: {exc}") from None
        properties[key] = value

    identifier = stripe_event.get("identifier")
    transaction_id = identifier if isinstance(identifier, str) and identifier else event_hash(stripe_event)
    return {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "event_type": event_name,
        "timestamp": timestamp,
        "properties": properties,
    }


# ---------------------------------------------------------------------------------------------- check


def check_event(event: Any, stack: StackView) -> list[EventError]:
    """All problems with one Metronome event; an empty list means it will be billed as the catalog says."""
    if not isinstance(event, Mapping):
        return [EventError("not_an_object", "event is not a JSON object")]
    problems: list[EventError] = []
    for required in ("transaction_id", "customer_id", "event_type", "timestamp"):
        if not isinstance(event.get(required), str) or not event.get(required):
            problems.append(EventError(f"missing_{required}", f"{required} is missing or not a string"))
    if isinstance(event.get("timestamp"), str):
        try:
            parse_rfc3339(event["timestamp"])
        except ValueError as exc:
            problems.append(EventError("bad_timestamp", str(exc)))
    properties = event.get("properties") or {}
    if not isinstance(properties, Mapping):
        problems.append(EventError("bad_properties", "properties is not an object"))
        properties = {}
    customer = event.get("customer_id")
    if isinstance(customer, str) and customer and customer not in stack.aliases:
        problems.append(
            EventError(
                "unknown_customer",
                f"customer_id {customer!r} is no customer's ingest alias: add it to the ingest_aliases of "
                f"its customer in {stack.environment_file}",
            )
        )

    event_type = event.get("event_type")
    if not isinstance(event_type, str):
        return problems
    by_type = [m for m in stack.metrics if m.matches_event_type(event_type)]
    if not by_type:
        problems.append(
            EventError(
                "unknown_event_type",
                f"event_type {event_type!r} matches no billable metric of {stack.name}; its metrics accept: "
                f"{stack.accepted_event_types()}",
            )
        )
        return problems
    matched = [m for m in by_type if not m.unmatched_filters(properties)]
    if not matched:
        details = "; ".join(f"metric {m.name}: {', '.join(m.unmatched_filters(properties))}" for m in by_type)
        problems.append(
            EventError(
                "property_filters_unmatched", f"event_type {event_type!r} fails property filters ({details})"
            )
        )
        return problems
    for metric in matched:
        for keys in metric.group_keys:
            missing = [k for k in keys if k not in properties]
            if missing:
                problems.append(
                    EventError("missing_group_key", f"metric {metric.name}: group key(s) {missing} missing")
                )
        key = metric.aggregation_key
        if key and metric.aggregation_type in NUMERIC_AGGREGATIONS:
            if key not in properties:
                problems.append(
                    EventError("missing_aggregation_key", f"metric {metric.name}: property {key!r} missing")
                )
            elif not is_number(properties[key]):
                problems.append(
                    EventError(
                        "non_numeric_value",
                        f"metric {metric.name}: property {key!r} is {properties[key]!r}, not a number",
                    )
                )
    return problems


@dataclass
class CheckReport:
    total: int = 0
    bad_events: int = 0
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # first reason per code, with its line

    @property
    def ok(self) -> bool:
        return self.bad_events == 0


def check_events(lines: Iterable[str], stack: StackView) -> CheckReport:
    report = CheckReport()
    for lineno, event in _read_json_lines(lines):
        report.total += 1
        problems = [event] if isinstance(event, EventError) else check_event(event, stack)
        if problems:
            report.bad_events += 1
        for problem in problems:
            report.counts[problem.code] += 1
            report.examples.setdefault(problem.code, f"line {lineno}: {problem.reason}")
    return report


def _read_json_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed event or EventError); blank lines are skipped."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, EventError("invalid_json", f"invalid JSON: {exc.msg}")


# ---------------------------------------------------------------------------------------------- CLI


TRANSLATE_DESCRIPTION = (
    "Translate Stripe meter events (JSON Lines, as sent to Stripe's meter event API) into Metronome usage "
    "events (JSON Lines, as sent to /v1/ingest), so the same usage can go to both during the parallel run. "
    "With --stack, each Stripe customer id becomes its customer's ingest alias and the keys a metric "
    "aggregates become numbers; --aliases gives the aliases from a file instead. Without either, the Stripe "
    "customer id is sent as customer_id and only the value key and --numeric-key values become numbers."
)
CHECK_DESCRIPTION = (
    "Check Metronome usage events (JSON Lines) against a stack: each event_type matches a billable metric "
    "(and its property filters), the metric's group keys are present, the aggregated property is a number "
    "and customer_id is an ingest alias of one of the stack's customers. Prints a count per problem."
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="events_command", required=True, metavar="{translate,check}")
    tr = sub.add_parser(
        "translate",
        help="Stripe meter events (JSON Lines) -> Metronome events (JSON Lines)",
        description=TRANSLATE_DESCRIPTION,
    )
    tr.add_argument("--in", dest="input", type=Path, help="input file (default: stdin)")
    tr.add_argument("--out", type=Path, help="output file (default: stdout)")
    tr.add_argument(
        "--aliases",
        type=Path,
        help="YAML/JSON map stripe customer id -> ingest alias, or an environment.yaml",
    )
    tr.add_argument(
        "--stack",
        help="take the ingest aliases (customers' stripe_customer_id) and numeric keys (what metrics "
        "aggregate) from STACKS_DIR/STACK/",
    )
    tr.add_argument(
        "--stacks-dir",
        type=Path,
        default=Path("stacks"),
        help="directory holding one directory per stack (default: stacks)",
    )
    tr.add_argument(
        "--numeric-key",
        action="append",
        default=[],
        metavar="KEY",
        help="payload key to convert to a number (repeatable)",
    )
    tr.add_argument(
        "--customer-key",
        default=STRIPE_CUSTOMER_KEY,
        metavar="KEY",
        help="payload key holding the Stripe customer id (the meter's customer_mapping.event_payload_key; "
        f"default {STRIPE_CUSTOMER_KEY})",
    )
    tr.add_argument(
        "--value-key",
        default=STRIPE_VALUE_KEY,
        metavar="KEY",
        help="payload key holding the value (the meter's value_settings.event_payload_key; "
        f"default {STRIPE_VALUE_KEY})",
    )
    ck = sub.add_parser(
        "check", help="check Metronome events against a stack's catalog", description=CHECK_DESCRIPTION
    )
    ck.add_argument(
        "--stack", required=True, help="the stack to check against: its catalog.yaml and environment.yaml"
    )
    ck.add_argument(
        "--stacks-dir",
        type=Path,
        default=Path("stacks"),
        help="directory holding one directory per stack (default: stacks)",
    )
    ck.add_argument("--in", dest="input", type=Path, help="input file (default: stdin)")


def _open_in(path: Path | None) -> contextlib.AbstractContextManager[IO[str]]:
    # stdin is not ours to close (tests run the CLI in-process)
    return path.open() if path else contextlib.nullcontext(sys.stdin)


def run(args: argparse.Namespace) -> int:
    if args.events_command == "translate":
        return _run_translate(args)
    return _run_check(args)


def _alias_hint(args: argparse.Namespace) -> Callable[[str], str]:
    """Where a Stripe customer id without an ingest alias should be added, given the sources in use."""
    env_files = [args.stacks_dir / args.stack / "environment.yaml"] if args.stack else []
    alias_file = None
    if args.aliases:
        if _is_environment_file(args.aliases):
            if all(args.aliases.resolve() != f.resolve() for f in env_files):
                env_files.append(args.aliases)
        else:
            alias_file = args.aliases

    def hint(stripe_customer: str) -> str:
        places = [
            f"give its customer in {f} `stripe_customer_id: {stripe_customer}` and an ingest_aliases entry"
            for f in env_files
        ]
        if alias_file:
            places.append(f"add `{stripe_customer}: <ingest alias>` to {alias_file}")
        return ", or ".join(places) or "pass --stack or --aliases"

    return hint


def _is_environment_file(path: Path) -> bool:
    with contextlib.suppress(Exception):
        data = yaml.safe_load(path.read_text())
        return isinstance(data, dict) and isinstance(data.get("customers"), list)
    return False


def _stack_view(args: argparse.Namespace) -> StackView:
    """The stack `--stack` names, or CommandError (naming the stacks there are) before any event is read."""
    missing = missing_stack(args.stacks_dir, args.stack)
    if missing:
        raise CommandError(missing)
    try:
        return load_stack_view(args.stacks_dir / args.stack)
    except Exception as exc:  # catalog unreadable: say which and stop before reading events
        raise CommandError(f"stack {args.stack!r} cannot be loaded: {exc}") from None


def _run_translate(args: argparse.Namespace) -> int:
    aliases: dict[str, str] | None = None
    numeric = set(args.numeric_key)
    if args.stack:
        view = _stack_view(args)
        aliases = dict(view.stripe_to_alias)
        numeric |= view.numeric_keys
    try:
        if args.aliases:
            aliases = {**(aliases or {}), **load_alias_file(args.aliases)}
    except Exception as exc:
        raise CommandError(f"the alias file {args.aliases} cannot be read: {exc}") from None
    if aliases is None:
        converted = ", ".join(f"payload.{k}" for k in [args.value_key, *sorted(numeric - {args.value_key})])
        warn(
            "without --stack or --aliases customers are not mapped (the Stripe customer id is sent "
            f"as customer_id) and values are not converted (only {converted} become numbers); "
            "pass --stack STACK to use its ingest aliases and numeric keys"
        )
    hint = _alias_hint(args)
    out = args.out.open("w") if args.out else sys.stdout
    failures: Counter = Counter()
    written = 0
    try:
        with _open_in(args.input) as src:
            for lineno, event in _read_json_lines(src):
                try:
                    if isinstance(event, EventError):
                        raise event
                    translated = translate_event(
                        event, aliases, numeric, args.customer_key, args.value_key, alias_hint=hint
                    )
                except EventError as exc:
                    failures[exc.code] += 1
                    print(f"line {lineno}: {exc.code}: {exc.reason}", file=sys.stderr)
                    continue
                out.write(json.dumps(translated, sort_keys=True) + "\n")
                written += 1
    finally:
        if args.out:
            out.close()
    print(f"translated {written} event(s), {sum(failures.values())} failed", file=sys.stderr)
    return EXIT_ATTENTION if failures else EXIT_OK


def _run_check(args: argparse.Namespace) -> int:
    view = _stack_view(args)
    with _open_in(args.input) as src:
        report = check_events(src, view)
    if report.total == 0:  # checking nothing is not a pass: the step that wrote the events may have failed
        source = args.input or "standard input"
        raise CommandError(
            f"no events in {source}: nothing was checked; an empty input is not a pass (did the step that "
            "writes the events, e.g. `events translate`, fail?)"
        )
    print(
        f"checked {report.total} event(s): {report.total - report.bad_events} ok, "
        f"{report.bad_events} with problems"
    )
    for code, count in sorted(report.counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {code}: {count}  (e.g. {report.examples[code]})")
    return EXIT_OK if report.ok else EXIT_ATTENTION
