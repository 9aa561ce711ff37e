"""The evidence behind every score: sample sizes, the chance baseline and `lift`, intervals
over prompts, and per-prompt scores, each against a direct computation."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

from patternlang.engine import Scores, detect
from patternlang.engine.accumulate import Accumulator, PatternGroup, t_quantile_975
from patternlang.engine.measures import ATTENTION_MEASURES as MEASURES, Exclusions
from patternlang.errors import InputError
from patternlang.testing import FakeAttentionModel, oracle_scores, random_attention, random_detection
from patternlang.testing.oracle import oracle_baselines, oracle_rows

EXCLUSIONS = [Exclusions(False, False), Exclusions(True, False), Exclusions(False, True), Exclusions(True, True)]


def tallies_of(attention, detection, lengths, excl, batches=None, measures=tuple(MEASURES)):
    """The accumulator's tallies for one layer, the prompts fed in the given batches."""
    n_heads = attention.shape[1]
    acc = Accumulator(n_patterns=detection.shape[0], n_layers=1, n_heads=n_heads, measures=measures,
                      groups=[PatternGroup(tuple(range(detection.shape[0])), excl)], heads={0: None},
                      per_prompt=len(lengths))
    for chosen in batches or [list(range(len(lengths)))]:
        size = max(lengths[i] for i in chosen)
        acc.start_batch(detection[:, chosen, :size, :size], torch.tensor([lengths[i] for i in chosen]), chosen)
        acc.add_layer(0, attention[chosen][:, :, :size, :size])
    return acc.result()


@pytest.mark.parametrize("excl", EXCLUSIONS, ids=lambda e: f"bos={e.bos},cur={e.current}")
def test_the_baseline_is_the_uniform_head_of_the_definitions(excl):
    g = torch.Generator().manual_seed(3)
    lengths = [7, 3, 5, 2, 6]
    detection = random_detection(3, lengths, g)
    detection[2] = 0  # no target rows: every row baseline is NaN
    attention = random_attention(len(lengths), 2, lengths, g)
    ours = tallies_of(attention, detection, lengths, excl).baseline
    expected = oracle_baselines(detection, lengths, excl)
    for m in MEASURES:
        torch.testing.assert_close(ours[m].double(), expected[m], rtol=0, atol=2e-6, equal_nan=True, msg=m)


def test_baseline_and_lift_by_hand():
    # One prompt of 4 tokens, a previous-token pattern: rows 1, 2, 3 have 2, 3, 4 counted keys and
    # one target each, so a uniform head puts 1/2, 1/3, 1/4 on the target (mean 13/36).
    detection = torch.zeros(1, 1, 4, 4)
    for q in range(1, 4):
        detection[0, 0, q, q - 1] = 1.0
    perfect = detection[0].clone()[:, None]  # [batch, head, q, k]: all on the previous token
    perfect[0, 0, 0, 0] = 1.0
    tallies = tallies_of(perfect, detection, [4], Exclusions())
    assert tallies.baseline["mass"][0].item() == pytest.approx(13 / 36)
    assert tallies.baseline["argmax"][0].item() == pytest.approx(13 / 36)
    # tv: sum_k min(1/n, p_k) with p one-hot: 1/n per row, the same mean.
    assert tallies.baseline["tv"][0].item() == pytest.approx(13 / 36)
    assert tallies.values["mass"][0, 0, 0].item() == pytest.approx(1.0)
    # lift = sum of mass / sum of chance mass = 3 / (1/2 + 1/3 + 1/4) = 36/13
    assert tallies.values["lift"][0, 0, 0].item() == pytest.approx(36 / 13)
    assert tallies.baseline["lift"][0].item() == pytest.approx(1.0)
    assert tallies.n_rows.tolist() == [3] and tallies.n_prompts.tolist() == [1]
    # With BOS excluded, row 1's target (key 0) does not count, so row 1 is no target row;
    # rows 2 and 3 keep 2 and 3 counted keys.
    excluded = tallies_of(perfect, detection, [4], Exclusions(bos=True))
    assert excluded.n_rows.tolist() == [2]
    assert excluded.baseline["mass"][0].item() == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_lift_is_the_measure_over_its_baseline_whatever_the_head():
    g = torch.Generator().manual_seed(5)
    lengths = [9, 4, 6]
    detection = random_detection(2, lengths, g)
    attention = random_attention(len(lengths), 3, lengths, g)
    tallies = tallies_of(attention, detection, lengths, Exclusions())
    expected = tallies.values["mass"][:, 0] / tallies.baseline["mass"][:, None]
    torch.testing.assert_close(tallies.values["lift"][:, 0], expected, rtol=1e-5, atol=1e-6)
    oracle = oracle_scores(attention, detection, lengths, Exclusions())
    torch.testing.assert_close(tallies.values["lift"][:, 0].double(), oracle["lift"], rtol=1e-5, atol=1e-6)


@functools.lru_cache(maxsize=None)
def student_t_975(degrees: float) -> float:
    """Student's t 97.5% quantile from its density alone (Simpson's rule and bisection): an oracle
    that shares nothing with the engine's table."""
    v = float(degrees)
    scale = math.exp(math.lgamma((v + 1) / 2) - math.lgamma(v / 2)) / math.sqrt(v * math.pi)

    def cdf_above_half(x: float, steps: int = 4000) -> float:  # integral of the density from 0 to x
        h = x / steps
        total = sum((1 if i in (0, steps) else 4 if i % 2 else 2) * (1 + (i * h) ** 2 / v) ** (-(v + 1) / 2)
                    for i in range(steps + 1))
        return scale * total * h / 3

    low, high = 0.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf_above_half(middle) < 0.475 else (low, middle)
    return (low + high) / 2


def direct_interval(numerators: np.ndarray, denominators: np.ndarray,
                    measure: str = "abs") -> tuple[float, float, float]:
    """The ratio estimator's 95% interval, straight from per-prompt sums (prompts with d > 0),
    clipped to where the measure's scores can lie."""
    kept = denominators > 0
    x, d = numerators[kept], denominators[kept]
    n = len(x)
    ratio = x.sum() / d.sum()
    residuals = x - ratio * d
    se = math.sqrt((residuals ** 2).sum() / (n - 1) / n) / d.mean()
    t = student_t_975(n - 1)
    floor, ceiling = MEASURES[measure].bounds
    return ratio, min(max(ratio - t * se, floor), ceiling), min(max(ratio + t * se, floor), ceiling)


def test_the_t_quantile_agrees_with_the_density():
    degrees = torch.tensor([1, 2, 7, 29, 30, 31, 45, 200, 10_000], dtype=torch.float64)
    expected = torch.tensor([student_t_975(v) for v in degrees.tolist()], dtype=torch.float64)
    torch.testing.assert_close(t_quantile_975(degrees), expected, rtol=0, atol=1e-5)
    assert torch.isnan(t_quantile_975(torch.tensor([0.0]))).all()


@pytest.mark.parametrize("excl", EXCLUSIONS[:2], ids=["plain", "bos"])
def test_intervals_equal_a_direct_computation_over_per_prompt_sums(excl):
    g = torch.Generator().manual_seed(11)
    lengths = [8, 5, 7, 3, 6, 8, 4]
    detection = random_detection(2, lengths, g)
    attention = random_attention(len(lengths), 2, lengths, g)
    # Batched twice over: the running sums do not depend on how prompts are batched.
    tallies = tallies_of(attention, detection, lengths, excl, batches=[[0, 1, 2], [3, 4], [5, 6]])
    one_batch = tallies_of(attention, detection, lengths, excl)
    for p in range(2):
        for h in range(2):
            # Per-prompt sums from the oracle, one prompt at a time.
            per_prompt = [oracle_scores(attention[[b]], detection[:, [b]], [lengths[b]], excl) for b in range(7)]
            rows = [oracle_rows(attention[b, h, :n, :n].tolist(), detection[p, b, :n, :n].tolist(), excl)
                    for b, n in enumerate(lengths)]
            d = np.array([len(r) for r in rows], dtype=float)
            for i, m in enumerate(("mass", "tv", "argmax")):
                x = np.array([sum(row[i] for row in r) for r in rows])
                ratio, low, high = direct_interval(x, d, m)
                assert tallies.values[m][p, 0, h].item() == pytest.approx(ratio, abs=1e-5)
                assert tallies.ci_low[m][p, 0, h].item() == pytest.approx(low, abs=1e-5), m
                assert tallies.ci_high[m][p, 0, h].item() == pytest.approx(high, abs=1e-5), m
                assert one_batch.ci_low[m][p, 0, h].item() == pytest.approx(low, abs=1e-5), m
            for m in ("mul", "abs"):  # a plain mean over prompts: mean +- z * sd / sqrt(n)
                x = np.array([float(per_prompt[b][m][p, h]) for b in range(7)])
                ratio, low, high = direct_interval(x, np.ones(7), m)
                assert tallies.ci_low[m][p, 0, h].item() == pytest.approx(low, abs=1e-5), m
                assert tallies.ci_high[m][p, 0, h].item() == pytest.approx(high, abs=1e-5), m
            # lift: mass sums over chance-mass sums, per prompt.
            chance = np.array([sum(row[3] for row in r) for r in rows])
            x = np.array([sum(row[0] for row in r) for r in rows])
            ratio, low, high = direct_interval(x, chance, "lift")
            assert tallies.values["lift"][p, 0, h].item() == pytest.approx(ratio, rel=1e-5)
            assert tallies.ci_low["lift"][p, 0, h].item() == pytest.approx(low, rel=1e-4)


def test_one_prompt_has_no_interval_and_per_prompt_scores_are_each_prompts_own():
    g = torch.Generator().manual_seed(2)
    lengths = [6, 4, 5]
    detection = random_detection(1, lengths, g)
    attention = random_attention(len(lengths), 2, lengths, g)
    single = tallies_of(attention[[0]], detection[:, [0]], [6], Exclusions())
    assert torch.isnan(single.ci_low["mass"]).all() and not torch.isnan(single.values["mass"]).any()
    tallies = tallies_of(attention, detection, lengths, Exclusions(), batches=[[2], [0, 1]])
    for b, n in enumerate(lengths):
        alone = tallies_of(attention[[b]], detection[:, [b]], [n], Exclusions())
        for m in MEASURES:
            torch.testing.assert_close(tallies.per_prompt[m][b], alone.values[m], equal_nan=True, msg=m)


# ---- through detect and Scores ---------------------------------------------------------------
PROMPTS = [[1] + list(range(10 + i, 15 + i)) * 2 for i in range(6)]


@pytest.fixture(scope="module")
def model():
    return FakeAttentionModel(n_layers=2, n_heads=3, n_ctx=24)


@pytest.fixture(scope="module")
def scores(model):
    return detect(model, PROMPTS, ["induction_head", "previous_token_head"], measures=("mass", "lift", "mul"),
                  per_prompt=True, batch_size=4)


def test_scores_carry_sample_sizes_baselines_and_intervals(scores):
    evidence = scores.evidence["induction_head"]
    # Each prompt is BOS + 5 tokens twice: the second copy's 5 rows (minus nothing) are targets.
    assert evidence.n_rows == 6 * 5 and evidence.n_prompts == 6 and evidence.n_prompts_run == 6
    assert 0 < scores.baseline("induction_head") < 0.2
    assert scores.baseline("induction_head", "lift") == pytest.approx(1.0)
    low, high = scores.interval("induction_head", "mass")
    grid = scores.get("induction_head", "mass")
    assert (low <= grid + 1e-6).all() and (grid <= high + 1e-6).all() and (high > low).any()


def test_per_prompt_scores_rank_prompts_and_equal_single_prompt_runs(model, scores):
    per = scores.prompt_scores("induction_head", "L1H2", "mass")
    assert per.shape == (len(PROMPTS),)
    for index in (0, 5):
        alone = detect(model, [PROMPTS[index]], "induction_head", measures="mass", progress=False)
        assert per[index].item() == pytest.approx(alone.get("induction_head", "mass")[1, 2].item(), abs=1e-6)
    best = scores.best_prompts("induction_head", "L1H2", k=2)
    worst = scores.worst_prompts("induction_head", "L1H2", k=2)
    assert best[0][1] >= best[1][1] and worst[0][1] <= worst[1][1] and best[0][1] == per.max().item()
    with pytest.raises(InputError, match="per_prompt=True"):
        detect(model, PROMPTS[:2], "induction_head", progress=False).prompt_scores("induction_head", "L0H0")
    with pytest.raises(InputError, match="one head"):
        scores.prompt_scores("induction_head", "L0H0,L0H1")


def test_json_and_csv_keep_the_evidence(scores, tmp_path):
    scores.to_json(tmp_path / "s.json")
    back = Scores.from_json(tmp_path / "s.json")
    assert back.evidence == scores.evidence
    for m in scores.measures:
        torch.testing.assert_close(back.ci_low[m], scores.ci_low[m], equal_nan=True)
        torch.testing.assert_close(back.per_prompt["induction_head"][m], scores.per_prompt["induction_head"][m],
                                   equal_nan=True)
    data = json.loads((tmp_path / "s.json").read_text())
    entry = data["patterns"]["induction_head"]
    assert data["format"] == "patternlang.scores/2"
    assert entry["n_rows"] == 30 and set(entry["ci95"]["mass"]) == {"low", "high"}
    record = next(r for r in scores.to_records() if r["pattern"] == "induction_head" and r["measure"] == "mass")
    assert record["n_rows"] == 30 and record["ci_low"] <= record["score"] <= record["ci_high"]


def test_version_one_files_still_read(tmp_path):
    old = {"model": "m", "measures": ["mass"], "n_layers": 1, "n_heads": 2, "n_prompts": 3,
           "patterns": {"p": {"mass": [[0.5, None]]}}}
    back = Scores.from_dict(old)
    assert back.get("p").tolist()[0][0] == 0.5 and math.isnan(back.baseline("p"))
    assert torch.isnan(back.interval("p")[0]).all()
    with pytest.raises(InputError, match="unknown format"):
        Scores.from_dict({**old, "format": "patternlang.scores/9"})
