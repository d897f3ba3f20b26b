"""`metronome-iac drift --stack NAME [--json]`: the stack's catalog against the live account, no engine.

Live objects are matched the way the provider matches them: the custom field `iac_identity`
("<project>/<stack>/<name>#<fingerprint>"; the uniqueness key "iac:..." for contracts), where
<name> is the entry's name or one of its `previous_names` (a rename matches before and after it is
applied), else the entry's `adopt` key. Desired values come from the same input builders the program
uses, and both sides go through the providers' own shaping and normalisation (`providers/diff.py`), so
a field this reports is a field `pulumi preview --refresh` reports.

With a `stripe:` section the Stripe side is checked too (kind `stripe_configurations`): with `go_live`
true, each customer with a `stripe_customer_id` must have that Stripe configuration active (missing,
archived, or another Stripe customer id / collection method is reported), and any other active Stripe
configuration on a catalog customer is reported as not in the catalog (it may invoice the customer twice);
with `go_live` false, any active Stripe configuration on a catalog customer is reported (invoiced through
Stripe before the gate opened).

Exit codes: 0 in sync, 2 drift, 1 error (bad catalog, unreachable API, bad token).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from metronome_iac.catalog import CatalogError, Stack, load_stack
from metronome_iac.catalog_contracts import payment_gate_reminders
from metronome_iac.catalog_models import Contract
from metronome_iac.catalog_packages import (
    alert_inputs,
    customer_alert_name,
    notification_inputs,
    package_inputs,
)
from metronome_iac.cli import EXIT_ATTENTION, EXIT_OK, CommandError, missing_stack, program
from metronome_iac.program import (
    KINDS,
    STRIPE_RESOURCE_NAME,
    contract_inputs,
    customer_inputs,
    metric_inputs,
    ordered_products,
    previous_alert_names,
    product_inputs,
    rate_card_inputs,
    stripe_inputs,
)
from metronome_iac.progress import CONCURRENCY, Progress, quiet, run_concurrently

DEFAULT_PROJECT = "metronome-iac"
DEFAULT_BASE_URL = "https://api.metronome.com"  # the official client's, when no setting names one
IDENTITY_FIELD = "iac_identity"
STRIPE_KIND = "stripe_configurations"  # report entries for customers' Stripe billing provider configurations
KIND_LABEL = {
    "billable_metrics": "billable metric",
    "products": "product",
    "rate_cards": "rate card",
    "customers": "customer",
    "contracts": "contract",
    "packages": "package",
    "alerts": "alert",
    "customer_alerts": "alert",
    "notifications": "notification",
    STRIPE_KIND: "Stripe configuration of customer",
    "stripe_connection": "Stripe connection",
}
# What stands in for the id of a referenced object that is missing live: it names that object.
MISSING_PREFIX = "<missing "


def missing_ref(section: str, name: str) -> str:
    """The desired id of a reference whose target is missing live, e.g. "<missing billable metric 'x'>"."""
    return f"{MISSING_PREFIX}{KIND_LABEL[section]} '{name}'>"


def is_missing(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MISSING_PREFIX) and value.endswith(">")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name (folder under --stacks-dir)")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.add_argument("--stacks-dir", default="stacks", help="directory holding one folder per stack")
    parser.add_argument(
        "--base-url",
        help="Metronome API URL (default: env METRONOME_BASE_URL, else metronome:baseUrl in "
        f"Pulumi.<STACK>.yaml, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--project", help="Pulumi project name (default: from Pulumi.yaml, else metronome-iac)"
    )


# --------------------------------------------------------------------------------------------------
# report


@dataclass
class FieldDrift:
    field: str
    desired: Any
    live: Any
    # For list/dict fields: the differing leaves, e.g. {"path": "rates[input_tokens_product
    # {model: large, region: us} from 2026-01-01T00:00:00Z].price", "desired": 310, "live": 300}.
    details: list[dict[str, Any]] = field(default_factory=list)
    # `pulumi up` could only restore the desired value by replacing the object (for a contract: refused
    # unless allow_replacement; the usual way back is declaring what is live).
    replaces: bool = False


@dataclass
class Report:
    stack: str
    project: str
    base_url: str | None
    drifted: list[dict[str, Any]] = field(default_factory=list)  # {kind, name, id, fields: [FieldDrift]}
    missing: list[dict[str, Any]] = field(default_factory=list)  # {kind, name, id}
    unmanaged: list[dict[str, Any]] = field(default_factory=list)  # {kind, id, name, identity}
    matched: int = 0
    # What the catalog declares that needs something this check cannot see (never drift by itself).
    warnings: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not (self.drifted or self.missing or self.unmanaged)

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "project": self.project,
            "base_url": self.base_url,
            "in_sync": self.in_sync,
            "matched": self.matched,
            "drifted": [{**d, "fields": [_field_json(f) for f in d["fields"]]} for d in self.drifted],
            "missing": self.missing,
            "unmanaged": self.unmanaged,
            **({"warnings": self.warnings} if self.warnings else {}),  # only when there is one
        }


def _field_json(f: FieldDrift) -> dict[str, Any]:
    out = asdict(f)
    for key in ("details", "replaces"):  # only when there is something to say
        if not out[key]:
            out.pop(key)
    return out


def _rate_label(rate: dict[str, Any], names: dict[str, str]) -> str:
    product = names.get(str(rate.get("product_id")), str(rate.get("product_id")))
    groups = rate.get("pricing_group_values") or {}
    group_text = "{" + ", ".join(f"{k}: {v}" for k, v in sorted(groups.items())) + "}" if groups else ""
    return " ".join(p for p in (product, group_text, f"from {rate.get('starting_at')}") if p)


def leaf_differences(
    path: str, want: Any, have: Any, names: dict[str, str], out: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The differing leaves of two normalised values; rates are matched by their identity
    (product, pricing group values, start), other lists of objects by position."""
    if want == have:
        return out
    if isinstance(want, dict) and isinstance(have, dict):
        for key in [*want, *(k for k in have if k not in want)]:
            leaf_differences(f"{path}.{key}", want.get(key), have.get(key), names, out)
        return out
    if isinstance(want, list) and isinstance(have, list) and all(isinstance(x, dict) for x in want + have):
        if path.rsplit(".", 1)[-1] == "rates":
            wants = {_rate_label(r, names): r for r in want}
            haves = {_rate_label(r, names): r for r in have}
            for key in [*wants, *(k for k in haves if k not in wants)]:
                leaf_differences(f"{path}[{key}]", wants.get(key), haves.get(key), names, out)
            return out
        if len(want) == len(have):
            for i, (a, b) in enumerate(zip(want, have, strict=True)):
                leaf_differences(f"{path}[{i}]", a, b, names, out)
            return out
    out.append({"path": path, "desired": want, "live": have})
    return out


def _show(value: Any) -> str:
    from providers.diff import describe

    if is_missing(value):  # a reference whose target is gone: say which object is gone
        return f"the id of {value[len(MISSING_PREFIX) : -1]}, which is missing live"
    return describe(value)


REPLACE_NOTE = {
    "": "`pulumi up` can restore this only by replacing the object; or declare what is live",
    "contracts": "restoring this replaces the contract (archived, its invoices voided), which `pulumi up` "
    "refuses unless allow_replacement: declare what the live contract has instead",
}


def render(report: Report) -> str:
    lines = [
        f"drift check: stack {report.stack} (project {report.project}, {report.base_url or 'default URL'})"
    ]
    for d in report.drifted:
        lines.append(f"  ~ {KIND_LABEL[d['kind']]} '{d['name']}' ({d['id']}): differs from the catalog")
        for f in d["fields"]:
            for leaf in f.details or [{"path": f.field, "desired": f.desired, "live": f.live}]:
                lines.append(
                    f"      {leaf['path']}: desired {_show(leaf['desired'])}, live {_show(leaf['live'])}"
                )
            if f.replaces:
                lines.append(f"      ! {f.field}: {REPLACE_NOTE.get(d['kind'], REPLACE_NOTE[''])}")
    for m in report.missing:
        where = f" (was {m['id']})" if m.get("id") else ""
        why = m.get("detail") or "archived or never created"
        lines.append(f"  - {KIND_LABEL[m['kind']]} '{m['name']}': missing live ({why}){where}")
    for u in report.unmanaged:
        if u["kind"] == STRIPE_KIND:
            lines.append(
                f"  + Stripe configuration {u['id']} of customer '{u['name']}' "
                f"({u['stripe_customer_id']}, {u['collection_method']}): {u['detail']}"
            )
            continue
        tag = f", tagged {u['identity']}" if u.get("identity") else ""
        lines.append(
            f"  + {KIND_LABEL[u['kind']]} {u['id']} ('{u.get('name')}'{tag}): live but not in the catalog"
        )
    lines += [f"  warning: {w}" for w in report.warnings]
    if report.in_sync:
        lines.append(f"in sync: {report.matched} objects match the catalog")
    else:
        lines.append(
            f"drift: {len(report.drifted)} changed, {len(report.missing)} missing, "
            f"{len(report.unmanaged)} not in the catalog"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# settings


def project_name(explicit: str | None = None, root: Path | None = None) -> str:
    if explicit:
        return explicit
    path = (root or Path.cwd()) / "Pulumi.yaml"
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if isinstance(data.get("name"), str):
                return data["name"]
        except yaml.YAMLError:
            pass
    return DEFAULT_PROJECT


def stack_config(stack: str, root: Path | None = None) -> dict[str, Any]:
    path = (root or Path.cwd()) / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}
    return data.get("config") or {}


class SetupError(RuntimeError):
    """The command cannot start (no token, ...): its message says what to set."""


def resolve_base_url(stack: str | None, flag: str | None, root: Path | None = None) -> tuple[str | None, str]:
    """(URL, the setting that chose it): `--base-url`, else METRONOME_BASE_URL, else `metronome:baseUrl`
    in Pulumi.<stack>.yaml; (None, ...) when none is set and the official client's default applies."""
    if flag:
        return flag, "--base-url"
    if os.environ.get("METRONOME_BASE_URL"):
        return os.environ["METRONOME_BASE_URL"], "METRONOME_BASE_URL"
    if stack is not None:
        url = stack_config(stack, root).get("metronome:baseUrl")
        if isinstance(url, str) and url:
            return url, f"metronome:baseUrl in Pulumi.{stack}.yaml"
    where = " or METRONOME_BASE_URL"
    if stack:
        where = f", METRONOME_BASE_URL or metronome:baseUrl in Pulumi.{stack}.yaml"
    return None, f"the default: no --base-url{where}"


def resolve_connection(stack: str, base_url: str | None, root: Path | None = None) -> tuple[str | None, str]:
    """(base URL, token): flag/env/stack config. A `secure:` token needs the Pulumi CLI: use the env.

    Raises SetupError (a message that says what to set) when there is no usable token."""
    config = stack_config(stack, root)
    url, _ = resolve_base_url(stack, base_url, root)
    token = os.environ.get("METRONOME_BEARER_TOKEN")
    if not token:
        value = config.get("metronome:apiToken")
        if isinstance(value, str):
            token = value
        elif isinstance(value, dict):
            raise SetupError(
                f"the token in Pulumi.{stack}.yaml is encrypted; export it first: "
                f"export METRONOME_BEARER_TOKEN=$(pulumi config get metronome:apiToken --stack {stack})"
            )
    if not token:
        raise SetupError(
            "no Metronome API token: set METRONOME_BEARER_TOKEN "
            f"(or metronome:apiToken in Pulumi.{stack}.yaml)"
        )
    return url, token


def api_client(base_url: str | None, token: str) -> Any:
    """A client with the provider's retry rules (429 and 5xx retried, honouring Retry-After), once one
    call with a single retry has been answered: a wrong URL or token fails in seconds, not after backoffs."""
    from providers.client import make_client

    client = make_client(base_url, token)
    client.with_options(max_retries=1).v1.billable_metrics.list(limit=1)
    return client


def describe_failure(err: Exception, url: str | None, source: str, token_setting: str) -> str:
    """One line for a failed conversation with the Metronome API: what failed, at which URL (and which
    setting chose it), and what to change. `token_setting`: where the token came from or goes."""
    import metronome

    shown = url or DEFAULT_BASE_URL
    text = str(err)
    status = getattr(err, "status_code", None)
    local = any(h in shown for h in ("://127.0.0.1", "://localhost", "://[::1]", "://0.0.0.0"))
    if isinstance(err, metronome.APITimeoutError) or text.endswith("request to Metronome timed out"):
        return f"Metronome at {shown} (from {source}) did not answer in time: retry, or check the URL"
    if isinstance(err, metronome.APIConnectionError) or "cannot reach Metronome" in text:
        if source == "--base-url":
            change = "pass the right --base-url"
        elif source.startswith("the default"):
            change = "set another URL with --base-url"
        else:
            change = f"correct {source}"
        port = urlsplit(shown).port
        command = f"{program()} emulator" + (f" --port {port}" if port else "")
        if local:
            advice = f"start the emulator there (`{command}`), or if the URL is wrong, {change}"
        else:  # the URL may well be right and the network the problem: do not send them to edit it
            advice = "check that URL and that this machine can reach it (network, proxy); "
            advice += f"if the URL is wrong, {change}"
        return f"cannot reach Metronome at {shown} (from {source}): {advice}"
    if status in (401, 403):
        return f"Metronome at {shown} (from {source}) refused the API token ({status}): check {token_setting}"
    return text or type(err).__name__


# --------------------------------------------------------------------------------------------------
# matching


_IMPORTS = threading.Lock()


def provider_module(section: str) -> Any:
    """The section's provider module. Imported one at a time: a listing thread importing one provider
    module while another thread runs the package's `__init__` (which imports them all) can deadlock."""
    with _IMPORTS:
        return importlib.import_module(KINDS[section][0])


def _provider_class(section: str) -> Any:
    """The section's provider class: `<Resource>Provider` in the resource's module."""
    return getattr(provider_module(section), f"{KINDS[section][1]}Provider")


def identity_of(live: dict[str, Any]) -> str | None:
    """The identity tag of a live object in input shape (custom field, or a contract's uniqueness key)."""
    tag = (live.get("custom_fields") or {}).get(IDENTITY_FIELD)
    if not tag and isinstance(live.get("uniqueness_key"), str) and live["uniqueness_key"].startswith("iac:"):
        tag = live["uniqueness_key"][len("iac:") :]
    return tag


def _tag_base(tag: str | None) -> str | None:
    return tag.split("#", 1)[0] if tag else None


def _adopt_match(section: str, adopt: dict[str, str], live: list[tuple[str, dict[str, Any]]]) -> str | None:
    if adopt.get("id"):
        return adopt["id"]
    for key, value in adopt.items():
        for object_id, obj in live:
            if key == "ingest_alias" and value in (obj.get("ingest_aliases") or []):
                return object_id
            if key == "uniqueness_key" and str(obj.get("uniqueness_key", "")).endswith(value):
                return object_id
            if obj.get(key) == value:
                return object_id
    return None


class _Matcher:
    """Matches catalog entries of one kind with live objects, tracking what stays unclaimed."""

    def __init__(
        self, section: str, identity_prefix: str, live: list[tuple[str, dict[str, Any]]], client: Any
    ) -> None:
        self.section = section
        self.client = client
        self.prefix = identity_prefix
        self.live = live
        self.by_id = dict(live)
        self.claimed: set[str] = set()

    def match(
        self, name: str, adopt: dict[str, str] | None, previous_names: list[str] | None = None
    ) -> tuple[str | None, dict[str, Any] | None]:
        from providers.identity import identity_forms

        # The current name first, then each previous name: an entry renamed in the catalog matches its
        # object before the rename is applied (old tag) and after (new tag).
        for candidate in [name, *(previous_names or [])]:
            identity = self.prefix + candidate
            for object_id, obj in self.live:
                if object_id not in self.claimed and _tag_base(identity_of(obj)) in identity_forms(identity):
                    self.claimed.add(object_id)
                    return object_id, obj
        if adopt:
            object_id = _adopt_match(self.section, adopt, self.live)
            if object_id:
                self.claimed.add(object_id)
                obj = self.by_id.get(object_id)
                if obj is None:  # adopt by id of an object the listing no longer shows (archived)
                    obj = provider_module(self.section).read_object(self.client, object_id)
                return object_id, obj
        return None, None

    def unclaimed(self, stack_prefix: str) -> list[dict[str, Any]]:
        """Live, unclaimed objects that this stack owns (its tag) or nobody owns (no tag)."""
        out = []
        for object_id, obj in self.live:
            if object_id in self.claimed:
                continue
            tag = identity_of(obj)
            if tag and not tag.startswith(stack_prefix):
                continue  # another stack's or project's object
            out.append({"kind": self.section, "id": object_id, "name": obj.get("name"), "identity": tag})
        return out


def _compare(
    section: str, client: Any, object_id: str, desired: dict[str, Any], names: dict[str, str]
) -> list[FieldDrift] | None:
    """Drifted fields, or None when the object is gone. Exactly the refresh-then-preview path: the
    provider's `read_live` (projected onto the desired inputs, as refresh projects onto state) and
    its `diff_pair` normalisation."""
    from providers.client import MetronomeError
    from providers.diff import changed_fields, normalize

    provider = _provider_class(section)()
    live = provider.read_live(client, object_id, desired)
    if live is None:
        return None
    have, want = provider.diff_pair(live, desired)
    drifted = changed_fields(have, want, provider.api_fields())
    # The provider's own diff says which of them `up` could only restore by replacing the object.
    try:
        diff = provider.diff_inputs(object_id, have, {**want, "allow_replacement": True})
        replaced = set(diff.replaces or [])
    except MetronomeError:  # a change the provider refuses outright (a contract's billing configuration)
        replaced = set()
    out = []
    for f in drifted:
        w, h = normalize({f: want.get(f)}).get(f), normalize({f: have.get(f)}).get(f)
        details = leaf_differences(f, w, h, names, []) if isinstance(w, (list, dict)) else []
        out.append(FieldDrift(f, want.get(f), have.get(f), details, f in replaced))
    return out


def check_drift(
    stack: Stack,
    client: Any,
    project: str,
    base_url: str | None = None,
    progress: Progress | None = None,
    workers: int = CONCURRENCY,
) -> Report:
    """The drift report for a loaded stack against the account behind `client`.

    Listings come first (what exists, and which object each entry is), then every matched object is
    read and compared, `workers` at a time: entries of one kind never depend on each other's reads,
    only on the ids of the kinds before them (and composite products on their parts)."""
    progress = progress or quiet()
    report = Report(stack=stack.name, project=project, base_url=base_url)
    report.warnings = payment_gate_reminders(stack.environment.contracts, stack.catalog.packages)
    prefix = f"{project}/{stack.name}/"
    env = stack.environment
    ids: dict[str, dict[str, str]] = {s: {} for s in KINDS}
    managed = {
        "billable_metrics": stack.catalog.billable_metrics,
        "products": stack.catalog.products,
        "rate_cards": stack.catalog.rate_cards,
        "customers": env.customers,
        "contracts": env.contracts,
        "packages": stack.catalog.packages,
        "alerts": [*stack.catalog.alerts, *(a for c in env.customers for a in c.alerts or [])],
        "notifications": stack.catalog.notifications,
    }
    entries = sum(len(items) for items in managed.values())

    with progress.task(f"checking {entries} catalog entries against the live account", entries) as task:

        def visit(section: str, matcher: _Matcher, batch: list[Any], desired: Callable[[Any], dict]) -> None:
            """Match each entry of `batch` with its live object, then read and compare them at once."""
            found: list[tuple[Any, str]] = []
            results: dict[str, tuple[str | None, list[FieldDrift] | None]] = {}
            for entry in batch:
                object_id, live = matcher.match(entry.name, entry.adopt, entry.previous_names)
                if object_id is None or live is None:
                    ids[section][entry.name] = missing_ref(section, entry.name)
                    results[entry.name] = (object_id, None)
                    task.advance()
                else:
                    ids[section][entry.name] = object_id
                    found.append((entry, object_id))
            names = {i: n for by_name in ids.values() for n, i in by_name.items() if not is_missing(i)}
            compared = run_concurrently(
                lambda pair: _compare(section, client, pair[1], desired(pair[0]), names),
                found,
                task,
                workers,
            )
            for (entry, object_id), fields in zip(found, compared, strict=True):
                results[entry.name] = (object_id, fields)
            for entry in batch:  # reported in catalog order
                object_id, fields = results[entry.name]
                if fields is None:  # not found, or archived between the listing and the read
                    report.missing.append({"kind": section, "name": entry.name, "id": object_id})
                    ids[section][entry.name] = missing_ref(section, entry.name)
                    continue
                report.matched += 1
                if fields:
                    report.drifted.append(
                        {"kind": section, "name": entry.name, "id": object_id, "fields": fields}
                    )

        def listing(section: str) -> list[tuple[str, dict[str, Any]]]:
            if section == "rate_cards":  # matching needs the cards' tags, not their rates (read later)
                return provider_module(section).list_objects(client, with_rates=False)
            return provider_module(section).list_objects(client)

        listed_kinds = ("billable_metrics", "products", "rate_cards", "customers")
        listed = run_concurrently(listing, listed_kinds, workers=workers)
        matchers = {
            section: _Matcher(section, prefix, live, client)
            for section, live in zip(listed_kinds, listed, strict=True)
        }

        visit("billable_metrics", matchers["billable_metrics"], stack.catalog.billable_metrics, metric_inputs)
        # Composite products name their parts by id: the parts are matched first.
        products = ordered_products(stack)
        parts = [p for p in products if not p.composite_products]
        for batch in (parts, [p for p in products if p.composite_products]):
            visit(
                "products",
                matchers["products"],
                batch,
                lambda p: product_inputs(p, ids["billable_metrics"], ids["products"], env.settings),
            )
        visit(
            "rate_cards",
            matchers["rate_cards"],
            stack.catalog.rate_cards,
            lambda card: rate_card_inputs(card, ids["products"]),
        )
        visit("customers", matchers["customers"], env.customers, customer_inputs)
        check_packages_alerts(stack, client, prefix, ids, matchers, visit)

        # Before contracts: with go_live a Stripe customer's contracts reference its Stripe configuration,
        # which the program takes from the integration's output (the matching live configuration).
        stripe_ids = check_stripe(stack, client, ids["customers"], report) if env.stripe is not None else {}
        billed_through_stripe = {c.name for c in env.customers if c.stripe_customer_id}

        def contract_desired(k: Contract) -> dict[str, Any]:
            desired = contract_inputs(
                k, ids["customers"], ids["rate_cards"], ids["products"], env.settings, ids["packages"]
            )
            if (
                env.stripe is not None
                and env.stripe.go_live
                and k.customer in billed_through_stripe
                and not k.package
            ):
                config_id = stripe_ids.get(ids["customers"][k.customer])
                config_id = config_id or missing_ref(STRIPE_KIND, k.customer)
                desired["billing_provider_configuration"] = {"billing_provider_configuration_id": config_id}
            return desired

        # Contracts are listed per customer: those of the stack's live customers.
        contract_module = provider_module("contracts")
        customer_ids = sorted({i for i in ids["customers"].values() if not is_missing(i)})
        contract_live = [
            pair
            for listed_contracts in run_concurrently(
                lambda customer_id: contract_module.list_objects(client, customer_id),
                customer_ids if env.contracts else [],
                workers=workers,
            )
            for pair in listed_contracts
        ]
        matchers["contracts"] = _Matcher("contracts", prefix, contract_live, client)
        visit("contracts", matchers["contracts"], env.contracts, contract_desired)

    # Objects of a kind the stack manages, live, unclaimed, and tagged for this stack or untagged.
    for section, matcher in matchers.items():
        if managed[section]:
            report.unmanaged.extend(matcher.unclaimed(prefix))
    return report


# --------------------------------------------------------------------------------------------------
# packages, alerts and notifications


def check_packages_alerts(
    stack: Stack,
    client: Any,
    prefix: str,
    ids: dict[str, dict[str, str]],
    matchers: dict[str, _Matcher],
    visit: Callable[[str, _Matcher, list[Any], Callable[[Any], dict]], None],
) -> None:
    """Packages and notifications are listed account-wide; alerts only through a customer (its own and
    those for every customer), so through each of the stack's live customers, else any customer."""
    from types import SimpleNamespace

    from providers.alert import any_customer

    env = stack.environment
    if stack.catalog.packages:
        matchers["packages"] = _Matcher(
            "packages", prefix, provider_module("packages").list_objects(client), client
        )
        visit(
            "packages",
            matchers["packages"],
            stack.catalog.packages,
            lambda pkg: package_inputs(pkg, ids["rate_cards"], ids["products"]),
        )

    customer_alerts = [(c, a) for c in env.customers for a in c.alerts or []]
    if stack.catalog.alerts or customer_alerts:
        through = [i for i in ids["customers"].values() if not is_missing(i)] or [any_customer(client)]
        seen: dict[str, dict[str, Any]] = {}
        for customer_id in filter(None, through):
            seen.update(dict(provider_module("alerts").list_objects(client, customer_id)))
        matchers["alerts"] = _Matcher("alerts", prefix, list(seen.items()), client)
        visit(
            "alerts",
            matchers["alerts"],
            stack.catalog.alerts,
            lambda a: alert_inputs(a, ids["billable_metrics"]),
        )
        entries = [
            SimpleNamespace(
                name=customer_alert_name(c.name, a.name),
                adopt=a.adopt,
                previous_names=previous_alert_names(c, a),
                alert=a,
                customer=c.name,
            )
            for c, a in customer_alerts
        ]
        visit(
            "customer_alerts",
            matchers["alerts"],
            entries,
            lambda e: alert_inputs(
                e.alert,
                ids["billable_metrics"],
                ids["customers"].get(e.customer) or missing_ref("customers", e.customer),
            ),
        )

    if stack.catalog.notifications:
        live = provider_module("notifications").list_objects(client)
        matchers["notifications"] = _Matcher("notifications", prefix, live, client)
        # The listing carries no uniqueness key: a notification is matched by its Metronome name.
        entries = [
            SimpleNamespace(
                name=n.name,
                adopt=n.adopt or {"name": n.metronome_name},
                previous_names=n.previous_names,
                entry=n,
            )
            for n in stack.catalog.notifications
        ]
        visit("notifications", matchers["notifications"], entries, lambda e: notification_inputs(e.entry))


# --------------------------------------------------------------------------------------------------
# the Stripe side (the StripeIntegration resource has no Metronome object: its customers' Stripe
# billing provider configurations are what it owns)

# The built-in default of Metronome and of the provider when a configuration names no method.
DEFAULT_COLLECTION_METHOD = "charge_automatically"


def stripe_connections(client: Any) -> list[dict[str, Any]]:
    """The account's connected Stripe delivery methods (/v1/listConfiguredBillingProviders)."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = client.v1.settings.billing_providers.list(**({"next_page": cursor} if cursor else {}))
        out += [m.model_dump() for m in page.data or [] if m.billing_provider == "stripe"]
        cursor = page.next_page
        if not cursor:
            return out


def stripe_link(config: dict[str, Any]) -> tuple[str | None, str]:
    """(stripe_customer_id, collection method) of a Stripe configuration, the method spelled out."""
    conf = config.get("configuration") or {}
    return conf.get("stripe_customer_id"), conf.get("stripe_collection_method") or DEFAULT_COLLECTION_METHOD


def _stripe_extra(config: dict[str, Any], customer: str, detail: str) -> dict[str, Any]:
    stripe_customer_id, method = stripe_link(config)
    return {
        "kind": STRIPE_KIND,
        "id": config.get("id"),
        "name": customer,
        "identity": None,
        "customer_id": config.get("customer_id"),
        "stripe_customer_id": stripe_customer_id,
        "collection_method": method,
        "detail": detail,
    }


def _archived_stripe_config(client: Any, customer_id: str, delivery_method_id: str | None) -> str | None:
    """The id of an archived Stripe configuration of the customer (on the delivery method), if any."""
    configs = client.v1.customers.retrieve_billing_configurations(
        customer_id=customer_id, include_archived=True
    ).data
    archived = [
        c.id
        for c in configs or []
        if c.billing_provider == "stripe"
        and c.archived_at
        and delivery_method_id in (None, c.delivery_method_id)
    ]
    return archived[-1] if archived else None


def check_stripe(stack: Stack, client: Any, customer_ids: dict[str, str], report: Report) -> dict[str, str]:
    """Add the Stripe side of the stack to `report`; returns {customer_id: matching configuration id}.

    go_live true: each listed customer must have exactly its catalog configuration active (as the
    provider leaves it after an `up`); any other active Stripe configuration on a catalog customer is
    reported (it may invoice the customer a second time). go_live false: no catalog customer may have an
    active Stripe configuration yet (it would already be invoiced through Stripe, before the gate).
    """
    from providers.stripe_account import stripe_delivery_method
    from providers.stripe_configurations import desired_configurations, stripe_configurations

    stripe = stack.environment.stripe
    assert stripe is not None
    label = f"StripeIntegration '{STRIPE_RESOURCE_NAME}'"
    live_ids = {name: i for name, i in customer_ids.items() if not is_missing(i)}
    name_of = {i: name for name, i in live_ids.items()}
    active = stripe_configurations(client, sorted(name_of), None, label, missing_ok=True)

    if not stripe.go_live:
        why = "active while go_live is false (invoiced through Stripe before the gate opened)"
        for customer_id, configs in sorted(active.items()):
            report.unmanaged.extend(_stripe_extra(c, name_of[customer_id], why) for c in configs)
        return {}

    delivery_method_id: str | None = None
    if stripe_connections(client):
        # Several connected Stripe accounts: stripe.delivery_method_id, else the one naming
        # expected_account_id (else an error, as in up).
        delivery_method_id = stripe_delivery_method(
            client, stripe.expected_account_id, label, stripe.delivery_method_id
        )
    else:
        report.missing.append(
            {
                "kind": "stripe_connection",
                "name": STRIPE_RESOURCE_NAME,
                "id": None,
                "detail": "connect Stripe once in the Metronome dashboard: Settings > Integrations > Stripe",
            }
        )

    inputs = stripe_inputs(stack, customer_ids) or {}
    wanted = {w["customer_id"]: w for w in desired_configurations(inputs) if not is_missing(w["customer_id"])}
    matched: dict[str, str] = {}
    for customer_id, configs in sorted(active.items()):
        name, want = name_of[customer_id], wanted.get(customer_id)
        if want is None:
            why = (
                "active, but the catalog lists no stripe_customer_id for this customer (double-billing risk)"
            )
            report.unmanaged.extend(_stripe_extra(c, name, why) for c in configs)
            continue
        # Only the integration's Stripe account is its business (as in the provider); with no connection
        # listed there is no account to tell them apart by.
        own = [
            c
            for c in configs
            if delivery_method_id is None or c.get("delivery_method_id") in (None, delivery_method_id)
        ]
        desired = (want["stripe_customer_id"], want["collection_method"])
        hit = next((c for c in own if stripe_link(c) == desired), None) or (own[0] if own else None)
        for c in configs:
            if c is not hit:
                why = "a second active Stripe configuration, not in the catalog (double-billing risk)"
                report.unmanaged.append(_stripe_extra(c, name, why))
        if hit is None:
            archived = _archived_stripe_config(client, customer_id, delivery_method_id)
            report.missing.append(
                {
                    "kind": STRIPE_KIND,
                    "name": name,
                    "id": archived,
                    "customer_id": customer_id,
                    "detail": "archived" if archived else "never set",
                }
            )
            continue
        report.matched += 1
        live = stripe_link(hit)
        fields = [
            FieldDrift(f, d, h)
            for f, d, h in zip(("stripe_customer_id", "stripe_collection_method"), desired, live, strict=True)
            if d != h
        ]
        if fields:
            report.drifted.append(
                {
                    "kind": STRIPE_KIND,
                    "name": name,
                    "id": hit["id"],
                    "customer_id": customer_id,
                    "fields": fields,
                }
            )
        else:
            matched[customer_id] = hit["id"]
    return matched


# --------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    try:
        report = _drift(args)
    except CommandError as err:
        if args.json:  # a machine reader gets the error where it reads the report
            print(json.dumps({"stack": args.stack, "error": str(err)}))
        raise
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print(render(report))
    return EXIT_OK if report.in_sync else EXIT_ATTENTION


def _drift(args: argparse.Namespace) -> Report:
    stacks = Path(args.stacks_dir)
    missing = missing_stack(stacks, args.stack)
    if missing:
        raise CommandError(missing)
    try:
        stack = load_stack(stacks / args.stack)
    except CatalogError as err:
        raise CommandError(str(err)) from None
    try:
        base_url, token = resolve_connection(args.stack, args.base_url)
    except SetupError as err:
        raise CommandError(str(err)) from None
    _, source = resolve_base_url(args.stack, args.base_url)
    try:
        client = api_client(base_url, token)
        with Progress("drift") as progress:
            return check_drift(stack, client, project_name(args.project), base_url, progress)
    except Exception as err:  # any API/connection failure is an error, never "drift"
        token_setting = f"METRONOME_BEARER_TOKEN (or metronome:apiToken in Pulumi.{args.stack}.yaml)"
        raise CommandError(
            f"drift check failed: {describe_failure(err, base_url, source, token_setting)}"
        ) from None
