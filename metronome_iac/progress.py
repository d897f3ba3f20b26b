"""Progress of long work (drift, export, import-stripe) on stderr, and the concurrent calls behind it.

On a terminal each task is a rich progress bar, cleared when the command ends (the report follows on
stdout). Anywhere else (a CI log, a pipe) a task is two plain lines, one when it starts and one when it
ends, so a log shows what ran and for how long without a screenful of redraws.

API calls run `CONCURRENCY` at a time, through a client whose retries are the provider's
(`providers.client.READ_MAX_RETRIES`: 429 and 5xx retried with backoff honouring Retry-After), so a
throttled account slows a command down instead of failing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import IO, Any, TypeVar

# API calls in flight at once. The Pulumi engine's provider host serves 4 calls at a time per resource
# type; a read-only command over many objects of several kinds gains from a few more.
CONCURRENCY = 8

Item = TypeVar("Item")
Result = TypeVar("Result")


class Task:
    """One step of a command; `advance()` as each unit of work (an object read, a page listed) ends."""

    def __init__(self, progress: Progress, description: str, total: int | None, task_id: Any) -> None:
        self._progress = progress
        self.description = description
        self.total = total
        self.completed = 0
        self._task_id = task_id
        self._started = time.monotonic()

    def advance(self, units: int = 1) -> None:
        self.completed += units
        if self._task_id is not None:
            self._progress.bar.update(self._task_id, advance=units)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


class Progress:
    """The progress display of one command (`drift`, `export`, ...); a context manager."""

    def __init__(self, command: str, stream: IO[str] | None = None, enabled: bool = True) -> None:
        from rich.console import Console

        self.command = command
        self.enabled = enabled
        self.console = Console(file=stream, stderr=True)  # None: sys.stderr, as it is when printing
        self.terminal = enabled and self.console.is_terminal
        self.bar: Any = None

    def __enter__(self) -> Progress:
        if self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as Bars

            self.bar = Bars(
                SpinnerColumn(),
                TextColumn(f"{self.command}: {{task.description}}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Task]:
        """A step: a bar on a terminal, else a line when it starts and one when it ends."""
        task_id = None
        if self.bar is not None:
            task_id = self.bar.add_task(description, total=total)
        elif self.enabled:
            count = f" ({total})" if total is not None else ""
            self._line(f"{description}{count}...")
        task = Task(self, description, total, task_id)
        try:
            yield task
        finally:
            if task_id is not None:  # the finished bar stays (full) until the display is cleared at the end
                self.bar.update(task_id, completed=task.completed, total=task.total or task.completed)
            elif self.enabled:
                done = f"{task.completed}/{task.total}" if task.total is not None else f"{task.completed}"
                self._line(f"{description}: {done} done in {task.elapsed:.1f} s")

    def _line(self, text: str) -> None:
        self.console.print(f"{self.command}: {text}", highlight=False, markup=False, soft_wrap=True)


def quiet() -> Progress:
    """No display: for library callers (tests, the benchmark) that want the work without the output."""
    return Progress("", enabled=False)


def run_concurrently(
    work: Callable[[Item], Result],
    items: Iterable[Item],
    task: Task | None = None,
    workers: int = CONCURRENCY,
) -> list[Result]:
    """`work(item)` for every item, `workers` at a time; the results in the items' order.

    The first exception stops what has not started yet and is raised once the calls in flight end,
    so a failure is reported as itself and never leaves calls running behind the error."""
    todo: Sequence[Item] = list(items)
    if not todo:
        return []

    def one(item: Item) -> Result:
        result = work(item)
        if task is not None:
            task.advance()
        return result

    if workers <= 1 or len(todo) == 1:
        return [one(item) for item in todo]
    with ThreadPoolExecutor(max_workers=min(workers, len(todo))) as pool:
        futures = [pool.submit(one, item) for item in todo]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            wait(futures)
            raise failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]
