"""How `detect`'s time and peak memory grow with the patterns, the prompt length and the prompts.

    python bench/scaling.py [--plots bench/] [--repeats 2] [--tiny] [--json bench/results_scaling.json]

Three curves; at each point `detect` (measure `mass`) and the plain forward pass run in turn,
`--repeats` rounds (best time, highest peak memory):

- patterns: 1, 4, 16, 64 patterns on 64 prompts of 64 tokens (automatic batch size);
- length: prompts of 32, 128, 512 and 2048 tokens, 2048 tokens in all at each point (64
  prompts of 32 ... one of 2048), 4 and 64 patterns, automatic batch size, beside the plain
  forward pass over the same batches;
- prompts: 16, 64, 256 prompts of 32 tokens, batches of 16, 4 patterns: the memory must
  stay flat (nothing is kept per prompt) while the time grows linearly (one round).

Peak memory is the peak RSS above the RSS before the call (the model already loaded),
sampled every few milliseconds; on CUDA, the peak allocated memory.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_DIR,
    TargetRow,
    as_token_lists,
    detect_plan,
    load_bench_model,
    mib,
    model_label,
    pattern_set,
    peak_memory,
    plain_forward,
    runs_phrase,
    standalone,
    table,
    time_call,
    token_prompts,
)

MEMORY_SAMPLE_S = 0.005
FLAT_MEMORY = (1.25, 16)  # peak memory "flat": the highest <= 1.25 x the lowest + 16 MiB (sampling noise)
MACHINE_GIB = 24  # the machine for the long-prompt target


def measured(fn: Callable[[], Any]) -> dict[str, Any]:
    """One call: seconds, peak memory (MiB above the start) and what it returned."""
    with peak_memory(interval_s=MEMORY_SAMPLE_S) as memory:
        seconds, value = time_call(fn)
    return {"seconds": seconds, "peak_mib": mib(memory.delta), "value": value}


def measure_round_robin(contenders: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Each contender `repeats` times, in turn: its best time, its highest peak, and its runs."""
    out: dict[str, dict[str, Any]] = {}
    for _ in range(repeats):
        for name, fn in contenders.items():
            run = measured(fn)
            entry = out.setdefault(name, {"runs_s": [], "peak_mib": 0.0})
            entry["runs_s"].append(run["seconds"])
            entry["peak_mib"] = max(entry["peak_mib"], run["peak_mib"])
            scores = run["value"]
            if scores is not None:
                entry["n_batches"] = scores.settings["n_batches"]
    for entry in out.values():
        entry["seconds"] = min(entry["runs_s"])
    return out


def detect_call(model: Any, prompts: Any, patterns: Sequence[str], *, batch_size: int | None = None,
                measure: str = "mass") -> Callable[[], Any]:
    from patternlang.engine import detect

    return lambda: detect(model, prompts, list(patterns), measures=measure, batch_size=batch_size, progress=False)


def by_patterns(model: Any, counts: Sequence[int], n_prompts: int, n_tokens: int, repeats: int,
                log=print) -> dict[str, Any]:
    prompts = token_prompts(model, n_prompts, n_tokens)
    token_lists = as_token_lists(model, prompts)
    plan = detect_plan(model, token_lists, 1, 1)
    contenders = {"forward": lambda: plain_forward(model, token_lists, plan)}
    contenders.update({count: detect_call(model, prompts, pattern_set(count)) for count in counts})
    results = measure_round_robin(contenders, repeats)
    forward = results.pop("forward")
    points = []
    for count in counts:
        point = {"patterns": count, **results[count]}
        points.append(point)
        log(f"scaling, patterns: {count:>4} patterns: {point['seconds']:.2f} s, peak {point['peak_mib']:.0f} MiB, "
            f"ratio to the plain forward pass {point['seconds'] / forward['seconds']:.2f}x")
    return {"n_prompts": n_prompts, "n_tokens": n_tokens, "forward": forward, "points": points}


def by_length(model: Any, lengths: Sequence[int], tokens_per_point: int, counts: Sequence[int], repeats: int,
              log=print) -> dict[str, Any]:
    from patternlang.engine.batching import MAX_BATCH_ROWS, auto_budget, bytes_per_prompt_estimate
    from patternlang.models.facts import model_facts

    points = []
    for length in lengths:
        n_prompts = max(1, tokens_per_point // length)
        prompts = token_prompts(model, n_prompts, length)
        token_lists = as_token_lists(model, prompts)
        plan = detect_plan(model, token_lists, min(counts), 1)
        contenders = {"forward": lambda token_lists=token_lists, plan=plan: plain_forward(model, token_lists, plan)}
        contenders.update({count: detect_call(model, prompts, pattern_set(count)) for count in counts})
        results = measure_round_robin(contenders, repeats)
        point: dict[str, Any] = {"length": length, "n_prompts": n_prompts, "forward": results["forward"]}
        budget = auto_budget(model_facts(model).device)
        for count in counts:
            result = results[count]
            # How many prompts of this length one automatic batch may hold (the plan's limit).
            result["auto_rows"] = min(MAX_BATCH_ROWS,
                                      max(1, int(budget // bytes_per_prompt_estimate(model, count, 1)(length))))
            point[f"detect_{count}"] = result
            log(f"scaling, length: {length:>5} tokens x {n_prompts:>3} prompts, {count:>2} patterns: "
                f"{result['seconds']:.2f} s (forward {point['forward']['seconds']:.2f} s, "
                f"ratio {result['seconds'] / point['forward']['seconds']:.2f}x), peak {result['peak_mib']:.0f} MiB "
                f"(forward {point['forward']['peak_mib']:.0f} MiB), {result['n_batches']} batches, "
                f"automatic batch up to {result['auto_rows']} prompts")
        points.append(point)
    return {"tokens_per_point": tokens_per_point, "counts": list(counts), "points": points}


def by_prompts(model: Any, counts: Sequence[int], n_tokens: int, batch_size: int, n_patterns: int,
               log=print) -> dict[str, Any]:
    points = []
    names = pattern_set(n_patterns)
    for count in counts:
        prompts = token_prompts(model, count, n_tokens, seed=count)
        point = {"prompts": count, **measure_round_robin({count: detect_call(model, prompts, names,
                                                                              batch_size=batch_size)}, 1)[count]}
        points.append(point)
        log(f"scaling, prompts: {count:>5} prompts x {n_tokens} tokens (batches of {batch_size}): "
            f"{point['seconds']:.2f} s, peak {point['peak_mib']:.0f} MiB")
    peaks = [p["peak_mib"] for p in points]
    log(f"scaling, prompts: peak memory from {min(peaks):.0f} to {max(peaks):.0f} MiB over "
        f"{counts[0]}..{counts[-1]} prompts (ratio max/min {max(peaks) / max(min(peaks), 1e-9):.2f})")
    return {"n_tokens": n_tokens, "batch_size": batch_size, "patterns": n_patterns, "points": points}


def plot(results: dict[str, Any], folder: Path) -> list[Path]:
    """Three PNGs (time and peak memory side by side) in `folder`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def figure(name: str, title: str, xlabel: str):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        fig.suptitle(title)
        for axis, ylabel in ((left, "seconds"), (right, "peak memory above the loaded model (MiB)")):
            axis.set_xscale("log", base=2)
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.grid(True, alpha=0.3)
        return fig, left, right

    def save(fig, name: str) -> None:
        for axis in fig.axes:
            if axis.get_yscale() == "linear":
                axis.set_ylim(bottom=0)  # differences read at their true size
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    data = results["patterns"]
    xs = [p["patterns"] for p in data["points"]]
    fig, left, right = figure("patterns", f"detect vs number of patterns ({data['n_prompts']} prompts x "
                                          f"{data['n_tokens']} tokens)", "patterns")
    left.plot(xs, [p["seconds"] for p in data["points"]], "o-", label="detect")
    left.axhline(data["forward"]["seconds"], color="gray", ls="--", label="plain forward pass")
    right.plot(xs, [p["peak_mib"] for p in data["points"]], "o-", label="detect")
    right.axhline(data["forward"]["peak_mib"], color="gray", ls="--", label="plain forward pass")
    left.legend()
    save(fig, "scaling_patterns.png")

    data = results["length"]
    xs = [p["length"] for p in data["points"]]
    fig, left, right = figure("length", f"detect vs prompt length ({data['tokens_per_point']} tokens per point)",
                              "tokens per prompt")
    left.plot(xs, [p["forward"]["seconds"] for p in data["points"]], "s--", color="gray", label="plain forward pass")
    right.plot(xs, [p["forward"]["peak_mib"] for p in data["points"]], "s--", color="gray", label="plain forward pass")
    for count in data["counts"]:
        left.plot(xs, [p[f"detect_{count}"]["seconds"] for p in data["points"]], "o-", label=f"detect, {count} patterns")
        right.plot(xs, [p[f"detect_{count}"]["peak_mib"] for p in data["points"]], "o-",
                   label=f"detect, {count} patterns")
    right.set_yscale("log")
    left.legend()
    save(fig, "scaling_length.png")

    data = results["prompts"]
    xs = [p["prompts"] for p in data["points"]]
    fig, left, right = figure("prompts", f"detect vs number of prompts ({data['n_tokens']} tokens, batches of "
                                         f"{data['batch_size']}, {data['patterns']} patterns)", "prompts")
    left.plot(xs, [p["seconds"] for p in data["points"]], "o-", label="detect")
    right.plot(xs, [p["peak_mib"] for p in data["points"]], "o-", label="detect")
    right.set_ylim(top=max(p["peak_mib"] for p in data["points"]) * 1.5 + 1)
    save(fig, "scaling_prompts.png")
    return written


def run(*, tiny: bool, log=print, repeats: int | None = None) -> dict[str, Any]:
    """The three curves (plots: `write_files`)."""
    model = load_bench_model(tiny=tiny)
    log(f"scaling: {model_label(model)}")
    repeats = repeats or (1 if tiny else 2)
    if tiny:
        results = {
            "patterns": by_patterns(model, (1, 4, 16, 64), n_prompts=2, n_tokens=16, repeats=repeats, log=log),
            "length": by_length(model, (8, 16, 32, 60), tokens_per_point=32, counts=(4, 64), repeats=repeats, log=log),
            "prompts": by_prompts(model, (2, 4, 8), n_tokens=16, batch_size=2, n_patterns=4, log=log),
        }
    else:
        results = {
            "patterns": by_patterns(model, (1, 4, 16, 64), n_prompts=64, n_tokens=64, repeats=repeats, log=log),
            "length": by_length(model, (32, 128, 512, 2048), tokens_per_point=2048, counts=(4, 64),
                                repeats=repeats, log=log),
            "prompts": by_prompts(model, (16, 64, 256), n_tokens=32, batch_size=16, n_patterns=4, log=log),
        }
    factor, slack = FLAT_MEMORY
    results.update(model=model_label(model), repeats=repeats, prompt_curve_runs=1,
                   memory_sample_ms=MEMORY_SAMPLE_S * 1000, flat_memory={"factor": factor, "slack_mib": slack},
                   machine_gib=MACHINE_GIB)
    return results


def write_files(results: dict[str, Any], folder: Path) -> list[Path]:
    """The plots RESULTS.md shows."""
    return plot(results, folder)


def target_rows(results: dict[str, Any]) -> list[TargetRow]:
    prompts = results["prompts"]["points"]
    peaks = [p["peak_mib"] for p in prompts]
    factor, slack = results["flat_memory"]["factor"], results["flat_memory"]["slack_mib"]
    rows = [(f"peak memory flat in the number of prompts ({prompts[0]['prompts']} to {prompts[-1]['prompts']}; "
             f"highest <= {factor}x the lowest + {slack} MiB)",
             f"{min(peaks):.0f} to {max(peaks):.0f} MiB", max(peaks) <= factor * min(peaks) + slack)]
    length = results["length"]
    longest = length["points"][-1]
    worst = max(longest[f"detect_{c}"]["peak_mib"] for c in length["counts"])
    machine_gib = results["machine_gib"]
    rows.append((f"{longest['length']}-token prompts run on a {machine_gib} GiB machine, batch size automatic",
                 f"peak {worst:.0f} MiB above the model ({max(length['counts'])} patterns)",
                 worst < (machine_gib - 4) * 1024))  # 4 GiB left for the system and the model
    return rows


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def render(results: dict[str, Any]) -> str:
    sc = results
    lines = ["## Scaling", "", f"Model: {sc['model']}.", "",
             (f"At each point of the pattern and length curves, `detect` (measure `mass`) and the plain forward pass "
              f"over the same batches run in turn, {runs_phrase(sc['repeats'])} of each: the best time and the "
              f"highest peak are shown. The prompt curve is timed {_times(sc['prompt_curve_runs'])} per point, with "
              "a fixed batch size. Peak memory is the peak resident set size above the one before the call (the "
              f"model already loaded), sampled every {sc['memory_sample_ms']:g} ms, so it includes the model's own "
              "activations."), ""]
    data = sc["patterns"]
    lines += [f"### Number of patterns ({data['n_prompts']} prompts x {data['n_tokens']} tokens)", "",
              "![time and memory vs patterns](scaling_patterns.png)", ""]
    rows = [[p["patterns"], f"{p['seconds']:.2f} s", f"{p['seconds'] / data['forward']['seconds']:.2f}x",
             f"{p['peak_mib']:.0f} MiB"] for p in data["points"]]
    rows.append(["plain forward", f"{data['forward']['seconds']:.2f} s", "1.00x", f"{data['forward']['peak_mib']:.0f} MiB"])
    lines += [table(["patterns", "detect", "ratio to the plain forward", "peak memory"], rows), ""]

    data = sc["length"]
    lines += [f"### Prompt length ({data['tokens_per_point']} tokens per point, automatic batch size)", "",
              "![time and memory vs prompt length](scaling_length.png)", ""]
    rows = []
    for p in data["points"]:
        for c in data["counts"]:
            d = p[f"detect_{c}"]
            rows.append([p["length"], p["n_prompts"], c, f"{d['seconds']:.2f} s", f"{p['forward']['seconds']:.2f} s",
                         f"{d['seconds'] / p['forward']['seconds']:.2f}x", f"{d['peak_mib']:.0f} MiB",
                         f"{p['forward']['peak_mib']:.0f} MiB", d["n_batches"], d["auto_rows"]])
    lines += [table(["tokens", "prompts", "patterns", "detect", "plain forward", "ratio", "detect peak",
                     "forward peak", "batches", "auto batch limit"], rows), ""]

    data = sc["prompts"]
    lines += [(f"### Number of prompts ({data['n_tokens']} tokens, batches of {data['batch_size']}, "
               f"{data['patterns']} patterns)"), "", "![time and memory vs prompts](scaling_prompts.png)", ""]
    rows = [[p["prompts"], f"{p['seconds']:.2f} s", f"{60 * p['prompts'] / p['seconds']:.0f}", f"{p['peak_mib']:.0f} MiB"]
            for p in data["points"]]
    lines += [table(["prompts", "detect", "seq/min", "peak memory"], rows), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    def options(parser) -> None:
        parser.add_argument("--plots", dest="plots_folder", type=Path, default=None,
                            help="folder for the PNG plots (default: bench/, or none with --tiny)")

    def run_and_plot(*, tiny: bool, plots_folder: Path | None = None, **kwargs: Any) -> dict[str, Any]:
        results = run(tiny=tiny, **kwargs)
        folder = plots_folder if plots_folder is not None else (None if tiny else BENCH_DIR)
        if folder is not None:
            results["plots"] = [str(path) for path in write_files(results, folder)]
            print("scaling: plots " + ", ".join(results["plots"]))
        return results

    return standalone("scaling", run_and_plot, argv, __doc__.split("\n\n")[0], options)


if __name__ == "__main__":
    main()
