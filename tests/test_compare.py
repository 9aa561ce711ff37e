"""`compare`: two Scores side by side, head by head (B - A) or, for two shapes, best heads side by
side; the `patternlang compare` command, its table, JSON and difference heatmaps."""

from __future__ import annotations

import json
import math

import pytest
import torch

import patternlang
from patternlang.comparison import Change, compare
from patternlang.engine.scores import Scores
from patternlang.errors import InputError
from patternlang.report.colors import diverging_scale
from tests.conftest import run


def scores(patterns, measures, grids=None, *, model="m", n_prompts=4, shape=(2, 3), own=None) -> Scores:
    """Scores whose grids are given per (pattern, measure), else 0.1 * (layer * n_heads + head)."""
    n_layers, n_heads = shape
    ramp = torch.arange(n_layers * n_heads, dtype=torch.float32).reshape(n_layers, n_heads) / 10
    values = {m: torch.stack([torch.as_tensor((grids or {}).get((p, m), ramp), dtype=torch.float32)
                              for p in patterns]) for m in measures}
    settings = {"pattern_measures": own} if own else {}
    return Scores(tuple(patterns), tuple(measures), values, model=model, n_prompts=n_prompts, n_tokens=10,
                  settings=settings, n_layers=n_layers, n_heads=n_heads)


A_GRID = [[0.1, 0.5, 0.9], [0.2, 0.2, math.nan]]
B_GRID = [[0.1, 0.2, 0.95], [0.6, math.nan, 0.3]]


@pytest.fixture
def pair():
    a = scores(["induction_head", "bos_head", "only_a"], ["mass", "tv"], {("induction_head", "mass"): A_GRID},
               model="step-1000", n_prompts=4)
    b = scores(["other", "bos_head", "induction_head"], ["mass", "mul"], {("induction_head", "mass"): B_GRID},
               model="step-5000", n_prompts=8)
    return a, b


def test_the_difference_is_b_minus_a_over_what_both_hold(pair):
    a, b = pair
    comparison = compare(a, b)
    assert comparison.same_shape
    assert comparison.patterns == ("induction_head", "bos_head") and comparison.measures == ("mass",)
    assert comparison.only_in_a == {"patterns": ["only_a"], "measures": ["tv"]}
    assert comparison.only_in_b == {"patterns": ["other"], "measures": ["mul"]}
    expected = torch.tensor(B_GRID) - torch.tensor(A_GRID)
    torch.testing.assert_close(comparison.difference["mass"][0], expected, equal_nan=True)
    assert comparison.difference["mass"].shape == (2, 2, 3)
    assert not comparison.difference["mass"][1].any()  # bos_head is the same in both


def test_changed_most_ranks_by_the_size_of_the_change_and_skips_nan(pair):
    comparison = compare(*pair)
    changed = comparison.changed_most("induction_head", k=10)
    assert [c.label for c in changed] == ["L1H0", "L0H1", "L0H2"]  # L0H0 is unchanged; L1H1, L1H2: NaN on a side
    label, a, b, delta = changed[0]
    assert isinstance(changed[0], Change) and label == "L1H0"
    assert (a, b) == pytest.approx((0.2, 0.6)) and delta == pytest.approx(0.4)
    assert changed[1].delta == pytest.approx(-0.3)  # a loss ranks by its size
    assert comparison.changed_most("induction_head", k=1) == changed[:1]
    with pytest.raises(InputError) as raised:
        comparison.changed_most("induction_haed")
    assert raised.value.hint == "did you mean 'induction_head'?"


def test_each_pattern_is_compared_by_its_own_measure_or_the_one_named():
    own = {"p": "tv", "q": "mul"}
    a = scores(["p", "q"], ["mass", "tv"], own=own)
    b = scores(["p", "q"], ["mass", "tv"])
    comparison = compare(a, b)
    assert comparison.measure_of("p") == "tv"
    assert comparison.measure_of("q") == "mass"  # its own measure is not in both: the first shared one
    assert compare(a, b, measure="mass").measure_of("p") == "mass"


@pytest.mark.parametrize("measure, message, hint", [
    ("tv", "B has no scores for measure 'tv'; it has: mass, mul", "compare by a measure both have: mass"),
    ("mas", "neither A nor B has scores for measure 'mas'", "did you mean 'mass'?"),
])
def test_a_measure_must_be_in_both(pair, measure, message, hint):
    with pytest.raises(InputError) as raised:
        compare(*pair, measure=measure)
    assert message in raised.value.message and raised.value.hint == hint


def test_nothing_shared_is_an_error():
    with pytest.raises(InputError, match="share no pattern: A has x, B has y"):
        compare(scores(["x"], ["mass"]), scores(["y"], ["mass"]))
    with pytest.raises(InputError, match="share no measure: A has mass, B has tv"):
        compare(scores(["x"], ["mass"]), scores(["x"], ["tv"]))
    with pytest.raises(InputError, match="not Scores"):
        compare(scores(["x"], ["mass"]), {"patterns": {}})


def test_two_shapes_compare_by_each_sides_best_heads():
    a = scores(["p"], ["mass"], shape=(2, 3), model="small")
    b = scores(["p"], ["mass"], shape=(4, 2), model="big")
    comparison = compare(a, b)
    assert not comparison.same_shape and comparison.difference == {}
    with pytest.raises(InputError, match="A has 2×3 heads and B 4×2: no head is in both"):
        comparison.changed_most("p")
    top_a, top_b = comparison.top("p", k=2)
    assert [h for h, _ in top_a] == ["L1H2", "L1H1"] and [h for h, _ in top_b] == ["L3H1", "L3H0"]
    data = comparison.to_dict(k=1)
    assert data["same_shape"] is False and "difference" not in data
    assert data["top"]["p"] == {"a": [{"head": "L1H2", "score": pytest.approx(0.5)}],
                                "b": [{"head": "L3H1", "score": pytest.approx(0.7)}]}


def test_to_dict_is_json_with_null_for_nan(pair):
    data = compare(*pair).to_dict(k=2)
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["difference"]["induction_head"]["mass"][1][1] is None
    assert data["a"] == {"label": "A", "model": "step-1000", "n_prompts": 4, "n_layers": 2, "n_heads": 3}
    assert [c["head"] for c in data["changed_most"]["induction_head"]] == ["L1H0", "L0H1"]


def test_compare_is_in_the_public_api(pair):
    assert patternlang.compare is compare and "compare" in patternlang.__all__
    assert isinstance(patternlang.compare(*pair), patternlang.Comparison)


def test_the_difference_scale_is_centred_on_zero():
    scale = diverging_scale([[0.1, -0.4, math.nan]])
    assert (scale.vmin, scale.vmax, scale.kind) == (-0.4, 0.4, "diverging")
    assert scale.hex(0.0) == diverging_scale([[0.0]]).hex(0.0)  # no change looks the same in every figure
    red, green, blue = scale.rgb(0.0)
    assert min(red, green, blue) > 0.9  # near white
    assert scale.rgb(0.4)[2] > scale.rgb(0.4)[0] and scale.rgb(-0.4)[0] > scale.rgb(-0.4)[2]  # blue up, red down


# ---- the command ---------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path, pair):
    a, b = pair
    a.to_json(tmp_path / "a.json")
    b.to_json(tmp_path / "b.json")
    scores(["induction_head"], ["mass"], shape=(4, 2), model="other-model", n_prompts=5).to_json(tmp_path / "c.json")
    return tmp_path


def test_compare_prints_the_heads_that_changed_most(capsys, files):
    code, out, err = run(capsys, "compare", str(files / "a.json"), str(files / "b.json"), "--top", "2")
    assert code == 0, err
    assert "heads that changed most" in out and "L1H0" in out and "+0.400" in out and "-0.300" in out
    assert "step-1000 · 4 prompts" in out and "step-5000 · 8 prompts" in out and "a.json" in out
    assert "L0H2" not in out  # --top 2
    assert "only A" in err and "only_a" in err and "only B" in err and "other" in err


def test_compare_two_shapes_lists_best_heads_side_by_side(capsys, files):
    code, out, err = run(capsys, "compare", str(files / "a.json"), str(files / "c.json"))
    assert code == 0, err
    assert "side by side" in out and "A has 2×3 heads and B 4×2" in out and "other-model · 5 prompts" in out
    assert "A head" in out and "L3H1" in out


def test_compare_writes_json_and_difference_heatmaps(capsys, files):
    png, html, report = files / "out" / "d.png", files / "out" / "d.html", files / "out" / "d.json"
    code, _, err = run(capsys, "compare", str(files / "a.json"), str(files / "b.json"), "--heatmap", str(png),
                       "--heatmap", str(html), "--json", str(report), "--top", "3")
    assert code == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"
    page = html.read_text()
    assert "change per head, B − A" in page and "+0.40" in page and "-0.30" in page and "most changed" in page
    data = json.loads(report.read_text())
    assert data["a"]["file"] == str(files / "a.json") and len(data["changed_most"]["induction_head"]) == 3
    code, out, _ = run(capsys, "compare", str(files / "a.json"), str(files / "b.json"), "--json", "-")
    assert code == 0 and json.loads(out)["b"]["model"] == "step-5000"


@pytest.mark.parametrize("args, message", [
    (["a.json", "missing.json"], "cannot read the scores file"),
    (["a.json", "c.json", "--heatmap", "h.png"], "no difference heatmap"),
    (["a.json", "b.json", "--measure", "mas"], "did you mean 'mass'?"),
    (["a.json", "b.json", "--heatmap", "h.gif"], "unknown file type (.gif)"),
    (["a.json", "not_scores.json"], "is not valid: field measures"),
    (["a.json", "disjoint.json"], "share no pattern"),
])
def test_compare_errors_exit_1_and_write_nothing(capsys, files, args, message):
    (files / "not_scores.json").write_text('{"hello": 1}')
    scores(["nothing_alike"], ["mass"]).to_json(files / "disjoint.json")
    before = set(files.iterdir())
    code, _, err = run(capsys, "compare", *[str(files / a) if a.endswith((".json", ".png", ".gif")) else a
                                            for a in args])
    assert code == 1 and message in err and "Traceback" not in err, err
    assert set(files.iterdir()) == before


def test_compare_usage_errors_exit_2(capsys, files):
    code, _, _ = run(capsys, "compare", str(files / "a.json"))
    assert code == 2
    code, _, _ = run(capsys, "compare", str(files / "a.json"), str(files / "b.json"), "--top", "0")
    assert code == 2


def test_public_functions_stay_functions_when_their_modules_are_imported_first():
    import subprocess
    import sys

    code = ("import patternlang.comparison, patternlang.engine.detection, patternlang\n"
            "assert callable(patternlang.compare) and callable(patternlang.detect)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_identical_runs_have_no_head_that_changed(capsys, tmp_path):
    same = scores(["p", "q"], ["mass"], {("q", "mass"): [[math.nan] * 3] * 2})
    assert compare(same, same).changed_most("p") == []
    same.to_json(tmp_path / "s.json")
    code, out, err = run(capsys, "compare", str(tmp_path / "s.json"), str(tmp_path / "s.json"))
    assert code == 0 and "no head changed" in out and "no head scored in both" in out, err
    code, _, err = run(capsys, "compare", str(tmp_path / "s.json"), str(tmp_path / "s.json"), "--heatmap",
                       str(tmp_path / "same.html"))
    page = (tmp_path / "same.html").read_text()
    assert code == 0 and "p (mass)<br>no head changed" in page and "q (mass)<br>no scored heads" in page, err
