"""bench/long_context.py still runs (tiny random bridges, tiny lengths) and renders from its results alone.

Nothing here is timed; this keeps the benchmark from rotting.
"""

from __future__ import annotations

import json

import pytest
import torch



@pytest.fixture(scope="module")
def long_context(import_bench):
    return import_bench("long_context")


def test_long_context_runs_tiny_and_renders_from_its_results(long_context, tmp_path, capsys):
    out = tmp_path / "results.json"
    results = long_context.main(["--tiny", "--lengths", "24", "48", "--gemma-tokens", "40", "--json", str(out),
                                 "--plots", str(tmp_path)])
    assert [p["length"] for p in results["points"]] == [24, 48]
    for point in results["points"]:
        assert point["blocks"]["seconds"] > 0 and point["pattern"]["seconds"] > 0
    assert results["gemma"]["status"] == "ok" and results["gemma"]["length"] == 40
    saved = json.loads(out.read_text())
    assert long_context.render(saved) == long_context.render(results)  # from the saved results alone
    rows = long_context.target_rows(saved)
    assert [type(met) in (bool, type(None)) for _, _, met in rows] == [True] * len(rows)
    assert "Gemma 3 at 40 tokens runs to completion" in [target for target, _, _ in rows]
    assert (tmp_path / "long_context.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 48 |" in capsys.readouterr().out


def test_the_capture_path_computes_every_block(long_context):
    """Every real query row of every block sums to 1: the sum is layers x heads x tokens."""
    from patternlang.testing.tiny_bridges import make_tiny_bridge

    model = make_tiny_bridge("gemma3", sliding_window=4)
    tokens = long_context.one_prompt(model, 37)
    assert tokens.shape == (1, 37)
    total = long_context.capture_every_block(model, tokens, [0, 1, 2])
    assert total == pytest.approx(3 * model.cfg.n_heads * 37, rel=1e-5)
    assert long_context.kept_bytes(model, 37, 3) == 3 * 37 * (4 + 2) * 8 * 4
    assert torch.equal(long_context.one_prompt(model, 37), tokens)  # the same prompt every run
