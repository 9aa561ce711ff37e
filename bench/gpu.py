"""The GPU figures: sequences per minute, the speed-up over `detect_head` on the same GPU, and
the long-context path, in float32 and bfloat16, as one script that fits in 10 minutes of GPU time.

    python bench/gpu.py                   # on a CUDA machine: writes bench/results_gpu.json
    python bench/gpu.py --cpu-check       # the whole script on the CPU at tiny sizes (the real model), first
    python bench/gpu.py --cpu-check --tiny   # the same on the hand-set tiny model (seconds; what the tests run)
    python bench/gpu.py --budget-s 480 --prompts 128=4096 1024=512 8192=8

For each dtype (the model loaded in it; each dtype gets an equal share of the time budget
`--budget-s`, model loads included), these steps, each started only while its share lasts (a
step not started is recorded as skipped, never estimated):

1. throughput: `detect` with every shipped engine-only pattern (measure `mass`, automatic batch
   size unless `--batch-size`) on prompts of 128, 1024 and 8192 tokens (BOS + random tokens
   repeated), best of `--repeats`: sequences per minute and peak GPU memory (128 tokens first,
   the longer prompts after step 3);
2. against `detect_head` at 128 tokens (bench/vs_transformer_lens.py on this GPU, its time on
   `--tl-prompts` prompts and half as many, scaled only behind its linearity check): the speed-up
   over `detect_head` as users call it and with `cache=`, scores compared first (within 1e-5 in
   float32; in bfloat16 TransformerLens sums the attention in bfloat16 and patternlang in float32,
   so within 2e-2);
3. the long-context path at 8192 tokens: `detect(..., attention="blocks")` (never a `[heads, q, k]`
   tensor) against `attention="pattern"` (hook_pattern), time, peak memory and the largest score
   difference; where this checkout's `detect` has no `attention=` option yet, it says so and
   measures nothing.

Targets (H100, 128 tokens): >= 100,000 sequences per minute, >= 100x `detect_head`. Without
CUDA (and without --cpu-check) it says so and exits with status 0: a GPU is never required.
Results go to bench/results_gpu.json (a CPU check: bench/results_gpu_cpu_check.json, never
taken for GPU figures), which `bench/run_all.py` puts into RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: I001
    BENCH_DIR,
    TargetRow,
    engine_only,
    load_bench_model,
    machine,
    mib,
    model_label,
    peak_memory,
    runs_phrase,
    seconds_text,
    table,
    time_call,
    token_prompts,
    write_json,
)

TARGET_SEQ_PER_MIN = 100_000
TARGET_SPEEDUP = 100.0
BFLOAT16_TOLERANCE = 2e-2
BUDGET_S = 480.0  # 8 of the 10 minutes: a step begun near the end runs on (the longest, detect_head, ~2-3 min)
GPU = {"lengths": (128, 1024, 8192), "prompts": {128: 4096, 1024: 512, 8192: 8}, "tl_compare_prompts": 1024,
       "tl_prompts": 16, "repeats": 3, "long_tokens": 8192, "long_prompts": 2}
CPU_CHECK = {"lengths": (16, 32, 60), "prompts": {16: 8, 32: 4, 60: 2}, "tl_compare_prompts": 4,
             "tl_prompts": 2, "repeats": 1, "long_tokens": 60, "long_prompts": 1}
"""The same steps at tiny sizes, on the CPU: proves the script end to end before GPU time is spent."""


def shipped_names() -> list[str]:
    from patternlang.library import shipped_patterns

    return [p.name for p in shipped_patterns() if engine_only(p)]


class Budget:
    """Wall-clock seconds left of `limit_s`, from construction."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s, self.started = limit_s, time.perf_counter()

    @property
    def spent_s(self) -> float:
        return time.perf_counter() - self.started

    def allows(self, step: str, log=print) -> bool:
        if self.spent_s < self.limit_s:
            return True
        log(f"gpu: {step}: skipped, the time budget of {self.limit_s:.0f} s is spent ({self.spent_s:.0f} s)")
        return False


def skipped(budget: Budget) -> dict[str, Any]:
    return {"skipped": f"the time budget of {budget.limit_s:.0f} s was spent ({budget.spent_s:.0f} s) before it began"}


def synced(device: str) -> bool:
    return str(device).startswith("cuda")


def throughput(model: Any, n_prompts: int, n_tokens: int, patterns: Sequence[str], *, batch_size: int | None,
               repeats: int, budget: Budget, log=print) -> dict[str, Any]:
    """`detect` on `n_prompts` prompts of `n_tokens`: best of `repeats` (fewer once the budget is spent)."""
    from patternlang.engine import detect

    device = str(model.cfg.device)
    prompts = token_prompts(model, n_prompts, n_tokens)

    def run():
        return detect(model, prompts, list(patterns), measures="mass", batch_size=batch_size, progress=False)

    detect(model, prompts[: min(8, n_prompts)], list(patterns), measures="mass", progress=False)  # warm-up
    runs: list[float] = []
    with peak_memory(device) as memory:
        while len(runs) < repeats and (not runs or budget.spent_s < budget.limit_s):
            seconds, scores = time_call(run, sync=synced(device))
            runs.append(seconds)
    seconds = min(runs)
    result = {"n_prompts": n_prompts, "n_tokens": n_tokens, "seconds": seconds, "runs": runs,
              "seq_per_min": 60 * n_prompts / seconds, "n_batches": scores.settings["n_batches"],
              "attention": scores.settings.get("attention"), "peak_mib": mib(memory.delta)}
    log(f"gpu, {model.cfg.dtype}, {n_tokens} tokens: {result['seq_per_min']:,.0f} sequences/min "
        f"({n_prompts} prompts in {seconds:.2f} s, {runs_phrase(len(runs))}, {result['n_batches']} batches, "
        f"peak {result['peak_mib']:.0f} MiB)")
    return result


def versus_transformer_lens(model: Any, n_prompts: int, n_tokens: int, patterns: Sequence[str], *, tl_prompts: int,
                            repeats: int, log=print) -> dict[str, Any]:
    """bench/vs_transformer_lens.py on this model and device: 4 patterns and all of `patterns`."""
    import vs_transformer_lens as vs

    tolerance = vs.TOLERANCE if model.cfg.dtype == torch.float32 else BFLOAT16_TOLERANCE
    counts = sorted({min(4, len(patterns)), len(patterns)})
    return vs.run(tiny=False, model=model, n_prompts=n_prompts, n_tokens=n_tokens, patterns=counts, repeats=repeats,
                  tl_prompts=tl_prompts, targets={len(patterns): TARGET_SPEEDUP}, tolerance=tolerance, log=log)


def long_context(model: Any, n_prompts: int, n_tokens: int, patterns: Sequence[str], *, repeats: int,
                 log=print) -> dict[str, Any]:
    """`detect` through the attention blocks and through hook_pattern, at `n_tokens` tokens."""
    from patternlang.engine import detect

    if "attention" not in inspect.signature(detect).parameters:
        message = ("not measured: this checkout's detect() has no attention= option (the blocked attention path "
                   "of helpers route/blocks is not merged)")
        log(f"gpu, long context: {message}")
        return {"error": message}
    device = str(model.cfg.device)
    prompts = token_prompts(model, n_prompts, n_tokens)
    result: dict[str, Any] = {"n_prompts": n_prompts, "n_tokens": n_tokens, "paths": {}}
    scores: dict[str, Any] = {}
    for path in ("blocks", "pattern"):
        def run(path=path):
            return detect(model, prompts, list(patterns), measures="mass", attention=path, progress=False)

        try:
            runs = []
            with peak_memory(device) as memory:
                for _ in range(repeats):
                    seconds, scores[path] = time_call(run, sync=synced(device))
                    runs.append(seconds)
        except (torch.cuda.OutOfMemoryError, MemoryError) as error:
            result["paths"][path] = {"error": f"out of memory: {str(error).splitlines()[0]}"}
            log(f"gpu, long context, {path}: out of memory")
            if synced(device):
                torch.cuda.empty_cache()
            continue
        except Exception as error:  # noqa: BLE001 - e.g. the InputError naming why blocks do not work here
            result["paths"][path] = {"error": f"{type(error).__name__}: {error}"}
            log(f"gpu, long context, {path}: {type(error).__name__}: {error}")
            continue
        result["paths"][path] = {"seconds": min(runs), "runs": runs, "peak_mib": mib(memory.delta),
                                 "attention": scores[path].settings.get("attention")}
        log(f"gpu, long context, {model.cfg.dtype}, {n_tokens} tokens, attention={path}: {min(runs):.2f} s, "
            f"peak {mib(memory.delta):.0f} MiB")
    if len(scores) == 2:
        blocked, plain = scores["blocks"].values["mass"], scores["pattern"].values["mass"]
        result["max_abs_diff"] = float((blocked.double() - plain.double()).abs().nan_to_num(0).max())
        log(f"gpu, long context: largest score difference between the paths {result['max_abs_diff']:.1e}")
    return result


def load(dtype: str, *, device: str, tiny: bool) -> Any:
    from patternlang.models import clear_model_cache, load_model

    if tiny:
        return load_bench_model(tiny=True)
    clear_model_cache()
    if synced(device):
        torch.cuda.empty_cache()
    return load_model(device=device, dtype=dtype)


def run(*, device: str | None = None, dtypes: Sequence[str] = ("float32", "bfloat16"), cpu_check: bool = False,
        tiny: bool = False, prompts: dict[int, int] | None = None, batch_size: int | None = None,
        repeats: int | None = None, tl_prompts: int | None = None, tl_compare_prompts: int | None = None,
        budget_s: float = BUDGET_S, command: str = "python bench/gpu.py", log=print) -> dict[str, Any]:
    sizes = CPU_CHECK if cpu_check or tiny else GPU
    device = device or ("cpu" if cpu_check or tiny else "cuda")
    repeats = repeats or sizes["repeats"]
    prompts = {**sizes["prompts"], **(prompts or {})}
    lengths = tuple(sorted(prompts)) if prompts.keys() != sizes["prompts"].keys() else sizes["lengths"]
    budget = Budget(budget_s)
    names = shipped_names()
    if tiny:
        dtypes = ("float32",)  # the hand-set model is float32
    results: dict[str, Any] = {
        "machine": machine(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command, "cpu_check": cpu_check or tiny, "device": device, "patterns": names, "repeats": repeats,
        "budget_s": budget_s, "dtypes": {},
    }
    log(f"gpu: {torch.cuda.get_device_name(0) if synced(device) else device}, {len(names)} shipped patterns, "
        f"budget {budget_s:.0f} s" + (" (CPU check at tiny sizes)" if results["cpu_check"] else ""))
    for index, dtype in enumerate(dtypes):
        # Each dtype gets an equal share of what is left, so that bfloat16 is measured too.
        share = Budget(max(0.0, budget_s - budget.spent_s) / (len(dtypes) - index))
        model = load(dtype, device=device, tiny=tiny)
        entry: dict[str, Any] = {"model": model_label(model), "throughput": {}}
        log(f"gpu: {entry['model']}, {share.limit_s:.0f} s of the budget")

        def measure_throughput(length: int, model=model, entry=entry, share=share, dtype=dtype) -> None:
            entry["throughput"][str(length)] = (
                throughput(model, prompts[length], length, names, batch_size=batch_size, repeats=repeats,
                           budget=share, log=log)
                if share.allows(f"{dtype}, {length} tokens", log) else skipped(share))

        # The targets' figures first (the shortest prompts, detect_head, the long-context path), then the rest.
        measure_throughput(lengths[0])
        if share.allows(f"{dtype}, against detect_head", log):
            import vs_transformer_lens as vs

            try:
                entry["vs_transformer_lens"] = versus_transformer_lens(
                    model, tl_compare_prompts or sizes["tl_compare_prompts"], lengths[0], names,
                    tl_prompts=tl_prompts or sizes["tl_prompts"], repeats=repeats, log=log)
            except vs.ScoresDiffer as error:  # say so, keep the rest
                entry["vs_transformer_lens"] = {"error": str(error)}
                log(f"gpu, {dtype}: {error}")
        else:
            entry["vs_transformer_lens"] = skipped(share)
        entry["long_context"] = (
            long_context(model, sizes["long_prompts"], sizes["long_tokens"], names, repeats=repeats, log=log)
            if share.allows(f"{dtype}, long context", log) else skipped(share))
        for length in lengths[1:]:
            measure_throughput(length)
        entry["throughput"] = {str(length): entry["throughput"][str(length)] for length in lengths}
        entry["elapsed_s"] = share.spent_s
        results["dtypes"][dtype] = entry
        del model
    results["elapsed_s"] = budget.spent_s
    log(f"gpu: done in {budget.spent_s:.0f} s (budget {budget_s:.0f} s)")
    return results


# ---- RESULTS.md -----------------------------------------------------------------------------
def target_rows(results: dict[str, Any]) -> list[TargetRow]:
    where = f"GPU ({results['machine'].get('gpu')})" if not results.get("cpu_check") else "CPU check (not a GPU)"
    rows: list[TargetRow] = []
    for dtype, entry in results["dtypes"].items():
        first = min(entry["throughput"], key=int)
        figures = entry["throughput"][first]
        target = f"{where}, {dtype}, {first} tokens: >= {TARGET_SEQ_PER_MIN:,} sequences/min"
        if "skipped" in figures:
            rows.append((target, f"not measured: {figures['skipped']}", None))
        else:
            rows.append((target, f"{figures['seq_per_min']:,.0f}", figures["seq_per_min"] >= TARGET_SEQ_PER_MIN))
        vs = entry.get("vs_transformer_lens", {})
        target = f"{where}, {dtype}: >= {TARGET_SPEEDUP:.0f}x `detect_head` on the same machine"
        if "sets" not in vs:
            rows.append((target, "not measured: " + vs.get("error", vs.get("skipped", "not run")), None))
        else:
            s = vs["sets"][max(vs["sets"], key=int)]
            plain, cached = s["detect_head"]["speedup"], s["detect_head_cache"]["speedup"]
            cached_text = "not extrapolated" if cached is None else f"{cached:.1f}x"
            rows.append((target, "not extrapolated (linearity check)" if plain is None else
                         f"{plain:.1f}x (with `cache=`: {cached_text})", None if plain is None else plain >= TARGET_SPEEDUP))
    return rows


def render(results: dict[str, Any]) -> str:
    where = results["machine"].get("gpu") or results["device"]
    lines = ["## GPU", ""]
    if results.get("cpu_check"):
        lines += ["**A CPU check at tiny sizes, not GPU figures.**", ""]
    lines += [(f"Measured {results['date']} on {where} with `{results['command']}` in {results['elapsed_s']:.0f} s "
               f"(budget {results['budget_s']:.0f} s); {len(results['patterns'])} shipped patterns, measure `mass`, "
               f"{runs_phrase(results['repeats'])} of each."), ""]
    rows = []
    for dtype, entry in results["dtypes"].items():
        for length, e in entry["throughput"].items():
            if "skipped" in e:
                rows.append([dtype, length, "-", "-", "-", "-", e["skipped"]])
                continue
            path = (e.get("attention") or {}).get("path", "not recorded (hook_pattern, before attention=)")
            rows.append([dtype, length, e["n_prompts"], seconds_text(e["seconds"]), f"{e['seq_per_min']:,.0f}",
                         f"{e['peak_mib']:.0f} MiB", path])
    lines += [table(["dtype", "tokens", "prompts", "detect", "seq/min", "peak memory", "attention path"], rows), ""]
    rows = []
    for dtype, entry in results["dtypes"].items():
        vs = entry.get("vs_transformer_lens", {})
        if "sets" not in vs:
            rows.append([dtype, "-", "-", "-", "-", "-", vs.get("error", vs.get("skipped", "not run"))])
            continue
        for count, s in vs["sets"].items():
            plain, cached = s["detect_head"], s["detect_head_cache"]
            rows.append([dtype, count, _estimate(plain), _estimate(cached), seconds_text(s["patternlang_s"]),
                         f"{_ratio(plain)} / {_ratio(cached)}", f"{s['max_abs_diff']:.1e}"])
    lines += ["Against `detect_head` on the same machine (bench/vs_transformer_lens.py: its time scaled from subsets "
              "only behind its linearity check):", "",
              table(["dtype", "patterns", "detect_head", "detect_head, cache=", "patternlang.detect",
                     "speed-up (plain / cache=)", "max abs diff (mul)"], rows), ""]
    rows = []
    for dtype, entry in results["dtypes"].items():
        long = entry.get("long_context", {})
        if "paths" not in long:
            rows.append([dtype, "-", "-", "-", "-", long.get("error", long.get("skipped", "not run"))])
            continue
        for path, e in long["paths"].items():
            if "error" in e:
                rows.append([dtype, long["n_tokens"], path, "-", "-", e["error"]])
            else:
                diff = long.get("max_abs_diff")
                rows.append([dtype, long["n_tokens"], path, seconds_text(e["seconds"]), f"{e['peak_mib']:.0f} MiB",
                             "" if diff is None else f"largest score difference between the paths {diff:.1e}"])
    lines += ["The long-context path (`detect(..., attention=\"blocks\")`) beside hook_pattern:", "",
              table(["dtype", "tokens", "attention", "detect", "peak memory", "note"], rows), ""]
    return "\n".join(lines)


def _estimate(entry: dict[str, Any]) -> str:
    return "not scaled" if entry["estimate_s"] is None else seconds_text(entry["estimate_s"])


def _ratio(entry: dict[str, Any]) -> str:
    return "-" if entry["speedup"] is None else f"{entry['speedup']:.1f}x"


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-check", action="store_true", help="every step on the CPU at tiny sizes (the real model)")
    parser.add_argument("--tiny", action="store_true", help="with --cpu-check: the hand-set tiny model, float32 only")
    parser.add_argument("--prompts", nargs="+", default=[], metavar="TOKENS=PROMPTS",
                        help="prompts per length, e.g. 128=4096 1024=512 8192=16")
    parser.add_argument("--batch-size", type=int, default=None, help="prompts per batch (default: automatic)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--tl-prompts", type=int, default=None, help="prompts detect_head is timed on (and half)")
    parser.add_argument("--tl-compare-prompts", type=int, default=None,
                        help="prompts detect runs on in the comparison with detect_head")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="stop starting steps after this many seconds")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results_gpu.json (a CPU check: bench/results_gpu_cpu_check.json)")
    args = parser.parse_args(argv)
    try:
        prompts = {int(k): int(v) for k, v in (item.split("=", 1) for item in args.prompts)}
    except ValueError:
        parser.error(f"--prompts takes TOKENS=PROMPTS pairs such as 128=4096, not {' '.join(args.prompts)}")
    if any(k < 2 or v < 1 for k, v in prompts.items()):
        parser.error("--prompts: at least 2 tokens and 1 prompt per length")
    cpu_check = args.cpu_check or args.tiny
    if not cpu_check and not torch.cuda.is_available():
        print("gpu: CUDA is not available on this machine; nothing measured (the GPU benchmark needs an "
              "NVIDIA GPU and a CUDA build of torch; `--cpu-check` runs every step on the CPU at tiny sizes).")
        return None
    arguments = list(sys.argv[1:] if argv is None else argv)
    results = run(device="cpu" if cpu_check else "cuda", dtypes=args.dtypes, cpu_check=cpu_check, tiny=args.tiny,
                  prompts=prompts, batch_size=args.batch_size, repeats=args.repeats, tl_prompts=args.tl_prompts,
                  tl_compare_prompts=args.tl_compare_prompts, budget_s=args.budget_s,
                  command=" ".join(["python bench/gpu.py", *arguments]))
    out = args.out or (BENCH_DIR / ("results_gpu_cpu_check.json" if cpu_check else "results_gpu.json"))
    write_json(out, results)
    print(f"gpu: results written to {out} in {results['elapsed_s']:.0f} s")
    return results


if __name__ == "__main__":
    main()
