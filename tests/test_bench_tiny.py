"""The benchmarks still run: each one once, at a tiny size, on the hand-set tiny model.

Benchmarks are not tests (nothing here is timed); this only keeps bench/ from rotting.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import overhead
        import run_all
        import scaling
        import vs_transformer_lens

        yield {"vs_transformer_lens": vs_transformer_lens, "overhead": overhead, "scaling": scaling,
               "run_all": run_all}
    finally:
        sys.path.remove(str(BENCH))


def test_vs_transformer_lens_prints_a_checked_speedup(bench_modules, capsys):
    results = bench_modules["vs_transformer_lens"].main(["--tiny"])
    out = capsys.readouterr().out
    for n in (4, 16):
        assert f"vs TransformerLens, {n} patterns: speed-up" in out
        figures = results["sets"][n]
        assert figures["max_abs_diff"] <= 1e-5  # the same numbers as TransformerLens before any timing counts
        assert figures["speedup"] > 0 and figures["transformer_lens_s"] > 0
    assert len(results["sets"][16]["patterns"]) == 16


def test_overhead_prints_its_ratios(bench_modules, capsys):
    results = bench_modules["overhead"].main(["--tiny"])
    out = capsys.readouterr().out
    for n in (4, 64):
        assert f"overhead, {n} patterns:" in out and "ratio detect/plain forward" in out
        assert results["sets"][n]["ratio_plain"] > 0


def test_scaling_prints_every_curve_and_draws_the_plots(bench_modules, capsys, tmp_path):
    results = bench_modules["scaling"].main(["--tiny", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    assert "scaling, patterns:   64 patterns" in out
    assert "scaling, length:" in out and "scaling, prompts: peak memory" in out
    assert [p["patterns"] for p in results["patterns"]["points"]] == [1, 4, 16, 64]
    for name in ("scaling_patterns.png", "scaling_length.png", "scaling_prompts.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_all_writes_results_and_the_report(bench_modules, capsys, tmp_path):
    bench_modules["run_all"].main(["--tiny", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "vs TransformerLens, 16 patterns: speed-up" in out and "overhead, 4 patterns" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) >= {"vs_transformer_lens", "overhead", "scaling", "machine", "date", "command"}
    report = (tmp_path / "RESULTS.md").read_text()
    assert "## 1. Against TransformerLens" in report and "scaling_length.png" in report
    assert "not measured" in report.lower()  # no GPU figures are ever made up
    # Re-rendering from the saved figures gives the same report.
    bench_modules["run_all"].main(["--render", "--out", str(tmp_path)])
    assert (tmp_path / "RESULTS.md").read_text() == report


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for machines without CUDA")
def test_gpu_benchmark_says_it_needs_cuda():
    done = subprocess.run([sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0
    assert "CUDA is not available" in done.stdout
