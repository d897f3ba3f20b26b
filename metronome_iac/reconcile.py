"""`metronome-iac reconcile --stack NAME --from DATE --to DATE`: did Stripe and Metronome measure the same?

During the parallel run every usage event goes to both systems. For each billable metric with a
`stripe_meter` and each customer with a `stripe_customer_id`, Stripe's meter event summaries for that
customer (`GET /v1/billing/meters/{meter}/event_summaries`, per `--window`) are compared with Metronome's
usage of the metric for the customer (`POST /v1/usage`), window by window. Both are raw usage, before any
price: Stripe's `transform_quantity` and Metronome's `quantity_conversion` apply later.

`--from` / `--to` are dates (UTC midnight: Metronome's `/v1/usage` takes whole UTC days, Stripe's day
windows start at 00:00 UTC). A window is within `--tolerance` when the difference is at most that share of
the larger total. Differences are explained where they can be (`reconcile_explain.py`); `--events FILE`
(the Stripe meter events sent, JSON Lines) lets it sample events of a failing window and ask Metronome
what became of them. Each run that could check writes its result to `stacks/<stack>/reconcile.json`
(`reconcile_record.py`), which the `StripeIntegration` go-live condition reads.

Calls run concurrently (`--concurrency`), each retried as the provider retries (the SDKs' loops: 429, 5xx
and connection errors, with backoff), with a progress bar on a terminal. Exit codes: 0 every window within
tolerance, 2 some window is not, 1 could not check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from metronome_iac.catalog import CatalogError, Stack, load_stack
from metronome_iac.cli import EXIT_ATTENTION, EXIT_ERROR, EXIT_OK
from metronome_iac.reconcile_record import STEPS, Pair, Report, Window, rfc3339, within, write_record


class CannotCheck(Exception):
    """The comparison cannot be made (exit 1); the message says what to fix."""


# ---------------------------------------------------------------------------------------------- arguments


def utc_day(text: str) -> datetime:
    """argparse type for --from/--to: a date, or an RFC 3339 time on UTC midnight."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (e.g. 2026-01-01)") from None
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a UTC midnight: Metronome's usage is read in whole UTC days; use "
            f"{moment:%Y-%m-%d}"
        )
    return moment


def tolerance(text: str) -> float:
    """argparse type for --tolerance: `0.5%` or a fraction (`0.005`)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a tolerance (e.g. 0.5% or 0.005)") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a tolerance is from 0% to under 100%")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name (folder under --stacks-dir)")
    parser.add_argument(
        "--from",
        dest="start",
        type=utc_day,
        required=True,
        metavar="DATE",
        help="first day compared (UTC), e.g. 2026-01-01",
    )
    parser.add_argument(
        "--to",
        dest="end",
        type=utc_day,
        required=True,
        metavar="DATE",
        help="the day after the last one compared (UTC, exclusive)",
    )
    parser.add_argument(
        "--window", choices=sorted(STEPS), default="day", help="compare per day (default) or hour"
    )
    parser.add_argument(
        "--tolerance",
        type=tolerance,
        default=0.0,
        metavar="PCT",
        help="largest difference still counted as equal, as a share of the larger total: "
        "0.5%% or 0.005 (default 0: equal)",
    )
    parser.add_argument(
        "--events",
        type=Path,
        metavar="FILE",
        help="the Stripe meter events sent during the parallel run (JSON Lines, as given to "
        "`events translate`): a failing window's events are sampled and looked up in "
        "Metronome to explain it",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=20,
        metavar="N",
        help="events looked up per failing window with --events (default 20; Metronome's "
        "event search is for sampling)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.add_argument("--all", action="store_true", help="list every window, not only those that differ")
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not write stacks/<stack>/reconcile.json (what the go-live condition reads)",
    )
    parser.add_argument("--stacks-dir", default="stacks", help="directory holding one folder per stack")
    parser.add_argument("--base-url", help="Metronome API URL (default: as `drift` finds it)")
    parser.add_argument("--project", help="Pulumi project name (default: from Pulumi.yaml)")
    parser.add_argument("--api-key", help="Stripe secret key (default: env STRIPE_API_KEY)")
    parser.add_argument("--api-base", help="Stripe API base URL (default: env STRIPE_API_BASE, else Stripe)")
    parser.add_argument("--concurrency", type=int, default=8, metavar="N", help="calls at once (default 8)")


# ---------------------------------------------------------------------------------------------- the two sides


def live_pairs(stack: Stack, client: Any, project: str) -> list[Pair]:
    """Every (customer with a stripe_customer_id) x (metric with a stripe_meter), with Metronome's ids:
    matched as `drift` matches them (iac_identity tag, previous names, adopt)."""
    from metronome_iac.live import list_live
    from metronome_iac.matching import Matcher

    metrics = [m for m in stack.catalog.billable_metrics if m.stripe_meter]
    customers = [c for c in stack.environment.customers if c.stripe_customer_id]
    if not metrics or not customers:
        raise CannotCheck(
            f"nothing to reconcile in stack {stack.name}: it needs billable metrics with a stripe_meter "
            f"(mtr_...) and customers with a stripe_customer_id (found {len(metrics)} and {len(customers)})"
        )
    prefix = f"{project}/{stack.name}/"
    ids: dict[str, dict[str, str]] = {}
    missing = []
    for section, entries in (("billable_metrics", metrics), ("customers", customers)):
        matcher = Matcher(section, prefix, list_live(client, section), client)
        for entry in entries:
            object_id, _ = matcher.match(entry.name, entry.adopt, entry.previous_names)
            if object_id is None:
                missing.append(f"{section.replace('_', ' ')[:-1]} '{entry.name}'")
            ids.setdefault(section, {})[entry.name] = object_id or ""
    if missing:
        raise CannotCheck(
            f"not found in Metronome (tagged for {prefix.rstrip('/')}): {', '.join(missing)}; to fix: "
            f"`pulumi up` the stack first (or pass the --project it was deployed with)"
        )
    return [
        Pair(
            c.name,
            ids["customers"][c.name],
            str(c.stripe_customer_id),
            m.name,
            ids["billable_metrics"][m.name],
            str(m.stripe_meter),
        )
        for c in customers
        for m in metrics
    ]


def stripe_meters(stripe: Any, stack: Stack) -> dict[str, dict[str, Any]]:
    """Each metric's Stripe meter (event name, payload keys), read once; a missing one cannot be checked."""
    import stripe as stripe_lib

    out = {}
    for metric in stack.catalog.billable_metrics:
        if not metric.stripe_meter:
            continue
        try:
            out[metric.stripe_meter] = stripe.v1.billing.meters.retrieve(metric.stripe_meter).to_dict()
        except stripe_lib.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            raise CannotCheck(
                f"billable metric '{metric.name}': its stripe_meter {metric.stripe_meter} is not a meter of "
                "this Stripe account; to fix: correct stripe_meter in catalog.yaml (or use the key of the "
                "account the meter belongs to)"
            ) from None
    return out


def stripe_totals(
    stripe: Any, pair: Pair, start: datetime, end: datetime, window: str
) -> dict[datetime, float]:
    """{window start: aggregated value}; Stripe lists only windows with events (newest first)."""
    params = {
        "customer": pair.stripe_customer_id,
        "start_time": int(start.timestamp()),
        "end_time": int(end.timestamp()),
        "value_grouping_window": window,
        "limit": 100,
    }
    page = stripe.v1.billing.meters.event_summaries.list(pair.meter, params=params)
    return {
        datetime.fromtimestamp(s["start_time"], tz=timezone.utc): float(s["aggregated_value"])
        for s in page.auto_paging_iter()
    }


def metronome_totals(
    client: Any, pair: Pair, start: datetime, end: datetime, window: str
) -> dict[datetime, float]:
    """{window start: value}; a window without usage has value null (0 here)."""
    rows = client.v1.usage.list(
        starting_on=rfc3339(start),
        ending_before=rfc3339(end),
        window_size=window.upper(),
        customer_ids=[pair.customer_id],
        billable_metrics=[{"id": pair.metric_id}],
    )
    return {
        row.start_timestamp.astimezone(timezone.utc): float(row.value or 0)
        for row in rows
        if row.customer_id == pair.customer_id and row.billable_metric_id == pair.metric_id
    }


def compare(
    pairs: list[Pair],
    fetch: Callable[[Pair], tuple[dict[datetime, float], dict[datetime, float]]],
    report: Report,
    workers: int,
) -> None:
    """Both sides of every pair, `workers` at a time, with a progress bar on a terminal."""
    step = STEPS[report.window]
    starts = []
    moment = report.start
    while moment < report.end:
        starts.append(moment)
        moment += step
    with (
        progress_bar(len(pairs), "comparing customers x metrics") as advance,
        ThreadPoolExecutor(workers) as pool,
    ):
        futures = [pool.submit(fetch, pair) for pair in pairs]
        for pair, future in zip(pairs, futures, strict=True):
            stripe, metronome = future.result()
            advance()
            for start in starts:
                s, m = stripe.get(start, 0.0), metronome.get(start, 0.0)
                ok = within(s, m, report.tolerance)
                report.windows.append(Window(pair, start, start + step, s, m, ok=ok))


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr when that is a terminal (not in CI logs or pipes); yields `advance`."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(what, total=total)
        yield lambda: progress.advance(task)


# ---------------------------------------------------------------------------------------------- output


def render(report: Report, show_all: bool, stream: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(
        file=stream or sys.stdout, highlight=False, width=None if (stream or sys.stdout).isatty() else 200
    )
    shown = report.windows if show_all else report.failing
    if shown:
        table = Table(box=None, pad_edge=False, show_edge=False)
        for name in ("customer", "metric", "window"):
            table.add_column(name)
        for name in ("Stripe", "Metronome", "difference"):
            table.add_column(name, justify="right")
        for w in shown:
            numbers = (f"{w.stripe:,.10g}", f"{w.metronome:,.10g}", f"{w.difference:+,.10g}")
            table.add_row(w.pair.customer, w.pair.metric, w.label(), *numbers, style=None if w.ok else "bold")
        console.print(table)
    for w in report.failing:
        if w.cause:
            console.print(
                f"{w.pair.customer} {w.pair.metric} {w.label()}: {w.cause}; to fix: {w.fix}", soft_wrap=True
            )
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True)
    customers = len({w.pair.customer for w in report.windows})
    metrics = len({w.pair.metric for w in report.windows})
    verdict = "all within" if report.passed else f"{len(report.failing)} outside"
    console.print(
        f"reconcile {report.stack}: {len(report.windows)} {report.window} window(s) from "
        f"{report.start:%Y-%m-%d} to {report.end:%Y-%m-%d} ({customers} customer(s) x {metrics} metric(s)): "
        f"{verdict} tolerance {report.tolerance:.2%}",
        soft_wrap=True,
    )


# ---------------------------------------------------------------------------------------------- CLI


def stripe_client(args: argparse.Namespace) -> tuple[Any, str]:
    import stripe

    from metronome_iac.stripe_import import STRIPE_API
    from providers.client import READ_MAX_RETRIES

    api_key = args.api_key or os.environ.get("STRIPE_API_KEY")
    if not api_key:
        raise CannotCheck("no Stripe key: pass --api-key or set STRIPE_API_KEY")
    api_base = args.api_base or os.environ.get("STRIPE_API_BASE")
    base = {"api": api_base} if api_base else None
    client = stripe.StripeClient(api_key, base_addresses=base, max_network_retries=READ_MAX_RETRIES)  # type: ignore[arg-type]
    return client, api_base or STRIPE_API


def run(args: argparse.Namespace) -> int:
    import metronome
    import stripe

    from metronome_iac import connection
    from metronome_iac.reconcile_explain import explain
    from metronome_iac.stripe_import import stripe_error
    from providers.client import make_client

    def fail(message: str) -> int:
        if args.json:
            print(json.dumps({"stack": args.stack, "error": message}))
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR

    if args.end <= args.start:
        return fail(f"--to {args.end:%Y-%m-%d} must be after --from {args.start:%Y-%m-%d}")
    stack_dir = Path(args.stacks_dir) / args.stack
    try:
        stack = load_stack(stack_dir)
        base_url, source, token = connection.resolve_connection(args.stack, args.base_url)
        stripe_api, stripe_base = stripe_client(args)
    except (CatalogError, connection.SetupError, CannotCheck) as err:
        return fail(str(err))
    client = make_client(base_url, token)
    report = Report(stack.name, args.start, args.end, args.window, args.tolerance)
    try:
        pairs = live_pairs(stack, client, connection.project_name(args.project))
        meters = stripe_meters(stripe_api, stack)

        def fetch(pair: Pair) -> tuple[dict[datetime, float], dict[datetime, float]]:
            return (
                stripe_totals(stripe_api, pair, args.start, args.end, args.window),
                metronome_totals(client, pair, args.start, args.end, args.window),
            )

        compare(pairs, fetch, report, max(1, args.concurrency))
        explain(report, stack, meters, client, args.events, args.sample)
    except CannotCheck as err:
        return fail(str(err))
    except stripe.StripeError as err:
        return fail(stripe_error(err, stripe_base))
    except metronome.APIError as err:
        reason = connection.describe_failure(err, base_url, source, connection.token_settings(args.stack))
        return fail(f"reconcile failed: {reason}")
    if not args.no_record:
        written = write_record(stack_dir, report.record(datetime.now(timezone.utc)))
        report.notes.append(f"wrote {written} (commit it: the StripeIntegration go-live condition reads it)")
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        render(report, args.all)
    return EXIT_OK if report.passed else EXIT_ATTENTION
