"""The `metronome-iac` console script.

Exit codes: 0 success, 1 error (a bad command line too, so it never reads as `drift`'s 2), plus what a
command documents: drift 2 = drift found; events 2 = stack or alias file unreadable; import-stripe 2 =
no Stripe key, or --out already holds stack files.

Each sub-command lives in its own module, which defines `configure_parser(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `metronome-iac drift`
does not pay for FastAPI and `metronome-iac emulator` does not pay for Pulumi.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("metronome_iac.emulator.cli", "run the local Metronome API emulator"),
    "drift": ("metronome_iac.drift", "compare a stack's catalog with the live Metronome account"),
    "promote": ("metronome_iac.promote", "copy the promotable catalog from one stack to another"),
    "export": ("metronome_iac.export", "write a live Metronome account as stacks files with adopt keys"),
    "import-stripe": ("metronome_iac.stripe_import", "write a catalog from a Stripe account"),
    "events": ("metronome_iac.events", "translate and check usage events for the parallel run"),
}


DESCRIPTION = (
    "Metronome usage billing as code: the local API emulator, drift checks, catalog promotion and "
    "export, and the Stripe migration tools. `metronome-iac COMMAND --help` for a command's options."
)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a bad command line; here that is an error like any other: exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="metronome-iac", description=DESCRIPTION)
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
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
