"""`metronome-iac emulator`: run the local Metronome API emulator."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sqlite3
import sys
from pathlib import Path

from metronome_iac.cli import EXIT_ERROR, EXIT_OK
from metronome_iac.emulator.app import create_app, request_log
from metronome_iac.emulator.state import Settings
from metronome_iac.emulator.store import Store


def port_number(text: str) -> int:
    """argparse type for --port: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=8787, help="port to listen on, 1-65535 (default 8787)"
    )
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
    parser.add_argument(
        "--contract-editing",
        choices=("on", "off"),
        default="on",
        help="on: contracts change through /v2/contracts/edit; off: through /v1/contracts/amend (default on)",
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


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), as uvicorn binds it. Raises ValueError with one line that names
    the address and what to do when it cannot be bound (port in use, no such address, not permitted)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # uvicorn's rule
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, family, socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ValueError(
            f"cannot listen on --host {host}: {err.strerror or err}; pass an address of this machine"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            why = f"port {port} on {host} is already in use; stop what holds it or pass another --port"
        elif err.errno in (errno.EACCES, errno.EPERM):
            why = f"not permitted to listen on port {port} on {host}; pass a --port above 1023"
        elif err.errno == errno.EADDRNOTAVAIL:
            why = f"{host} is not an address of this machine; pass another --host (e.g. 127.0.0.1)"
        else:
            why = f"cannot listen on {host} port {port}: {err.strerror or err}"
        raise ValueError(why) from None
    sock.set_inheritable(True)
    return sock


def log_requests() -> None:
    """The request log (one line per request) on stderr, at info level, flushed line by line: in the
    foreground it shows as requests arrive, and `make up` redirects it to .emulator/emulator.log."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"))
    request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)
    request_log.propagate = False


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
        contract_editing=args.contract_editing == "on",
    )
    try:
        store = open_store(args.db)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    try:
        sock = listen(args.host, args.port)
    except ValueError as err:
        store.close()
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    app = create_app(store, settings)
    log_requests()
    request_log.info(
        "Metronome emulator on http://%s:%d (state: %s); a line per request follows",
        args.host,
        args.port,
        args.db,
    )
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="error", access_log=False)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl+C: a normal stop, as under uvicorn.run
        pass
    finally:
        sock.close()
        store.close()
    return EXIT_OK if server.started else EXIT_ERROR
