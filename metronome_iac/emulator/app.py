"""The emulator's FastAPI app: bearer auth, fault and latency knobs, request statistics, routers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

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


async def _body_of(response: Response) -> bytes:
    """The whole body of an answer: the app's come as a stream, the middleware's own are built whole."""
    chunks = getattr(response, "body_iterator", None)
    if chunks is None:
        return bytes(response.body)
    return b"".join([chunk async for chunk in chunks])


def _auth_error(request: Request, token: str | None) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return "Unauthorized: missing bearer token in the Authorization header"
    if token is not None and value.strip() != token:
        return "Unauthorized: invalid bearer token"
    return None


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

    @app.middleware("http")
    async def _knobs(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith(ADMIN_PREFIX):
            return await call_next(request)  # knob endpoints: no auth, never failed or counted
        stats: Stats = app.state.stats
        stats.total += 1
        route = route_template(api_routes, request)
        stats.by_route[route] += 1
        problem = _auth_error(request, settings.token)
        if problem:
            return JSONResponse({"message": problem}, status_code=401)
        if settings.latency_ms > 0:
            await asyncio.sleep(settings.latency_ms / 1000)
        mode = None
        if settings.fail_rate > 0 and app.state.rng.random() < settings.fail_rate:
            mode = app.state.rng.choice(("429", "500-before", "500-after"))
            stats.injected_failures[mode] += 1
        if mode == "429":
            # Small Retry-After keeps tests fast; retry-after-ms is what the SDK reads first.
            return JSONResponse(
                {"message": "Too many requests (injected by the emulator)"},
                status_code=429,
                headers={"Retry-After": "0", "retry-after-ms": "20"},
            )
        if mode == "500-before":
            return JSONResponse(
                {"message": "Internal server error (injected before processing)"}, status_code=500
            )
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        fingerprint = ""
        if key:
            fingerprint = Idempotency.fingerprint(request, await request.body())
            early = idempotency.begin(key, fingerprint)
            if early is not None:
                stats.idempotent_replays += early.status_code != 409
                return early
        started = time.perf_counter()
        try:
            try:
                response = await call_next(request)
            except Exception as exc:  # an emulator bug still answers in the API's error shape
                response = JSONResponse(
                    {"message": f"Internal server error: {type(exc).__name__}: {exc}"}, status_code=500
                )
            if mode == "500-after":
                # The request was processed (the object exists) but the client sees a failure.
                response = JSONResponse(
                    {"message": "Internal server error (injected after processing)"}, status_code=500
                )
            if key:
                body = await _body_of(response)
                idempotency.finish(key, fingerprint, response.status_code, body)
                response = Response(body, status_code=response.status_code, headers=dict(response.headers))
        except BaseException:
            if key:
                idempotency.running.discard(key)
            raise
        stats.seconds_by_route[route] += time.perf_counter() - started
        return response

    @app.middleware("http")  # added last, so outermost: the time includes injected latency and faults
    async def _log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        request_log.info(
            "%s %s %d %.0f ms", request.method, request.url.path, response.status_code, elapsed_ms
        )
        return response

    for router in ALL_ROUTERS:
        app.include_router(router)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    async def _unknown(path: str) -> JSONResponse:
        return JSONResponse({"message": f"Not found: no such endpoint /{path}"}, status_code=404)

    return app
