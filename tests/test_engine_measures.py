"""The measures against plain per-head Python loops, and against TransformerLens' own function."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformer_lens.head_detector import compute_head_attention_similarity_score

from patternlang.engine.accumulate import Accumulator, PatternGroup
from patternlang.engine.measures import ATTENTION_MEASURES as MEASURES, Exclusions, counted_cells
from patternlang.testing import oracle_scores, random_attention, random_detection

EXCLUSIONS = [Exclusions(False, False), Exclusions(True, False), Exclusions(False, True), Exclusions(True, True)]


def engine_scores(attention, detection, lengths, excl, measures=MEASURES, heads=None):
    n_heads = attention.shape[1]
    acc = Accumulator(n_patterns=detection.shape[0], n_layers=1, n_heads=n_heads, measures=tuple(measures),
                      groups=[PatternGroup(tuple(range(detection.shape[0])), excl)], heads={0: heads})
    acc.start_batch(detection, torch.tensor(lengths))
    acc.add_layer(0, attention)
    return {m: v[:, 0] for m, v in acc.result().values.items()}


@pytest.mark.parametrize("excl", EXCLUSIONS, ids=lambda e: f"bos={e.bos},cur={e.current}")
def test_every_measure_matches_the_loop_oracle_with_padding(excl):
    g = torch.Generator().manual_seed(1)
    lengths = [7, 3, 5, 1]
    attention = random_attention(len(lengths), 3, lengths, g)
    detection = random_detection(4, lengths, g)
    detection[3] = 0  # a pattern with no targets at all: NaN for row measures
    ours = engine_scores(attention, detection, lengths, excl)
    expected = oracle_scores(attention, detection, lengths, excl)
    for m in MEASURES:
        torch.testing.assert_close(ours[m].double(), expected[m], rtol=0, atol=2e-6, equal_nan=True, msg=m)
    assert torch.isnan(ours["mass"][3]).all()
    if not (excl.bos or excl.current):  # with an exclusion the 1-token prompt has no attention left: 0/0, as in TransformerLens
        assert (ours["mul"][3] == 0).all()


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
    bos=st.booleans(),
    current=st.booleans(),
    density=st.sampled_from([0.1, 0.5, 1.0]),
)
def test_measures_match_oracle_property(lengths, seed, bos, current, density):
    g = torch.Generator().manual_seed(seed)
    excl = Exclusions(bos, current)
    attention = random_attention(len(lengths), 2, lengths, g)
    detection = random_detection(2, lengths, g, density)
    ours = engine_scores(attention, detection, lengths, excl)
    expected = oracle_scores(attention, detection, lengths, excl)
    for m in MEASURES:
        torch.testing.assert_close(ours[m].double(), expected[m], rtol=0, atol=2e-6, equal_nan=True, msg=m)


def test_head_subset_scores_equal_full_scores_and_nan_elsewhere():
    g = torch.Generator().manual_seed(2)
    lengths = [6, 4]
    attention = random_attention(2, 5, lengths, g)
    detection = random_detection(2, lengths, g)
    full = engine_scores(attention, detection, lengths, Exclusions())
    subset = engine_scores(attention, detection, lengths, Exclusions(), heads=(1, 3))
    for m in MEASURES:
        torch.testing.assert_close(subset[m][:, [1, 3]], full[m][:, [1, 3]])
        assert torch.isnan(subset[m][:, [0, 2, 4]]).all()


# ---- hand-computed values ------------------------------------------------------------------
# The 4x4 example of TransformerLens' Head Detector demo (demos/Head_Detector_Demo.ipynb).
DEMO_ATTENTION = torch.tensor([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.3, 0.5, 0], [0.1, 0.15, 0.5, 0.25]])
DEMO_PATTERN = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.0]])


def demo(excl: Exclusions) -> dict[str, float]:
    scores = engine_scores(DEMO_ATTENTION[None, None], DEMO_PATTERN[None, None], [4], excl)
    return {m: float(v[0, 0]) for m, v in scores.items()}


def test_the_transformerlens_demo_numbers():
    plain = demo(Exclusions())
    assert plain["mul"] == pytest.approx(0.325, abs=1e-6)  # 1.3 / 4
    assert plain["abs"] == pytest.approx(-0.1, abs=1e-6)  # 1 - 4 * 0.275
    excluded = demo(Exclusions(bos=True, current=True))
    assert excluded["mul"] == pytest.approx(0.8 / 0.95, abs=1e-6)
    assert round(excluded["mul"], 3) == 0.842
    # The demo's text says 0.6625; TransformerLens rounds the error 0.3375 to 3 decimals first.
    assert excluded["abs"] == pytest.approx(0.662, abs=1e-6)


def test_demo_numbers_of_our_own_measures():
    plain = demo(Exclusions())
    # Target rows 1, 2, 3 put 0.5, 0.3 and 0.5 of their attention on the target.
    assert plain["mass"] == pytest.approx((0.5 + 0.3 + 0.5) / 3)
    assert plain["tv"] == pytest.approx((0.5 + 0.3 + 0.5) / 3)
    # Row 1 ties 0.5/0.5: the first (the target) wins; row 2 prefers key 2, row 3 prefers key 2 (target).
    assert plain["argmax"] == pytest.approx(2 / 3)
    excluded = demo(Exclusions(bos=True, current=True))
    # Row 1 has no counted key left; row 2: 0.3 of 0.3 -> 1; row 3: 0.5 of 0.65.
    assert excluded["mass"] == pytest.approx((1 + 0.5 / 0.65) / 2)
    assert excluded["argmax"] == pytest.approx(1.0)


def test_weighted_pattern_mass_and_tv():
    attention = torch.tensor([[1, 0, 0], [0.5, 0.5, 0], [0.6, 0.2, 0.2]])
    pattern = torch.tensor([[0, 0, 0], [0, 0, 0], [2.0, 1.0, 0]])  # only row 2 has targets
    scores = engine_scores(attention[None, None], pattern[None, None], [3], Exclusions())
    # mass: weights scaled to a row max of 1 -> (1, 0.5): 0.6 * 1 + 0.2 * 0.5 = 0.7
    assert float(scores["mass"][0, 0]) == pytest.approx(0.7)
    # tv: pattern row normalised (2/3, 1/3): min(0.6, 2/3) + min(0.2, 1/3) = 0.8
    assert float(scores["tv"][0, 0]) == pytest.approx(0.8)


def test_an_all_ones_pattern_cannot_score_high_on_tv():
    size = 16
    sharp = torch.eye(size)  # attends to itself only
    ones = torch.ones(size, size).tril()
    scores = engine_scores(sharp[None, None], ones[None, None], [size], Exclusions())
    assert float(scores["mass"][0, 0]) == pytest.approx(1.0)  # every key is a target...
    assert float(scores["tv"][0, 0]) < 0.3  # ...but the distribution differs


def test_counted_cells():
    cells = counted_cells(torch.tensor([3, 2]), 3, Exclusions(bos=True, current=True))
    assert cells[0].tolist() == [[False] * 3, [False] * 3, [False, True, False]]
    assert not cells[1, 2].any() and not cells[1, :, 2].any()


@pytest.mark.parametrize("excl", EXCLUSIONS, ids=lambda e: f"bos={e.bos},cur={e.current}")
@pytest.mark.parametrize("measure", ["mul", "abs"])
def test_mul_and_abs_equal_transformerlens_per_prompt(excl, measure):
    g = torch.Generator().manual_seed(7)
    for length in (2, 5, 9):
        attention = random_attention(1, 3, [length], g)
        detection = (torch.rand(1, 1, length, length, generator=g) < 0.4).float().tril()
        ours = engine_scores(attention, detection, [length], excl, measures=(measure,))[measure][0]
        for h in range(3):
            expected = compute_head_attention_similarity_score(
                attention[0, h].clone(), detection[0, 0].clone(), exclude_bos=excl.bos,
                exclude_current_token=excl.current, error_measure=measure)
            assert float(ours[h]) == pytest.approx(expected, abs=1e-6, nan_ok=True)


def test_a_target_row_without_counted_attention_scores_zero_not_nan():
    # One prompt of 3 tokens; head 0 puts all of rows 1 and 2 on BOS, head 1 spreads it evenly.
    attention = torch.zeros(1, 2, 3, 3)
    attention[0, 0, :, 0] = 1.0
    for q in range(3):
        attention[0, 1, q, : q + 1] = 1.0 / (q + 1)
    detection = torch.zeros(1, 1, 3, 3)
    detection[0, 0, 2, 1] = 1.0  # row 2 targets key 1
    detection[0, 0, 1, 1] = 1.0  # row 1 targets itself
    scores = engine_scores(attention, detection, [3], Exclusions(bos=True), measures=("mass", "tv", "argmax"))
    for measure in ("mass", "tv", "argmax"):
        assert scores[measure][0, 0].item() == 0.0, measure  # nothing counted lands on a target
        assert torch.isfinite(scores[measure]).all(), measure
    assert scores["mass"][0, 1].item() == pytest.approx(0.75)  # row 1: 1.0, row 2: 0.5 of the counted keys
    assert scores["argmax"][0, 1].item() == pytest.approx(1.0)  # ties go to the earliest counted key, a target


def test_detect_says_which_scores_are_undefined_and_why():
    from patternlang import detect
    from patternlang.engine.detection import ScoreWarning
    from patternlang.testing import make_hand_set_model

    model = make_hand_set_model()
    with pytest.warns(ScoreWarning, match=r"attend k where k > q \(mass\): no target rows"):
        scores = detect(model, [[1, 2, 3]], ["attend k where k > q", "previous_token_head"],
                        measures=("mass", "mul"), progress=False)
    assert torch.isnan(scores.get("attend k where k > q", "mass")).all()
    assert set(scores.settings["undefined"]) == {"attend k where k > q"}
    with pytest.warns(ScoreWarning, match=r"\(mul\): a prompt where a head has no counted attention"):
        detect(model, [[1]], ["bos_head"], measures="mul", exclude_bos=True, progress=False)


def test_non_finite_values_in_padding_never_reach_the_scores():
    g = torch.Generator().manual_seed(3)
    lengths = [6, 3]  # with both exclusions, 3 tokens still leave a counted cell (mul is defined)
    attention = random_attention(len(lengths), 3, lengths, g)
    detection = random_detection(2, lengths, g)
    clean = engine_scores(attention, detection, lengths, Exclusions())
    detection[:, 1, 3:, :] = torch.nan  # padded rows and columns of the short prompt
    detection[:, 1, :, 3:] = torch.inf
    attention[1, :, 3:, :] = torch.nan  # what a model computes for padded queries is not read either
    for excl in EXCLUSIONS:
        scores = engine_scores(attention, detection, lengths, excl)
        for measure, values in scores.items():
            assert torch.isfinite(values).all(), (excl, measure)
    dirty = engine_scores(attention, detection, lengths, Exclusions())
    for measure in MEASURES:
        torch.testing.assert_close(dirty[measure], clean[measure], msg=measure)


def test_undefined_scores_tell_missing_targets_from_non_finite_attention():
    from patternlang.engine.detection import undefined_scores

    values = {"mass": torch.full((2, 1, 2), torch.nan), "mul": torch.zeros(2, 1, 2)}
    reasons = undefined_scores(values, ["empty", "broken"], {0: None}, target_rows=torch.tensor([0.0, 5.0]))
    assert reasons["empty"]["mass"].startswith("no target rows")
    assert "non-finite" in reasons["broken"]["mass"] and "mul" not in reasons["broken"]
