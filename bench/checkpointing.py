"""The cost of checkpointing: `detect` with `checkpoint=DIR` every N batches against no checkpoint.

    python bench/checkpointing.py            # SmolLM2-135M, a few minutes on 2 cores
    python bench/checkpointing.py --tiny     # the hand-set tiny model, seconds

Each contender runs the same prompts in the same process, alternating, best of `repeats`; a
checkpointed run writes into a fresh folder each time (else it would resume from the finished
checkpoint and do nothing). Also measured: the size of one checkpoint file and the time to
read a finished run straight back from its checkpoint. Writes bench/results_checkpointing.json.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402 - after the path is set
    alternate,
    load_bench_model,
    load_loads,
    machine,
    model_label,
    standalone,
    table,
    time_call,
    token_prompts,
)

PATTERNS = ("previous_token_head", "duplicate_token_head", "induction_head", "bos_head")
EVERY = (1, 10, 50)
OVERHEAD_TARGET = 0.05
"""Checkpointing every 50 batches should cost under 5% of the run."""


def run(*, tiny: bool, log=print, model: Any = None) -> dict:
    from patternlang import detect

    model = model or load_bench_model(tiny=tiny)
    n_prompts, n_tokens, batch_size, repeats = (12, 16, 2, 1) if tiny else (200, 32, 2, 3)
    prompts = token_prompts(model, n_prompts, n_tokens)
    work = Path(tempfile.mkdtemp(prefix="bench-checkpoint-"))
    options = dict(measures="mass", batch_size=batch_size, progress=False)
    sizes: dict[int, int] = {}

    def checkpointed(every: int):
        def call():
            folder = work / f"every{every}"
            shutil.rmtree(folder, ignore_errors=True)
            detect(model, prompts, list(PATTERNS), checkpoint=folder, checkpoint_every=every, **options)
            sizes[every] = (folder / "detect.pt").stat().st_size
        return call

    contenders = {"none": lambda: detect(model, prompts, list(PATTERNS), **options)}
    contenders.update({f"every {every}": checkpointed(every) for every in EVERY})
    log(f"checkpointing: {n_prompts} prompts x {n_tokens} tokens, batches of {batch_size}, {repeats} rounds")
    timings = alternate(contenders, repeats)
    # A finished run read straight back from its checkpoint (no forward pass).
    reread_s, _ = time_call(lambda: detect(model, prompts, list(PATTERNS), checkpoint=work / "every50",
                                           checkpoint_every=50, **options))
    shutil.rmtree(work, ignore_errors=True)
    base = timings.best("none")
    rows = []
    for every in EVERY:
        seconds = timings.best(f"every {every}")
        rows.append({"every": every, "seconds": seconds, "overhead": seconds / base - 1,
                     "checkpoints": -(-n_prompts // batch_size) // every + 1})
    results = {
        "model": model_label(model), "machine": machine(), "load": load_loads(), "tiny": tiny,
        "n_prompts": n_prompts, "n_tokens": n_tokens, "batch_size": batch_size, "repeats": repeats,
        "n_batches": -(-n_prompts // batch_size), "patterns": list(PATTERNS),
        "none_s": base, "rows": rows, "checkpoint_bytes": sizes.get(50), "reread_s": reread_s,
    }
    for row in rows:
        log(f"  every {row['every']:>3} batches: {row['seconds']:.3f} s ({row['overhead']:+.1%} vs none, {base:.3f} s)")
    log(f"  one checkpoint: {results['checkpoint_bytes']} bytes; rerun of a finished run: {reread_s:.3f} s")
    return results


def render(results: dict) -> str:
    rows = [[f"every {row['every']} batches", row["checkpoints"], f"{row['seconds']:.3f}", f"{row['overhead']:+.1%}"]
            for row in results["rows"]]
    rows.insert(0, ["none", 0, f"{results['none_s']:.3f}", "-"])
    return "\n".join([
        "## Checkpointing",
        "",
        f"{results['model']}; {results['n_prompts']} prompts of {results['n_tokens']} tokens in "
        f"{results['n_batches']} batches of {results['batch_size']}, {len(results['patterns'])} patterns; best of "
        f"{results['repeats']} alternating rounds in one process (load average {_load(results)}).",
        "",
        table(["checkpoint", "files written", "seconds", "vs none"], rows),
        "",
        f"One checkpoint file: {results['checkpoint_bytes']:,} bytes (the running sums, flat in the prompts). "
        f"A rerun of a finished run reads its scores back in {results['reread_s']:.3f} s.",
    ])


def target_rows(results: dict) -> list[tuple[str, str, bool | None]]:
    every50 = next(row for row in results["rows"] if row["every"] == 50)
    return [(f"checkpointing every 50 batches costs < {OVERHEAD_TARGET:.0%}", f"{every50['overhead']:+.1%}",
             None if results["tiny"] else every50["overhead"] < OVERHEAD_TARGET)]


def _load(results: dict) -> str:
    load = results.get("load")
    return f"{load[0]:.1f}" if load else "unknown"


def main(argv: Sequence[str] | None = None) -> dict:
    results = standalone("checkpointing", run, argv, description=__doc__.split("\n\n")[0])
    print(render(results))
    return results

if __name__ == "__main__":
    main()
