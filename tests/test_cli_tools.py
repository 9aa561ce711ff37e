"""`list FILE`, `check` in line order, `detect --heatmap-measure` and the did-you-mean of measures."""

from __future__ import annotations

import json
import textwrap

import pytest

from patternlang.engine import detect  # noqa: F401 - first: the function keeps the name (engine/__init__.py)
from patternlang.engine.detection import check_measures
from patternlang.errors import ErrorGroup, InputError
from patternlang.library import check_files
from tests.conftest import run


# ---- list FILE -----------------------------------------------------------------------------------
@pytest.fixture
def own(tmp_path):
    folder = tmp_path / "my patterns"
    folder.mkdir()
    (folder / "one.pattern").write_text('pattern first_token:\n    """The first token."""\n    attend k where k == 0\n'
                                        "    probe natural\n")
    (folder / "two.yaml").write_text("patterns:\n  - name: me\n    rule: attend k where k == q\n    measure: tv\n")
    (folder / "notes.txt").write_text("not a pattern file")
    return folder


def test_list_a_file_or_a_directory_of_ones_own(capsys, own):
    code, out, err = run(capsys, "list", str(own / "one.pattern"), "--json")
    assert code == 0, err
    assert json.loads(out) == [{"name": "first_token", "rule": "attend k where k == 0 probe natural",
                                "doc": "The first token.", "probe": "natural", "measure": None,
                                "file": "one.pattern"}]
    code, out, _ = run(capsys, "list", str(own), "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["name"], r["file"], r["measure"]) for r in rows] == [
        ("first_token", "one.pattern", None), ("me", "two.yaml", "tv")]
    code, out, _ = run(capsys, "list", str(own))
    assert code == 0 and "first_token" in out and "The first token." in out and "Patterns in" in out


@pytest.mark.parametrize("name, message", [
    ("missing.pattern", "no such file"),
    ("notes.txt", "is not a pattern file"),
    ("empty", "holds no pattern files"),
])
def test_list_bad_files_exit_1(capsys, own, name, message):
    (own / "empty").mkdir()
    code, _, err = run(capsys, "list", str(own / name))
    assert code == 1 and message in err and "Traceback" not in err


def test_list_a_file_with_problems_reports_them_all(capsys, tmp_path):
    bad = tmp_path / "bad.pattern"
    bad.write_text("pattern a: nosuch\npattern b: attend k where tok[k] < tok[q]\n")
    code, _, err = run(capsys, "list", str(bad))
    assert code == 1 and "2 problems found" in err and "unknown pattern 'nosuch'" in err


# ---- check: line order, and a name defined twice -------------------------------------------------
TWICE = textwrap.dedent("""\
    pattern a:
        attend k where tok[k] == tok[q]
    pattern b:
        attend k where tok[k] == 5 + "x"
    pattern a:
        (attend k where tok[k] == tok[q]) | nosuch
        measure mas
    pattern c:
        nosuch2
    """)


def test_check_reports_problems_in_line_order_and_inside_a_second_definition(capsys, tmp_path):
    path = tmp_path / "twice.pattern"
    path.write_text(TWICE)
    code, out, _ = run(capsys, "check", str(path), "--json")
    problems = json.loads(out)["problems"]
    assert code == 1
    assert [(p["line"], p["column"]) for p in problems] == sorted((p["line"], p["column"]) for p in problems)
    messages = [p["message"] for p in problems]
    assert [p["line"] for p in problems] == [4, 5, 6, 7, 9]
    assert "defined twice" in messages[1] and messages[2] == "unknown pattern 'nosuch'"
    assert messages[3].startswith("unknown measure 'mas'") and problems[3]["hint"] == "did you mean 'mass'?"
    code, _, err = run(capsys, "check", str(path))
    assert code == 1 and err.index(":4:") < err.index(":5:") < err.index(":6:") < err.index(":7:") < err.index(":9:")


def test_check_keeps_the_order_of_the_files(tmp_path):
    first, second = tmp_path / "z.pattern", tmp_path / "a.yaml"
    first.write_text("pattern p: nosuch\npattern q: attend k where tok[k] < 1\n")
    second.write_text("patterns:\n  - name: x\n    rule: nosuch\n    measure: mas\n")
    with pytest.raises(ErrorGroup) as raised:
        check_files([first, second])
    places = [(e.location.filename, e.location.line) for e in raised.value.errors]
    assert places == [(str(first), 1), (str(first), 2), (str(second), 3), (str(second), 4)]


def test_a_definition_given_twice_has_its_weights_checked_too(tmp_path):
    path = tmp_path / "w.pattern"
    path.write_text("pattern a: attend k where k == 0\npattern a: (a weight 1000000) weight 1000000 weight 1000000\n")
    with pytest.raises(ErrorGroup) as raised:
        check_files([path])
    messages = [e.message for e in raised.value.errors]
    assert "defined twice" in messages[0] and any("multiply up to" in m for m in messages)


# ---- did you mean: measures ------------------------------------------------------------------------
def test_unknown_measures_say_what_was_meant():
    with pytest.raises(InputError, match="unknown measure 'mas'") as raised:
        check_measures("mass,mas")
    assert raised.value.hint == "did you mean 'mass'?"
    with pytest.raises(InputError) as raised:
        check_measures(["zzz"])
    assert "measures are mass" in raised.value.message and "patternlang measures" in raised.value.hint


def test_unknown_measures_and_patterns_of_scores_say_what_was_meant():
    import torch

    from patternlang.engine import Scores
    from patternlang.report import top_heads_table

    scores = Scores(("induction_head",), ("mass", "tv"), {m: torch.zeros(1, 2, 2) for m in ("mass", "tv")},
                    n_layers=2, n_heads=2)
    with pytest.raises(InputError) as raised:
        scores.get("induction_head", "tvv")
    assert raised.value.hint == "did you mean 'tv'?"
    with pytest.raises(InputError) as raised:
        scores.get("induction_haed")
    assert raised.value.hint == "did you mean 'induction_head'?"
    with pytest.raises(InputError) as raised:
        top_heads_table(scores, measures=["mas"])
    assert raised.value.hint == "did you mean 'mass'?"


def test_detect_measure_did_you_mean(capsys, no_model):  # noqa: F811
    code, _, err = run(capsys, "detect", "bos_head", "--model", "m.pt", "--measure", "mas")
    assert code == 1 and "unknown measure 'mas'" in err and "did you mean 'mass'?" in err


# ---- detect --heatmap-measure ----------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--heatmap-measure", "tvv"], "did you mean 'tv'?"),
    (["--heatmap-measure", "tv"], "--heatmap-measure tv is not among the measures scored (mass)"),
    (["--measure", "mass,mul", "--heatmap-measure", "tv"], "score it too: --measure mass,mul,tv"),
])
def test_heatmap_measure_is_checked_before_the_model_loads(capsys, tmp_path, no_model, args, message):  # noqa: F811
    (tmp_path / "p.txt").write_text("a b c\n")
    code, _, err = run(capsys, "detect", "bos_head", "--model", "m.pt", "--prompts", str(tmp_path / "p.txt"),
                       "--heatmap", str(tmp_path / "h.html"), *args)
    assert code == 1 and message in err and "Traceback" not in err, err


def test_heatmap_measure_needs_a_heatmap(capsys, no_model):  # noqa: F811
    code, _, err = run(capsys, "detect", "bos_head", "--model", "m.pt", "--heatmap-measure", "mass")
    assert code == 1 and "no --heatmap FILE" in err


def test_heatmap_measure_draws_that_measure(capsys, tmp_path, checkpoint, prompts):
    heatmap = tmp_path / "h.html"
    code, _, err = run(capsys, "detect", "bos_head", "--model", checkpoint, "--prompts", prompts,
                       "--measure", "mass,tv", "--heatmap", str(heatmap), "--heatmap-measure", "tv", "--no-progress")
    assert code == 0, err
    assert "measure: tv" in heatmap.read_text()
