"""bench/effects.py still runs (tiny: the hand-set model, seconds) and its section says only what it measured."""

from __future__ import annotations

import re


def test_effects_bench_runs_tiny_and_renders_its_own_numbers(import_bench):
    effects = import_bench("effects")
    results = effects.run(tiny=True, log=lambda line: None)
    assert results["attribution_ratio"] > 0 and results["k"] == 4 and results["command"] is None
    assert effects.target_rows(results) == []  # no targets on the tiny model
    text = effects.render(results)
    assert text.startswith("## Effects")
    assert f"{results['attribution_ratio']:.2f}x" in text and f"{results['heads_per_s_batched']:.2f}" in text
    assert not re.search(r"\bnan\b", text)


def test_effects_is_in_run_alls_list(import_bench):
    assert "effects" in import_bench("run_all").MODULES
