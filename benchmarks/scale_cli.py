"""The scale benchmark's real-engine rows: the generated stack through the Pulumi CLI.

`benchmarks/scale.py --pulumi-cli SIZE [SIZE ...]` adds, for each SIZE and latency, what a user runs
(tests/pulumi_cli.py: a copy of the checkout, a local file backend, the CLI that scripts/pulumi-cli.sh
provides), in this order on one stack:

    pulumi up (CLI)              create the stack (`up --skip-preview`)
    pulumi preview (CLI)         a no-change preview (`--expect-no-changes`: a change fails the run)
    pulumi up --refresh (CLI)    read every resource, then a no-change update
    pulumi up, skip checkpoints  the create again, on a new stack and an emptied emulator, with
                                 PULUMI_SKIP_CHECKPOINTS=true (the engine writes the state once, at the
                                 end, instead of after every step: README "Big accounts")

Each row splits the CPU by process, sampled every 0.1 s over the process tree: the engine (`pulumi`
itself), the program (the language host's runner and the Python program), the provider host
(`python -m pulumi.dynamic`); its `host cpu` column is the total the run's processes used
(getrusage of the children, exact). The notes also give the state file's size after the run.
"""

from __future__ import annotations

import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pulumi_cli import PulumiProject

REPO = Path(__file__).resolve().parent.parent
SKIP_CHECKPOINTS = {"PULUMI_SKIP_CHECKPOINTS": "true"}

# (row label, CLI arguments, extra environment)
PHASES: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("pulumi up (CLI)", ("up", "--yes", "--skip-preview"), {}),
    ("pulumi preview (CLI)", ("preview", "--expect-no-changes"), {}),
    ("pulumi up --refresh (CLI)", ("up", "--yes", "--skip-preview", "--refresh", "--expect-no-changes"), {}),
)
SKIPPING = ("pulumi up, skip checkpoints", ("up", "--yes", "--skip-preview"), SKIP_CHECKPOINTS)


def pulumi_cli_path() -> str | None:
    """The Pulumi CLI scripts/pulumi-cli.sh provides (found, installed or built), None if none can be had."""
    script = REPO / "scripts" / "pulumi-cli.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=3600)
    return (
        result.stdout.strip().splitlines()[-1] if result.returncode == 0 and result.stdout.strip() else None
    )


def role(process: psutil.Process) -> str:
    """Which part of a `pulumi` run a process is."""
    args = " ".join(process.cmdline())
    if "pulumi.dynamic" in args:
        return "provider host"
    if "pulumi-language-python-exec" in args:
        return "program"
    if "pulumi-language-python" in args or "pulumi-resource-pulumi-python" in args:
        return "language host"
    return "engine" if process.name().startswith("pulumi") else "other"


@dataclass
class Run:
    """One CLI command: wall time, CPU by role (own CPU of each process, last sample), total CPU."""

    wall_s: float
    cpu_total_s: float
    cpu_by_role: dict[str, float] = field(default_factory=dict)


def run_sampled(project: PulumiProject, args: tuple[str, ...], env: dict[str, str]) -> Run:
    """`pulumi ARGS` in the project, its process tree sampled every 0.1 s; raises with the output's
    tail when it fails."""
    cmd = [project.cli, *args, "--non-interactive", "--stack", project.stack]
    own: dict[int, tuple[str, float]] = {}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with tempfile.TemporaryFile() as output:  # a pipe nobody reads would fill and stall the CLI
        top = psutil.Popen(cmd, cwd=project.dir, env={**project.env, **env}, stdout=output, stderr=output)
        while top.poll() is None:
            try:
                tree = [top, *top.children(recursive=True)]
            except psutil.Error:
                tree = []
            for process in tree:
                try:
                    # The role as of this sample: a child seen between its fork and its exec still
                    # has its parent's command line (the program's runner would count as the language
                    # host). An exiting process has none left: it keeps the role it had.
                    times = process.cpu_times()
                    name = role(process)
                    if name == "other" and process.pid in own:
                        name = own[process.pid][0]
                    own[process.pid] = (name, times.user + times.system)
                except psutil.Error:
                    continue
            time.sleep(0.1)
        wall = time.monotonic() - started
        if top.returncode != 0:
            output.seek(0)
            tail = output.read().decode(errors="replace")[-4000:]
            raise RuntimeError(f"pulumi {' '.join(args)} failed ({top.returncode}):\n{tail}")
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    by_role: dict[str, float] = {}
    for name, cpu in own.values():
        by_role[name] = by_role.get(name, 0.0) + cpu
    total = done.ru_utime + done.ru_stime - children.ru_utime - children.ru_stime
    return Run(wall, total, by_role)


def state_bytes(project: PulumiProject) -> int:
    """The size of the stack's state file in the project's file backend."""
    backend = Path(project.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    files = list(backend.glob(f".pulumi/stacks/*/{project.stack}.json"))
    return files[0].stat().st_size if files else 0


def notes(run: Run, state: int) -> dict[str, Any]:
    split = {name: round(cpu, 2) for name, cpu in sorted(run.cpu_by_role.items())}
    return {"cpu_by_role": split, "state_file_bytes": state}


def note_text(extra: dict[str, Any], resources: int) -> str:
    """The notes column of a CLI row: CPU seconds by process, the state file's size."""
    split = extra.get("cpu_by_role")
    if split is None:
        return ""
    shown = [name for name in ("engine", "program", "provider host") if name in split]
    cpu = ", ".join(f"{name} {split[name]:.1f}" for name in shown)
    state = extra["state_file_bytes"]
    return f"CPU s: {cpu}; state file {state / 1e6:.2f} MB ({state / max(resources, 1):.0f} B/resource)"


def real_engine_runs(
    stack: Any,
    emulator: Any,
    work: Path,
    cli: str,
    empty_emulator: Callable[[], None],
    record: Callable[[str, Callable[[], tuple[Run, dict[str, Any]]]], None],
) -> None:
    """Run the CLI phases on `stack` (a scale.py Stack) against `emulator`: `empty_emulator()` before
    each new project, `record(label, run)` around each command (scale.py's Bench counts the API calls
    and the emulator's CPU; `run()` returns the command's Run and its notes)."""

    def phase(project: PulumiProject, args: tuple[str, ...], env: dict[str, str]) -> Callable[[], Any]:
        def run() -> tuple[Run, dict[str, Any]]:
            done = run_sampled(project, args, env)
            return done, notes(done, state_bytes(project))

        return run

    empty_emulator()
    project = PulumiProject(work / "checkpoints", cli, emulator, stack=stack.name, stack_dir=stack.path)
    for label, args, env in PHASES:
        record(label, phase(project, args, env))
    empty_emulator()
    project = PulumiProject(work / "skip", cli, emulator, stack=stack.name, stack_dir=stack.path)
    label, args, env = SKIPPING
    record(label, phase(project, args, env))
