"""A local Stripe for tests: localstripe for customers, plus a small server for what localstripe lacks.

localstripe (`python -m localstripe`) implements customers, but not Billing Meters, meter events and their
summaries, metered prices with meters, credit grants, billing alerts or `/v1/account`. `FakeStripe` runs
localstripe as a subprocess and, in front of it,
an HTTP server (a thread of the test process) that answers those in Stripe's documented shapes
(`{"object": "list", "data": [...], "has_more": ..., "url": ...}`, `starting_after` paging, `expand`)
and forwards everything else to localstripe. Point the `stripe` library at `FakeStripe.api_base`.
Each instance keeps localstripe's state file in a private temporary directory (`state_file`), so test
runs at the same time never share /tmp/localstripe.pickle.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import stripe
from conftest import free_port

API_KEY = "sk_test_fake_stripe_key"
ACCOUNT_ID = "acct_1FakeStripe"

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}{secrets.token_hex(4)}"


# Runs localstripe with its state file at argv[1] instead of /tmp/localstripe.pickle. localstripe
# 1.15 reads/writes that path only in Store.try_load_from_disk / Store.dump_to_disk; if a later
# version renames them, fail at start rather than silently share /tmp again.
_LOCALSTRIPE_LAUNCHER = """
import pickle, sys
from localstripe import resources, server

state_file = sys.argv.pop(1)
for name in ("try_load_from_disk", "dump_to_disk"):
    if not hasattr(resources.Store, name):
        sys.exit(f"localstripe has no Store.{name}: cannot make its state file private")


def try_load_from_disk(self):
    try:
        with open(state_file, "rb") as f:
            old = pickle.load(f)
    except FileNotFoundError:
        return
    self.clear()
    self.update(old)


def dump_to_disk(self):
    with open(state_file, "wb") as f:
        pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)


resources.Store.try_load_from_disk = try_load_from_disk
resources.Store.dump_to_disk = dump_to_disk
server.start()
"""


def stripe_error(
    status: int, message: str, type_: str = "invalid_request_error", code: str | None = None
) -> dict:
    return {"status": status, "body": {"error": {"type": type_, "message": message, "code": code}}}


class FakeStripe:
    """localstripe + the extras. Keys map to accounts so a test can use a key of another account."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {API_KEY: ACCOUNT_ID}
        self.meters: dict[str, dict] = {}
        self.products: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.credit_grants: dict[str, dict] = {}
        self.alerts: dict[str, dict] = {}  # billing alerts (usage and credit balance thresholds)
        self.grant_used: dict[str, int] = {}  # cents of each grant already consumed
        self.meter_events: list[dict] = []  # accepted POST /v1/billing/meter_events, in arrival order
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self._localstripe_port = free_port()
        # localstripe pickles its whole state to the hard-coded /tmp/localstripe.pickle after every write
        # (TMPDIR and cwd do not change that path), so two runs at once would overwrite each other's file.
        # The launcher points the state file into a directory private to this instance (removed by stop()).
        self.state_dir = tempfile.mkdtemp(prefix="fake-stripe-")
        self.state_file = os.path.join(self.state_dir, "localstripe.pickle")
        self._log = open(os.path.join(self.state_dir, "localstripe.log"), "wb")  # closed by stop()
        self._localstripe = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _LOCALSTRIPE_LAUNCHER,
                self.state_file,
                "--port",
                str(self._localstripe_port),
                "--from-scratch",  # nothing to load: the state file is new
            ],
            cwd=self.state_dir,
            env={**os.environ, "TMPDIR": self.state_dir},
            stdout=subprocess.DEVNULL,
            stderr=self._log,  # a file, not a pipe: its access log would fill a pipe and block it
        )
        self.localstripe_url = f"http://127.0.0.1:{self._localstripe_port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.api_base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._wait_for_localstripe()

    def _wait_for_localstripe(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._localstripe.poll() is not None:
                with open(self._log.name, "rb") as log:
                    err = log.read().decode(errors="replace")
                self.stop()
                raise RuntimeError(f"localstripe exited at start: {err.strip()}")
            try:
                httpx.get(f"{self.localstripe_url}/v1/customers", auth=(API_KEY, ""), timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("localstripe did not start within 30 s")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._localstripe.poll() is None:
            self._localstripe.terminate()
            try:
                self._localstripe.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._localstripe.kill()
                self._localstripe.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def client(self, api_key: str = API_KEY) -> stripe.StripeClient:
        return stripe.StripeClient(api_key, base_addresses={"api": self.api_base}, max_network_retries=0)

    # ----------------------------------------------------------------------------------- seeding

    def create_customer(self, name: str, **fields: Any) -> str:
        """A customer in localstripe (through the front server, like any client)."""
        return self.client().v1.customers.create(params={"name": name, **fields}).id

    def add_meter(
        self,
        event_name: str,
        formula: str = "sum",
        value_key: str = "value",
        display_name: str | None = None,
        dimensions: list[str] | None = None,
        customer_key: str = "stripe_customer_id",
    ) -> dict:
        meter = {
            "id": new_id("mtr"),
            "object": "billing.meter",
            "created": int(time.time()),
            "customer_mapping": {"event_payload_key": customer_key, "type": "by_id"},
            "default_aggregation": {"formula": formula},
            "display_name": display_name or event_name,
            "event_name": event_name,
            "event_time_window": None,
            "livemode": False,
            "status": "active",
            "status_transitions": {"deactivated_at": None},
            "updated": int(time.time()),
            "value_settings": {"event_payload_key": value_key},
        }
        if dimensions:
            meter["dimension_payload_keys"] = list(dimensions)
        self.meters[meter["id"]] = meter
        return meter

    def add_product(self, name: str) -> dict:
        product = {"id": new_id("prod"), "object": "product", "name": name, "active": True, "metadata": {}}
        self.products[product["id"]] = product
        return product

    def add_price(
        self,
        product: str,
        *,
        meter: str | None = None,
        currency: str = "usd",
        unit_amount: int | None = None,
        unit_amount_decimal: str | None = None,
        tiers: list[dict] | None = None,
        tiers_mode: str | None = None,
        transform_quantity: dict | None = None,
        usage_type: str = "metered",
        nickname: str | None = None,
        lookup_key: str | None = None,
        interval: str = "month",
        interval_count: int = 1,
    ) -> dict:
        if unit_amount is not None and unit_amount_decimal is None:
            unit_amount_decimal = str(unit_amount)
        price = {
            "id": new_id("price"),
            "object": "price",
            "active": True,
            "billing_scheme": "tiered" if tiers else "per_unit",
            "created": int(time.time()),
            "currency": currency,
            "livemode": False,
            "lookup_key": lookup_key,
            "metadata": {},
            "nickname": nickname,
            "product": product,
            "recurring": {
                "aggregate_usage": None,
                "interval": interval,
                "interval_count": interval_count,
                "meter": meter,
                "usage_type": usage_type,
            },
            "tax_behavior": "unspecified",
            "tiers_mode": tiers_mode if tiers else None,
            "transform_quantity": transform_quantity,
            "type": "recurring",
            "unit_amount": unit_amount,
            "unit_amount_decimal": unit_amount_decimal,
        }
        if tiers:
            # Stripe's tier shape; `tiers` is only returned when expanded (as in the real API).
            price["tiers"] = [
                {
                    "flat_amount": t.get("flat_amount"),
                    "flat_amount_decimal": None if t.get("flat_amount") is None else str(t["flat_amount"]),
                    "unit_amount": t.get("unit_amount"),
                    "unit_amount_decimal": t.get("unit_amount_decimal", str(t.get("unit_amount"))),
                    "up_to": t.get("up_to"),
                }
                for t in tiers
            ]
        self.prices[price["id"]] = price
        return price

    def add_subscription(
        self,
        customer: str,
        price_ids: list[str],
        collection_method: str = "charge_automatically",
        quantities: dict[str, int] | None = None,
    ) -> dict:
        """A subscription; an item on a licensed price has a quantity (1 unless `quantities` says)."""
        sub_id = new_id("sub")
        items = [
            {
                "id": new_id("si"),
                "object": "subscription_item",
                "price": self.prices[p],
                "subscription": sub_id,
                **(
                    {"quantity": (quantities or {}).get(p, 1)}
                    if self.prices[p]["recurring"]["usage_type"] == "licensed"
                    else {}
                ),
            }
            for p in price_ids
        ]
        subscription = {
            "id": sub_id,
            "object": "subscription",
            "collection_method": collection_method,
            "created": int(time.time()),
            "currency": "usd",
            "customer": customer,
            "items": {
                "object": "list",
                "data": items,
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "livemode": False,
            "metadata": {},
            "status": "active",
        }
        self.subscriptions[sub_id] = subscription
        return subscription

    def add_credit_grant(
        self,
        customer: str,
        value: int,
        *,
        currency: str = "usd",
        name: str | None = None,
        effective_at: int | None = None,
        expires_at: int | None = None,
        priority: int | None = 50,
        category: str = "paid",
        voided: bool = False,
        used: int = 0,
    ) -> dict:
        grant = {
            "id": new_id("credgr"),
            "object": "billing.credit_grant",
            "amount": {"monetary": {"currency": currency, "value": value}, "type": "monetary"},
            "applicability_config": {"scope": {"price_type": "metered"}},
            "category": category,
            "created": int(time.time()),
            "customer": customer,
            "effective_at": effective_at,
            "expires_at": expires_at,
            "livemode": False,
            "metadata": {},
            "name": name,
            "priority": priority,
            "test_clock": None,
            "updated": int(time.time()),
            "voided_at": int(time.time()) if voided else None,
        }
        self.credit_grants[grant["id"]] = grant
        self.grant_used[grant["id"]] = used
        return grant

    def add_alert(
        self,
        title: str,
        *,
        meter: str | None = None,
        gte: int | None = None,
        customer: str | None = None,
        credit_below: int | None = None,
        currency: str = "usd",
        status: str = "active",
    ) -> dict:
        """A billing alert: a usage threshold on `meter` (`gte`), or a customer's credit balance threshold
        (`credit_below`, cents), in Stripe's shape (`billing.Alert`: `alert_type` and the object of that
        name; the credit balance kind as Stripe's API reference and stripe-java's
        Alert.CreditBalanceThreshold have it)."""
        filters = [{"type": "customer", "customer": customer}] if customer else None
        alert: dict[str, Any] = {
            "id": new_id("alrt"),
            "object": "billing.alert",
            "livemode": False,
            "status": status,
            "title": title,
        }
        if meter is not None:
            alert["alert_type"] = "usage_threshold"
            alert["usage_threshold"] = {
                "filters": filters,
                "gte": gte,
                "meter": meter,
                "recurrence": "one_time",
            }
        else:
            alert["alert_type"] = "credit_balance_threshold"
            alert["credit_balance_threshold"] = {
                "filters": filters,
                "lte": {
                    "balance_type": "monetary",
                    "monetary": {"currency": currency, "value": credit_below},
                },
            }
        self.alerts[alert["id"]] = alert
        return alert

    def credit_balance_summary(self, query: dict[str, str]) -> dict:
        """GET /v1/billing/credit_balance_summary for one grant (filter[type]=credit_grant)."""
        grant = self.credit_grants.get(query.get("filter[credit_grant]", ""))
        if grant is None or grant["customer"] != query.get("customer"):
            return stripe_error(404, "No such credit grant for that customer", code="resource_missing")
        money = grant["amount"]["monetary"]
        left = 0 if grant["voided_at"] else money["value"] - self.grant_used[grant["id"]]
        balance = {"monetary": {"currency": money["currency"], "value": left}, "type": "monetary"}
        body = {
            "object": "billing.credit_balance_summary",
            "customer": grant["customer"],
            "livemode": False,
            "balances": [{"available_balance": balance, "ledger_balance": balance}],
        }
        return {"status": 200, "body": body}

    # ----------------------------------------------------------------------------------- meter events

    def record_meter_event(self, form: dict[str, str]) -> dict:
        """POST /v1/billing/meter_events (form-encoded, `payload[key]=value`), validated as Stripe
        documents it (MeterEventCreateParams): event_name and payload required, timestamp within the past
        35 days or up to 5 minutes ahead, identifier unique. Matching a meter and a customer happens later,
        when summaries are read (Stripe reports such errors asynchronously)."""
        payload = {k[len("payload[") : -1]: v for k, v in form.items() if k.startswith("payload[")}
        if not form.get("event_name"):
            return stripe_error(400, "Missing required param: event_name.", code="parameter_missing")
        if not payload:
            return stripe_error(400, "Missing required param: payload.", code="parameter_missing")
        now = int(time.time())
        try:
            timestamp = int(form.get("timestamp") or now)
        except ValueError:
            return stripe_error(400, "Invalid integer: timestamp", code="parameter_invalid_integer")
        if not now - 35 * 86400 <= timestamp <= now + 300:
            return stripe_error(
                400,
                "Timestamp must be within the past 35 calendar days or up to 5 minutes in the future.",
                code="parameter_invalid_integer",
            )
        identifier = form.get("identifier") or new_id("mev")
        if any(e["identifier"] == identifier for e in self.meter_events):
            return stripe_error(400, f"A meter event with identifier {identifier} already exists.")
        event = {
            "object": "billing.meter_event",
            "created": now,
            "event_name": form["event_name"],
            "identifier": identifier,
            "livemode": False,
            "payload": payload,
            "timestamp": timestamp,
        }
        self.meter_events.append(event)
        return {"status": 200, "body": event}

    def event_summaries(self, meter_id: str, query: dict[str, str]) -> dict:
        """GET /v1/billing/meters/{id}/event_summaries: the customer's events of the meter aggregated by
        its formula, per `value_grouping_window` (hour/day, with start/end aligned to it) or one summary
        for the whole range. As in Stripe's example response, windows without events are left out and the
        newest comes first; `limit` / `starting_after` page."""
        meter = self.meters.get(meter_id)
        if meter is None:
            return stripe_error(404, f"No such billing meter: '{meter_id}'", code="resource_missing")
        for name in ("customer", "start_time", "end_time"):
            if name not in query:
                return stripe_error(400, f"Missing required param: {name}.", code="parameter_missing")
        start, end = int(query["start_time"]), int(query["end_time"])
        window = query.get("value_grouping_window")
        step = {"hour": 3600, "day": 86400, None: None}.get(window, 0)
        if step == 0:
            return stripe_error(400, f"Invalid value_grouping_window: {window}", code="parameter_invalid")
        align = step or 60
        for name, value in (("start_time", start), ("end_time", end)):
            if value % align:
                unit = {3600: "hour", 86400: "UTC day", 60: "minute"}[align]
                return stripe_error(400, f"{name} must be aligned with {unit} boundaries.")
        if end <= start:
            return stripe_error(400, "end_time must be after start_time.")
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        mine = sorted(
            (e for e in self.meter_events if e["event_name"] == meter["event_name"]
             and e["payload"].get(customer_key) == query["customer"] and start <= e["timestamp"] < end),
            key=lambda e: e["timestamp"],
        )  # fmt: skip
        span = step or end - start  # no window: one summary for the whole range
        windows: dict[int, list[dict]] = {} if step else {start: []}
        for event in mine:
            windows.setdefault(start + (event["timestamp"] - start) // span * span, []).append(event)
        formula = meter["default_aggregation"]["formula"]
        summaries = []
        for w_start in sorted(windows, reverse=True):
            events = windows[w_start]
            values = [float(e["payload"].get(value_key) or 0) for e in events]
            value = {"count": float(len(events)), "last": values[-1] if values else 0.0}.get(
                formula, sum(values)
            )
            summaries.append(
                {
                    "id": f"mtrusg_{meter_id}_{query['customer']}_{w_start}",
                    "object": "billing.meter_event_summary",
                    "aggregated_value": value,
                    "end_time": min(w_start + span, end),
                    "livemode": False,
                    "meter": meter_id,
                    "start_time": w_start,
                }
            )
        url = f"/v1/billing/meters/{meter_id}/event_summaries"
        by_id = {summary["id"]: summary for summary in summaries}
        return {"status": 200, "body": _list_page(url, by_id, query, None, [], self)}

    # ----------------------------------------------------------------------------------- serving

    def routes(self) -> list[tuple[str, Callable[[dict], list[dict]] | None, dict[str, dict]]]:
        """(path prefix, filter, collection) for the collections served here rather than by localstripe."""
        return [
            ("/v1/billing/meters", None, self.meters),
            ("/v1/billing/alerts", None, self.alerts),
            ("/v1/billing/credit_grants", _filter_on("customer"), self.credit_grants),
            ("/v1/prices", _filter_prices, self.prices),
            ("/v1/products", None, self.products),
            ("/v1/subscriptions", _filter_on("customer"), self.subscriptions),
        ]

    def answer(
        self, method: str, path: str, pairs: list[tuple[str, str]], api_key: str | None, body: bytes = b""
    ) -> dict | None:
        """A response `{"status", "body"}` for the extras, or None to forward to localstripe."""
        query = dict(pairs)
        if (
            path == "/v1/account"
            or path.startswith("/v1/billing/")
            or any(path == p or path.startswith(p + "/") for p, _, _ in self.routes())
        ):
            if api_key not in self.keys:
                return stripe_error(
                    401, f"Invalid API Key provided: {str(api_key)[:8]}***", "invalid_request_error"
                )
        else:
            return None
        if method == "POST" and path == "/v1/billing/meter_events":
            return self.record_meter_event(dict(parse_qsl(body.decode())))
        if method != "GET":
            return stripe_error(400, f"{method} {path} is not supported by the fake Stripe server")
        if path == "/v1/account":
            return {
                "status": 200,
                "body": {"id": self.keys[api_key], "object": "account", "type": "standard"},
            }
        if path == "/v1/billing/credit_balance_summary":
            return self.credit_balance_summary(query)
        if path.startswith("/v1/billing/meters/") and path.endswith("/event_summaries"):
            return self.event_summaries(path.split("/")[4], query)
        expand = [v for k, v in pairs if k.startswith("expand")]
        for prefix, filt, collection in self.routes():
            if path == prefix:
                return {"status": 200, "body": _list_page(prefix, collection, query, filt, expand, self)}
            if path.startswith(prefix + "/"):
                obj_id = path[len(prefix) + 1 :]
                if obj_id not in collection:
                    return stripe_error(404, f"No such object: '{obj_id}'", code="resource_missing")
                return {"status": 200, "body": _expand(collection[obj_id], expand, self)}
        return stripe_error(404, f"Unrecognized request URL (GET: {path})")


def _filter_on(key: str) -> Callable[[dict], Callable[[dict], bool]]:
    def make(query: dict) -> Callable[[dict], bool]:
        wanted = query.get(key)
        return lambda obj: wanted is None or obj.get(key) == wanted

    return make  # type: ignore[return-value]


def _filter_prices(query: dict) -> Callable[[dict], bool]:
    def keep(price: dict) -> bool:
        if "type" in query and price["type"] != query["type"]:
            return False
        if "active" in query and str(price["active"]).lower() != query["active"]:
            return False
        return True

    return keep


def _expand(obj: dict, expand: list[str], fake: FakeStripe, prefix: str = "") -> dict:
    """Apply `expand` paths (already stripped of `data.` for list items) to one object copy."""
    out = json.loads(json.dumps(obj))
    if obj.get("object") == "price":
        if "tiers" not in expand:
            out.pop("tiers", None)
        if "product" in expand and isinstance(out.get("product"), str):
            out["product"] = fake.products.get(out["product"], out["product"])
    if obj.get("object") == "subscription":
        nested = [e[len("items.data.price.") :] for e in expand if e.startswith("items.data.price.")]
        out["items"]["data"] = [
            {**item, "price": _expand(fake.prices[item["price"]["id"]], nested, fake)}
            for item in out["items"]["data"]
        ]
    return out


def _list_page(
    url: str,
    collection: dict[str, dict],
    query: dict[str, str],
    filt: Callable[[dict], Callable[[dict], bool]] | None,
    expand: list[str],
    fake: FakeStripe,
) -> dict:
    keep = filt(query) if filt else (lambda _obj: True)
    items = [obj for obj in collection.values() if keep(obj)]
    limit = min(max(int(query.get("limit", 10)), 1), 100)
    start = 0
    if "starting_after" in query:
        ids = [obj["id"] for obj in items]
        start = ids.index(query["starting_after"]) + 1 if query["starting_after"] in ids else len(ids)
    page = items[start : start + limit]
    item_expand = [e[len("data.") :] for e in expand if e.startswith("data.")]
    return {
        "object": "list",
        "data": [_expand(obj, item_expand, fake) for obj in page],
        "has_more": start + limit < len(items),
        "url": url,
    }


def _api_key(header: str | None) -> str | None:
    import base64

    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme == "Bearer":
        return value
    if scheme == "Basic":
        return base64.b64decode(value).decode().split(":")[0]
    return None


def _handler_for(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            fake.requests.append((self.command, parts.path))
            pairs = parse_qsl(parts.query)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            key = _api_key(self.headers.get("Authorization"))
            answer = fake.answer(self.command, parts.path, pairs, key, body)
            if answer is None:
                self._forward(body)
            else:
                self._send(answer["status"], json.dumps(answer["body"]).encode())

        def _forward(self, body: bytes) -> None:
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
            }
            request = urllib.request.Request(
                fake.localstripe_url + self.path, data=body or None, method=self.command, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self._send(response.status, response.read())
            except urllib.error.HTTPError as err:
                self._send(err.code, err.read())

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", "req_" + secrets.token_hex(6))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _handle

    return Handler
