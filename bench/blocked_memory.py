"""Peak memory of scoring by blocks of query rows (engine/blocked.py) as prompts grow: linear.

    python bench/blocked_memory.py [--tiny] [--lengths 1024 2048 4096 8192] [--patterns 16]

The block scoring alone, without a model: the attention comes from
`testing.RandomAttentionBlocks` (random causal softmaxed blocks, made per block and never kept),
with SmolLM2-135M's shape (30 layers x 9 heads, its tokenizer's texts for the patterns that read
them) and the first `--patterns` patterns of `common.pattern_set`, one prompt per length, measure
`mass`. Peak memory is the peak RSS above the RSS before the call (`common.peak_memory`); what the
model itself needs on top (its forward pass, and the post-rotary queries and keys that the
attention route keeps, linear in length) is `bench/long_context.py`'s to measure.
`block_scoring_peak` is the measuring function, for other benchmarks to call.

Up to 2048 tokens (`--whole-up-to`) the hook_pattern path's scoring runs beside it on the same
attention (whole detection tensors and layers): its memory, and the largest score difference.

With `--tiny`: the hand-set model's shape (2 layers x 3 heads), 4 patterns, prompts of 128 to 1024
tokens in the smallest blocks (16 rows), the hook_pattern path beside it up to 512 (seconds, for CI).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, machine, mib, pattern_set, peak_memory, table, write_json  # noqa: E402

SMOLLM2_SHAPE = (30, 9)
"""SmolLM2-135M's layers and heads."""
FULL_LENGTHS = (1024, 2048, 4096, 8192)
TINY_LENGTHS = (128, 256, 512, 1024)
TARGET_MIB = 1536
"""Issue 12: SmolLM2 at its full 8192-token context with 16 patterns, at most 1.5 GB above the model."""


def block_scoring_peak(length: int, *, n_layers: int, n_heads: int, patterns: Sequence[str],
                       strings: Callable[[list[int]], list[str]] | None, vocab: int,
                       measures: tuple[str, ...] = ("mass",), n_prompts: int = 1, budget: float | None = None,
                       special_ids: Sequence[int] = (), seed: int = 0, whole: bool = False) -> dict[str, Any]:
    """Score `n_prompts` random prompts of `length` tokens by blocks against `patterns`, with
    random attention of `n_layers` x `n_heads`; returns the peak memory above the start
    (`peak_mib`), the seconds, the query block and the block's planned bytes (`block_mib`).

    `whole`: the hook_pattern path's scoring instead (whole detection tensors, each layer's whole
    attention, `Accumulator.start_batch` / `add_layer`), on the same random attention."""
    from patternlang.engine.accumulate import Accumulator, PatternGroup
    from patternlang.engine.batching import pad_batch
    from patternlang.engine.blocked import BLOCK_MEMORY, block_cell_bytes, query_block_size, score_batch_by_blocks
    from patternlang.engine.measures import Exclusions
    from patternlang.engine.pattern_tensors import batch_features, detection_block, resolve_patterns
    from patternlang.testing import RandomAttentionBlocks

    budget = BLOCK_MEMORY if budget is None else budget
    detectors = resolve_patterns(list(patterns))
    generator = torch.Generator().manual_seed(seed)
    token_lists = []
    for _ in range(n_prompts):  # BOS, then a random half repeated: induction and duplicates have targets
        half = torch.randint(1, vocab, (max(1, (length - 1) // 2),), generator=generator)
        ids = torch.cat([torch.tensor([0]), half, half])[:length]
        token_lists.append(torch.cat([ids, torch.randint(1, vocab, (length - ids.numel(),), generator=generator)]))
    batch = pad_batch(token_lists, list(range(n_prompts)), 0, torch.device("cpu"))
    layers = list(range(n_layers))
    accumulator = Accumulator(n_patterns=len(detectors), n_layers=n_layers, n_heads=n_heads, measures=measures,
                              groups=[PatternGroup(tuple(range(len(detectors))), Exclusions())],
                              heads={layer: None for layer in layers})
    blocks = RandomAttentionBlocks(batch.lengths, n_heads, layers, seed)
    cell = block_cell_bytes(len(detectors), n_heads, measures)
    query_block = query_block_size(length, n_prompts, cell, budget)
    with torch.inference_mode(), peak_memory() as memory:
        started = time.perf_counter()
        features = batch_features(detectors, batch, strings=strings, special_ids=special_ids)
        if whole:
            detection = detection_block(detectors, batch, features, 0, length)
            accumulator.start_batch(detection, batch.lengths, list(range(n_prompts)))
            del detection
            for layer in layers:
                accumulator.add_layer(layer, blocks.block(layer, 0, length))
        else:
            score_batch_by_blocks(accumulator, blocks, detectors, batch, features, layers, query_block=query_block,
                                  device=torch.device("cpu"))
        scores = accumulator.result()
        seconds = time.perf_counter() - started
    if not torch.isfinite(scores.values[measures[0]]).any():
        raise RuntimeError("the block scoring gave no finite score")
    return {"length": length, "n_prompts": n_prompts, "peak_mib": round(mib(memory.delta), 1),
            "seconds": round(seconds, 2), "query_block": length if whole else query_block,
            "block_mib": round(mib(query_block * length * n_prompts * cell), 1), "values": scores.values}


def _strings(tiny: bool) -> tuple[Callable[[list[int]], list[str]], int, tuple[int, ...]]:
    if tiny:
        from patternlang.testing import CHARACTERS

        return (lambda ids: [CHARACTERS[i % len(CHARACTERS)] for i in ids]), len(CHARACTERS), (0,)
    from types import SimpleNamespace

    from patternlang.engine.batching import TokenStrings
    from patternlang.tokenization import default_special_ids, default_tokenizer

    tokenizer = default_tokenizer()
    return TokenStrings(SimpleNamespace(tokenizer=tokenizer)), len(tokenizer), tuple(default_special_ids())


FULL_SIZE_LAYERS = 3
"""Layers of random attention at full size (`--layers` changes it): the time is linear in them."""
WHOLE_UP_TO = 2048
"""The hook_pattern path's scoring is measured beside the block path up to this length (beyond,
its quadratic tensors take gigabytes on a shared machine)."""


def run(*, tiny: bool, log=print, lengths: Sequence[int] | None = None, n_patterns: int | None = None,
        whole_up_to: int | None = None, n_layers: int | None = None) -> dict:
    """Peak memory of the block scoring at each length (see the module's docstring), and of the
    hook_pattern path's scoring on the same attention up to `whole_up_to` tokens.

    `n_layers` fewer than the shape's: every length runs with that many layers (the time is
    linear in the layers; the memory is not, but for a few sums per layer), and the shortest
    length once more with all of them, to show it (`layers_check`)."""
    all_layers, n_heads = (2, 3) if tiny else SMOLLM2_SHAPE
    # At full size, 3 layers (minutes, not an hour, on 2 cores), with the all-layer check below;
    # bench/long_context.py scores every layer of the real model.
    n_layers = n_layers or (all_layers if tiny else FULL_SIZE_LAYERS)
    lengths = tuple(lengths or (TINY_LENGTHS if tiny else FULL_LENGTHS))
    n_patterns = n_patterns or (4 if tiny else 16)
    patterns = pattern_set(n_patterns)
    strings, vocab, specials = _strings(tiny)
    # Tiny prompts would fit in one block (memory quadratic again): the smallest blocks show the growth.
    budget = 1 if tiny else None
    options = dict(n_layers=n_layers, n_heads=n_heads, patterns=patterns, strings=strings, vocab=vocab,
                   special_ids=specials, budget=budget)
    block_scoring_peak(min(lengths), **options)  # warm-up: first-call allocations are not the scoring's
    whole_up_to = whole_up_to if whole_up_to is not None else (512 if tiny else WHOLE_UP_TO)
    layers_check = None
    if n_layers < all_layers:
        full = block_scoring_peak(min(lengths), **{**options, "n_layers": all_layers})
        layers_check = {"length": min(lengths), "n_layers": all_layers, "peak_mib": full["peak_mib"],
                        "seconds": full["seconds"]}
        log(f"{min(lengths):>6} tokens, all {all_layers} layers: blocks: peak {full['peak_mib']:.0f} MiB, "
            f"{full['seconds']:.1f} s")
    rows = []
    for length in lengths:
        row = block_scoring_peak(length, **options)
        blocked_values = row.pop("values")
        log(f"{length:>6} tokens: blocks: peak {row['peak_mib']:.0f} MiB above the start, query block "
            f"{row['query_block']}, {row['seconds']:.1f} s")
        if length <= whole_up_to:
            whole = block_scoring_peak(length, **options, whole=True)
            worst = max(float((whole["values"][m] - blocked_values[m]).abs().nan_to_num().max()) for m in blocked_values)
            row.update(whole_peak_mib=whole["peak_mib"], whole_seconds=whole["seconds"], max_difference=worst)
            log(f"{length:>6} tokens: whole (hook_pattern path): peak {whole['peak_mib']:.0f} MiB, "
                f"{whole['seconds']:.1f} s; largest score difference {worst:.1e}")
        rows.append(row)
    return {"name": "blocked_memory", "tiny": tiny, "shape": [n_layers, n_heads], "model_layers": all_layers,
            "layers_check": layers_check, "patterns": patterns, "measures": ["mass"], "rows": rows,
            "machine": machine(), "target_mib": TARGET_MIB}


def render(results: dict) -> str:
    """The markdown section: peak memory per length, and its growth per doubling."""
    rows = results["rows"]
    n_layers, n_heads = results["shape"]
    lines = [f"### Scoring by query blocks: memory as prompts grow ({'tiny' if results['tiny'] else 'full'})", "",
             f"Block scoring alone (no model: random attention blocks), {n_layers} layers x {n_heads} heads, "
             f"{len(results['patterns'])} patterns, measure mass, one prompt per length. Peak RSS above the start.",
             ""]
    table_rows = []
    for index, row in enumerate(rows):
        previous = rows[index - 1] if index else None
        growth = (f"{row['peak_mib'] / previous['peak_mib']:.2f}x for {row['length'] / previous['length']:.0f}x "
                  f"tokens" if previous and previous["peak_mib"] > 0 else "")
        whole = (f"{row['whole_peak_mib']:.0f} ({row['whole_peak_mib'] / row['peak_mib']:.1f}x)"
                 if "whole_peak_mib" in row and row["peak_mib"] > 0 else "not run")
        table_rows.append((row["length"], f"{row['peak_mib']:.0f}", row["query_block"], f"{row['block_mib']:.0f}",
                           f"{row['seconds']:.1f}", growth, whole))
    lines.append(table(("tokens", "peak MiB", "query block", "planned block MiB", "seconds", "growth",
                        "hook_pattern path's scoring, MiB"), table_rows))
    check = results.get("layers_check")
    if check:
        same = next((row for row in rows if row["length"] == check["length"]), None)
        lines += ["", f"With all {check['n_layers']} layers at {check['length']} tokens the block scoring peaks at "
                      f"{check['peak_mib']:.0f} MiB ({check['seconds']:.1f} s)"
                  + (f", against {same['peak_mib']:.0f} MiB with {n_layers} ({same['seconds']:.1f} s)." if same else ".")]
    return "\n".join(lines) + "\n"


NOISE_MIB = 4
"""Peaks below this are within the RSS sampling's noise: not used for the growth."""


def target_rows(results: dict) -> list[tuple[str, str, bool | None]]:
    """Linear growth (doubling the length at most ~2.5x the memory), the scores equal to the
    hook_pattern path's, and the 8192-token figure."""
    rows = results["rows"]
    ratios = [b["peak_mib"] / a["peak_mib"] for a, b in zip(rows, rows[1:]) if a["peak_mib"] >= NOISE_MIB]
    worst = max(ratios) if ratios else None
    out: list[tuple[str, str, bool | None]] = [(
        "block scoring's peak memory grows linearly in prompt length (<= 2.5x per doubling)",
        "n/a" if worst is None else f"worst doubling {worst:.2f}x", None if worst is None else worst <= 2.5)]
    differences = [row["max_difference"] for row in rows if "max_difference" in row]
    if differences:
        out.append(("block path's scores equal the hook_pattern path's (within 1e-5)",
                    f"largest difference {max(differences):.1e}", max(differences) <= 1e-5))
    longest = rows[-1]
    if not results["tiny"] and longest["length"] >= 8192:
        out.append((f"block scoring at {longest['length']} tokens, {len(results['patterns'])} patterns "
                    f"(part of <= {results['target_mib']} MiB above the model)",
                    f"{longest['peak_mib']:.0f} MiB", longest["peak_mib"] <= results["target_mib"]))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="hand-set model's shape, short prompts (seconds)")
    parser.add_argument("--lengths", type=int, nargs="+", help="prompt lengths in tokens")
    parser.add_argument("--patterns", type=int, help="number of patterns (default 16; tiny 4)")
    parser.add_argument("--layers", type=int, help="layers of random attention (default: all of the shape's)")
    parser.add_argument("--whole-up-to", type=int, help=f"measure the hook_pattern path's scoring up to this length "
                                                         f"(default {WHOLE_UP_TO}; tiny: every length)")
    args = parser.parse_args(argv)
    results = run(tiny=args.tiny, lengths=args.lengths, n_patterns=args.patterns, whole_up_to=args.whole_up_to,
                  n_layers=args.layers)
    write_json(BENCH_DIR / "results_blocked_memory.json", results)
    print(render(results))
    for target, measured, met in target_rows(results):
        print(f"- {target}: {measured} ({'met' if met else 'not met' if met is not None else 'n/a'})")


if __name__ == "__main__":
    main()
