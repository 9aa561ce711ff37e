"""The benchmarks still run: each one once, at a tiny size, on the hand-set tiny model; and
RESULTS.md says only what the results hold.

Benchmarks are not tests (nothing here is timed); this keeps bench/ from rotting and its
report honest.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from tests.conftest import BENCH


@pytest.fixture(scope="module")
def bench_modules(import_bench):
    return {name: import_bench(name) for name in ("vs_transformer_lens", "overhead", "scaling", "run_all", "gpu")}


@pytest.fixture(scope="module")
def tiny_run(bench_modules, tmp_path_factory):
    """One `run_all --tiny` of two ported modules and a module that is absent, and the files."""
    folder = tmp_path_factory.mktemp("bench")
    results = bench_modules["run_all"].run_all(
        tiny=True, modules=["vs_transformer_lens", "overhead", "no_such_module"], repeats=2, out=folder,
        command="python bench/run_all.py --tiny", log=lambda line: None)
    return folder, results


@pytest.fixture(scope="module")
def scaling_run(bench_modules, tmp_path_factory):
    """`python bench/scaling.py --tiny` with its plots, once: (folder, results as saved)."""
    folder = tmp_path_factory.mktemp("scaling")
    bench_modules["scaling"].main(["--tiny", "--plots", str(folder), "--json", str(folder / "r.json")])
    return folder, json.loads((folder / "r.json").read_text())


def test_vs_transformer_lens_checks_every_side_and_gives_each_the_same_repeats(tiny_run):
    _, run = tiny_run
    results = run["modules"]["vs_transformer_lens"]["results"]
    assert results["sets"].keys() == {"4", "16"}
    for n in ("4", "16"):
        figures = results["sets"][n]
        assert figures["max_abs_diff"] <= 1e-5  # the same numbers as both detect_head ways before any time counts
        for side in ("detect_head", "detect_head_cache"):
            entry = figures[side]
            assert set(entry["per_prompt_s"]) == {"2", "4"}  # two subset sizes: the linearity check
            if entry["linear"]:
                assert entry["estimate_s"] == pytest.approx(entry["per_prompt_s"]["4"] * 8)
            else:
                assert entry["estimate_s"] is None and entry["speedup"] is None  # refused, not guessed
    assert len(results["sets"]["16"]["patterns"]) == 16
    assert results["repeats"] == 2
    assert {len(runs) for runs in results["runs"].values()} == {2}  # every contender, both sides
    hooks = results["hooks"]
    assert hooks["max_abs_diff"] <= 1e-5 and {len(runs) for runs in hooks["runs"].values()} == {2}
    assert set(hooks["seconds"]) == {"hooks", "detect", "plain forward", "stopped forward"}


def test_extrapolation_only_behind_the_linearity_check(bench_modules):
    extrapolation = bench_modules["vs_transformer_lens"].extrapolation
    linear = extrapolation({"8": 8.0, "16": 17.0}, 64, 0.25)
    assert linear["linear"] and linear["linearity_ratio"] == pytest.approx(17 / 16)
    assert linear["estimate_s"] == pytest.approx(17 / 16 * 64)
    bent = extrapolation({"8": 8.0, "16": 24.0}, 64, 0.25)
    assert bent["linear"] is False and bent["estimate_s"] is None
    everything = extrapolation({"64": 30.0}, 64, 0.25)
    assert everything["linear"] is None and everything["estimate_s"] == 30.0


def test_the_notebooks_induction_score_is_the_offset_diagonal_rule(bench_modules):
    from patternlang.engine import detect
    from patternlang.testing import make_hand_set_model

    vs = bench_modules["vs_transformer_lens"]
    model = make_hand_set_model(n_layers=2, n_ctx=64)
    tokens = vs.repeated_random_tokens(model, 5, 12)
    assert torch.equal(tokens[:, :12], tokens[:, 12:])
    hooks = vs.notebook_hooks(model, tokens, batch_size=2)  # batches of 2, 2 and 1
    ours = detect(model, tokens, vs.diagonal_rules(12), measures="mass", exclude_bos=False,
                  exclude_current_token=False, prepend_bos=False, progress=False)
    for index, name in enumerate(vs.HOOK_SCORES):
        torch.testing.assert_close(ours.get(index, "mass").double(), hooks[name], rtol=0, atol=1e-6)
    # The hand-set heads score highest where they should: L0H0 on the previous token, L1H0 on induction.
    assert hooks["previous token"][0, 0] > 0.9 and int(hooks["induction"].argmax()) == 1 * 3 + 0


def test_overhead_reports_both_ratios(bench_modules, capsys, tmp_path):
    overhead = bench_modules["overhead"]
    results = overhead.main(["--tiny", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    for n in (4, 64):
        assert f"overhead, {n} patterns:" in out and "ratio detect/stopped forward" in out
        assert results["sets"][n]["ratio_plain"] > 0 and results["sets"][n]["ratio_stopped"] > 0
    saved = json.loads((tmp_path / "r.json").read_text())
    saved["sets"]["4"]["target"] = 1.2
    (row,) = overhead.target_rows(saved)
    assert f"{saved['sets']['4']['ratio_plain']:.2f}x the plain pass" in row[1]
    assert f"{saved['sets']['4']['ratio_stopped']:.2f}x the stopped pass" in row[1]


def test_scaling_gives_every_curve_and_draws_the_plots(bench_modules, scaling_run):
    folder, results = scaling_run
    assert [p["patterns"] for p in results["patterns"]["points"]] == [1, 4, 16, 64]
    assert [p["length"] for p in results["length"]["points"]] == [8, 16, 32, 60]
    assert [p["prompts"] for p in results["prompts"]["points"]] == [2, 4, 8]
    for name in ("scaling_patterns.png", "scaling_length.png", "scaling_prompts.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    peaks = [p["peak_mib"] for p in results["prompts"]["points"]]
    assert [row[2] for row in bench_modules["scaling"].target_rows(results)] == [
        max(peaks) <= 1.25 * min(peaks) + 16, True]


def test_run_all_writes_results_and_announces_what_did_not_run(bench_modules, tiny_run):
    folder, _ = tiny_run
    results = json.loads((folder / "results.json").read_text())
    assert set(results) == {"header", "modules"}
    assert {name: e["status"] for name, e in results["modules"].items()} == {
        "vs_transformer_lens": "ok", "overhead": "ok", "no_such_module": "not run"}
    assert results["header"]["repeats"] == 2 and results["modules"]["overhead"]["results"]["repeats"] == 2
    report = (folder / "RESULTS.md").read_text()
    assert "**NOT RUN: `no_such_module`**: bench/no_such_module.py does not exist" in report
    assert "## Against TransformerLens" in report and "## Overhead over" in report
    if not bench_modules["run_all"].GPU_RESULTS.is_file():  # GPU figures are never made up
        assert "## GPU\n\n**Not measured.**" in report and "GPU targets (bench/gpu.py)" in report
    # Re-rendering from the saved figures gives the same report.
    bench_modules["run_all"].main(["--render", "--out", str(folder)])
    assert (folder / "RESULTS.md").read_text() == report


def test_run_all_announces_a_failing_module_and_keeps_the_others(bench_modules, monkeypatch, tmp_path):
    run_all = bench_modules["run_all"]

    def boom(*, tiny: bool, log=print) -> dict[str, Any]:
        raise RuntimeError("the benchmark broke")

    broken = SimpleNamespace(run=boom, render=lambda r: "", target_rows=lambda r: [])
    real = run_all.load_module
    monkeypatch.setattr(run_all, "load_module", lambda name: (broken, None) if name == "broken" else real(name))
    results = run_all.run_all(tiny=True, modules=["broken", "overhead"], out=tmp_path, log=lambda line: None)
    assert results["modules"]["broken"] == {"status": "failed", "why": "RuntimeError: the benchmark broke",
                                            "seconds": results["modules"]["broken"]["seconds"]}
    report = (tmp_path / "RESULTS.md").read_text()
    assert "**FAILED: `broken`**: RuntimeError: the benchmark broke" in report
    assert "## Overhead over the model's own forward pass" in report


# ---- RESULTS.md holds no number that the results do not -------------------------------------
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def fake_header(**changes: Any) -> dict[str, Any]:
    header = {
        "date": "2031-07-09T11:22:33+00:00", "command": "python bench/run_all.py --repeats 3", "tiny": False,
        "repeats": 3, "model_load_s": 7.25, "model": "TestModel (17 layers x 13 heads, float32)",
        "load_before": [4.11, 4.22, 4.33], "load_after": [5.44, 5.55, 5.66], "total_s": 1149.0,
        "engine": {"query_block": 47},
        "machine": {"cpu": "Test CPU", "cores": 23, "torch_threads": 19, "memory_gib": 61.5, "python": "3.99.1",
                    "torch": "8.8.8", "platform": "TestOS", "gpu": None, "gpu_count": 0, "cuda": None,
                    "transformer_lens": "9.9.9", "transformers": "7.7.7"},
    }
    header.update(changes)
    return header


def test_the_header_and_targets_hold_only_numbers_from_the_results(bench_modules):
    run_all = bench_modules["run_all"]
    results = {"header": fake_header(), "modules": {
        "ghost": {"status": "not run", "why": "bench/ghost.py does not exist in this checkout"}}}
    report = run_all.render(results)
    for expected in ("19.1 minutes", "7.2 s", "23 cores (19 torch threads)", "61.5 GiB", "--repeats 3",
                     "4.11 4.22 4.33 / 5.44 5.55 5.66", "transformer-lens 9.9.9", "blocks of 47 queries",
                     "no GPU visible to torch", "**NOT RUN: `ghost`**"):
        assert expected in report, expected
    allowed = json.dumps(results) + " 19.1 7.2"  # the two numbers derived from the header (minutes, rounding)
    strays = [n for n in NUMBER.findall(report) if n not in allowed]
    assert not strays, f"numbers in RESULTS.md that the results do not hold: {strays}"
    gpu_report = run_all.render({"header": fake_header(machine={**fake_header()["machine"], "gpu": "Test GPU 80GB"}),
                                 "modules": {}})
    assert "the machine of this run has a GPU (Test GPU 80GB)" in gpu_report and "no GPU" not in gpu_report


def renumbered(value: Any, alpha: float, counter: list[int]) -> Any:
    """`value` with every float replaced by a value spread over 0.1 .. 100 by `alpha` (the
    fractional parts of i * alpha, i counting the floats), ints and bools kept."""
    if isinstance(value, dict):
        return {key: renumbered(item, alpha, counter) for key, item in value.items()}
    if isinstance(value, list):
        return [renumbered(item, alpha, counter) for item in value]
    if isinstance(value, float):
        counter[0] += 1
        return 10 ** ((counter[0] * alpha) % 1 * 3 - 1)
    return value


def test_every_module_renders_only_numbers_from_its_results(bench_modules, tiny_run, scaling_run):
    """Rendered three times from the same results with every float replaced three ways: a
    number with a decimal point that is the same in all three renders, at the same place, was
    not computed from the results (a figure's ratio to itself, 1.00x, aside); and the repeats
    said are the ones recorded."""
    folder, _ = tiny_run
    saved = json.loads((folder / "results.json").read_text())
    saved["modules"]["scaling"] = {"results": scaling_run[1]}
    for name in ("vs_transformer_lens", "overhead", "scaling"):
        module = bench_modules[name]
        figures = dict(saved["modules"][name]["results"], repeats=7)
        renders = []
        for alpha in (0.6180339887, 0.4142135623, 0.7320508075):
            changed = renumbered(figures, alpha, [0])
            renders.append(module.render(changed) + "\n".join(map(str, module.target_rows(changed))))
        numbers = [NUMBER.findall(text) for text in renders]
        assert len({len(found) for found in numbers}) == 1, name  # the same sentences, other numbers
        fixed = [a for a, b, c in zip(*numbers) if a == b == c and ("." in a or "e" in a) and a != "1.00"]
        assert not fixed, (name, fixed)
        assert set(re.findall(r"best of (\d+)", renders[0], re.IGNORECASE)) == {"7"}, name
        assert "one run" not in renders[0].lower(), name


def test_gpu_script_runs_every_step_on_the_cpu(bench_modules, tmp_path, capsys):
    gpu = bench_modules["gpu"]
    results = gpu.main(["--tiny", "--prompts", "16=2", "32=2", "60=1", "--tl-compare-prompts", "2",
                        "--out", str(tmp_path / "gpu.json")])
    out = capsys.readouterr().out
    assert "gpu: done in" in out and results["cpu_check"] is True
    entry = results["dtypes"]["float32"]
    assert set(entry["throughput"]) == {"16", "32", "60"} and "sets" in entry["vs_transformer_lens"]
    assert "long_context" in entry
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert "**A CPU check at tiny sizes, not GPU figures.**" in gpu.render(saved)
    assert all(row[0].startswith("CPU check") for row in gpu.target_rows(saved))
    skipped = gpu.run(tiny=True, budget_s=0.0, log=lambda line: None)
    assert all("skipped" in e for e in skipped["dtypes"]["float32"]["throughput"].values())
    assert "was spent" in gpu.render(skipped)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for machines without CUDA")
def test_gpu_benchmark_says_it_needs_cuda():
    done = subprocess.run([sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0
    assert "CUDA is not available" in done.stdout
