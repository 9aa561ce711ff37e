"""`detect` in a torch.distributed process group (gloo, 2 processes on the CPU): prompts sharded by
rank, sums added once; every rank gets the single-process scores, and a failing rank fails the run."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from patternlang.engine import detect
from patternlang.errors import InputError
from patternlang.testing import make_hand_set_model
from tests.conftest import LABELLED_SPANS, LABELLED_TEXT, SPAN_RULES, run, texts, word_prompts
from tests.conftest import SCALE_PATTERNS as PATTERNS

REPO = Path(__file__).resolve().parents[1]
OPTIONS = dict(measures="mass,tv,lift", per_prompt=True, progress=False, chunk_size=5, batch_size=2)


def _worker(rank: int, world_size: int, init_file: str, out_dir: str, prompts: str, fail_rank: int) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)  # two processes share the CPU cores
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=60))
    started = time.monotonic()
    try:
        if rank == fail_rank:
            raise SystemExit(3)  # this rank dies before it scores anything
        scores = detect(make_hand_set_model(n_layers=2, n_ctx=64), Path(prompts), PATTERNS, **OPTIONS)
        torch.save({"values": scores.values, "ci_low": scores.ci_low, "ci_high": scores.ci_high,
                    "per_prompt": {p: scores.per_prompt[p]["mass"] for p in scores.patterns},
                    "evidence": {p: [e.n_rows, e.n_prompts, e.n_prompts_run] for p, e in scores.evidence.items()},
                    "n_prompts": scores.n_prompts, "n_tokens": scores.n_tokens}, f"{out_dir}/rank{rank}.pt")
    except InputError as error:
        Path(out_dir, f"error{rank}.txt").write_text(f"{time.monotonic() - started:.1f}\n{error}")
    finally:
        if rank != fail_rank:
            dist.destroy_process_group()


# Labelled prompts: the even lines have spans, the odd ones none, so rank 1 of 2 reads no spans at all.


def write_half_labelled(path: Path, n: int = 10) -> Path:
    lines = [{"text": LABELLED_TEXT, "spans": LABELLED_SPANS} if i % 2 == 0 else {"text": LABELLED_TEXT[: 3 + i]}
             for i in range(n)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _labelled_worker(rank: int, world_size: int, init_file: str, out_dir: str, prompts: str, fail_rank: int) -> None:
    import torch.distributed as dist

    from patternlang.testing.predicting import make_predicting_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=60))
    try:
        scores = detect(make_predicting_model(1.0), Path(prompts), SPAN_RULES, progress=False, chunk_size=3)
        torch.save({"values": scores.values, "n_rows": [scores.evidence[p].n_rows for p in scores.patterns]},
                   f"{out_dir}/rank{rank}.pt")
    except InputError as error:
        Path(out_dir, f"error{rank}.txt").write_text(str(error))
    finally:
        dist.destroy_process_group()


def spawn(tmp_path: Path, fail_rank: int = -1, *, worker=_worker, prompts: Path | None = None) -> Path:
    if prompts is None:
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("\n".join(texts(27, seed=7)) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    context = mp.spawn(worker, args=(2, str(tmp_path / "init"), str(out), str(prompts), fail_rank), nprocs=2,
                       join=False)
    deadline = time.monotonic() + 300
    while not context.join(timeout=5):
        if time.monotonic() > deadline:  # a hang is the failure this guards against: never wait forever
            for process in context.processes:
                process.kill()
            pytest.fail("the distributed run did not finish in 300 s")
    return out


def test_two_ranks_give_the_single_process_scores(tmp_path):
    out = spawn(tmp_path)
    single = detect(make_hand_set_model(n_layers=2, n_ctx=64), tmp_path / "prompts.txt", PATTERNS, **OPTIONS)
    for rank in range(2):
        got = torch.load(out / f"rank{rank}.pt", weights_only=True)
        assert got["n_prompts"] == single.n_prompts == 27 and got["n_tokens"] == single.n_tokens
        for measure in single.measures:
            for grid in ("values", "ci_low", "ci_high"):
                torch.testing.assert_close(got[grid][measure], getattr(single, grid)[measure], atol=1e-6, rtol=0,
                                           equal_nan=True)
        for name in single.patterns:  # every prompt's own scores, gathered in the file's order
            torch.testing.assert_close(got["per_prompt"][name], single.per_prompt[name]["mass"], atol=1e-6, rtol=0,
                                       equal_nan=True)
            e = single.evidence[name]
            assert got["evidence"][name] == [e.n_rows, e.n_prompts, e.n_prompts_run]


def test_a_rank_whose_prompts_have_no_spans_still_scores_a_labelled_file(tmp_path):
    """Whether a streamed file is labelled is decided over all ranks, at the end: rank 1 reads only
    unlabelled lines, and both ranks give the single-process scores."""
    from patternlang.testing.predicting import make_predicting_model

    prompts = write_half_labelled(tmp_path / "half.jsonl")
    out = spawn(tmp_path, worker=_labelled_worker, prompts=prompts)
    assert not list(out.glob("error*.txt")), [p.read_text() for p in out.glob("error*.txt")]
    single = detect(make_predicting_model(1.0), prompts, SPAN_RULES, progress=False, chunk_size=3)
    assert single.evidence[single.patterns[0]].n_rows == 5  # one END row per labelled prompt
    for rank in range(2):
        got = torch.load(out / f"rank{rank}.pt", weights_only=True)
        assert got["n_rows"] == [single.evidence[p].n_rows for p in single.patterns]
        for measure in single.measures:
            torch.testing.assert_close(got["values"][measure], single.values[measure], atol=1e-6, rtol=0,
                                       equal_nan=True)


def test_a_failing_rank_fails_the_others_instead_of_hanging(tmp_path):
    with pytest.raises(mp.ProcessExitedException):
        spawn(tmp_path, fail_rank=1)
    message = (tmp_path / "out" / "error0.txt").read_text()
    seconds, text = message.split("\n", 1)
    assert "the distributed run failed while" in text and "rank 0 of 2" in text
    assert float(seconds) < 50  # the peer's closed connection, well before the group's timeout


def test_torchrun_cli_two_processes(tmp_path, tl_checkpoint, capsys):

    prompts = tmp_path / "prompts.txt"
    prompts.write_text(word_prompts(41))
    args = ["detect", "induction_head", "previous_token_head", "--model", tl_checkpoint, "--prompts", str(prompts),
            "--batch-size", "4", "--no-progress"]
    port = str(29500 + os.getpid() % 1000)
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                               "--master-port", port, "-m", "patternlang", *args, "--json", str(tmp_path / "two.json")],
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                              capture_output=True, text=True, timeout=300)
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout.count("top 5 heads per pattern") == 1  # rank 0 alone prints
    code, _, err = run(capsys, *args, "--json", str(tmp_path / "one.json"))
    assert code == 0, err
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert one["n_prompts"] == two["n_prompts"] == 41 and two["settings"]["processes"] == 2
    for name, entry in one["patterns"].items():
        for measure, grid in entry["scores"].items():
            other = two["patterns"][name]["scores"][measure]
            assert max(abs(a - b) for row, row2 in zip(grid, other) for a, b in zip(row, row2)) <= 1e-6
