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
"""

from __future__ import annotations

import argparse
import importlib
import sys
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


def refuse_overwrite(out: Path, force: bool) -> bool:
    """True (after one `error:` line) when `out` already holds stack files and `force` is not set.

    Commands that write a stack into `--out` (export, import-stripe) call it before doing any work:
    a reviewed stack's comments, `settings:` and `stripe:` sections would be lost to a rewrite.
    """
    from metronome_iac.catalog import CATALOG_FILE, ENVIRONMENT_FILE

    existing = [name for name in (CATALOG_FILE, ENVIRONMENT_FILE) if (out / name).exists()]
    if not existing or force:
        return False
    print(
        f"error: {out} already has {' and '.join(existing)}; writing would replace them (comments, "
        "settings: and stripe: included). Write to a new directory and compare, or pass --force to overwrite",
        file=sys.stderr,
    )
    return True


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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args._run(args) or EXIT_OK)
    except KeyboardInterrupt:
        return 130
    except OSError as err:  # an input or output file that cannot be opened: say which, no traceback
        if err.filename is None:
            raise
        print(f"error: cannot open {err.filename}: {err.strerror or err}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
