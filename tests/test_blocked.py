"""Scoring by blocks of query rows (engine/blocked.py) against the hook_pattern path (the oracle).

The block path's attention comes from `testing.hook_pattern_blocks`, which slices the real
`hook_pattern` of one forward pass: exact, so every score, interval, baseline, sample size and
per-prompt score must equal `attention="pattern"`'s within 1e-5. Blocks are forced small (the
smallest, 16 rows) so that prompts span several blocks, padding included.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import patternlang.engine.blocked as blocked
import patternlang.engine.plan as plan_module
from patternlang import detect
from patternlang.engine.accumulate import Accumulator, PatternGroup
from patternlang.engine.batching import pad_batch, plan_batches
from patternlang.engine.blocked import blocked_bytes_per_prompt_estimate
from patternlang.engine.measures import BlockSplit, Exclusions, register_measure
from patternlang.engine.pattern_tensors import Detector
from patternlang.errors import InputError
from patternlang.testing import (
    SlicedAttention,
    hook_pattern_blocks,
    make_hand_set_model,
    random_attention,
    random_attention_blocks,
    random_detection,
)

ALL_MEASURES = ("mass", "tv", "argmax", "mul", "abs", "lift")
PATTERNS = ["induction_head", "previous_token_head", "duplicate_token_head", "attend k where k == 0",
            "normalize(attend k where tok[k] == tok[q] shift +1)"]
# Unequal lengths (padding inside and across blocks of 16), over two batches of size 2.
PROMPTS = ["abcdefghij" * 5 + "xyz", "The cat sat on the mat. The cat sat on the mat.", "hello world " * 3,
           "a"]


@pytest.fixture(scope="module")
def model():
    return make_hand_set_model()


@pytest.fixture
def small_blocks(monkeypatch):
    """The smallest blocks (16 query rows), whatever the prompts."""
    monkeypatch.setattr(plan_module, "BLOCK_MEMORY", 1)


def _both(model, prompts, patterns, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN scores (a one-token prompt) warn on both paths alike
        by_pattern = detect(model, prompts, patterns, attention="pattern", progress=False, **options)
        by_blocks = detect(model, prompts, patterns, attention=hook_pattern_blocks, progress=False, **options)
    return by_pattern, by_blocks


def assert_same_scores(expected, actual, atol=1e-5):
    assert actual.patterns == expected.patterns and actual.measures == expected.measures
    for grids in ("values", "ci_low", "ci_high"):
        for measure in expected.measures:
            torch.testing.assert_close(getattr(actual, grids)[measure], getattr(expected, grids)[measure],
                                       atol=atol, rtol=0, equal_nan=True, msg=lambda m, where=f"{grids}[{measure}]": f"{where}: {m}")
    for name in expected.patterns:
        want, got = expected.evidence[name], actual.evidence[name]
        assert (got.n_rows, got.n_prompts, got.n_prompts_run) == (want.n_rows, want.n_prompts, want.n_prompts_run)
        for measure, baseline in want.baseline.items():
            assert got.baseline[measure] == pytest.approx(baseline, abs=atol, nan_ok=True)
        for measure, grid in expected.per_prompt.get(name, {}).items():
            torch.testing.assert_close(actual.per_prompt[name][measure], grid, atol=atol, rtol=0, equal_nan=True)


@pytest.mark.parametrize("exclude_bos,exclude_current", [(False, False), (True, False), (False, True), (True, True),
                                                         (None, None)])
def test_blocks_equal_hook_pattern_for_every_measure_and_exclusion(model, small_blocks, exclude_bos, exclude_current):
    # None: each pattern's own exclusions, several groups in one run.
    by_pattern, by_blocks = _both(model, PROMPTS, PATTERNS, measures=ALL_MEASURES, per_prompt=True, batch_size=2,
                                  exclude_bos=exclude_bos, exclude_current_token=exclude_current)
    assert by_blocks.settings["attention"] == {"path": "blocks", "provider": "hook_pattern_blocks", "query_block": 16}
    assert by_pattern.settings["attention"]["path"] == "hook_pattern"
    assert_same_scores(by_pattern, by_blocks)
    assert by_blocks.evidence["induction_head"].n_rows > 16, "several blocks of target rows"


def test_blocks_equal_hook_pattern_on_a_subset_of_heads_and_larger_blocks(model, monkeypatch):
    # 5 patterns, 1 head per layer, 6 measures: 114 bytes a cell; 3 prompts of 53 tokens: blocks of 32 rows.
    monkeypatch.setattr(plan_module, "BLOCK_MEMORY", 600_000)
    by_pattern, by_blocks = _both(model, PROMPTS[:3], PATTERNS, measures=ALL_MEASURES, per_prompt=True,
                                  heads="0.1,1.2")
    assert by_blocks.settings["attention"]["query_block"] == 32
    # The provenance shown with the scores: the table's caption, the notebook view, the JSON file.
    from patternlang.report.data import caption
    from patternlang.reprs import provenance_rows

    assert caption(by_blocks).endswith(" · attention in query blocks of 32")
    assert "query blocks of" not in caption(by_pattern)
    assert "attention in query blocks of 32" in dict(provenance_rows(by_blocks))["run"]
    assert "attention from hook_pattern (asked for" in dict(provenance_rows(by_pattern))["run"]
    assert '"path": "blocks"' in by_blocks.to_json()
    assert_same_scores(by_pattern, by_blocks)
    assert torch.isnan(by_blocks.values["mass"][:, 0, 0]).all() and not torch.isnan(by_blocks.values["mass"][:, 1, 2]).any()


def test_blocks_equal_hook_pattern_for_fixed_tensors_and_per_prompt_functions(model, small_blocks):
    tokens = torch.tensor([[1] + [5 + (i % 7) for i in range(39)], [1] + [9 + (i % 5) for i in range(39)]])
    fixed = torch.tril(torch.rand(40, 40, generator=torch.Generator().manual_seed(3)))

    def duplicates(ids: torch.Tensor) -> torch.Tensor:  # a function of one prompt, as TransformerLens' detectors
        return torch.tril((ids[:, None] == ids[None, :]).float(), diagonal=-1)

    patterns = [fixed, Detector("duplicates", per_prompt=duplicates), "previous_token_head"]
    by_pattern, by_blocks = _both(model, tokens, patterns, measures=ALL_MEASURES, per_prompt=True)
    assert_same_scores(by_pattern, by_blocks)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), lengths=st.lists(st.integers(1, 24), min_size=1, max_size=3),
       query_block=st.integers(1, 9), bos=st.booleans(), current=st.booleans(), negative=st.booleans())
def test_block_sums_equal_whole_sums_on_random_attention_and_patterns(seed, lengths, query_block, bos, current,
                                                                      negative):
    # The accumulator fed by blocks of any size (1 row up) equals it fed whole layers: every measure,
    # interval, baseline and per-prompt score; padded query rows hold garbage; with `negative`, patterns
    # have negative values (tensors given to detect_head), so row and raw measures read different columns.
    generator = torch.Generator().manual_seed(seed)
    detection = random_detection(3, lengths, generator)
    if negative:
        detection = torch.where(detection > 0.5, detection - 0.8, detection)
    attention = {layer: random_attention(len(lengths), 2, lengths, generator) for layer in (0, 1)}

    def lookup(pattern: int):  # a per-prompt function: the prompt's row number is its first token id
        return lambda ids: detection[pattern, int(ids[0]), : len(ids), : len(ids)]

    detectors = [Detector(f"pattern_{i}", per_prompt=lookup(i)) for i in range(3)]
    token_lists = [torch.tensor([row] + [0] * (n - 1)) for row, n in enumerate(lengths)]
    batch = pad_batch(token_lists, list(range(len(lengths))), 0, torch.device("cpu"))

    def accumulator():
        return Accumulator(n_patterns=3, n_layers=2, n_heads=2, measures=ALL_MEASURES,
                           groups=[PatternGroup((0, 1, 2), Exclusions(bos, current))], heads={0: None, 1: None},
                           per_prompt=len(lengths))

    whole = accumulator()
    whole.start_batch(detection, batch.lengths, list(batch.indices))
    for layer, pattern in attention.items():
        whole.add_layer(layer, pattern)
    by_blocks = accumulator()
    blocked.score_batch_by_blocks(by_blocks, SlicedAttention(attention), detectors, batch, None, [0, 1],
                                  query_block=query_block, device=torch.device("cpu"))
    expected, actual = whole.result(), by_blocks.result()
    for field in ("values", "ci_low", "ci_high", "baseline", "per_prompt"):
        for measure in ALL_MEASURES:
            # `abs` rounds each prompt's score to 3 decimals (as TransformerLens does); its sum over blocks
            # (float64) and over the whole matrix (float32) differ by ~1e-7, which can put a value lying on
            # a rounding boundary on its other side: one step of 0.001 in that prompt, at most.
            atol = 1e-3 + 1e-5 if measure == "abs" else 1e-5
            torch.testing.assert_close(getattr(actual, field)[measure], getattr(expected, field)[measure],
                                       atol=atol, rtol=0, equal_nan=True)
    flips = (actual.per_prompt["abs"] - expected.per_prompt["abs"]).abs().nan_to_num() > 1e-5
    assert flips.sum() <= 1, "more than one rounding flip: not a boundary case"
    assert torch.equal(actual.n_rows, expected.n_rows) and torch.equal(actual.n_prompts, expected.n_prompts)


def test_padded_query_rows_are_never_read(model, small_blocks):
    # Whatever a provider gives for padded queries (NaN here) stays out of every score, in every block.
    def poisoned_blocks(model, tokens, lengths, layers):
        sliced = hook_pattern_blocks(model, tokens, lengths, layers)

        class Poisoned:
            def block(self, layer, q_start, q_stop):
                block = sliced.block(layer, q_start, q_stop).clone()
                padded = torch.arange(q_start, q_stop)[None, :] >= lengths[:, None].cpu()  # [batch, q]
                block[padded[:, None, :, None].expand_as(block)] = torch.nan
                return block
        return Poisoned()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = detect(model, PROMPTS, PATTERNS, measures=ALL_MEASURES, per_prompt=True, attention="pattern",
                          progress=False)
        actual = detect(model, PROMPTS, PATTERNS, measures=ALL_MEASURES, per_prompt=True, attention=poisoned_blocks,
                        progress=False)
    assert_same_scores(expected, actual)


def test_auto_takes_blocks_for_long_prompts_where_the_route_works(model, monkeypatch):
    monkeypatch.setattr(blocked, "model_route", lambda: (hook_pattern_blocks, lambda model: None))
    monkeypatch.setattr(blocked, "AUTO_BLOCKS_FROM", 20)
    long = detect(model, PROMPTS[:2], "induction_head", progress=False)
    assert long.settings["attention"]["path"] == "blocks"
    short = detect(model, ["abcabc"], "induction_head", progress=False)
    assert short.settings["attention"] == {"path": "hook_pattern", "why": "no prompt is longer than 20 tokens"}
    forced = detect(model, ["abcabc"], "induction_head", progress=False, attention="blocks")
    assert forced.settings["attention"]["path"] == "blocks"


def test_without_a_route_auto_falls_back_and_blocks_is_an_error_naming_why(model, monkeypatch):
    # The route refuses the hand-set models (not an architecture it has checked): its own reason.
    why = blocked.route_unavailable(model)
    assert why
    monkeypatch.setattr(blocked, "AUTO_BLOCKS_FROM", 20)
    scores = detect(model, PROMPTS[:2], "induction_head", progress=False)
    assert scores.settings["attention"] == {"path": "hook_pattern", "why": why}
    with pytest.raises(InputError, match="attention='blocks' cannot run here: " + re.escape(why)):
        detect(model, PROMPTS[:2], "induction_head", progress=False, attention="blocks")
    monkeypatch.setattr(blocked, "model_route", lambda: (hook_pattern_blocks, lambda model: "a native checkpoint"))
    with pytest.raises(InputError, match="cannot run here: a native checkpoint"):
        detect(model, PROMPTS[:2], "induction_head", progress=False, attention="blocks")
    assert detect(model, PROMPTS[:2], "induction_head", progress=False).settings["attention"] == {
        "path": "hook_pattern", "why": "a native checkpoint"}


def test_runs_needing_the_models_outputs_stay_on_hook_pattern(model, monkeypatch):
    monkeypatch.setattr(blocked, "model_route", lambda: (hook_pattern_blocks, lambda model: None))
    monkeypatch.setattr(blocked, "AUTO_BLOCKS_FROM", 20)
    with pytest.raises(InputError, match="copying measure reads the heads' outputs"):
        detect(model, PROMPTS[:2], "induction_head", measures="copying", progress=False, attention="blocks")
    with pytest.raises(InputError, match="copying measure"):
        detect(model, PROMPTS[:2], "induction_head", measures="copying", progress=False, attention=hook_pattern_blocks)
    scores = detect(model, PROMPTS[:2], "induction_head", measures="copying", progress=False)
    assert scores.settings["attention"]["path"] == "hook_pattern"
    assert "copying" in scores.settings["attention"]["why"]


@pytest.mark.parametrize("value,message", [("block", "did you mean 'blocks'"), (3, "got 3"), ("", "got ''")])
def test_an_unknown_attention_path_is_an_input_error(model, value, message):
    with pytest.raises(InputError, match="attention must be one of auto, blocks, pattern") as error:
        detect(model, ["abc"], "induction_head", progress=False, attention=value)
    assert message in str(error.value) or message in (error.value.hint or "")


def test_the_block_path_plans_memory_linear_in_the_length(model):
    estimate = blocked_bytes_per_prompt_estimate(model, 16, ("mass",), 2)
    assert estimate(8192) == pytest.approx(2 * estimate(4096)) == pytest.approx(8 * estimate(1024))
    budget = 64 * estimate(1024)
    rows = [len(batch) for batch in plan_batches([8192] * 64 + [1024] * 64, None, bytes_per_prompt=estimate,
                                                 memory_budget=budget)]
    assert rows == [8] * 8 + [64]
    assert blocked.query_block_size(8192, 1, 300) == 96
    assert blocked.query_block_size(100, 1, 300) == 100  # never beyond the prompt
    assert blocked.query_block_size(8192, 64, 300) == blocked.MIN_QUERY_BLOCK
    assert blocked.query_block_size(64, 1, 1) == 64 and blocked.query_block_size(10_000, 1, 1) == blocked.MAX_QUERY_BLOCK


def test_random_blocks_are_causal_softmaxed_rows_and_repeat():
    lengths = torch.tensor([40, 25])
    blocks = random_attention_blocks(3, seed=1)(None, torch.zeros(2, 40, dtype=torch.long), lengths, [0, 1])
    block = blocks.block(1, 16, 32)
    assert block.shape == (2, 3, 16, 32)
    assert torch.equal(block, blocks.block(1, 16, 32)) and not torch.equal(block, blocks.block(0, 16, 32))
    whole = blocks.block(1, 0, 40)
    for q_start, q_stop in [(0, 7), (7, 23), (23, 40), (16, 32)]:  # rows agree whichever block asks for them
        torch.testing.assert_close(blocks.block(1, q_start, q_stop), whole[:, :, q_start:q_stop, :q_stop])
    torch.testing.assert_close(block[0].sum(-1), torch.ones(3, 16))
    queries, keys = torch.arange(16, 32)[:, None], torch.arange(32)[None, :]
    assert not block[:, :, keys.expand(16, 32) > queries].any(), "zero where k > q"
    assert not block[1, :, :, 25:].any(), "zero on padding keys"


def test_a_measure_with_its_own_chance_must_be_a_sum_over_rows():
    with pytest.raises(ValueError, match="custom chance"):
        register_measure("ratio_with_chance", "0 .. 1", "a ratio with a custom chance", averaged_over="prompts",
                         partial_sum=lambda work: work.products[..., :1], chance=lambda targets: targets.target_rows,
                         blocks=BlockSplit(lambda work: (work.products,), lambda parts, lengths: parts[0]))


def test_blocks_equal_hook_pattern_on_smollm2(embedded_model, small_blocks):
    # Two real prompts of unequal lengths (~100 and ~65 tokens), blocks of 16 rows: padding in
    # the last blocks of the shorter one; the first three layers keep it quick (the pass stops there).
    text = ("The quick brown fox jumps over the lazy dog near the river bank, while the old farmer "
            "watches from his porch and the children play in the tall grass. ")
    prompts = [text * 3, text * 2]
    by_pattern, by_blocks = _both(embedded_model, prompts, ["induction_head", "previous_token_head",
                                                            "duplicate_token_head", "attend k where k == 0"],
                                  measures=ALL_MEASURES, per_prompt=True, heads={layer: list(range(9)) for layer in range(3)})
    assert by_blocks.settings["attention"]["query_block"] == 16
    assert_same_scores(by_pattern, by_blocks)


def test_the_memory_benchmark_runs_tiny_and_agrees_with_the_hook_pattern_path():
    # bench/blocked_memory.py on the hand-set shape, two short lengths: runs, renders from its results.
    bench = Path(__file__).resolve().parents[1] / "bench"
    sys_path = str(bench)
    sys.path.insert(0, sys_path)
    try:
        spec = importlib.util.spec_from_file_location("blocked_memory", bench / "blocked_memory.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        results = module.run(tiny=True, lengths=(64, 128), log=lambda *_: None)
    finally:
        sys.path.remove(sys_path)
    assert [row["length"] for row in results["rows"]] == [64, 128]
    assert all(row["query_block"] == 16 and row["max_difference"] <= 1e-5 for row in results["rows"])
    assert "| 128 |" in module.render(results)
    targets = dict((target, met) for target, _, met in module.target_rows(results))
    assert targets["block path's scores equal the hook_pattern path's (within 1e-5)"] is True
