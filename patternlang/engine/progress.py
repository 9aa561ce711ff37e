"""Progress of a scoring run, counted in layer steps (one batch through one layer), so that a
run of a single batch moves too.

Where it shows: inside a Jupyter kernel, a notebook bar (tqdm: a widget where ipywidgets is
installed, a line of text otherwise); else, when stderr is a terminal, a rich bar on stderr;
else (pipes, log files, CI, `make atlas`) a plain line on stderr at most every `LOG_EVERY`
seconds once a run has lasted that long: what, how far, how long so far. Never when turned off.
A bar appears only once a run has lasted `DELAY` seconds, so quick runs print nothing, and it is
removed when the run ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, Protocol

from torch import Tensor

DELAY = 2.0  # seconds a run lasts before its bar appears
LOG_EVERY = 30.0  # off a terminal: seconds before the first progress line, and between two

Display = Literal["terminal", "notebook", "log"]


class Bar(Protocol):
    """A bar on some display: told how many steps are done, and closed at the end."""

    def update(self, done: int, status: str) -> None: ...

    def close(self) -> None: ...


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython with a kernel, not a terminal IPython)."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:  # noqa: BLE001 - a broken IPython means no notebook, not a failed run
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def display_for(enabled: bool) -> Display | None:
    """Where a bar would show now: a notebook, a terminal, or nowhere (None)."""
    if not enabled:
        return None
    if in_notebook():
        return "notebook"
    if stderr_is_terminal():
        return "terminal"
    return "log"


class ProgressReporter:
    """Counts steps towards `total` and shows them on `display` once `delay` seconds have passed.

    >>> reporter = ProgressReporter(4, "scoring", display=None)
    >>> reporter.advance(); reporter.done
    1
    """

    def __init__(self, total: int, description: str, *, display: Display | None, delay: float = DELAY,
                 clock: Callable[[], float] = time.monotonic,
                 make_bar: Callable[[Display, int, str], Bar] | None = None):
        self.total = total
        self.description = description
        self.display = display
        self.delay = delay
        self.clock = clock
        self.make_bar = make_bar or _make_bar
        self.started = clock()
        self.done = 0
        self.bar: Bar | None = None
        self.note = ""  # shown before each step's status (a chunked run: prompts scored and read)

    def advance(self, steps: int = 1, status: str = "") -> None:
        self.done += steps
        if self.display is None:
            return
        if self.bar is None:
            if self.clock() - self.started < self.delay:
                return
            self.bar = self.make_bar(self.display, self.total, self.description)
            if isinstance(self.bar, LogLines):
                self.bar.started, self.bar.clock = self.started, self.clock
        self.bar.update(self.done, status)

    def counting(self, on_attention: Callable[[int, Tensor], None],
                 status: str = "") -> Callable[[int, Tensor], None]:
        """`on_attention(layer, pattern)` that also advances one step per layer."""
        def counted(layer: int, pattern: Tensor, *rest: Any) -> None:
            on_attention(layer, pattern, *rest)
            step = f"{status}, layer {layer}" if status else f"layer {layer}"
            self.advance(1, f"{self.note}; {step}" if self.note else step)

        return counted

    def set_total(self, total: int) -> None:
        """A run read in chunks learns its number of steps chunk by chunk."""
        self.total = total
        if self.bar is not None and hasattr(self.bar, "set_total"):
            self.bar.set_total(total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


_RUN_STARTED: ContextVar[float | None] = ContextVar("patternlang_run_started", default=None)


@contextmanager
def one_run() -> Iterator[None]:
    """The runs inside count as one for the delay: a survey's later `detect` runs show their bars
    at once when the survey as a whole has lasted `DELAY` seconds."""
    if _RUN_STARTED.get() is not None:  # inside another one: that one's start counts
        yield
        return
    token = _RUN_STARTED.set(time.monotonic())
    try:
        yield
    finally:
        _RUN_STARTED.reset(token)


def progress_reporter(enabled: bool, total: int, description: str) -> ProgressReporter:
    """A reporter for a run of `total` layer steps, shown where the run is watched (`display_for`)."""
    display = display_for(enabled)
    reporter = ProgressReporter(total, description, display=display, delay=LOG_EVERY if display == "log" else DELAY)
    started = _RUN_STARTED.get()
    if started is not None:
        reporter.started = min(reporter.started, started)
    return reporter


def _make_bar(display: Display, total: int, description: str) -> Bar:
    if display == "log":
        return LogLines(total, description)
    if display == "notebook":
        try:
            return _NotebookBar(total, description)
        except ImportError:  # no tqdm: rich draws in notebooks too
            pass
    return _TerminalBar(total, description)


class LogLines:
    """Progress off a terminal: a line on stderr at most every `LOG_EVERY` seconds, e.g.
    `patternlang: scoring 64 prompts: 120/240 steps (50%), 1 min 30 s so far; layer 12`."""

    def __init__(self, total: int, description: str, *, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.description = description
        self.clock = clock
        self.started = clock()
        self.last: float | None = None

    def update(self, done: int, status: str) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < LOG_EVERY:
            return
        self.last = now
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        line = (f"patternlang: {self.description}: {done}/{self.total} steps{share}, "
                f"{_duration(now - self.started)} so far" + (f"; {status}" if status else ""))
        print(line, file=sys.stderr, flush=True)

    def set_total(self, total: int) -> None:
        self.total = total

    def close(self) -> None:
        """Nothing to close: each line was printed and flushed when it was due."""


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


class _TerminalBar:
    def __init__(self, total: int, description: str):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                   TimeRemainingColumn(), TextColumn("{task.fields[status]}", style="bright_black"))
        self.progress = Progress(*columns, console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task(description, total=total, status="")
        self.started = False

    def update(self, done: int, status: str) -> None:
        self.progress.update(self.task, completed=done, status=status)
        if not self.started:  # started after the first count, so that it never shows an empty bar
            self.progress.start()
            self.started = True

    def set_total(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def close(self) -> None:
        self.progress.stop()


class _NotebookBar:
    def __init__(self, total: int, description: str):
        try:
            import ipywidgets  # noqa: F401 - tqdm's widget needs it; without it, text on stderr
            from tqdm.notebook import tqdm
        except ImportError:
            from tqdm import tqdm
        self.bar = tqdm(total=total, desc=description, unit="step", leave=False, file=sys.stderr)

    def update(self, done: int, status: str) -> None:
        self.bar.set_postfix_str(status, refresh=False)
        self.bar.update(done - self.bar.n)

    def set_total(self, total: int) -> None:
        self.bar.total = total
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
