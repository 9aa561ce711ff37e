"""The IOI experiment of TransformerLens' exploratory-analysis demo, on the embedded SmolLM2.

    python docs/examples/ioi_name_movers.py [--prompts 64] [--draws 5] [--seed 0]

1. The logit difference (IO minus S, at END) on `ioi` prompts, the model unchanged.
2. The top-3 heads by `name_mover_head` (attention mass END -> IO), with their `copying`.
3. The logit difference after ablating those 3 heads at END (their `hook_z` zeroed there),
   beside the same for 3 random heads from the same layers (`--draws` draws).
4. The `copying` sign of the top copy-suppression candidates (`copy_suppression_head`).

Numbers are mean over prompts with the standard deviation across prompts; docs/model_features.md
holds this script's output.

It is slow on a CPU: on a busy 2-core machine step 1 (the clean logit difference, one pass over
the 64 prompts) took 741 s; step 3 repeats that pass 1 + `--draws` times. Each step prints a line
on stderr with the seconds so far; `--prompts 16 --draws 2` is a quick look.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch

import patternlang
from patternlang.engine.batching import tokenize
from patternlang.heads import parse_head
from patternlang.probes import get_probe
from patternlang.probes.labelled import ioi_cases


STARTED = time.perf_counter()
DURATION = ("this takes a long while on a 2-core CPU: step 1 alone took 12 min on a busy one, "
            "and step 3 costs 1 + --draws times as much (--prompts 16 --draws 2 is a quick look)")


def step(what: str) -> None:
    """One line per step on stderr (stdout holds the results), with the seconds so far."""
    print(f"[{time.perf_counter() - STARTED:4.0f} s] {what}", file=sys.stderr, flush=True)


def logit_diffs(model, texts, io_ids, s_ids, ablate=()) -> list[float]:
    """IO minus S logit at each prompt's last token; `ablate`: (layer, head) pairs whose z is zeroed there."""
    token_lists = tokenize(model, texts)
    out = []
    for tokens, io, s in zip(token_lists, io_ids, s_ids):
        hooks = []
        for layer in sorted({layer for layer, _ in ablate}):
            heads = [head for lay, head in ablate if lay == layer]

            def zero(z, hook=None, heads=heads):
                z = z.clone()
                z[:, -1, heads] = 0.0  # the END position only
                return z
            hooks.append((f"blocks.{layer}.attn.hook_z", zero))
        with torch.inference_mode():
            logits = model.run_with_hooks(tokens[None], fwd_hooks=hooks, return_type="logits")
        out.append(float(logits[0, -1, io] - logits[0, -1, s]))
    return out


def summary(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} (sd {statistics.stdev(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    step(DURATION)
    step("loading the embedded model")
    model = patternlang.load_model()
    n_heads = model.cfg.n_heads
    cases = ioi_cases(args.prompts, args.seed)
    texts = [c.text for c in cases]
    first = lambda name: model.tokenizer(" " + name, add_special_tokens=False)["input_ids"][0]  # noqa: E731
    io_ids, s_ids = [first(c.io) for c in cases], [first(c.subject) for c in cases]

    step(f"1/4 the clean logit difference on {len(texts)} prompts")
    clean = logit_diffs(model, texts, io_ids, s_ids)
    print(f"prompts: {len(texts)} ioi prompts (seed {args.seed}), {model.cfg.model_name}")
    print(f"clean logit difference (IO - S): {summary(clean)}; IO ahead on "
          f"{sum(d > 0 for d in clean)}/{len(clean)} prompts")

    step("2/4 scoring name_mover_head and s_inhibition_head")
    scores = patternlang.detect(model, get_probe("ioi", batch=args.prompts, seed=args.seed),
                                ["name_mover_head", "s_inhibition_head"], measures=["mass", "copying"],
                                progress=False)
    top = scores.top("name_mover_head", k=3, measure="mass")
    heads = [parse_head(label) for label, _ in top]
    copying = scores.values["copying"][0]
    print("top-3 name_mover_head (mass END -> IO; copying in logits):")
    for (label, mass), (layer, head) in zip(top, heads):
        print(f"  {label}: mass {mass:.3f}, copying {float(copying[layer, head]):+.3f}")
    lowest = torch.topk(-copying.flatten(), 3).indices.tolist()
    print("most negative copying on END -> IO (negative name mover candidates): " + ", ".join(
        f"L{i // n_heads}H{i % n_heads} {float(copying.flatten()[i]):+.3f} (mass "
        f"{float(scores.values['mass'][0].flatten()[i]):.3f})" for i in lowest))

    step(f"3/4 ablating the top-3 heads, then {args.draws} random draws")
    ablated = logit_diffs(model, texts, io_ids, s_ids, ablate=heads)
    print(f"ablating {', '.join(label for label, _ in top)} at END: {summary(ablated)}; "
          f"change {statistics.mean(ablated) - statistics.mean(clean):+.3f}")
    rng = random.Random(args.seed)
    changes = []
    for draw in range(args.draws):
        randoms = [(layer, rng.choice([h for h in range(n_heads) if (layer, h) not in heads])) for layer, _ in heads]
        diffs = logit_diffs(model, texts, io_ids, s_ids, ablate=randoms)
        changes.append(statistics.mean(diffs) - statistics.mean(clean))
        print(f"  random draw {draw + 1} ({', '.join(f'L{lay}H{h}' for lay, h in randoms)}): {summary(diffs)}; "
              f"change {changes[-1]:+.3f}")
    print(f"random heads, same layers, {args.draws} draws: mean change {statistics.mean(changes):+.3f} "
          f"(sd over draws {statistics.stdev(changes) if len(changes) > 1 else 0.0:.3f})")

    step("4/4 scoring copy_suppression_head on the natural probe")
    suppression = patternlang.detect(model, get_probe("natural"), "copy_suppression_head",
                                     measures=["mass", "copying"], progress=False)
    print("top-3 copy_suppression_head (mass; copying in logits):")
    for label, mass in suppression.top("copy_suppression_head", k=3, measure="mass"):
        layer, head = parse_head(label)
        print(f"  {label}: mass {mass:.3f}, copying {float(suppression.values['copying'][0, layer, head]):+.3f}")


if __name__ == "__main__":
    main()
