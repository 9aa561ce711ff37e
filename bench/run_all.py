"""Run every CPU benchmark in one process (the model loads once) and write bench/RESULTS.md.

    python bench/run_all.py                  # `make bench`: SmolLM2-135M, ~9 minutes on 2 cores
    python bench/run_all.py --tiny           # `make bench-tiny`: the hand-set tiny model, seconds (CI)
    python bench/run_all.py --tl-prompts 64  # time TransformerLens on every prompt (slower)
    python bench/run_all.py --render         # redraw RESULTS.md and the plots from bench/results.json

Writes bench/results.json (every figure) and bench/RESULTS.md (tables, plots, targets),
and the plots bench/scaling_*.png. With --tiny nothing is written unless --out is given:
the tiny run only proves that every benchmark still runs. The GPU figures come from
bench/gpu.py (bench/results_gpu.json), run on a machine with a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead
import scaling
import vs_transformer_lens
from common import (
    BENCH_DIR,
    load_bench_model,
    load_loads,
    machine,
    table,
    write_json,
)

GPU_RESULTS = BENCH_DIR / "results_gpu.json"


def run_all(*, tiny: bool, tl_prompts: int, out: Path | None, command: str = "python bench/run_all.py",
            log=print) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "load_before": load_loads(),
        "tiny": tiny,
    }
    load_started = time.perf_counter()
    model = load_bench_model(tiny=tiny)
    results["model_load_s"] = time.perf_counter() - load_started
    if tiny:
        results["vs_transformer_lens"] = vs_transformer_lens.run(model, n_prompts=6, n_tokens=20, repeats=1,
                                                                 tl_prompts=3, log=log)
        results["overhead"] = overhead.run(model, n_prompts=8, n_tokens=16, repeats=1, log=log)
        results["scaling"] = scaling.run(model, tiny=True, plots=out, log=log)
    else:
        results["vs_transformer_lens"] = vs_transformer_lens.run(model, tl_prompts=tl_prompts,
                                                                 targets=vs_transformer_lens.TARGETS, log=log)
        results["overhead"] = overhead.run(model, targets=overhead.TARGETS, log=log)
        results["scaling"] = scaling.run(model, plots=out, log=log)
    results["load_after"] = load_loads()
    results["total_s"] = time.perf_counter() - started
    log(f"run_all: done in {results['total_s'] / 60:.1f} minutes")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "results.json", results)
        saved = json.loads((out / "results.json").read_text())  # render what was saved: `--render` gives the same
        gpu = json.loads(GPU_RESULTS.read_text()) if GPU_RESULTS.is_file() else None
        (out / "RESULTS.md").write_text(render(saved, gpu), encoding="utf-8")
        log(f"run_all: wrote {out / 'results.json'} and {out / 'RESULTS.md'}")
    return results


# ---- RESULTS.md -----------------------------------------------------------------------------
def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render(results: dict[str, Any], gpu: dict[str, Any] | None) -> str:
    """RESULTS.md from the figures as saved in results.json (and results_gpu.json, if any)."""
    m = results["machine"]
    vs = results["vs_transformer_lens"]
    ov = results["overhead"]
    sc = results["scaling"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/run_all.py` (do not edit by hand; rerun `make bench`).",
        "",
        f"- **Date:** {results['date']}",
        (f"- **Command:** `{results['command']}`{'' if results['tiny'] else ' (`make bench`)'}, "
         f"{results['total_s'] / 60:.1f} minutes in all, model loading included"),
        (f"- **Machine:** {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
         f"{m['memory_gib']} GiB RAM, no GPU; {m['platform']}"),
        f"- **Software:** Python {m['python']}, torch {m['torch']}, transformer-lens {m.get('transformer_lens', '?')}",
        f"- **Model:** {vs['model']}{'' if results['tiny'] else ', the embedded default'}, on the CPU",
        (f"- **Load average** before / after: {_load(results['load_before'])} / {_load(results['load_after'])} "
         "(the machine is shared: every ratio below is measured side by side in one run, each side's best time)"),
        "",
        "## Targets",
        "",
    ]
    rows = []
    for n, s in vs["sets"].items():
        if s.get("target"):
            rows.append([f"{n} patterns, 64 prompts of ~64 tokens: >= {s['target']:.0f}x faster than `detect_head`",
                         f"{s['speedup']:.1f}x", _yes(s["speedup"] >= s["target"])])
    for n, s in ov["sets"].items():
        if s.get("target"):
            rows.append([f"`detect` <= {s['target']}x a plain forward pass, {n} patterns",
                         f"{s['ratio_plain']:.2f}x", _yes(s["ratio_plain"] <= s["target"])])
    prompts = sc["prompts"]["points"]
    peaks = [p["peak_mib"] for p in prompts]
    flat = max(peaks) <= 1.25 * min(peaks) + 16
    rows.append([f"peak memory flat in the number of prompts ({prompts[0]['prompts']} to {prompts[-1]['prompts']})",
                 f"{min(peaks):.0f} to {max(peaks):.0f} MiB", _yes(flat)])
    longest = sc["length"]["points"][-1]
    worst = max(longest[f"detect_{c}"]["peak_mib"] for c in sc["length"]["counts"])
    rows.append([f"{longest['length']}-token prompts run on a 24 GiB machine, batch size automatic",
                 f"peak {worst:.0f} MiB above the model (64 patterns)", _yes(worst < 20 * 1024)])
    rows += _gpu_target_rows(gpu)
    lines += [table(["target", "measured", "met"], rows), ""]

    lines += ["## 1. Against TransformerLens' `detect_head`", "", _vs_method(vs), ""]
    rows = []
    for n, s in vs["sets"].items():
        rows.append([n, f"{s['transformer_lens_s']:.1f} s", f"{s['patternlang_s']:.2f} s", f"**{s['speedup']:.1f}x**",
                     f"{s['tl_seq_per_min']:.0f}", f"{s['patternlang_seq_per_min']:.0f}", f"{s['max_abs_diff']:.1e}"])
    lines += [table(["patterns", "detect_head", "patternlang.detect", "speed-up", "detect_head seq/min",
                     "patternlang seq/min", "max abs diff (mul)"], rows), ""]
    largest = max(vs["sets"], key=int)  # JSON keys are strings
    lines += ["Patterns: " + ", ".join(f"`{p}`" for p in vs["sets"][largest]["patterns"]) + ".", ""]

    lines += ["## 2. Overhead over the model's own forward pass", "", _overhead_method(ov), ""]
    rows = [["plain forward (the floor)", f"{ov['plain_forward_s']:.2f} s", "1.00x", ""],
            ["stopped forward (detect's own pass, empty hooks)", f"{ov['stopped_forward_s']:.2f} s",
             f"{ov['stopped_forward_s'] / ov['plain_forward_s']:.2f}x", ""]]
    for n, s in ov["sets"].items():
        rows.append([f"`detect`, {n} patterns", f"{s['detect_s']:.2f} s", f"**{s['ratio_plain']:.2f}x**",
                     f"{s['ratio_stopped']:.2f}x"])
    lines += [table(["run", "time", "ratio to the plain forward", "ratio to the stopped forward"], rows), ""]

    lines += ["## 3. Scaling", "", _scaling_method(sc), ""]
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
                         f"{p['forward']['peak_mib']:.0f} MiB", d["n_batches"], min(128, d["auto_rows"])])
    lines += [table(["tokens", "prompts", "patterns", "detect", "plain forward", "ratio", "detect peak",
                     "forward peak", "batches", "auto batch limit"], rows), ""]

    data = sc["prompts"]
    lines += [(f"### Number of prompts ({data['n_tokens']} tokens, batches of {data['batch_size']}, "
               f"{data['patterns']} patterns)"), "", "![time and memory vs prompts](scaling_prompts.png)", ""]
    rows = [[p["prompts"], f"{p['seconds']:.2f} s", f"{60 * p['prompts'] / p['seconds']:.0f}", f"{p['peak_mib']:.0f} MiB"]
            for p in data["points"]]
    lines += [table(["prompts", "detect", "seq/min", "peak memory"], rows), ""]

    lines += ["## 4. GPU", "", _gpu_section(gpu), ""]
    lines += ["## What makes it fast", "", WHY_FAST, ""]
    return "\n".join(lines)


def _load(values: Any) -> str:
    return "?" if not values else " ".join(f"{v:.2f}" for v in values)


def _vs_method(vs: dict[str, Any]) -> str:
    n_tl, n = vs["tl_prompts"], vs["n_prompts"]
    sampled = (f"`detect_head` was timed on {n_tl} of the {n} prompts (evenly spread) and its time multiplied by "
               f"{n / n_tl:g}: it runs one independent forward pass per prompt and per pattern, a Python loop "
               "whose cost is linear in the prompts (`python bench/vs_transformer_lens.py --tl-prompts "
               f"{n}` times every call). " if n_tl != n else "")
    tokens = vs["tokens"]
    return (f"{n} English prompts of {min(tokens)}-{max(tokens)} tokens (a passage of the `natural` corpus said "
            "twice), measure `mul`, no exclusions. TransformerLens is called the way its users call it: "
            "`detect_head(model, prompts, name)` for its three named heads, and, for every other pattern, "
            "`detect_head(model, prompt, matrix)` per prompt with the matrix from `pattern.matrix(tokens, "
            "str_tokens)` (built before the clock starts, so not counted against it), averaged as `detect_head` "
            "averages a list. patternlang: one `detect(model, prompts, patterns, measures=\"mul\")` call for "
            f"all patterns, tokenizing and compiling included, best of {vs['repeats']} runs. " + sampled +
            "Both sides' scores on the same prompts are compared on two prompts before the clock starts, and "
            "on every prompt `detect_head` was timed on before a speed-up is reported: every head of every "
            "pattern agrees within 1e-5 (the largest difference is in the table).")


def _overhead_method(ov: dict[str, Any]) -> str:
    return (f"{ov['n_prompts']} prompts of {ov['n_tokens']} token ids (BOS + random tokens repeated), measure "
            f"`{ov['measure']}`, the same batches for every run ({', '.join(str(b) for b in ov['batches'])} "
            "prompts), each run's best of 2, alternating. *Plain forward*: `model(tokens, return_type=None)`, "
            "no hooks: the floor the issue sets. *Stopped forward*: the pass `detect` runs, hooked on every "
            "layer's `hook_pattern` and stopped right after the last one (so without the last MLP and the "
            "unembedding), with empty hooks. `detect` can beat the plain forward pass because it stops early; "
            "the ratio to the stopped forward is the price of the scoring itself.")


def _scaling_method(sc: dict[str, Any]) -> str:
    return (f"At each point of the pattern and length curves, `detect` (measure `mass`) and the plain forward pass "
            f"over the same batches run in turn, {sc['repeats']} round(s): the best time and the highest peak "
            "are shown. The prompt curve runs once per point, with a fixed batch size. Peak memory is the peak "
            "resident set size above the one before the call (the model already loaded), sampled every 5 ms, "
            "so it includes the model's own activations.")


def _gpu_target_rows(gpu: dict[str, Any] | None) -> list[list[str]]:
    if gpu is None:
        return [["GPU (H100), 128 tokens: >= 100,000 sequences/min", "not measured: no GPU in this session", "-"],
                ["GPU (H100): >= 100x `detect_head` on the same machine", "not measured: no GPU in this session", "-"]]
    rows = []
    for dtype, entry in gpu["dtypes"].items():
        seq = entry["128"]["seq_per_min"]
        rows.append([f"GPU ({gpu['machine'].get('gpu')}), {dtype}, 128 tokens: >= 100,000 sequences/min",
                     f"{seq:,.0f}", _yes(seq >= 100_000)])
        vs = entry.get("vs_transformer_lens", {})
        if "sets" in vs:
            s = next(iter(vs["sets"].values()))
            rows.append([f"GPU, {dtype}: >= 100x `detect_head`", f"{s['speedup']:.1f}x", _yes(s["speedup"] >= 100)])
    return rows


def _gpu_section(gpu: dict[str, Any] | None) -> str:
    if gpu is None:
        return ("**Not measured.** No GPU machine was available in the session that produced these results, so "
                "there are no GPU figures here, and none are estimated. `bench/gpu.py` measures them on any "
                "CUDA machine (float32 and bfloat16, 128- and 1024-token prompts, every shipped pattern, and the "
                "speed-up over `detect_head` at 128 tokens) and writes `bench/results_gpu.json`, which the next "
                "`make bench` puts here.")
    lines = [(f"Measured {gpu['date']} on {gpu['machine'].get('gpu')} with `{gpu['command']}`; "
              f"{len(gpu['patterns'])} shipped patterns, measure `mass`."), ""]
    rows = []
    for dtype, entry in gpu["dtypes"].items():
        for length in ("128", "1024"):
            e = entry[length]
            rows.append([dtype, length, e["n_prompts"], f"{e['seconds']:.2f} s", f"{e['seq_per_min']:,.0f}",
                         f"{e['peak_mib']:.0f} MiB"])
    lines += [table(["dtype", "tokens", "prompts", "detect", "seq/min", "peak GPU memory"], rows), ""]
    rows = []
    for dtype, entry in gpu["dtypes"].items():
        vs = entry.get("vs_transformer_lens", {})
        if "sets" in vs:
            s = next(iter(vs["sets"].values()))
            rows.append([dtype, f"{s['transformer_lens_s']:.1f} s", f"{s['patternlang_s']:.2f} s",
                         f"{s['speedup']:.1f}x", f"{s['max_abs_diff']:.1e}"])
        else:
            rows.append([dtype, "-", "-", vs.get("error", "not run"), "-"])
    lines += [table(["dtype", "detect_head (scaled)", "patternlang.detect", "speed-up", "max abs diff (mul)"], rows)]
    return "\n".join(lines)


WHY_FAST = """\
- One batched forward pass per batch of prompts for *all* patterns (TransformerLens: one pass per
  prompt *and* per pattern), stopped right after the last layer's attention pattern.
- The detection tensors of every pattern are built once per batch, on features shared by all
  patterns, and written straight into one tensor (`evaluate_all(out=...)`, no stacked copy).
- Per layer, one batched matmul multiplies every head's attention rows by every pattern's rows
  at once (`cell_products`: `einsum("bhqk,bqkc->bqhc")`, patterns last); an extra column of
  counted cells gives each row's attention sum in the same matmul, so `mass` (with its
  renormalisation) and `mul` need no elementwise pass over the attention. Prompts longer than
  96 tokens go by blocks of 64 queries that read only the keys up to their last query (about
  half the work), through strided views of the attention and the detection tensor (no copies).
- The sums stay on the device in float64 (no `.item()` per head); nothing is kept per prompt,
  so memory depends on the batch, never on the number of prompts.
- Batches are sized from free memory, longest prompts first, so long prompts get small batches.

Not covered by these figures: `tv` (an elementwise minimum per pattern and layer, with no matmul
form) and `abs` cost more per pattern than `mass`, `mul` and `argmax`; `detect(..., measures=None)`
scores every pattern with the union of the patterns' own measures, which is `mass` and `tv` for
the shipped patterns (about 10% more than `mass` alone with the 13 shipped patterns on 64
prompts of 64 tokens, measured once by hand, not by this script)."""


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the hand-set tiny model at tiny sizes, in seconds (CI)")
    parser.add_argument("--tl-prompts", type=int, default=16,
                        help="prompts TransformerLens' detect_head is timed on (scaled to all 64)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json, RESULTS.md and the plots (default: bench/, none with --tiny)")
    parser.add_argument("--render", action="store_true",
                        help="only redraw RESULTS.md and the plots from the results.json in --out (default bench/)")
    args = parser.parse_args(argv)
    if args.render:
        folder = args.out or BENCH_DIR
        results = json.loads((folder / "results.json").read_text())
        gpu = json.loads(GPU_RESULTS.read_text()) if GPU_RESULTS.is_file() else None
        (folder / "RESULTS.md").write_text(render(results, gpu), encoding="utf-8")
        scaling.plot(results["scaling"], folder)
        print(f"run_all: wrote {folder / 'RESULTS.md'} and the plots, from {folder / 'results.json'}")
        return results
    out = args.out if args.out is not None else (None if args.tiny else BENCH_DIR)
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python bench/run_all.py", *(shlex.quote(a) for a in arguments)])
    return run_all(tiny=args.tiny, tl_prompts=args.tl_prompts, out=out, command=command)


if __name__ == "__main__":
    main()
