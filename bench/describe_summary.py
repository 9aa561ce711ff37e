"""The summary of a `patternlang describe --json` file as markdown, for docs/describe.md.

    python bench/describe_summary.py D.json

Prints the figures (heads above chance, mean held-out IoU, by family, the largest gap between the
family's mass and the engine's), the heads nothing explains and the table of every head
(`Description.markdown`), all read from the JSON.
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
        f"| by family | {families} |",
        f"| largest gap, family mass vs the engine's, over the finalists | "
        f"{'n/a' if d.max_family_error is None else f'{d.max_family_error:.1e}'} |", "",
        f"**None above chance** ({len(none)} heads): {' '.join(none) if none else 'none'}.", "",
        d.markdown(),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(sys.argv[1]))
