"""`describe` against the record of Hayes, Li and Andreas (2026): held-out IoU and the replacement check.

    python bench/describe_record.py [--tiny] [--json bench/results_describe_record.json] [--save D.json]

Runs what `patternlang describe --probe natural --probe repeated_random --replace 0.25` runs, on
SmolLM2-135M (with `--tiny`: the hand-set tiny model on 8 token-id prompts): every head described
by its single rule and by its mixture (up to 3 rules and BOS), chosen on the even prompts and
reported on the odd ones; then the replacement check on the held-out natural text, twice: the
best-described 25% of all heads by their single rules (by held-out IoU, as before), and the
best-fitted 25% by their mixtures (by the mixtures' fit on the selection half). `--save D.json`
also writes the whole description (what `patternlang describe --json` writes; `bench/describe_summary.py`
makes docs/describe.md's table from it).

Records: the heads with a rule above chance, the mean held-out IoU over them (single rules, and
the binarised mixtures of the same heads), the held-out fit (attention in common), perplexity
before and after each replacement with the heads replaced, and the time.

Targets (issue 22, the record of arXiv:2606.19317): mean held-out IoU >= 0.75 over the heads
described; replacing 25% of the heads raises perplexity by less than 16%. A module of the
benchmark protocol (bench/common.py).
"""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TargetRow, load_bench_model, load_loads, model_label, standalone, table, token_prompts

IOU_TARGET = 0.75
PERPLEXITY_TARGET = 0.16
SHARE = 0.25
COMMAND = "patternlang describe --probe natural --probe repeated_random --replace 0.25"
BOS_RULE = "attend k where k == 0"  # the BOS part of a mixture (patternlang.discovery.mixture.BOS_RULE)


def run(*, tiny: bool, log=print, save: Path | None = None) -> dict[str, Any]:
    from patternlang import probes
    from patternlang.discovery import describe

    model = load_bench_model(tiny=tiny)
    if tiny:
        prompts: list[Any] = list(token_prompts(model, 8, 16))
    else:
        prompts = list(probes.make_probe("natural", model=model).items)
        prompts += list(probes.make_probe("repeated_random", model=model).items)
    log(f"describe_record: {model_label(model)}, {len(prompts)} prompts, replacing {SHARE:.0%} of the heads")
    loads = load_loads()
    started = time.perf_counter()
    d = describe(model, prompts, replace=SHARE, progress=log)
    seconds = time.perf_counter() - started
    if save is not None:
        d.to_json(save)
        log(f"describe_record: the description written to {save}")
    described = d.described
    fitted = [h for h in d.heads.values() if h.mixture]

    def replacement(r: Any) -> dict[str, Any] | None:
        return None if r is None else {"heads": list(r.heads), "before": r.perplexity_before, "after": r.perplexity_after,
                                       "increase": r.increase, "n_prompts": r.n_prompts, "n_tokens": r.n_tokens}

    replaced = set(d.replacement.heads) if d.replacement else set()
    by_mixture = [d.heads[h] for h in d.replacement_mixture.heads] if d.replacement_mixture else []
    results: dict[str, Any] = {
        "model": d.model, "tiny": tiny, "command": None if tiny else COMMAND, "n_prompts": len(prompts),
        "n_selection": d.n_prompts_selection, "n_held_out": d.n_prompts_held_out, "n_candidates": d.n_candidates,
        "n_heads": len(d.heads), "described": len(described), "by_family": d.by_family(),
        "mean_iou": d.mean_iou, "mean_mixture_iou": d.mean_mixture_iou,
        "n_mixture_iou": sum(1 for h in described if h.mixture_iou is not None),
        "mean_iou_replaced": d.mean_fit("iou", [h for h in described if h.head in replaced]),
        "n_mixtures": len(fitted), "mean_mixture_iou_all": d.mean_fit("mixture_iou", fitted),
        "mean_rule_fit": d.mean_fit("rule_fit"), "mean_mixture_fit": d.mean_fit("mixture_fit"),
        "mixture_components": _component_counts(fitted),
        "replaced_mostly_bos": sum(1 for h in by_mixture if _bos_weight(h) >= 0.5),
        "replaced_mean_bos_weight": sum(_bos_weight(h) for h in by_mixture) / len(by_mixture) if by_mixture else None,
        "mean_mixture_fit_replaced": d.mean_fit("mixture_fit", by_mixture) if by_mixture else None,
        "mixture_size": d.mixture_size, "mixture_penalty": d.mixture_penalty,
        "binary_threshold": d.binary_threshold, "share": SHARE,
        "replacement_rule": replacement(d.replacement), "replacement_rule_with_sink": replacement(d.replacement_with_sink),
        "replacement_mixture": replacement(d.replacement_mixture),
        "seconds": seconds, "stages": d.seconds, "load_before": loads, "load_after": load_loads(),
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "iou_target": None if tiny else IOU_TARGET, "perplexity_target": None if tiny else PERPLEXITY_TARGET,
    }
    log(f"describe_record: {len(described)} heads described, mean IoU {_f(results['mean_iou'])} (mixtures "
        f"{_f(results['mean_mixture_iou'])}); perplexity +{_pct(results['replacement_rule'])} by rules, "
        f"+{_pct(results['replacement_mixture'])} by mixtures; {seconds:.0f} s")
    return results


def _bos_weight(head: Any) -> float:
    """The weight of BOS in a head's mixture (0 when it has none)."""
    return sum(c.weight for c in head.mixture if c.rule == BOS_RULE)


def _component_counts(heads: list[Any]) -> dict[str, int]:
    """How many mixtures hold 1, 2, 3, ... components (BOS counted)."""
    counts: dict[str, int] = {}
    for h in heads:
        counts[str(len(h.mixture))] = counts.get(str(len(h.mixture)), 0) + 1
    return dict(sorted(counts.items()))


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _pct(r: dict[str, Any] | None) -> str:
    return "n/a" if r is None else f"{r['increase']:.1%}"


def target_rows(results: dict[str, Any]) -> list[TargetRow]:
    if results.get("iou_target") is None:
        return []
    target, n = results["iou_target"], results["described"]
    rows: list[TargetRow] = []
    for label, key in (("single rules", "mean_iou"), ("mixtures", "mean_mixture_iou")):
        value = results.get(key)
        rows.append((f"describe: mean held-out IoU >= {target:g} over the heads described ({label}; the record)",
                     "not measured" if value is None else
                     f"{value:.3f} over {n if key == 'mean_iou' else results['n_mixture_iou']} heads",
                     None if value is None else value >= target))
    for label, key in (("single rules", "replacement_rule"), ("mixtures", "replacement_mixture")):
        r = results.get(key)
        rows.append((f"describe: replacing {results['share']:.0%} of the heads ({label}) raises perplexity by "
                     f"< {results['perplexity_target']:.0%} (the record)",
                     "not measured" if r is None else f"{r['before']:.2f} -> {r['after']:.2f}, {r['increase']:+.1%}",
                     None if r is None else r["increase"] < results["perplexity_target"]))
    return rows


def render(results: dict[str, Any]) -> str:
    r = results
    how = f"`{r['command']}`" if r.get("command") else "`describe(..., replace=0.25)` on the tiny model"
    lines = ["## describe: against the record (Hayes, Li and Andreas 2026)", "",
             f"Model: {r['model']}. {how}: {r['n_prompts']} prompts, {r['n_selection']} select and "
             f"{r['n_held_out']} are held out; {r['n_candidates']:,} candidate rules; mixtures of up to "
             f"{r['mixture_size']} rules and BOS (penalty {r['mixture_penalty']} of fit per rule). "
             f"{r['seconds']:.0f} s, measured {r['measured_at']}, load average before "
             f"{_loads(r.get('load_before'))}.", ""]
    rows = [["heads with a rule above chance", f"{r['described']} of {r['n_heads']}"],
            ["mean held-out IoU over them, single rules", f"**{_f(r['mean_iou'])}**"],
            [f"mean held-out IoU over them, binarised mixtures ({r['n_mixture_iou']} of them with cells on; the "
             "others, neither mixture nor head marking a cell, left out)", f"**{_f(r['mean_mixture_iou'])}**"],
            [f"mean held-out IoU of the mixtures over every head fitted ({r['n_mixtures']})",
             _f(r['mean_mixture_iou_all'])],
            ["held-out attention in common with the head (1 - total variation), single rules / mixtures",
             f"{_f(r['mean_rule_fit'])} / {_f(r['mean_mixture_fit'])}"],
            ["mixtures by number of components (BOS counted)",
             ", ".join(f"{k}: {v}" for k, v in r["mixture_components"].items()) or "none"]]
    for label, key in (("single rules (best described by held-out IoU)", "replacement_rule"),
                       ("single rules, each head keeping its own share on BOS", "replacement_rule_with_sink"),
                       ("mixtures (best fitted on the selection half)", "replacement_mixture")):
        rep = r.get(key)
        if rep is not None:
            rows.append([f"perplexity, {len(rep['heads'])} heads replaced by {label}",
                         f"{rep['before']:.2f} -> {rep['after']:.2f} (**{rep['increase']:+.1%}**)"])
    if r.get("replacement_mixture") is not None and r.get("replaced_mean_bos_weight") is not None:
        rows.append(["the heads replaced by mixtures: mean weight on BOS; heads with BOS >= 0.5; mean held-out fit",
                     f"{r['replaced_mean_bos_weight']:.2f}; {r['replaced_mostly_bos']} of "
                     f"{len(r['replacement_mixture']['heads'])}; {_f(r['mean_mixture_fit_replaced'])}"])
    lines += [table(["figure", "measured"], rows), ""]
    rep = r.get("replacement_rule")
    if rep is not None:
        lines += [f"Perplexity on {rep['n_prompts']} held-out prompts ({rep['n_tokens']} predicted tokens). "
                  f"IoU: a cell is on when it holds at least {r['binary_threshold']:g} of the row's non-BOS "
                  "attention and 5% of the whole row (our threshold: the paper's was not available), pooled "
                  "over the held-out cells, BOS column left out (docs/describe.md).", ""]
    for label, key in (("single rules", "replacement_rule"), ("mixtures", "replacement_mixture")):
        rep = r.get(key)
        if rep is not None:
            lines += [f"Heads replaced by {label}: {' '.join(rep['heads'])}.", ""]
    return "\n".join(lines)


def _loads(loads: Any) -> str:
    return "unknown" if not loads else ", ".join(f"{x:.1f}" for x in loads)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    def options(parser) -> None:
        parser.add_argument("--save", type=Path, default=None, help="also write the whole description as JSON")

    results = standalone("describe_record", run, argv, description=__doc__.splitlines()[0], add_arguments=options)
    print(render(results))
    return results


if __name__ == "__main__":
    main()
