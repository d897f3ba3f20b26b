"""The emulator's FastAPI app: bearer auth, fault and latency knobs, request statistics, routers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from metronome_iac.emulator.common import ApiError
from metronome_iac.emulator.store import Store

ADMIN_PREFIX = "/_emulator"


@dataclass
class Settings:
    token: str | None = None
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    seed: int | None = None
    stripe_connected: bool = False
    # Account kind: contract editing (/v2/contracts/edit) or amendments (/v1/contracts/amend), never both
    # (SDK `contracts.amend` docstring: "Once contract editing is enabled, access to this endpoint will be
    # removed"; `contracts.edit`: "Contract editing must be enabled to use this endpoint").
    contract_editing: bool = True
    # How many commits (and credits) a contract get returns before cutting the list short with
    # `has_more` (ContractV2.HasMore). Metronome does not document the number: assumed.
    contract_item_limit: int = 100


@dataclass
class Stats:
    total: int = 0
    by_route: Counter = field(default_factory=Counter)
    injected_failures: Counter = field(default_factory=Counter)

    def as_json(self) -> dict:
        return {
            "total": self.total,
            "by_route": dict(self.by_route),
            "injected_failures": dict(self.injected_failures),
        }


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


def create_app(store: Store, settings: Settings) -> FastAPI:
    from metronome_iac.emulator.routers import ALL_ROUTERS

    app = FastAPI(title="Metronome emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.settings = settings
    app.state.stats = Stats()
    app.state.rng = random.Random(settings.seed)
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
        stats.by_route[route_template(api_routes, request)] += 1
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
        try:
            response = await call_next(request)
        except Exception as exc:  # an emulator bug still answers in the API's error shape
            return JSONResponse(
                {"message": f"Internal server error: {type(exc).__name__}: {exc}"}, status_code=500
            )
        if mode == "500-after":
            # The request was processed (the object exists) but the client sees a failure.
            return JSONResponse(
                {"message": "Internal server error (injected after processing)"}, status_code=500
            )
        return response

    for router in ALL_ROUTERS:
        app.include_router(router)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    async def _unknown(path: str) -> JSONResponse:
        return JSONResponse({"message": f"Not found: no such endpoint /{path}"}, status_code=404)

    return app
