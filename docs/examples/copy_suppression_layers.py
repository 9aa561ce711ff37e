"""Copy suppression as McDougall et al. (2023) define it, layer by layer, on the embedded SmolLM2.

    python docs/examples/copy_suppression_layers.py [--prompts 61] [--top 10]

A copy-suppression head attends to earlier tokens that the residual stream *before the head*
already predicts, and lowers their logits. The shipped `copy_suppression_head` reads the model's
final predictions, the same for every layer; here each layer L is scored with the logit lens at
the block before it, `lens_predicted(tok[k], q, TOP, L - 1)` (the residual stream entering layer
L), on the `natural` probe, with `mass` (does it attend there) and `copying` (does it raise or
lower what it attends to, in logits). All rules are scored in one `detect` call: one pass per
batch to the logits, every lens read from it.

For each layer: the head attending most to the lens-predicted tokens, its `copying`, and the same
head under the final predictions. Then the candidates: heads whose mass is at least twice the
chance baseline, ranked by `copying` (most negative first). docs/model_features.md holds this
script's output.

It takes about 8 minutes on a 2-core CPU (measured: 466 s, with other work running on the
machine), nearly all of it the one scoring run; each step prints a line on stderr with the
seconds so far.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import patternlang
from patternlang.heads import parse_head
from patternlang.probes import natural


STARTED = time.perf_counter()
DURATION = "this takes about 8 min on a busy 2-core CPU (measured 466 s: loading 12 s, scoring 442 s)"


def step(what: str) -> None:
    """One line per step on stderr (stdout holds the results), with the seconds so far."""
    print(f"[{time.perf_counter() - STARTED:4.0f} s] {what}", file=sys.stderr, flush=True)


def lens_rule(top: int, layer: int) -> str:
    return f"attend k where lens_predicted(tok[k], q, {top}, {layer}) and k < q and not special[k]"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=61, help="prompts of the natural probe (at most 61)")
    parser.add_argument("--top", type=int, default=10, help="top-N predictions a token must be among")
    parser.add_argument("--heads", default="L24H4,L23H1",
                        help="heads to report on their own (default: the negative name mover and a name mover "
                             "of docs/examples/ioi_name_movers.py)")
    args = parser.parse_args(argv)

    step(DURATION)
    step("loading the embedded model")
    model = patternlang.load_model()
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    prompts = natural(batch=args.prompts)
    rules = {layer: lens_rule(args.top, layer - 1) for layer in range(1, n_layers)}
    final = "copy_suppression_head"
    step(f"scoring {len(rules) + 1} rules on {len(prompts)} prompts (one pass to the logits per batch)")
    scores = patternlang.detect(model, prompts, [*rules.values(), final], measures=["mass", "copying"],
                                progress=False)
    step("done scoring; the results follow on stdout")
    print(f"prompts: {len(prompts)} natural prompts, {model.cfg.model_name}; top {args.top} predictions")
    final_mass, final_copying = scores.get(final, "mass"), scores.get(final, "copying")
    print(f"{final} (final predictions): chance mass {scores.evidence[final].baseline['mass']:.3f}, "
          f"{scores.evidence[final].n_rows} target rows")
    print("layer L: lens after block L-1 -> best head by mass: mass (chance), copying | same head, final predictions")
    candidates = []
    for layer, rule in rules.items():
        mass, copying = scores.get(rule, "mass")[layer], scores.get(rule, "copying")[layer]
        chance = scores.evidence[rule].baseline["mass"]
        head = int(torch.nan_to_num(mass, nan=-1.0).argmax())
        print(f"  L{layer:<2} rows {scores.evidence[rule].n_rows:>4}: L{layer}H{head} mass {mass[head]:.3f} "
              f"({chance:.3f}), copying {copying[head]:+.3f} | final: mass {final_mass[layer, head]:.3f}, "
              f"copying {final_copying[layer, head]:+.3f}")
        for h in range(n_heads):
            if float(mass[h]) >= 2 * chance:
                candidates.append((float(copying[h]), f"L{layer}H{h}", float(mass[h]), chance))
    candidates.sort()
    print("most negative copying among heads with mass >= 2x chance (lens at the layer before):")
    for value, label, mass, chance in candidates[:6]:
        print(f"  {label}: copying {value:+.3f}, mass {mass:.3f} (chance {chance:.3f})")
    print("most positive:")
    for value, label, mass, chance in candidates[::-1][:3]:
        print(f"  {label}: copying {value:+.3f}, mass {mass:.3f} (chance {chance:.3f})")
    for label in args.heads.split(","):
        layer, head = parse_head(label.strip())
        rule = rules.get(layer)
        if rule is None:
            continue
        print(f"{label.strip()}: lens mass {scores.get(rule, 'mass')[layer, head]:.3f} "
              f"(chance {scores.evidence[rule].baseline['mass']:.3f}), copying "
              f"{scores.get(rule, 'copying')[layer, head]:+.3f} | final: mass {final_mass[layer, head]:.3f}, "
              f"copying {final_copying[layer, head]:+.3f}")
    flat_final = final_copying.flatten()
    best_final = int(torch.nan_to_num(final_mass.flatten(), nan=-1.0).argmax())
    print(f"for comparison, {final}: top head by mass L{best_final // n_heads}H{best_final % n_heads} "
          f"(mass {final_mass.flatten()[best_final]:.3f}, copying {flat_final[best_final]:+.3f}); "
          f"most negative copying overall {float(torch.nan_to_num(flat_final, nan=0.0).min()):+.3f}")


if __name__ == "__main__":
    main()
