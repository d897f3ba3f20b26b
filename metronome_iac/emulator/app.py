"""The emulator's FastAPI app: bearer auth, fault and latency knobs, request statistics, routers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metronome_iac.emulator.common import ApiError
from metronome_iac.emulator.routers import ALL_ROUTERS
from metronome_iac.emulator.state import Settings, Stats
from metronome_iac.emulator.store import Store

ADMIN_PREFIX = "/_emulator"
# One line per request at info level (method, path, status, milliseconds): `emulator` prints them in the
# foreground, and `make up` keeps them in .emulator/emulator.log.
request_log = logging.getLogger("metronome_iac.emulator.requests")


class Idempotency:
    """Metronome's Idempotency-Key on POST requests (docs.metronome.com/api-reference/idempotency):
    once a request with a key begins executing, its answer is kept (a 500 included) and given again,
    unchanged, to every later request with that key and the same parameters, for at least 24 h; the
    key with other parameters answers 409, and so does a request whose key is still executing.
    A request refused before it runs (401, 429, a 4xx of validation) keeps nothing."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.running: set[str] = set()  # touched only on the event loop: no lock needed

    @staticmethod
    def fingerprint(request: Request, body: bytes) -> str:
        return hashlib.sha256(f"{request.url.path}?{request.url.query}\n".encode() + body).hexdigest()

    def begin(self, key: str, fingerprint: str) -> Response | None:
        """The answer to give without running the request (a replay or a 409), or None: run it."""
        kept = self.store.idempotent_answer(key, time.time() - self.settings.idempotency_ttl_s)
        if kept is not None:
            if kept[0] != fingerprint:
                message = f"Idempotency-Key '{key}' was already used for a request with different parameters"
                return JSONResponse({"message": message}, status_code=409)
            return Response(kept[2], status_code=kept[1], media_type="application/json")
        if key in self.running:
            message = f"a request with Idempotency-Key '{key}' is still being processed"
            return JSONResponse({"message": message}, status_code=409)
        self.running.add(key)
        return None

    def finish(self, key: str, fingerprint: str, status: int, body: bytes) -> None:
        self.running.discard(key)
        if status < 400 or status >= 500:
            self.store.keep_idempotent_answer(key, fingerprint, status, body, time.time())


def route_template(routes: list[APIRoute], request: Request) -> str:
    """`METHOD /path/{param}` of the API route the request matches (the raw path if none does)."""
    path = request.url.path
    for route in routes:
        if request.method in route.methods and route.path_regex.match(path):
            return f"{request.method} {route.path}"
    return f"{request.method} {path}"


def _auth_error(request: Request, token: str | None) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return "Unauthorized: missing bearer token in the Authorization header"
    if token is not None and value.strip() != token:
        return "Unauthorized: invalid bearer token"
    return None


class RequestKnobs:
    """What the emulator does around every API request: bearer auth, the injected latency and faults, the
    Idempotency-Key, per-route statistics and the request log line. A plain ASGI middleware: Starlette's
    `@app.middleware("http")` runs each request through a task group and memory streams, which was most
    of the emulator's CPU per request, on the same cores as the provider it stands in for Metronome to."""

    def __init__(self, app: ASGIApp, *, api_routes: list[APIRoute], idempotency: Idempotency) -> None:
        self.app, self.api_routes, self.idempotency = app, api_routes, idempotency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if scope["path"].startswith(ADMIN_PREFIX):  # knob endpoints: no auth, never failed or counted
                await self.app(scope, receive, send_logged)
            else:
                await self._api(Request(scope, receive), send_logged)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            request_log.info("%s %s %d %.0f ms", scope["method"], scope["path"], status[0], elapsed_ms)

    async def _api(self, request: Request, send: Send) -> None:
        app = request.app
        settings: Settings = app.state.settings
        stats: Stats = app.state.stats
        stats.total += 1
        route = route_template(self.api_routes, request)
        stats.by_route[route] += 1
        problem = _auth_error(request, settings.token)
        if problem:
            await JSONResponse({"message": problem}, status_code=401)(request.scope, request.receive, send)
            return
        if settings.latency_ms > 0:
            await asyncio.sleep(settings.latency_ms / 1000)
        mode = None
        if settings.fail_rate > 0 and app.state.rng.random() < settings.fail_rate:
            mode = app.state.rng.choice(("429", "500-before", "500-after"))
            stats.injected_failures[mode] += 1
        if mode == "429":
            # Small Retry-After keeps tests fast; retry-after-ms is what the SDK reads first.
            answer: Response = JSONResponse(
                {"message": "Too many requests (injected by the emulator)"},
                status_code=429,
                headers={"Retry-After": "0", "retry-after-ms": "20"},
            )
            await answer(request.scope, request.receive, send)
            return
        if mode == "500-before":
            answer = JSONResponse(
                {"message": "Internal server error (injected before processing)"}, status_code=500
            )
            await answer(request.scope, request.receive, send)
            return
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        fingerprint = ""
        body = await request.body()  # read once here; the app is given it again
        if key:
            fingerprint = Idempotency.fingerprint(request, body)
            early = self.idempotency.begin(key, fingerprint)
            if early is not None:
                stats.idempotent_replays += early.status_code != 409
                await early(request.scope, request.receive, send)
                return
        given = False

        async def receive_body() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await request.receive()

        # The app's answer is held back when it may be replaced (a fault after processing) or kept (a key).
        hold = bool(key) or mode == "500-after"
        held: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
        started_sending = False

        async def send_or_hold(message: Message) -> None:
            nonlocal started_sending
            if not hold:
                started_sending = True
                await send(message)
            elif message["type"] == "http.response.start":
                held["status"], held["headers"] = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                held["body"] += message.get("body", b"")

        handling_started = time.perf_counter()
        try:
            try:
                await self.app(request.scope, receive_body, send_or_hold)
            except Exception as exc:  # an emulator bug still answers in the API's error shape
                if started_sending:
                    raise
                hold = True
                message = f"Internal server error: {type(exc).__name__}: {exc}"
                held["status"], held["headers"] = 500, [(b"content-type", b"application/json")]
                held["body"] = json.dumps({"message": message}).encode()
            if mode == "500-after":
                # The request was processed (the object exists) but the client sees a failure.
                held["status"], held["headers"] = 500, [(b"content-type", b"application/json")]
                held["body"] = b'{"message":"Internal server error (injected after processing)"}'
            if key:
                self.idempotency.finish(key, fingerprint, held["status"], held["body"])
        except BaseException:
            if key:
                self.idempotency.running.discard(key)
            raise
        stats.seconds_by_route[route] += time.perf_counter() - handling_started
        if hold:
            headers = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(held["body"])).encode()))
            await send({"type": "http.response.start", "status": held["status"], "headers": headers})
            await send({"type": "http.response.body", "body": held["body"]})


def create_app(store: Store, settings: Settings) -> FastAPI:
    app = FastAPI(title="Metronome emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.settings = settings
    app.state.stats = Stats()
    app.state.rng = random.Random(settings.seed)
    idempotency = Idempotency(store, settings)
    if settings.stripe_connected:
        store.set_setting("stripe_connected", True)

    # Flat list of the API routes, for per-route statistics (included routers are not flat in app.routes).
    api_routes = [r for router in ALL_ROUTERS for r in router.routes if isinstance(r, APIRoute)]

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"message": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"{loc}: {err.get('msg')}")
        return JSONResponse({"message": "; ".join(parts) or "invalid request"}, status_code=400)

    app.add_middleware(RequestKnobs, api_routes=api_routes, idempotency=idempotency)

    for router in ALL_ROUTERS:
        app.include_router(router)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    async def _unknown(path: str) -> JSONResponse:
        return JSONResponse({"message": f"Not found: no such endpoint /{path}"}, status_code=404)

    return app
