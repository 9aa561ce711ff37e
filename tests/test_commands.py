"""The functions the CLI verbs call (commands.py, library.py's argument readers): callable from
Python, every check before the model loads."""

from pathlib import Path

import pytest

from patternlang.commands import compare_files, explain_head, pattern_matrix, score_heads
from patternlang.engine.options import DetectOptions
from patternlang.errors import InputError, PatternError, PatternFileError
from patternlang.library import load_pattern_argument, load_pattern_arguments, pattern_argument, probe_argument

FILE = "pattern previous:\n    attend k where k == q - 1\n\npattern other:\n    attend k where k == 0\n"


def test_pattern_arguments_tell_names_files_and_rules_apart(tmp_path):
    folder = tmp_path / "my heads"
    folder.mkdir()
    path = folder / "x.pattern"
    path.write_text(FILE, encoding="utf-8")
    assert pattern_argument("induction_head") == "induction_head"
    assert pattern_argument(str(path)) == path
    assert pattern_argument(f"{path}:other") == (path, "other")
    assert load_pattern_argument(f"{path}:other").name == "other"
    assert [p.name for p in load_pattern_arguments([str(path), "bos_head"])] == ["previous", "other", "bos_head"]
    assert load_pattern_argument("attend k where k == 0").name
    with pytest.raises(PatternFileError, match="no such file"):
        pattern_argument(str(tmp_path / "missing.pattern"))
    with pytest.raises(InputError, match="is a directory"):
        pattern_argument(str(folder))


def test_probe_arguments_are_checked_without_a_model():
    spec = probe_argument("repeated_random(length=8, seed=1)")
    assert spec.name == "repeated_random" and dict(spec.args) == {"length": 8, "seed": 1}
    with pytest.raises(PatternError, match="did you mean 'length'"):
        probe_argument("repeated_random(lenght=8)")


@pytest.mark.parametrize("call, message", [
    (lambda: score_heads(None, ["bos_head"], DetectOptions(), prompts=Path("p.txt"), probe="natural"),
     "give --prompts or --probe, not both"),
    (lambda: score_heads(None, ["bos_head"], DetectOptions(checkpoint="ck")), "--checkpoint needs --prompts FILE"),
    (lambda: score_heads(None, ["bos_head"], DetectOptions(), heatmap_measure="tv"), "no --heatmap FILE"),
    (lambda: score_heads(None, ["bos_head"], DetectOptions(), json_path=Path("x.txt")), "x.txt"),
    (lambda: explain_head("bos_head", "L0H0"), "give exactly one of --prompt"),
    (lambda: explain_head("bos_head", "L0H0", prompt="a", index=2), "--index picks a prompt"),
    (lambda: pattern_matrix("bos_head"), "give exactly one of --prompt TEXT, --tokens"),
    (lambda: compare_files(Path("a.json"), Path("b.json"), json_path=Path("c.txt")), "c.txt"),
])
def test_commands_refuse_bad_arguments_before_the_model_loads(call, message, no_model):
    with pytest.raises(InputError, match=message):
        call()


def test_pattern_matrix_on_written_tokens_needs_no_model(tmp_path, no_model):
    said = []
    pattern, matrix, tokens = pattern_matrix("previous_token_head", tokens="A B C", output=[tmp_path / "m.json"],
                                             say=said.append)
    assert pattern.name == "previous_token_head" and tokens == ["A", "B", "C"]
    assert matrix[1, 0] == 1 and matrix[0, 0] == 0
    assert (tmp_path / "m.json").exists() and said == [f"wrote {tmp_path / 'm.json'}"]
