"""Sequences per minute on a GPU, and the speed-up over TransformerLens' `detect_head` there.

    python bench/gpu.py [--prompts-128 4096] [--prompts-1024 512] [--batch-size N] [--tl-prompts 32]

Needs CUDA; without it, it says so and exits (status 0: a GPU is never required). For
float32 and bfloat16 (the model loaded in that dtype) and prompts of 128 and 1024 tokens
(BOS + random tokens repeated), it times `detect` with every shipped pattern (measure
`mass`), best of `--repeats`, and reports sequences per minute. Then, per dtype, the
speed-up over `detect_head` as its users call it (see vs_transformer_lens.py), at 128
tokens, with the `mul` scores of both compared first (within 1e-5 in float32; in bfloat16
TransformerLens itself sums the attention in bfloat16 and patternlang in float32, so the
scores agree only to about 1e-2, the precision of bfloat16). Targets (H100, 128 tokens):
>= 100,000 sequences per minute, >= 100x `detect_head`.

Results go to bench/results_gpu.json, which `bench/run_all.py` puts into RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: I001
    engine_only,
    BENCH_DIR,
    alternate,
    machine,
    mib,
    model_label,
    peak_memory,
    token_prompts,
    write_json,
)

TARGET_SEQ_PER_MIN = 100_000
TARGET_SPEEDUP = 100.0
BFLOAT16_TOLERANCE = 2e-2


def shipped_names() -> list[str]:
    from patternlang.library import shipped_patterns

    return [p.name for p in shipped_patterns() if engine_only(p)]


def throughput(model: Any, n_prompts: int, n_tokens: int, patterns: Sequence[str], *, batch_size: int | None,
               repeats: int, log=print) -> dict[str, Any]:
    from patternlang.engine import detect

    cuda = str(model.cfg.device).startswith("cuda")
    prompts = token_prompts(model, n_prompts, n_tokens)
    def run():
        return detect(model, prompts, list(patterns), measures="mass", batch_size=batch_size, progress=False)

    detect(model, prompts[: min(8, n_prompts)], list(patterns), measures="mass", progress=False)  # warm-up
    with peak_memory(str(model.cfg.device)) as memory:
        timings = alternate({"detect": run}, repeats, warmup=False, sync=cuda)
    seconds = timings.best("detect")
    scores = run()
    result = {"n_prompts": n_prompts, "n_tokens": n_tokens, "seconds": seconds, "runs": timings.runs["detect"],
              "seq_per_min": 60 * n_prompts / seconds, "n_batches": scores.settings["n_batches"],
              "peak_mib": mib(memory.delta)}
    log(f"gpu, {model.cfg.dtype}, {n_tokens} tokens: {result['seq_per_min']:,.0f} sequences/min "
        f"({n_prompts} prompts in {seconds:.2f} s, {result['n_batches']} batches, peak {result['peak_mib']:.0f} MiB)"
        + (f" (target >= {TARGET_SEQ_PER_MIN:,})" if n_tokens == 128 else ""))
    return result


def versus_transformer_lens(model: Any, n_prompts: int, patterns: Sequence[str], *, tl_prompts: int,
                            log=print) -> dict[str, Any]:
    """`detect_head` per pattern (on `tl_prompts` texts, scaled) against one `detect` on `n_prompts` texts."""
    import vs_transformer_lens as vs

    tolerance = vs.TOLERANCE if model.cfg.dtype == torch.float32 else BFLOAT16_TOLERANCE
    return vs.run(model, n_prompts=n_prompts, n_tokens=128, pattern_counts=(len(patterns),), repeats=3,
                  tl_prompts=tl_prompts, targets={len(patterns): TARGET_SPEEDUP}, tolerance=tolerance, log=log)


def run(*, prompts_128: int, prompts_1024: int, batch_size: int | None, repeats: int, tl_prompts: int,
        tl_compare_prompts: int, device: str = "cuda", dtypes: Sequence[str] = ("float32", "bfloat16"),
        log=print) -> dict[str, Any]:
    from patternlang.models import clear_model_cache, load_model

    names = shipped_names()
    results: dict[str, Any] = {"machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
                               "command": "python " + " ".join(sys.argv), "patterns": names, "dtypes": {}}
    gpu = device.startswith("cuda")
    log(f"gpu: {torch.cuda.get_device_name(0) if gpu else device}, {len(names)} shipped patterns")
    for dtype in dtypes:
        clear_model_cache()
        if gpu:
            torch.cuda.empty_cache()
        model = load_model(device=device, dtype=dtype)
        log(f"gpu: {model_label(model)}")
        entry = {
            "128": throughput(model, prompts_128, 128, names, batch_size=batch_size, repeats=repeats, log=log),
            "1024": throughput(model, prompts_1024, 1024, names, batch_size=batch_size, repeats=repeats, log=log),
        }
        try:
            entry["vs_transformer_lens"] = versus_transformer_lens(model, tl_compare_prompts, names,
                                                                   tl_prompts=tl_prompts, log=log)
        except SystemExit as stop:  # scores differ beyond 1e-5 (bfloat16 batching can): say so, keep the rest
            entry["vs_transformer_lens"] = {"error": str(stop)}
            log(f"gpu, {dtype}: {stop}")
        results["dtypes"][dtype] = entry
        del model
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts-128", type=int, default=4096)
    parser.add_argument("--prompts-1024", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=None, help="prompts per batch (default: automatic)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tl-prompts", type=int, default=32, help="prompts detect_head is timed on")
    parser.add_argument("--tl-compare-prompts", type=int, default=1024,
                        help="prompts detect runs on in the comparison with detect_head")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results_gpu.json")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # "cpu": try the script's code paths
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu: CUDA is not available on this machine; nothing measured (the GPU benchmark needs an "
              "NVIDIA GPU and a CUDA build of torch).")
        return None
    results = run(prompts_128=args.prompts_128, prompts_1024=args.prompts_1024, batch_size=args.batch_size,
                  repeats=args.repeats, tl_prompts=args.tl_prompts, tl_compare_prompts=args.tl_compare_prompts,
                  device=args.device, dtypes=args.dtypes)
    write_json(args.out, results)
    print(f"gpu: results written to {args.out}")
    return results


if __name__ == "__main__":
    main()
