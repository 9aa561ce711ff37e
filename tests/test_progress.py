"""Progress: where a bar shows (terminal, notebook, nowhere), after how long, and that it counts
layer steps, so that a run of a single batch advances too."""

from __future__ import annotations

import sys
import types

import pytest

from patternlang.engine import detect, progress
from patternlang.engine.progress import ProgressReporter, display_for
from patternlang.testing import FakeAttentionModel


class FakeBar:
    def __init__(self, display, total, description):
        self.display, self.total, self.description = display, total, description
        self.updates: list[tuple[int, str]] = []
        self.closed = False

    def update(self, done, status):
        self.updates.append((done, status))

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    """Every bar made, recorded instead of drawn; no delay before a bar shows."""
    made: list[FakeBar] = []

    def make(display, total, description):
        made.append(FakeBar(display, total, description))
        return made[-1]

    monkeypatch.setattr(progress, "_make_bar", make)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    return made


@pytest.fixture
def notebook(monkeypatch):
    """A Jupyter kernel, as IPython reports one."""
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", ipython)


def terminal(monkeypatch, is_terminal: bool) -> None:
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: is_terminal)


def test_a_bar_shows_on_a_terminal_or_in_a_notebook_only(monkeypatch, notebook):
    terminal(monkeypatch, False)
    assert display_for(True) == "notebook" and display_for(False) is None
    monkeypatch.delitem(sys.modules, "ipykernel")
    assert display_for(True) == "log"  # a pipe, a log file, CI: a line every 30 s (issue 19)
    terminal(monkeypatch, True)
    assert display_for(True) == "terminal" and display_for(False) is None


def test_ipython_in_a_terminal_is_no_notebook(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace()  # a terminal shell has no kernel
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert not progress.in_notebook()
    ipython.get_ipython = lambda: None
    assert not progress.in_notebook()


def test_the_bar_appears_only_after_the_delay():
    now = [0.0]
    made: list[FakeBar] = []
    reporter = ProgressReporter(10, "scoring", display="terminal", delay=2.0, clock=lambda: now[0],
                                make_bar=lambda *args: made.append(FakeBar(*args)) or made[-1])
    reporter.advance(1, "layer 0")
    now[0] = 1.9
    reporter.advance(1, "layer 1")
    assert not made  # a quick run prints nothing
    now[0] = 2.1
    reporter.advance(1, "layer 2")
    assert len(made) == 1 and made[0].total == 10 and made[0].updates == [(3, "layer 2")]
    with reporter:
        reporter.advance(2)
    assert made[0].updates[-1][0] == 5 and made[0].closed


def test_without_a_display_nothing_is_made():
    reporter = ProgressReporter(3, "scoring", display=None, delay=0.0,
                                make_bar=lambda *args: pytest.fail("no bar without a display"))
    for _ in range(3):
        reporter.advance()
    reporter.close()
    assert reporter.done == 3


def test_a_single_batch_advances_layer_by_layer(monkeypatch, bars):
    terminal(monkeypatch, True)
    model = FakeAttentionModel(n_layers=3, n_heads=2, n_ctx=16)
    detect(model, [[1, 5, 6, 5, 6]], "induction_head", batch_size=8)
    (bar,) = bars
    assert bar.display == "terminal" and bar.total == 3 and bar.description == "scoring 1 prompts"
    assert bar.updates == [(1, "batch 1/1, layer 0"), (2, "batch 1/1, layer 1"), (3, "batch 1/1, layer 2")]
    assert bar.closed


def test_steps_are_batches_times_the_layers_run(monkeypatch, bars, notebook):
    terminal(monkeypatch, False)
    model = FakeAttentionModel(n_layers=3, n_heads=2, n_ctx=16)
    detect(model, [[1, 5, 6, 5, 6]] * 3, "induction_head", batch_size=1, heads="L0H1,L1H0")  # not layer 2
    (bar,) = bars
    assert bar.display == "notebook" and bar.total == 3 * 2
    assert [done for done, _ in bar.updates] == list(range(1, 7)) and bar.updates[-1][1] == "batch 3/3, layer 1"


def test_off_and_off_a_terminal_no_bar_is_made(monkeypatch, bars, capsys):
    model = FakeAttentionModel(n_layers=2, n_heads=2, n_ctx=16)
    terminal(monkeypatch, True)
    detect(model, [[1, 5, 6, 5, 6]], "induction_head", progress=False)
    terminal(monkeypatch, False)
    detect(model, [[1, 5, 6, 5, 6]], "induction_head")
    assert not bars and capsys.readouterr().err == ""


def test_the_real_bars_draw_and_close(capsys):
    for display in ("terminal", "notebook"):
        bar = progress._make_bar(display, 4, "scoring 2 prompts")
        bar.update(2, "batch 1/2, layer 1")
        bar.update(4, "batch 2/2, layer 1")
        bar.close()
    err = capsys.readouterr().err
    assert "scoring 2 prompts" in err  # the notebook bar without ipywidgets: tqdm's text on stderr


def test_the_runs_of_a_survey_share_the_delay(monkeypatch):
    import time

    monkeypatch.setattr(progress, "DELAY", 0.05)
    terminal(monkeypatch, True)
    made: list[FakeBar] = []
    monkeypatch.setattr(progress, "_make_bar", lambda *args: made.append(FakeBar(*args)) or made[-1])
    with progress.one_run():
        first = progress.progress_reporter(True, 2, "scoring 3 prompts")
        first.advance()
        time.sleep(0.06)
        with progress.one_run():  # nested: the outer start counts
            second = progress.progress_reporter(True, 2, "scoring 5 prompts")
            second.advance()  # its own first step, but the run has lasted long enough
    assert [bar.description for bar in made] == ["scoring 5 prompts"]
    alone = progress.progress_reporter(True, 2, "scoring 1 prompts")
    alone.advance()
    assert len(made) == 1  # outside a survey, a new run waits its own delay


def test_a_survey_runs_under_one_clock(monkeypatch):
    import patternlang.engine.survey as survey_module

    seen = []
    monkeypatch.setattr(survey_module, "detect_with", lambda *args, **kwargs: seen.append(progress._RUN_STARTED.get()))
    monkeypatch.setattr(survey_module, "join_scores", lambda parts, order: None)
    monkeypatch.setattr(survey_module, "make_probe", lambda *args, **kwargs: None)
    survey_module.survey(None, ["induction_head", "previous_token_head"])
    assert len(seen) == 2 and seen[0] is not None and seen[0] == seen[1]
