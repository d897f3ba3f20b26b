"""The `metronome-iac` console script.

Exit codes, the same for every command:

  0  success: done, or checked and in sync
  1  could not run: a bad command line, bad input, an unreadable file, no API key or token, an
     unreachable or refusing API, or a refusal (`--out` already holds stack files, a `promote` stack
     that does not exist, uncommitted edits)
  2  ran, and found something that needs attention: `drift` found drift, `events check` found events
     with problems, `events translate` could not translate some lines, `promote --check` found the
     target lagging the source, `reconcile` found a window where Stripe and Metronome differ

So a CI step can tell "fix the tool's input" (1) from "look at the report" (2).

Each sub-command lives in its own module, which defines `configure_parser(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `metronome-iac drift`
does not pay for FastAPI and `metronome-iac emulator` does not pay for Pulumi.

Every command goes through `main`, the one place that turns outcomes into exit codes and prints
errors: a command that cannot run raises `CommandError` (one `error:` line, exit 1); a reader that
stops early (`... | head`) never turns into a traceback or changes the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

EXIT_OK = 0  # success / in sync
EXIT_ERROR = 1  # could not run
EXIT_ATTENTION = 2  # ran and found something that needs attention

COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("metronome_iac.emulator.cli", "run the local Metronome API emulator"),
    "drift": ("metronome_iac.drift", "compare a stack's catalog with the live Metronome account"),
    "promote": ("metronome_iac.promote", "copy the promotable catalog from one stack to another"),
    "export": ("metronome_iac.export", "write a live Metronome account as stacks files with adopt keys"),
    "import-stripe": ("metronome_iac.stripe_import", "write a catalog from a Stripe account"),
    "events": ("metronome_iac.events", "translate and check usage events for the parallel run"),
    "reconcile": ("metronome_iac.reconcile", "compare the usage Stripe and Metronome measured, per window"),
}


DESCRIPTION = (
    "Metronome usage billing as code: the local API emulator, drift checks, catalog promotion and "
    "export, and the Stripe migration tools. `metronome-iac COMMAND --help` for a command's options."
)

EPILOG = (
    "exit codes: 0 success (in sync), 1 could not run (bad input, unreadable file, no key, unreachable API, "
    "refused), 2 ran and found something that needs attention (drift, event problems, promote --check lag)"
)


class CommandError(Exception):
    """The command cannot run: `main` prints `error: <message>` on stderr and exits 1 (EXIT_ERROR).
    The message says what failed and what to do about it."""


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def program() -> str:
    """The program as the user runs it, for commands in hints they can paste as they are:
    `metronome-iac` when that is on PATH, else the path they typed (`.venv/bin/metronome-iac`)."""
    name = "metronome-iac"
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) != name:
        return name  # `python -m metronome_iac`, or called in-process
    on_path = shutil.which(name)
    if on_path and os.path.realpath(on_path) == os.path.realpath(argv0):
        return name
    relative = os.path.relpath(argv0)
    return relative if not relative.startswith("..") else argv0


def refuse_overwrite(out: Path, force: bool) -> None:
    """Raise CommandError when `out` already holds stack files and `force` is not set.

    Commands that write a stack into `--out` (export, import-stripe) call it before doing any work:
    a reviewed stack's comments, `settings:` and `stripe:` sections would be lost to a rewrite.
    """
    from metronome_iac.catalog import CATALOG_FILE, ENVIRONMENT_FILE

    existing = [name for name in (CATALOG_FILE, ENVIRONMENT_FILE) if (out / name).exists()]
    if existing and not force:
        raise CommandError(
            f"{out} already has {' and '.join(existing)}; writing would replace them (comments, settings: "
            "and stripe: included). Write to a new directory and compare, or pass --force to overwrite"
        )


def existing_stacks(stacks: Path) -> list[str]:
    return sorted(p.name for p in stacks.iterdir() if p.is_dir() and not p.name.startswith("."))


def missing_stack(stacks: Path, name: str, flag: str = "--stack") -> str | None:
    """Why `name` is not a stack folder under `stacks`, naming the stacks that exist; None if it is one."""
    if (stacks / name).is_dir():
        return None
    if not stacks.is_dir():
        return f"no stacks directory {stacks} here: run from the repository root, or pass --stacks-dir"
    listed = ", ".join(existing_stacks(stacks)) or "none"
    return f"{flag} {name}: there is no stack {name} (no folder {stacks / name}; the stacks are: {listed})"


# --------------------------------------------------------------------------------------------------
# A reader that stops early (`metronome-iac drift --json | head`)


class _DiscardWhenClosed(io.RawIOBase):
    """A file descriptor whose reader may go away: after the first EPIPE, writes are dropped.

    The command then finishes its work (promote still writes its file) and exits with its own code,
    as it would had the reader read everything, instead of dying in a BrokenPipeError traceback."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.reader_gone = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.reader_gone:
            return len(data)
        try:
            return os.write(self.fd, data)
        except BrokenPipeError:
            self.reader_gone = True
            return len(data)

    def close(self) -> None:  # the descriptor is the process's stdout/stderr: never ours to close
        self.flush()


def _guard_pipes() -> Callable[[], None]:
    """Make stdout and stderr, where they are pipes, ignore a reader that has gone; returns the undo."""
    swapped: list[tuple[str, io.TextIOBase]] = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or stream is not getattr(sys, f"__{name}__"):
            continue  # replaced already (a test's capture): not ours to change
        try:
            fd = stream.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError):
            continue
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            continue
        try:
            stream.flush()
        except BrokenPipeError:
            pass
        raw = _DiscardWhenClosed(fd)
        wrapper = io.TextIOWrapper(
            io.BufferedWriter(raw),
            encoding=stream.encoding,
            errors=stream.errors,
            line_buffering=name == "stderr",
            write_through=name == "stderr",
        )
        setattr(sys, name, wrapper)
        swapped.append((name, stream))

    def undo() -> None:
        for name, original in swapped:
            wrapper = getattr(sys, name)
            wrapper.flush()
            wrapper.detach()  # flushes; never closes the descriptor
            setattr(sys, name, original)

    return undo


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a bad command line; here that is an error like any other: exit 1 (never read
    as "drift found")."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="metronome-iac", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # import only the module that will run
            module = importlib.import_module(module_name)
            module.configure_parser(command_parser)
            command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command: its exit code, with errors printed as one `error:` line (never a traceback
    for an expected failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    restore = _guard_pipes()
    try:
        args = build_parser(argv).parse_args(argv)
        return int(args._run(args) or EXIT_OK)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as err:  # an input or output file that cannot be opened: say which, no traceback
        if err.filename is None:
            raise
        print(f"error: cannot open {err.filename}: {err.strerror or err}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        restore()


if __name__ == "__main__":
    raise SystemExit(main())
