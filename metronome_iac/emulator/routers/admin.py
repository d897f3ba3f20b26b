"""Reserved `/_emulator/` knobs for tests: health, stats, reset, runtime config, billing providers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import bad, check_type, enum, json_body, store_of
from metronome_iac.emulator.state import Settings, Stats

router = APIRouter(prefix="/_emulator")


@router.get("/health")
async def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/stats")
async def stats(request: Request) -> JSONResponse:
    body = request.app.state.stats.as_json()
    body["events"] = store_of(request).event_count()
    return JSONResponse(body)


@router.post("/reset")
async def reset(request: Request) -> JSONResponse:
    store = store_of(request)
    store.reset()
    settings = request.app.state.settings
    if settings.stripe_connected:
        store.set_setting("stripe_connected", True)
    request.app.state.stats = Stats()
    return JSONResponse({"status": "reset"})


@router.get("/config")
async def get_config(request: Request) -> JSONResponse:
    return JSONResponse(_config(request.app.state.settings))


def _config(settings: Settings) -> dict:
    """The run-time knobs as GET and POST /config answer them (seed: the fault RNG's last seed, or null)."""
    return {
        "fail_rate": settings.fail_rate,
        "latency_ms": settings.latency_ms,
        "seed": settings.seed,
        "idempotency_ttl_s": settings.idempotency_ttl_s,
        "contract_editing": settings.contract_editing,
        "contract_item_limit": settings.contract_item_limit,
    }


@router.post("/config")
async def set_config(request: Request) -> JSONResponse:
    body = await json_body(request)
    settings = request.app.state.settings
    if "fail_rate" in body:
        rate = check_type(body["fail_rate"], float, "fail_rate")
        if not 0 <= rate <= 1:
            raise bad("fail_rate must be between 0 and 1")
        settings.fail_rate = float(rate)
    if "latency_ms" in body:
        latency = check_type(body["latency_ms"], float, "latency_ms")
        if latency < 0:
            raise bad("latency_ms must be >= 0")
        settings.latency_ms = float(latency)
    if "idempotency_ttl_s" in body:
        ttl = check_type(body["idempotency_ttl_s"], float, "idempotency_ttl_s")
        if ttl < 0:
            raise bad("idempotency_ttl_s must be >= 0")
        settings.idempotency_ttl_s = float(ttl)
    if "seed" in body:
        import random

        seed = body["seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise bad("seed must be an integer or null")
        settings.seed = seed
        request.app.state.rng = random.Random(seed)
    if "contract_editing" in body:
        settings.contract_editing = check_type(body["contract_editing"], bool, "contract_editing")
    if "contract_item_limit" in body:
        limit = check_type(body["contract_item_limit"], int, "contract_item_limit")
        if limit < 1:
            raise bad("contract_item_limit must be >= 1")
        settings.contract_item_limit = limit
    return JSONResponse(_config(settings))


@router.post("/billing-providers")
async def billing_providers(request: Request) -> JSONResponse:
    """Connect or disconnect Stripe on the account (the real API cannot; it is done in the dashboard).

    With `account_id` ("acct_..."), connect (or disconnect) a further Stripe account: each is a delivery
    method of its own, and with several connected a configuration must name its `delivery_method_id`."""
    from metronome_iac.emulator.routers.billing_providers import connect_stripe_account

    body = await json_body(request)
    enum(body.get("billing_provider"), ["stripe"], "billing_provider")
    connected = check_type(body.get("connected", True), bool, "connected")
    account = body.get("account_id")
    if account is None:
        store_of(request).set_setting("stripe_connected", connected)
        return JSONResponse({"billing_provider": "stripe", "connected": connected})
    check_type(account, str, "account_id")
    method_id = connect_stripe_account(store_of(request), account, connected)
    return JSONResponse(
        {
            "billing_provider": "stripe",
            "connected": connected,
            "account_id": account,
            "delivery_method_id": method_id,
        }
    )
