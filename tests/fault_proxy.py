"""A fault-injecting HTTP proxy on 127.0.0.1, between the provider host and the emulator.

    with FaultProxy(emulator.base_url) as proxy:          # give proxy.base_url to the provider host
        late = proxy.add(Rule("GET", "/v1/billable-metrics", hold_response=some_event))
        slow = proxy.add(Rule("POST", "/v1/billable-metrics/create", body_has="m-b", fault=PROCESSED_500))
        slow.arrived.wait(10)
        proxy.random_faults(0.3, seed=7)                   # every other request: a fault 30% of the time

Faults (a rule's `fault`, or drawn at random):
- UNPROCESSED_500: answered 500 without forwarding (the API never saw it);
- PROCESSED_500: forwarded, the API's answer dropped, 500 instead (the API did the work);
- EMPTY_BODY: forwarded, answered 200 `{}`;
- NOT_JSON: forwarded, answered 200 with a JSON content type and an HTML body;
- HTML: forwarded, answered 200 `text/html`;
- DELAY: forwarded after `delay_s`; LATE: answered `delay_s` after the API answered;
- REFUSED_400: answered 400 without forwarding (a rule's fault only).
The proxy's 500s say `retry-after-ms: 5`, which the SDK and the provider honour, so tests stay fast.

Ordering comes from events, never from sleeps: a rule may wait for an event before forwarding
(`hold_request`) or before answering (`hold_response`, a late response), may apply only once an event
is set (`after`), and sets its own events as a matching request arrives, is forwarded (the API has
answered) and is answered (just before the answer is sent, so the client acts on it after the
event). Every event wait is bounded (`HOLD_TIMEOUT`), and closing the proxy releases every hold.
`proxy.log` lists (method, path, fault) for every request.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

UNPROCESSED_500 = "unprocessed-500"
PROCESSED_500 = "processed-500"
EMPTY_BODY = "empty-body"
NOT_JSON = "not-json"
HTML = "html"
DELAY = "delay"
LATE = "late"
REFUSED_400 = "refused-400"
ALL_FAULTS = (UNPROCESSED_500, PROCESSED_500, EMPTY_BODY, NOT_JSON, HTML, DELAY, LATE)
HOLD_TIMEOUT = 20.0  # seconds: a hold that long means the test is wrong; it fails instead of hanging
# Headers not passed on as they are (the proxy re-frames the body; httpx has decoded it).
HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "content-encoding", "keep-alive"}


@dataclass(eq=False)
class Rule:
    """Requests matching `method`, `path` (a regex matched in full against the path without the query)
    and `body_has` (a substring of the body) get `fault`, at most `times` of them (None: all)."""

    method: str | None = None
    path: str | None = None
    body_has: str | None = None
    fault: str | None = None
    times: int | None = 1
    after: threading.Event | None = None  # the rule matches only once this is set
    hold_request: threading.Event | None = None  # forward only once this is set
    hold_response: threading.Event | None = None  # answer only once this is set
    delay_s: float = 0.05
    skip: int = 0  # the first `skip` matching requests pass through untouched
    arrived: threading.Event = field(default_factory=threading.Event)
    forwarded: threading.Event = field(default_factory=threading.Event)  # the API has answered it
    answered: threading.Event = field(default_factory=threading.Event)  # set just before the answer is sent
    matched: int = 0
    skipped: int = 0
    bodies: list[bytes] = field(default_factory=list)  # of the requests it matched
    headers: list[dict[str, str]] = field(default_factory=list)  # of the requests it matched

    def matches(self, method: str, path: str, body: bytes) -> bool:
        hit = (
            (self.times is None or self.matched < self.times)
            and (self.after is None or self.after.is_set())
            and (self.method is None or self.method == method)
            and (self.path is None or re.fullmatch(self.path, path) is not None)
            and (self.body_has is None or self.body_has.encode() in body)
        )
        if hit and self.skipped < self.skip:
            self.skipped += 1
            return False
        return hit


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self._rate = 0.0
        self._faults: tuple[str, ...] = ()
        self._rng = random.Random(0)
        self._closed = threading.Event()
        self._http = httpx.Client(base_url=self.upstream, timeout=60)
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """No rules, no random faults: every request passes through."""
        with self._lock:
            self.rules.clear()
            self._rate = 0.0

    def random_faults(self, rate: float, seed: int, faults: tuple[str, ...] = ALL_FAULTS) -> None:
        with self._lock:
            self._rate, self._faults, self._rng = rate, faults, random.Random(seed)

    def faults_injected(self) -> int:
        with self._lock:
            return sum(1 for _, _, fault in self.log if fault)

    # -- one request ---------------------------------------------------------------------------

    def _pick(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[Rule | None, str | None]:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, body):
                    rule.matched += 1
                    rule.bodies.append(body)
                    rule.headers.append(
                        {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}
                    )
                    return rule, rule.fault
            fault = self._rng.choice(self._faults) if self._rate and self._rng.random() < self._rate else None
            return None, fault

    def _wait(self, event: threading.Event | None) -> None:
        if event is None:
            return
        deadline = time.monotonic() + HOLD_TIMEOUT
        while not event.is_set() and not self._closed.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("fault proxy: a held request waited too long for its event")
            event.wait(0.05)

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[Rule | None, int, dict[str, str], bytes]:
        """(the rule that matched, status, headers, body) of the answer to one request."""
        path = target.split("?", 1)[0]
        rule, fault = self._pick(method, path, headers, body)
        with self._lock:
            self.log.append((method, path, fault))
        if rule:
            rule.arrived.set()
            self._wait(rule.hold_request)
        if fault == UNPROCESSED_500:
            return rule, *_error(500, "Internal server error (injected by the fault proxy before forwarding)")
        if fault == REFUSED_400:
            return rule, *_error(400, "Bad request (injected by the fault proxy)")
        if fault == DELAY:
            time.sleep(rule.delay_s if rule else 0.05)
        sent = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
        upstream = self._http.request(method, target, headers=sent, content=body)
        if rule:
            rule.forwarded.set()
            self._wait(rule.hold_response)
        if fault == LATE:
            time.sleep(rule.delay_s if rule else 0.05)
        if fault == PROCESSED_500:
            return rule, *_error(500, "Internal server error (injected by the fault proxy after forwarding)")
        if fault == EMPTY_BODY:
            return rule, 200, {"content-type": "application/json"}, b"{}"
        if fault == NOT_JSON:
            return rule, 200, {"content-type": "application/json"}, b"<html>upstream hiccup</html>"
        if fault == HTML:
            return rule, 200, {"content-type": "text/html"}, b"<html>upstream hiccup</html>"
        answer_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
        return rule, upstream.status_code, answer_headers, upstream.content


def _without_token(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (a provider host killed mid-request) is part of the test


def _error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"message": message}).encode()
    return status, {"content-type": "application/json", "retry-after-ms": "5"}, body


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            rule, request_headers = None, dict(self.headers)
            try:
                rule, status, headers, content = proxy.handle(self.command, self.path, request_headers, body)
            except Exception as exc:  # noqa: BLE001 - the proxy itself failed: say so, as a gateway would
                status, headers, content = _error(502, f"fault proxy: {type(exc).__name__}: {exc}")
            if rule:  # before sending: whatever the client does about the answer comes after it
                rule.answered.set()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            self.wfile.flush()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    return Handler
