"""Checkpoint and resume (`engine/checkpoint.py`): an interrupted run resumed gives the uninterrupted
scores, a finished one is read straight back, and a checkpoint of another run is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from patternlang.engine import detect
from patternlang.engine import readers as detection_module  # the hooked reader runs the passes
from patternlang.errors import InputError
from patternlang.testing import make_hand_set_model
from tests.conftest import assert_same_scores, run, texts, word_prompts
from tests.conftest import SCALE_PATTERNS as PATTERNS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return make_hand_set_model(n_layers=2, n_ctx=64)


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(texts(40, seed=3)) + "\n")
    return path


class Interrupted(Exception):
    pass


def interrupt_after(monkeypatch, n_batches: int, module=detection_module) -> None:
    """Make the forward pass raise after `n_batches` batches, as a kill would stop the run
    (`module`: where the pass is called from, the engine or a test's attention-block provider)."""
    real = module.run_attention_hooks
    calls = {"n": 0}

    def counted(*args, **kwargs):
        if calls["n"] >= n_batches:
            raise Interrupted
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "run_attention_hooks", counted)


def test_an_interrupted_run_resumes_to_the_same_scores(model, prompt_file, tmp_path, monkeypatch):
    options = dict(measures="mass,tv", progress=False, batch_size=3, chunk_size=10, per_prompt=True)
    uninterrupted = detect(model, prompt_file, PATTERNS, **options)
    folder = tmp_path / "ckpt"
    with monkeypatch.context() as patched:
        interrupt_after(patched, 7)  # inside the second chunk (chunks of 10 prompts: 4 batches each)
        with pytest.raises(Interrupted):
            detect(model, prompt_file, PATTERNS, checkpoint=folder, checkpoint_every=2, **options)
    saved = torch.load(folder / "detect.pt", weights_only=True)
    assert saved["position"] == 10 and len(saved["done"]) == 6 and saved["n_batches"] == 6
    resumed = detect(model, prompt_file, PATTERNS, checkpoint=folder, checkpoint_every=2, **options)
    assert_same_scores(uninterrupted, resumed)
    for name in PATTERNS:
        torch.testing.assert_close(uninterrupted.per_prompt[name]["tv"], resumed.per_prompt[name]["tv"],
                                   equal_nan=True)
    assert resumed.n_tokens == uninterrupted.n_tokens
    # Finished: a rerun reads the scores straight back, without a forward pass.
    interrupt_after(monkeypatch, 0)
    again = detect(model, prompt_file, PATTERNS, checkpoint=folder, **options)
    assert_same_scores(uninterrupted, again)


def test_a_run_interrupted_twice_inside_one_chunk_counts_every_prompt_once(model, prompt_file, tmp_path,
                                                                            monkeypatch):
    options = dict(measures="mass", progress=False, batch_size=3, chunk_size=10)
    uninterrupted = detect(model, prompt_file, PATTERNS, **options)
    folder = tmp_path / "ckpt"
    for n_batches in (7, 3):  # the second stop comes before the resumed chunk is done
        with monkeypatch.context() as patched:
            interrupt_after(patched, n_batches)
            with pytest.raises(Interrupted):
                detect(model, prompt_file, PATTERNS, checkpoint=folder, checkpoint_every=2, **options)
    saved = torch.load(folder / "detect.pt", weights_only=True)
    done = saved["done"].tolist()
    assert len(done) == len(set(done)) and saved["accumulator"]["n_prompts"] == saved["position"] + len(done)
    resumed = detect(model, prompt_file, PATTERNS, checkpoint=folder, checkpoint_every=2, **options)
    assert resumed.n_prompts == uninterrupted.n_prompts == 40
    assert_same_scores(uninterrupted, resumed)


def test_a_checkpoint_saved_halfway_records_the_attention_path_and_a_resume_on_another_says_mixed(
        model, prompt_file, tmp_path, monkeypatch):
    from patternlang.testing import block_providers as attention_blocks, hook_pattern_blocks

    options = dict(measures="mass", progress=False, batch_size=3, chunk_size=20)
    folder = tmp_path / "ckpt"
    with monkeypatch.context() as patched:
        interrupt_after(patched, 3, attention_blocks)  # the provider's own hooked pass
        with pytest.raises(Interrupted):
            detect(model, prompt_file, PATTERNS, checkpoint=folder, checkpoint_every=1,
                   attention=hook_pattern_blocks, **options)
    saved = torch.load(folder / "detect.pt", weights_only=True)
    assert saved["accumulator"]["attention"]["path"] == "blocks"
    resumed = detect(model, prompt_file, PATTERNS, checkpoint=folder, attention="pattern", **options)
    assert resumed.settings["attention"]["path"] == "mixed"
    assert set(resumed.settings["attention"]["paths"]) == {"blocks", "hook_pattern"}
    assert_same_scores(detect(model, prompt_file, PATTERNS, **options), resumed)


def test_a_checkpoint_of_another_run_is_refused(model, prompt_file, tmp_path):
    folder = tmp_path / "ckpt"
    detect(model, prompt_file, "previous_token_head", progress=False, checkpoint=folder)
    with pytest.raises(InputError, match="belongs to another run: its patterns differ") as error:
        detect(model, prompt_file, "induction_head", progress=False, checkpoint=folder)
    assert "delete the folder" in str(error.value)
    with pytest.raises(InputError, match="its measures differ"):
        detect(model, prompt_file, "previous_token_head", measures="tv", progress=False, checkpoint=folder)
    other_model = make_hand_set_model(n_layers=2, n_ctx=64, strength=30.0)
    with pytest.raises(InputError, match="its model differ"):
        detect(other_model, prompt_file, "previous_token_head", progress=False, checkpoint=folder)
    prompt_file.write_text("\n".join(texts(40, seed=4)) + "\n")  # same name and length, other prompts
    with pytest.raises(InputError, match="the first 40 prompts differ"):
        detect(model, prompt_file, "previous_token_head", progress=False, checkpoint=folder)
    prompt_file.write_text("\n".join(texts(12, seed=3)) + "\n")
    with pytest.raises(InputError, match="ends after 12 prompts, but the checkpointed run had read 40"):
        detect(model, prompt_file, "previous_token_head", progress=False, checkpoint=folder)


def test_bad_checkpoint_folders_and_files(model, prompt_file, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(InputError, match="is a file, not a folder"):
        detect(model, prompt_file, "previous_token_head", progress=False, checkpoint=a_file)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "detect.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read the checkpoint"):
        detect(model, prompt_file, "previous_token_head", progress=False, checkpoint=folder)
    (folder / "detect.pt").unlink()
    (folder / "detect.rank0-of-2.pt").write_bytes(b"")
    with pytest.raises(InputError, match="written by a run with 2 processes; this run has 1 process"):
        detect(model, prompt_file, "previous_token_head", progress=False, checkpoint=folder)
    with pytest.raises(InputError, match="checkpoint_every must be a positive integer"):
        detect(model, prompt_file, "previous_token_head", progress=False, checkpoint=folder, checkpoint_every=0)


# ---- the CLI, killed ------------------------------------------------------------------------------------
def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "patternlang", "detect", *args]


def test_a_killed_cli_run_resumes_to_the_uninterrupted_scores(tmp_path, tl_checkpoint, capsys):

    prompts = tmp_path / "prompts.txt"
    prompts.write_text(word_prompts(300))
    args = ["induction_head", "previous_token_head", "--model", tl_checkpoint, "--prompts", str(prompts),
            "--batch-size", "1", "--no-progress"]
    folder = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(cli(*args, "--checkpoint", str(folder), "--checkpoint-every", "1",
                                   "--json", str(tmp_path / "killed.json")),
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (folder / "detect.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (folder / "detect.pt").exists(), process.stderr.read().decode()
    saved = torch.load(folder / "detect.pt", weights_only=True)
    assert saved["n_batches"] < 300 and not (tmp_path / "killed.json").exists()  # killed halfway
    # Restarted with the same arguments (in this process: the same code, without a second start-up).
    code, _, err = run(capsys, "detect", *args, "--checkpoint", str(folder), "--json", str(tmp_path / "resumed.json"))
    assert code == 0, err
    code, _, err = run(capsys, "detect", *args, "--json", str(tmp_path / "whole.json"))
    assert code == 0, err
    whole = json.loads((tmp_path / "whole.json").read_text())
    again = json.loads((tmp_path / "resumed.json").read_text())
    assert whole["n_prompts"] == again["n_prompts"] == 300
    for name, entry in whole["patterns"].items():
        for measure, grid in entry["scores"].items():
            mine = again["patterns"][name]["scores"][measure]
            assert max(abs(a - b) for row, other in zip(grid, mine) for a, b in zip(row, other)) <= 1e-6
        assert (entry["n_rows"], entry["n_prompts"]) == (again["patterns"][name]["n_rows"],
                                                         again["patterns"][name]["n_prompts"])
    # Other patterns against that checkpoint: refused, exit 1, no traceback.
    code, _, err = run(capsys, "detect", "bos_head", *args[2:], "--checkpoint", str(folder))
    assert code == 1 and "belongs to another run" in err and "Traceback" not in err


def test_cli_options_that_need_a_prompt_file_exit_1_before_the_model_loads(capsys, tmp_path, no_model):

    prompts = tmp_path / "p.txt"
    prompts.write_text("w1 w2\n")
    for args, message in [(["--checkpoint", str(tmp_path / "c")], "--checkpoint needs --prompts FILE"),
                          (["--prompts", str(prompts), "--checkpoint-every", "5"], "--checkpoint-every needs --checkpoint"),
                          (["--prompts", str(prompts), "--prompt-column", "text"], "applies to Parquet files"),
                          (["--prompt-column", "text"], "--prompt-column needs --prompts FILE")]:
        code, _, err = run(capsys, "detect", "bos_head", *args, "--no-progress")
        assert code == 1 and message in err and "Traceback" not in err, (args, err)
