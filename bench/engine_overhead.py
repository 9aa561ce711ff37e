"""How long `detect` takes compared with plain forward passes over the same batches.

    python bench/engine_overhead.py [--prompts 64] [--length 32] [--repeats 3]

Prompts: `repeated_random` (BOS + `length` random tokens twice, so 2*length+1 tokens);
4 shipped patterns. Both sides run the same batches; each timing is the best of
`--repeats` alternating runs. Prints the ratio detect / forward (the target is <= 1.2).
"""

from __future__ import annotations

import argparse
import time

import torch

from patternlang import probes
from patternlang.engine import detect
from patternlang.engine.batching import pad_batch, pad_id, plan_batches, tokenize
from patternlang.models import load_model

PATTERNS = ["previous_token_head", "duplicate_token_head", "induction_head", "bos_head"]


def forward_only(model, token_lists, batch_size):
    plan = plan_batches([t.numel() for t in token_lists], batch_size)
    with torch.inference_mode():
        for indices in plan:
            batch = pad_batch(token_lists, indices, pad_id(model), torch.device(model.cfg.device))
            model(batch.tokens, return_type=None)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measures", default="mass")
    args = parser.parse_args()

    model = load_model()
    prompts = probes.repeated_random(model, length=args.length, repeats=2, batch=args.prompts)
    token_lists = tokenize(model, [list(p) for p in prompts])
    measures = tuple(args.measures.split(","))
    run_detect = lambda: detect(model, prompts, PATTERNS, measures=measures, batch_size=args.batch_size,  # noqa: E731
                                progress=False)
    scores = run_detect()  # warm-up, and the batch plan detect chose
    batches = scores.settings["n_batches"]
    batch_size = args.batch_size or -(-args.prompts // batches)
    run_forward = lambda: forward_only(model, token_lists, batch_size)  # noqa: E731
    run_forward()

    forward_s, detect_s = [], []
    for _ in range(args.repeats):
        forward_s.append(best_of(run_forward, 1))
        detect_s.append(best_of(run_detect, 1))
    f, d = min(forward_s), min(detect_s)
    print(f"{args.prompts} prompts x {token_lists[0].numel()} tokens, {len(PATTERNS)} patterns, "
          f"measures={','.join(measures)}, {batches} batches of <= {batch_size}, {torch.get_num_threads()} threads")
    print(f"forward only: {f:.2f} s   detect: {d:.2f} s   ratio detect/forward: {d / f:.2f}")
    print("all runs (s): forward", [round(x, 2) for x in forward_s], "detect", [round(x, 2) for x in detect_s])
    print("top induction heads:", scores.top("induction_head", k=3))


if __name__ == "__main__":
    main()
