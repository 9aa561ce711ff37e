"""The IOI experiment of TransformerLens' exploratory-analysis demo, on the embedded SmolLM2, on
patternlang's effects calls: who attends like a name mover, and whose output matters.

    python docs/examples/ioi_name_movers.py [--prompts 64] [--draws 20] [--top-k 20] [--seed 0]

1. `detect`: every head's `name_mover_head` attention (mass END -> IO) and its `copying` sign.
2. `attribute`: every head's effect on the logit difference (IO minus S at END) when its output is
   zeroed at END, estimated from one forward and one backward pass; the top `--top-k` by the size
   of the estimate ablated exactly, with 95% intervals over prompts.
3. `ablate`: the top 3 name movers by mass (positive copying), the top 3 negative name movers
   (negative copying) and the top 3 by mass whatever their sign, each set ablated together at END,
   against `--draws` random sets of the same size from the same layers (an empirical p-value).

Numbers are means over prompts with 95% intervals; docs/model_features.md holds this script's output.
"""

from __future__ import annotations

import argparse
import time

import torch

import patternlang
from patternlang.effects import ablate, attribute
from patternlang.heads import head_label
from patternlang.probes import get_probe

MIN_LIFT = 3.0  # a head "attends like a name mover" with mass at least 3x the chance head's


def say(text: str) -> None:
    print(text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    model = patternlang.load_model()
    prompts = get_probe("ioi", batch=args.prompts, seed=args.seed)(model)
    # How long: one timed forward pass over the prompts, times the passes the script runs (the
    # detect pass, a forward+backward pass counted as 3, one pass per exact ablation).
    one = time.perf_counter()
    with torch.inference_mode():
        model(list(prompts.texts), return_type=None)
    one = time.perf_counter() - one
    passes = 1 + 3 + args.top_k + 3 * (2 + args.draws)
    say(f"{len(prompts)} ioi prompts; one forward pass over them takes {one:.1f} s here, and this script runs "
        f"about {passes}: roughly {passes * one / 60:.0f} minutes.")

    say(f"[1/3] scoring name_mover_head (mass, copying) on {len(prompts)} ioi prompts ...")
    scores = patternlang.detect(model, prompts, "name_mover_head", measures=["mass", "copying"])
    mass, copying = scores.get("name_mover_head", "mass"), scores.get("name_mover_head", "copying")
    chance = scores.baseline("name_mover_head", "mass")
    attending = [(layer, head) for layer in range(scores.n_layers) for head in range(scores.n_heads)
                 if float(mass[layer, head]) >= MIN_LIFT * chance]
    attending.sort(key=lambda lh: -float(mass[lh]))
    movers = [lh for lh in attending if float(copying[lh]) > 0]
    negative = [lh for lh in attending if float(copying[lh]) < 0]
    set_size = 3  # heads per ablated set (random sets need other heads left in the same layers)

    def described(lh: tuple[int, int]) -> str:
        return f"{head_label(*lh)} (mass {float(mass[lh]):.2f}, copying {float(copying[lh]):+.2f})"

    say(f"heads attending END -> IO at >= {MIN_LIFT:.0f}x chance (chance mass {chance:.3f}): {len(attending)}")
    say("  name movers (copying > 0): " + (", ".join(described(lh) for lh in movers) or "none"))
    say("  negative name movers (copying < 0): " + (", ".join(described(lh) for lh in negative) or "none"))

    say(f"[2/3] every head's effect on the logit difference, zero-ablated at END (top {args.top_k} exactly) ...")
    effects = attribute(model, prompts, metric="logit_diff", method="zero", positions="END", top_k=args.top_k)
    say(f"clean logit difference (IO - S at END): {effects.clean_mean:.3f}")
    say(f"estimate vs exact ablation over the top {args.top_k}: rank correlation {effects.rank_correlation:+.3f}")
    for title, ranked in (("lowers it most", effects.ranked(lowest=True)[:5]),
                          ("raises it most", effects.ranked(lowest=False)[:5])):
        say(f"ablating these {title}:")
        for effect in ranked:
            lh = effect.heads[0]
            low, high = effect.ci or (float("nan"), float("nan"))
            say(f"  {effect.label}: {effect.mean:+.3f} [{low:+.3f}, {high:+.3f}], estimate {effect.estimate:+.3f}; "
                f"mass {float(mass[lh]):.2f}, copying {float(copying[lh]):+.2f}")

    say(f"[3/3] head sets ablated together at END, against {args.draws} random sets from the same layers ...")
    sets = ((f"top {set_size} name movers", movers[:set_size]), (f"top {set_size} negative name movers",
            negative[:set_size]), (f"top {set_size} by mass", attending[:set_size]))
    for name, heads in sets:
        if not heads:
            continue
        result = ablate(model, prompts, heads, metric="logit_diff", positions="END", together=True,
                        random_sets=args.draws, seed=args.seed)
        effect = next(iter(result.entries.values()))
        base = effect.baseline
        low, high = effect.ci or (float("nan"), float("nan"))
        say(f"  {name} ({effect.label}): {effect.mean:+.3f} [{low:+.3f}, {high:+.3f}]; random sets {base.mean:+.3f} "
            f"(sd {base.sd:.3f}), p = {base.p_value:.3f}, above {base.percentile:.0%} of them")
    say(f"done in {(time.perf_counter() - started) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
