"""`metronome-iac emulator`: run the local Metronome API emulator."""

from __future__ import annotations

import argparse

from metronome_iac.emulator.app import Settings, create_app
from metronome_iac.emulator.store import Store


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787)")
    parser.add_argument(
        "--db", default=":memory:", help="SQLite file for state; ':memory:' for a throwaway run"
    )
    parser.add_argument("--token", default=None, help="the only bearer token accepted (default: any token)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="probability an API request fails (0-1)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault injection RNG")
    parser.add_argument(
        "--stripe-connected", action="store_true", help="start with a Stripe account connected to the account"
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    if not 0 <= args.fail_rate <= 1:
        raise SystemExit("--fail-rate must be between 0 and 1")
    settings = Settings(
        token=args.token,
        latency_ms=args.latency_ms,
        fail_rate=args.fail_rate,
        seed=args.seed,
        stripe_connected=args.stripe_connected,
    )
    store = Store(args.db)
    app = create_app(store, settings)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="error", access_log=False)
    finally:
        store.close()
    return 0
