"""bench/model_aware.py follows the benchmark module protocol (run, render, target_rows; standalone
with --tiny) and still runs, once, on the hand-set tiny model. Nothing here is timed."""

from __future__ import annotations

import json

import pytest



@pytest.fixture(scope="module")
def model_aware(import_bench):
    return import_bench("model_aware")


def test_model_aware_runs_renders_its_results_and_writes_json(model_aware, tmp_path, capsys):
    path = tmp_path / "results_model_aware.json"
    results = model_aware.main(["--tiny", "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(results))  # JSON-serialisable, written whole
    assert set(results["best_s"]) == set(model_aware.CONTENDERS) and len(results["patterns"]) == 16
    assert results["patterns"][-1] == model_aware.MODEL_AWARE
    for name in model_aware.CONTENDERS:
        assert results["ratio_plain"][name] == pytest.approx(results["best_s"][name] / results["best_s"]["plain forward"])
    section = model_aware.render(results)
    assert section.startswith("## Patterns that see the model")
    assert f"{results['ratio_plain'][model_aware.AWARE]:.2f}x" in section  # every number from the results
    assert model_aware.target_rows(results) == []  # no target on the tiny model


def test_the_target_row_is_judged_from_the_results(model_aware):
    results = {"target": 2.0, "n_prompts": 64, "n_tokens": 64,
               "ratio_plain": {model_aware.AWARE: 1.4}, "ratio_stopped": {model_aware.AWARE: 1.9}}
    (target, measured, met), = model_aware.target_rows(results)
    assert "<= 2.0x a plain forward pass" in target and measured.startswith("1.40x the plain pass") and met is True
    results["ratio_plain"][model_aware.AWARE] = 2.3
    assert model_aware.target_rows(results)[0][2] is False
