"""What registering a resource costs the program and the engine, kept from growing with the account.

The Python SDK does some per-resource work whose cost grows with the stack; the real engine's
file backend then writes the whole state again after every step, so every byte a resource carries
is paid once per step of the update. `__main__.py` calls `project_frames_only(program_dir)` before
declaring and hands `registered(resources)` to `pulumi.run`. Measured in docs/benchmarks.md ("The
real engine").

`project_frames_only` replaces a private function of the SDK (`pulumi==3.260` is pinned in
pyproject.toml): it checks that the function is there and is a no-op otherwise, and
tests/test_pulumi_cli.py checks the state the engine writes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

TRIMMED = "metronome_iac_trimmed"  # marks the replaced SDK function: a second call changes nothing


def project_frames_only(program_dir: Path) -> None:
    """Record, as each resource's stack trace, only the frames of the project's own code.

    The SDK sends the engine the whole call stack of every resource it registers (the resource class,
    the builder in program.py, `__main__.py`, then a dozen frames of runpy, the language host's runner,
    the SDK's runtime and asyncio), and the engine keeps it in the state: about 1.2 KB of each
    resource's 3 to 4 KB. The frames below `__main__.py` are the same for every resource; this keeps
    the frames up to the first one outside the project (or inside its virtualenv). The source
    position the engine shows (the first frame) is unchanged.
    """
    from pulumi.runtime import resource as sdk_resource

    full_trace = getattr(sdk_resource, "_get_stack_trace", None)
    if full_trace is None or getattr(full_trace, TRIMMED, False):
        return

    def under(path: Path) -> tuple[str, ...]:
        return tuple({path.absolute().as_uri() + "/", path.resolve().as_uri() + "/"})

    project, virtualenv = under(program_dir), under(Path(sys.prefix))

    def project_trace() -> Any:
        trace = full_trace()
        kept = 0
        for frame in trace.frames:
            uri = frame.pc.uri if frame.HasField("pc") else ""
            if not uri.startswith(project) or uri.startswith(virtualenv):
                break
            kept += 1
        del trace.frames[kept:]
        return trace

    setattr(project_trace, TRIMMED, True)
    sdk_resource._get_stack_trace = project_trace


def registered(resources: dict[str, dict[str, Any]]) -> Callable[[], Awaitable[None]]:
    """The program's async entry point (`pulumi.run`): wait until every resource is registered.

    Without it the SDK waits for the program's outputs after the program returns by calling
    `asyncio.wait(all pending outputs, FIRST_COMPLETED)` again after each completion
    (pulumi/runtime/stack.py `wait_for_rpcs`): with about 25 outputs per resource, a cost that grows
    with the square of the stack (40 s of the program's CPU for 1,000 resources). Awaiting each
    resource's URN (resolved when the engine answers its registration) once is linear; the SDK's
    wait then finds its outputs resolved. Failures are left for the SDK to report as before.
    """

    async def wait() -> None:
        urns = [r.urn.future() for by_name in resources.values() for r in by_name.values()]
        await asyncio.gather(*urns, return_exceptions=True)

    return wait
