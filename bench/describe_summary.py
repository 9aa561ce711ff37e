"""The summary of a `patternlang describe --json` file as markdown, for docs/describe.md.

    python bench/describe_summary.py D.json

Prints the figures (heads above chance, mean held-out IoU of the single rules and of the mixtures,
the held-out fit, by family, the largest gap between the family's mass and the engine's, the
replacement checks when the run made them), the heads nothing explains and the table of every
head (`Description.markdown`), all read from the JSON.
"""

from __future__ import annotations

import sys

from patternlang.discovery.descriptions import Description


def summary(path: str) -> str:
    d = Description.from_json(path)
    n = len(d.heads)
    described = d.described
    none = [name for name, h in d.heads.items() if not h.above_chance]
    families = ", ".join(f"{name.replace('_', ' ')} {count}"
                         for name, count in sorted(d.by_family().items(), key=lambda item: (-item[1], item[0])))
    iou = "n/a" if d.mean_iou is None else f"{d.mean_iou:.3f}"
    good = sum(1 for h in described if h.iou is not None and h.iou >= 0.5)
    lines = [
        f"{d.model}: {d.n_prompts_selection} + {d.n_prompts_held_out} prompts (selection + held out), "
        f"{d.n_bases} bases, {d.n_candidates:,} candidate rules, families {', '.join(d.families)}.", "",
        "| figure | value |", "|---|---|",
        f"| heads with a rule above chance | {len(described)} of {n} ({len(none)} none above chance) |",
        f"| average held-out IoU over those {len(described)} heads | **{iou}** |",
        f"| heads with held-out IoU >= 0.5 | {good} |",
        *_mixture_rows(d),
        f"| by family | {families} |",
        f"| largest gap, family mass vs the engine's, over the finalists | "
        f"{'n/a' if d.max_family_error is None else f'{d.max_family_error:.1e}'} |", "",
        f"**None above chance** ({len(none)} heads): {' '.join(none) if none else 'none'}.", "",
        *[f"**Replaced by their {kind}** ({len(r.heads)}): {' '.join(r.heads)}.\n"
          for kind, r in (("rules", d.replacement), ("mixtures", d.replacement_mixture)) if r is not None],
        d.markdown(),
    ]
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _mixture_rows(d: Description) -> list[str]:
    """The mixtures' figures and the replacement checks, as table rows (none when absent)."""
    rows = []
    if d.mixture_size:
        fitted = [h for h in d.heads.values() if h.mixture]
        sizes: dict[int, int] = {}
        for h in fitted:
            sizes[len(h.mixture)] = sizes.get(len(h.mixture), 0) + 1
        rows += [
            f"| average held-out IoU of the binarised mixtures (up to {d.mixture_size} rules and BOS) over the same "
            f"{len(d.described)} heads | **{_f(d.mean_mixture_iou)}** |",
            f"| the same over every head with a mixture ({len(fitted)}) | {_f(d.mean_fit('mixture_iou', fitted))} |",
            f"| held-out attention in common with the head (1 - total variation), single rule / mixture | "
            f"{_f(d.mean_fit('rule_fit'))} / {_f(d.mean_fit('mixture_fit'))} |",
            "| mixtures by number of components (BOS counted) | "
            + ", ".join(f"{k}: {v}" for k, v in sorted(sizes.items())) + " |"]
    for label, r in (("single rules (best described by held-out IoU)", d.replacement),
                     ("single rules, each keeping its own share on BOS", d.replacement_with_sink),
                     ("mixtures (best fitted on the selection half)", d.replacement_mixture)):
        if r is not None:
            rows.append(f"| perplexity on {r.n_prompts} held-out prompts, {len(r.heads)} heads replaced by {label} | "
                        f"{r.perplexity_before:.2f} -> {r.perplexity_after:.2f} (**{r.increase:+.1%}**) |")
    return rows


if __name__ == "__main__":
    print(summary(sys.argv[1]))
