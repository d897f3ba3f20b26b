"""`metronome-iac emulator`: run the local Metronome API emulator."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from metronome_iac.cli import EXIT_ERROR, EXIT_OK
from metronome_iac.emulator.app import Settings, create_app
from metronome_iac.emulator.store import Store


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787)")
    parser.add_argument(
        "--db",
        default=":memory:",
        help="SQLite file for state (its directory is created); ':memory:' for a throwaway run",
    )
    parser.add_argument("--token", default=None, help="the only bearer token accepted (default: any token)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="probability an API request fails (0-1)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault injection RNG")
    parser.add_argument(
        "--stripe-connected", action="store_true", help="start with a Stripe account connected to the account"
    )


def open_store(db: str) -> Store:
    """The emulator's state in `db`, creating the file's directory. Raises ValueError with one line that
    names the path when the directory cannot be created or the file cannot be opened as SQLite."""
    if db != ":memory:" and not db.startswith("file:"):
        parent = Path(db).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            why = "it is a file, not a directory" if parent.is_file() else (err.strerror or str(err))
            raise ValueError(f"cannot create the directory {parent} for --db {db}: {why}") from None
    try:
        return Store(db)
    except sqlite3.Error as err:
        hint = " (it is a directory)" if Path(db).is_dir() else ""
        raise ValueError(f"cannot open --db {db} as a SQLite database{hint}: {err}") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    if not 0 <= args.fail_rate <= 1:
        print(f"error: --fail-rate must be between 0 and 1, not {args.fail_rate}", file=sys.stderr)
        return EXIT_ERROR
    settings = Settings(
        token=args.token,
        latency_ms=args.latency_ms,
        fail_rate=args.fail_rate,
        seed=args.seed,
        stripe_connected=args.stripe_connected,
    )
    try:
        store = open_store(args.db)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    app = create_app(store, settings)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="error", access_log=False)
    finally:
        store.close()
    return EXIT_OK
