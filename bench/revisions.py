"""`detect`'s cost before and after a change: two revisions of patternlang, side by side in one run.

    python bench/revisions.py --before /path/to/old/checkout [--after .] [--rounds 5] [--json out.json]

A rebuild that must not slow `detect` down (issue 18: "no ratio gets worse by more than 5%") is
best judged on the same machine at the same time, because a shared machine's load moves every
absolute time. Each revision runs in its own worker process (its checkout first on `sys.path`);
the workers take turns, contender by contender, round after round, so both see the same load:

- plain forward: the model's own forward pass over the same batch, no hooks (the floor);
- `detect` with 4 patterns and with 64 patterns (`mass`), the same names in both revisions: the
  shipped engine-only patterns both revisions have, then generated rules, as bench/overhead.py;
- `detect` with 16 patterns in the measure `mul` (what bench/vs_transformer_lens.py times).

Reported per revision: the best time of each contender and the ratio detect / plain forward
(what bench/overhead.py reports), and the change of that ratio from before to after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEADLINE = ["previous_token_head", "duplicate_token_head", "induction_head", "bos_head"]
N_PROMPTS, N_TOKENS = 64, 64

# The worker: runs in the revision's checkout; reads one JSON command per line, answers one line.
WORKER = r"""
import json, sys, time
import torch
import patternlang
from patternlang import probes
from patternlang.library import shipped_patterns
sys.path.insert(0, "bench")  # the revision's own bench/common.py
from common import engine_only

model = patternlang.load_model()
prompts = probes.repeated_random(model, length=N_TOKENS // 2, repeats=2, batch=N_PROMPTS, seed=0)
rows = [list(row[:N_TOKENS]) for row in prompts.tokens]
tokens = torch.tensor(rows)

def run(command):
    kind = command["kind"]
    started = time.perf_counter()
    if kind == "names":
        return [p.name for p in shipped_patterns() if engine_only(p)]
    if kind == "plain":
        with torch.inference_mode():
            model(tokens, return_type=None)
    elif kind == "detect":
        patternlang.detect(model, rows, command["patterns"], measures=command["measure"], batch_size=N_PROMPTS,
                           progress=False)
    return time.perf_counter() - started

print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    print(json.dumps(run(json.loads(line))), flush=True)
""".replace("N_TOKENS", str(N_TOKENS)).replace("N_PROMPTS", str(N_PROMPTS))


class Worker:
    """One revision's process: `ask(command)` sends a command and returns its answer."""

    def __init__(self, name: str, checkout: Path) -> None:
        self.name = name
        env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
        self.process = subprocess.Popen([sys.executable, "-c", WORKER], cwd=checkout, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if self._read() != "ready":
            raise SystemExit(f"the {name} worker did not start")

    def _read(self) -> Any:
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line:
            raise SystemExit(f"the {self.name} worker stopped (see its error above)")
        return json.loads(line)

    def ask(self, command: dict[str, Any]) -> Any:
        assert self.process.stdin is not None  # opened with stdin=PIPE
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def pattern_sets(before: Worker, after: Worker) -> dict[int, list[str]]:
    """The same 4, 16 and 64 pattern names for both revisions."""
    common = [n for n in after.ask({"kind": "names"}) if n in set(before.ask({"kind": "names"}))]
    names = HEADLINE + [n for n in common if n not in HEADLINE]
    offset = 2
    while len(names) < 64:
        names.append(f"attend k where k == q - {offset}")
        names.append(f"attend k where tok[k] == tok[q] shift +{offset}")
        offset += 1
    return {4: names[:4], 16: names[:16], 64: names[:64]}


CONTENDERS = ("detect 4", "detect 64", "detect 16 mul")


def measure(before: Worker, after: Worker, rounds: int, chosen: tuple[str, ...] = CONTENDERS,
            log=print) -> dict[str, Any]:
    sets = pattern_sets(before, after)
    everything = {f"detect {n}": {"kind": "detect", "patterns": sets[n], "measure": "mass"} for n in (4, 64)}
    everything["detect 16 mul"] = {"kind": "detect", "patterns": sets[16], "measure": "mul"}
    contenders: dict[str, dict[str, Any]] = {"plain forward": {"kind": "plain"}}
    contenders.update({name: everything[name] for name in chosen})
    workers = {"before": before, "after": after}
    for worker in workers.values():  # warm-up: patterns compiled, code paths touched
        for command in contenders.values():
            worker.ask(command)
    runs: dict[str, dict[str, list[float]]] = {w: {c: [] for c in contenders} for w in workers}
    for round_number in range(rounds):
        for contender, command in contenders.items():
            order = list(workers) if round_number % 2 == 0 else list(reversed(workers))
            for name in order:
                runs[name][contender].append(workers[name].ask(command))
        log(f"round {round_number + 1} of {rounds}: " + ", ".join(
            f"{w} {c} {runs[w][c][-1]:.2f} s" for w in workers for c in contenders))
    best = {w: {c: min(v) for c, v in runs[w].items()} for w in workers}
    timed = [c for c in contenders if c != "plain forward"]
    ratios = {w: {c: best[w][c] / best[w]["plain forward"] for c in timed} for w in workers}
    change = {c: ratios["after"][c] / ratios["before"][c] - 1 for c in timed}
    return {"rounds": rounds, "n_prompts": N_PROMPTS, "n_tokens": N_TOKENS, "patterns": sets, "runs": runs,
            "best": best, "ratios": ratios, "change": change, "load": os.getloadavg()}


def render(results: dict[str, Any], before: str, after: str) -> str:
    timed = list(results["change"])
    lines = [f"{results['n_prompts']} prompts x {results['n_tokens']} tokens, best of {results['rounds']} "
             f"interleaved rounds; load after {' '.join(f'{x:.2f}' for x in results['load'])}", "",
             "| revision | plain forward | " + " | ".join(timed) + " | " + " | ".join(f"{c} / plain" for c in timed) + " |",
             "|---" * (2 + 2 * len(timed)) + "|"]
    for name, label in (("before", before), ("after", after)):
        b, r = results["best"][name], results["ratios"][name]
        lines.append(f"| {name} ({label}) | {b['plain forward']:.2f} s | "
                     + " | ".join(f"{b[c]:.2f} s" for c in timed) + " | "
                     + " | ".join(f"{r[c]:.2f}x" for c in timed) + " |")
    lines.append("")
    lines.append("change of the ratio, after against before: " + ", ".join(
        f"{c} {100 * v:+.1f}%" for c, v in results["change"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the revision before the change")
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="checkout of the revision after it (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS),
                        help="which detect runs to time beside the plain forward pass")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    before, after = Worker("before", args.before), Worker("after", args.after)
    try:
        results = measure(before, after, args.rounds, tuple(args.contenders))
    finally:
        before.close()
        after.close()
    results["seconds"] = time.perf_counter() - started
    print(render(results, str(args.before), str(args.after)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
