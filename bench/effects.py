"""What effects cost: attribution for every head against a plain forward pass, exact ablation's
throughput, and the whole `patternlang effects --probe ioi` command.

    python bench/effects.py [--tiny] [--repeats 3] [--prompts 64] [--no-command] [--json PATH]

Prompts: the `ioi` probe (`--prompts` of them), metric `logit_diff` at `END` (with `--tiny`: the
hand-set model on token-id prompts, metric `loss` at every position). Contenders, run in turn
(`--repeats` rounds after a warm-up), best time each, on the same batches:

- plain forward: `model(tokens)` under `torch.inference_mode`, no hooks, over the batches the
  attribution pass makes (the floor the target is set on);
- attribution: one forward pass hooked on every layer's `hook_z` and one backward pass, giving
  every head's estimate (`effects.passes.clean_pass(gradient=True)`);
- exact ablation of K heads (zero at END): several heads per forward pass (the batch repeated
  along the batch axis, one replica per head, as many as the memory budget allows) against one
  head per pass.

And, unless `--no-command` or `--tiny`, the command itself, once, in a fresh process:
`patternlang effects --probe "ioi(batch=64)" --top-k 20` (every head estimated, the top 20
ablated exactly), start-up and model load included.

Targets (issue 21): attribution <= 3x the plain forward pass on the same batch; the command
under 5 minutes on 2 CPU cores. A module of the benchmark protocol (bench/common.py).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, alternate, load_bench_model, load_loads, model_label, standalone, table, token_prompts

ATTRIBUTION_TARGET = 3.0
COMMAND_TARGET_S = 300.0
FULL = {"n_prompts": 64, "k": 20, "repeats": 2}
TINY = {"n_prompts": 8, "k": 4, "repeats": 1}


def run(*, tiny: bool, log=print, repeats: int | None = None, n_prompts: int | None = None,
        command: bool = True) -> dict[str, Any]:
    from patternlang.effects.effect_inputs import prepare
    from patternlang.effects.interventions import head_list
    from patternlang.effects.metrics import resolve_metric
    from patternlang.effects.passes import Replacement, Shape, clean_pass, intervened, rows_per_pass
    from patternlang.probes import get_probe

    sizes = TINY if tiny else FULL
    model = load_bench_model(tiny=tiny)
    n_prompts = n_prompts or sizes["n_prompts"]
    repeats = repeats or sizes["repeats"]
    if tiny:
        prompts, metric, positions = token_prompts(model, n_prompts, 16), resolve_metric("loss"), None
    else:
        prompts, metric, positions = get_probe("ioi", batch=n_prompts)(), resolve_metric("logit_diff"), "END"
    inputs = prepare(model, prompts)
    size = rows_per_pass(model, inputs, None, gradient=True)
    batches = inputs.batches(size)
    shape = Shape.of(model)
    log(f"effects: {model_label(model)}, {len(inputs)} prompts (longest {inputs.longest} tokens), "
        f"batches of {', '.join(str(len(b)) for b in batches)}")

    def plain() -> None:
        with torch.inference_mode():
            for indices in batches:
                model(inputs.batch(indices).tokens)

    def attribution() -> None:
        clean_pass(model, inputs, metric, positions, gradient=True, batch_size=size)

    timings = alternate({"plain forward": plain, "attribution (forward + backward)": attribution}, repeats)
    forward, attributed = timings.best("plain forward"), timings.best("attribution (forward + backward)")
    log(f"effects: plain forward {forward:.2f} s, attribution {attributed:.2f} s ({attributed / forward:.2f}x)")

    k = sizes["k"]
    heads = [((layer, head),) for layer, head in head_list(None, shape)][-k:]  # the last layers' heads
    zero = Replacement("zero")
    exact = alternate({
        "several heads per pass": lambda: intervened(model, inputs, metric, positions, zero, heads),
        "one head per pass": lambda: intervened(model, inputs, metric, positions, zero, heads, max_replicas=1),
    }, repeats, warmup=False)
    batched, single = exact.best("several heads per pass"), exact.best("one head per pass")
    log(f"effects: exact ablation of {k} heads: {batched:.2f} s several per pass, {single:.2f} s one per pass")
    results: dict[str, Any] = {
        "model": model_label(model), "tiny": tiny, "n_prompts": len(inputs), "longest": inputs.longest,
        "metric": metric.label, "positions": positions, "repeats": repeats, "batches": [len(b) for b in batches],
        "runs": {**timings.runs, **exact.runs}, "plain_forward_s": forward, "attribution_s": attributed,
        "attribution_ratio": attributed / forward, "k": k, "exact_batched_s": batched, "exact_single_s": single,
        "heads_per_s_batched": k / batched, "heads_per_s_single": k / single,
        "attribution_target": None if tiny else ATTRIBUTION_TARGET, "command": None,
        "cores": os.cpu_count(), "load_before": load_loads(),
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if command and not tiny:
        results["command"] = time_command(n_prompts, log)
    return results


def time_command(n_prompts: int, log=print) -> dict[str, Any]:
    """`patternlang effects --probe "ioi(batch=N)" --top-k 20` once, in a fresh process, timed."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "E.json"
        argv = [sys.executable, "-m", "patternlang", "effects", "--probe", f"ioi(batch={n_prompts})", "--top-k", "20",
                "--json", str(out), "--no-progress"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        loads = load_loads()
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"the effects command failed: {done.stderr[-2000:]}")
        import json

        data = json.loads(out.read_text())
    exact = sum(entry["ablation"] is not None for entry in data["effects"].values())
    log(f"effects: the command took {seconds:.0f} s ({len(data['effects'])} heads estimated, {exact} ablated)")
    shown = f'effects --probe "ioi(batch={n_prompts})" --top-k 20 --json E.json --no-progress'
    return {"argv": shown, "seconds": seconds, "n_heads": len(data["effects"]), "n_exact": exact,
            "rank_correlation": data["rank_correlation"], "load_before": loads, "load_after": load_loads(),
            "target_s": COMMAND_TARGET_S}


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    if results.get("attribution_target") is None:
        return []
    ratio = results["attribution_ratio"]
    rows = [(f"attribution for all heads <= {results['attribution_target']}x a plain forward pass on the same batch "
             f"({results['n_prompts']} ioi prompts)", f"{ratio:.2f}x", ratio <= results["attribution_target"])]
    command = results.get("command")
    rows.append((f"`patternlang effects --probe ioi` (64 prompts, all heads estimated, top 20 ablated) under "
                 f"{COMMAND_TARGET_S / 60:.0f} minutes on {results['cores']} CPU cores",
                 "not measured" if command is None else f"{command['seconds']:.0f} s",
                 None if command is None else command["seconds"] < COMMAND_TARGET_S))
    return rows


def render(results: dict[str, Any]) -> str:
    r = results
    rows = [["plain forward (inference mode, no hooks)", f"{r['plain_forward_s']:.2f} s", "1.00x"],
            ["attribution: forward hooked on every hook_z + backward", f"{r['attribution_s']:.2f} s",
             f"**{r['attribution_ratio']:.2f}x**"]]
    exact = [[f"{r['k']} heads, several per pass (replicas)", f"{r['exact_batched_s']:.2f} s",
              f"{r['heads_per_s_batched']:.2f}"],
             [f"{r['k']} heads, one per pass", f"{r['exact_single_s']:.2f} s", f"{r['heads_per_s_single']:.2f}"]]
    when = f" Measured {r['measured_at']}." if r.get("measured_at") else ""
    if r.get("how"):
        when += f" Run on its own (`{r['how']}`), not in the run the header describes."
    lines = ["## Effects", "", f"Model: {r['model']}.{when} {r['n_prompts']} prompts (longest {r['longest']} tokens), "
             f"metric `{r['metric']}` at {r['positions'] or 'every position'}, batches of "
             f"{', '.join(str(b) for b in r['batches'])} prompts; best of {r['repeats']} alternating run(s).", "",
             table(["run", "time", "ratio to the plain forward"], rows), "",
             f"Exact ablation (zero, at {r['positions'] or 'every position'}), each head alone:", "",
             table(["ablations", "time", "heads per second"], exact), ""]
    command = r.get("command")
    if command is not None:
        lines += [f"The command `patternlang {command['argv']}` in a fresh process, start-up and model load "
                  f"included: **{command['seconds']:.0f} s** ({command['n_heads']} heads estimated, "
                  f"{command['n_exact']} ablated exactly, rank correlation of estimate and exact effect "
                  f"{command['rank_correlation']:+.3f}); load average before it {_loads(command['load_before'])} "
                  f"on {r['cores']} cores (a shared machine: other work ran beside it).", ""]
    return "\n".join(lines)


def _loads(loads: Sequence[float] | None) -> str:
    return "unknown" if not loads else ", ".join(f"{x:.1f}" for x in loads)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    def add_arguments(parser):
        parser.add_argument("--prompts", dest="n_prompts", type=int, default=None)
        parser.add_argument("--no-command", dest="command", action="store_false", default=None)

    results = standalone("effects", run, argv, description=__doc__.split("\n\n")[0], add_arguments=add_arguments)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
