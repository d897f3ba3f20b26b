"""Every command README.md and docs/*.md show runs as written, from a fresh shell, after the README's set-up.

The commands are read out of the markdown: each line of a ```sh block, and each inline `code` span that
starts with a program (after any `VAR=value`). Each runs in a copy of the repository (its files, plus the
`.venv` that `make up` creates) from a shell with a clean environment: no activated virtualenv, no tokens.
The only commands not run are those that need what a test machine does not have (the Pulumi CLI and a
stack's state, a real Metronome or Stripe account) or that are the test suite itself: `not_run` names
each with the reason, and the test checks that it is well formed instead (the program and its sub-command
exist, the options parse, the stack and the make target are there). A new command in the docs is run, or
is refused here until it can be.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, checkout_copy, free_port, wait_until_serving

VENV = Path(sys.executable).parent.parent  # the virtualenv `make up` made (the one running the tests)
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CLI = ".venv/bin/metronome-iac"
PROGRAMS = {CLI, "metronome-iac", "make", "pulumi", "cp", ".venv/bin/pytest"}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
# What the docs write for "fill in your own" (secrets, new names), and what stands in for it here.
PLACEHOLDERS = {
    "<token>": "a-token",
    "<new stack>": "eu",
    "<stack>": "eu",
    "sk_live_...": "sk_test_x",
    "sk_...": "sk_test_x",
    "DIR": "out",
}


@dataclass(frozen=True)
class DocCommand:
    where: str  # "README.md:121"
    text: str  # as written
    script: str  # what a user pastes: the command, or its whole ```sh block when the lines share variables

    def words(self) -> list[str]:
        words = shlex.split(self.text.split(" #")[0].replace("[", "").replace("]", ""))
        while words and ASSIGNMENT.match(words[0]):
            words = words[1:]
        return words


def documented_commands() -> list[DocCommand]:
    found: list[DocCommand] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        name = doc.relative_to(REPO).as_posix()

        def line_of(offset: int, text: str = text) -> int:
            return text.count("\n", 0, offset) + 1

        for block in re.finditer(r"```sh\n(.*?)```", text, re.S):
            body = block.group(1)
            lines = [ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            shared = any(re.match(r"^[a-z_]+=\S+(\s+#.*)?$", ln) for ln in lines)  # `ex=...` used below
            for ln in lines:
                if re.match(r"^[a-z_]+=\S+(\s+#.*)?$", ln):
                    continue
                where = f"{name}:{line_of(block.start(1) + body.index(ln))}"
                found.append(DocCommand(where, ln.strip(), body if shared else ln.strip()))
        # Code spans outside the blocks (blocks blanked out line for line, so line numbers hold); a span
        # may wrap onto the next line.
        prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
        for span in re.finditer(r"`([^`\n]+(?:\n[^`\n]+)?)`", prose):
            written = " ".join(span.group(1).split())
            command = DocCommand(f"{name}:{line_of(span.start(), prose)}", written, written)
            words = command.words()
            if len(words) >= 2 and words[0] in PROGRAMS:
                found.append(command)
    return found


COMMANDS = documented_commands()


def not_run(command: DocCommand) -> str | None:
    """Why `command` is not run here (it is checked for form instead), or None: it runs."""
    program, *args = command.words()
    if program == "pulumi":
        return "needs the Pulumi CLI and the stack's state"
    if program == "make":
        return {
            "up": "needs the Pulumi CLI (it deploys the dev stack)",
            "drift": "needs the Pulumi CLI and the stack's state",
            "test": "is the test suite itself",
            "pulumi-cli": "is scripts/pulumi-cli.sh, which the `pulumi_cli` test fixture runs",
            "bench": "is the whole benchmark table; test_benchmark_targets.py runs its smallest size",
        }.get(args[0])
    if program == ".venv/bin/pytest":
        return "is part of the test suite (`make test` runs it)"
    if program == CLI and args[0] in ("drift", "export"):
        return "needs a Metronome account (its token)"
    if program == CLI and args[0] == "import-stripe":
        return "needs a Stripe account (its key)"
    if program == CLI and args[0] == "reconcile":
        return "needs a Metronome and a Stripe account (tests/test_reconcile_docs.py runs it on local ones)"
    return None


def serves(command: DocCommand) -> bool:
    """A server that runs until stopped: started, asked for its health, stopped."""
    words = command.words()
    return words[:2] in ([CLI, "emulator"], ["make", "emulator"])


# --------------------------------------------------------------------------------------------- the shell


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the repository as a fresh clone has it, with the virtualenv `make up` creates."""
    return checkout_copy(tmp_path / "repo")


def fresh_shell(home: Path) -> dict[str, str]:
    """A new login's environment: the system PATH (no virtualenv on it), no token, no Metronome URL."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def concrete(script: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        script = script.replace(placeholder, value)
    return script


def test_the_docs_show_commands() -> None:
    """The walk finds what the docs show (a guard against a regex that silently matches nothing)."""
    texts = {c.text for c in COMMANDS}
    assert "make up" in texts and "make test" in texts
    assert any(c.text.startswith(f"{CLI} promote") for c in COMMANDS)
    assert any(c.where.startswith("docs/stripe-migration.md") and "events check" in c.text for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.text}" for c in COMMANDS])
def test_documented_command_runs_as_written(command: DocCommand, checkout: Path, pulumi_cli: str) -> None:
    program = command.words()[0]
    assert program != "metronome-iac", (
        f"{command.where}: `{command.text}`: after `make up` a fresh shell has no `metronome-iac` on PATH "
        f"(command not found); write {CLI}"
    )
    why = not_run(command)
    if why is not None:
        well_formed(command, checkout, pulumi_cli)
        return
    env = fresh_shell(checkout.parent)
    if serves(command):
        serve(command, checkout, env)
        return
    if program == CLI and "COMMAND" in command.text:  # `metronome-iac COMMAND --help`: each command
        from metronome_iac.cli import COMMANDS as CLI_COMMANDS

        scripts = [command.script.replace("COMMAND", name) for name in CLI_COMMANDS]
    else:
        scripts = [concrete(command.script)]
    for script in scripts:
        result = subprocess.run(["bash", "-e", "-c", script], cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, f"{command.where}: `{script}`\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, f"{command.where}: `{script}`\n{result.stderr}"


def serve(command: DocCommand, checkout: Path, env: dict[str, str]) -> None:
    """Start the server as written (on a free port, the documented one may be taken), see it answer."""
    port = free_port()
    script = concrete(command.script).replace("[--token TOKEN]", "--token doc-token").replace("[", "")
    script = script.replace("]", "")
    if "--port" in script:
        script = re.sub(r"--port \d+", f"--port {port}", script)
    elif script.startswith("make "):
        script += f" EMULATOR_PORT={port}"
    else:
        script += f" --port {port}"
    proc = subprocess.Popen(["bash", "-c", script], cwd=checkout, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}", f"{command.where}: `{script}`", 60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------- well formed

PULUMI_SETTINGS = {
    "metronome:baseUrl",
    "metronome:apiToken",
    "metronome:contractEditing",
    "stripe:apiKey",
    "stripe:apiBase",
}


def well_formed(command: DocCommand, checkout: Path, pulumi_cli: str) -> None:
    """What can be checked without running it: the make target exists, the Pulumi sub-command, settings
    and stack are real, the metronome-iac command line parses and names a stack that exists (or a new one)."""
    program, *args = concrete(command.text).replace("[", "").replace("]", "").split()
    while ASSIGNMENT.match(program):
        program, *args = args
    if program == "make":
        makefile = (checkout / "Makefile").read_text()
        assert re.search(rf"^{re.escape(args[0])}:", makefile, re.M), (
            f"{command.where}: no make target {args[0]}"
        )
    elif program == "pulumi":
        # The real CLI knows its commands: `pulumi <command words> --help` must succeed.
        words = list(itertools.takewhile(lambda a: re.fullmatch(r"[a-z][a-z-]*", a), args))
        known = subprocess.run([pulumi_cli, *words, "--help"], capture_output=True, text=True, timeout=60)
        assert known.returncode == 0 and words, (
            f"{command.where}: `pulumi {' '.join(words)}` is not a command"
        )
        if args[0] == "config":
            assert args[1] == "set" and set(args) & PULUMI_SETTINGS, f"{command.where}: {command.text}"
    elif program == ".venv/bin/pytest":
        paths = [a for a in args if not a.startswith("-")]
        assert paths and all(list(checkout.glob(p)) for p in paths), f"{command.where}: {command.text}"
    else:
        from metronome_iac.cli import build_parser

        try:
            build_parser(args).parse_args(args)
        except SystemExit as exit:
            raise AssertionError(f"{command.where}: `{command.text}` does not parse") from exit
    if "--stack" in args:
        stack = args[args.index("--stack") + 1]
        assert (checkout / "stacks" / stack).is_dir() or stack == PLACEHOLDERS["<stack>"], command.where
        if program == "pulumi":
            assert (checkout / f"Pulumi.{stack}.yaml").is_file(), f"{command.where}: no Pulumi.{stack}.yaml"


def test_not_run_names_each_command_and_why() -> None:
    """The commands this walk does not run, each with its reason, printed (`pytest -rA` shows it)."""
    skipped = [(c.where, c.text, not_run(c)) for c in COMMANDS if not_run(c)]
    assert skipped, "nothing is left unrun: drop this test"
    for where, text, why in skipped:
        print(f"{where}: `{text}`: not run, {why}")
    ran = [c for c in COMMANDS if not not_run(c)]
    assert len(ran) >= 10, [c.text for c in ran]  # most of what the docs show runs
