"""Positional baselines: how well a rule that knows only positions scores against a pattern, on
the same target rows as the heads (Clark et al. 2019's fixed-offset baseline, in the product).

The rules are `k == q - d` for d in 0..16 and `k == 0`. Each is scored as a *head* that puts all
of a row's attention on the key its rule names (nothing where that key is outside the prompt),
by the pattern's own measure's partial sums on the batch's targets, exactly as the chance head
is (`Measure.chance_parts`), so the baseline reads the same rows, the same exclusions and the
same weights as the heads' scores. The engine keeps their sums beside the heads' (`add_rules`,
called where a batch's targets are prepared) and `best_rules` turns them into the best rule per
pattern and measure. Only attention measures that are sums over target rows take part (`mass`,
`tv`, `argmax`, `sink`, `offsink`); `mul`, `abs`, `lift` and `copying` have none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.measures import MEASURES, LayerWork
from patternlang.engine.verdicts import MAX_OFFSET, RULES



def rule_measures(measures: Sequence[str]) -> tuple[str, ...]:
    """The measures among `measures` that have positional baselines."""
    return tuple(m for m in measures if MEASURES[m].averaged_over == "target rows" and not MEASURES[m].needs
                 and MEASURES[m].blocks is None and MEASURES[m].relative_to is None)


RULES_AT_ONCE = 3
"""Rules scored together: each one's one-hot attention is a `[batch, q, k]` tensor (and the
measures make copies of it), so all 18 at once added about 60 MiB to a block's peak at 8192
tokens (bench/blocked_memory.py's shape); a few at a time keep the baselines' share small."""


def rule_attention(cells: Tensor, first_query: int = 0, rules: slice = slice(None)) -> Tensor:
    """`[batch, rule, q, k]` float32: the one-hot attention of the rules `rules` (all by default)
    on a block of query rows `first_query ..` (`cells`: the counted cells `[batch, q, k]`, for the
    shape and the padding)."""
    batch, rows, n_keys = cells.shape
    queries = torch.arange(rows, device=cells.device) + first_query
    keys = torch.arange(n_keys, device=cells.device)
    offsets = torch.arange(MAX_OFFSET + 1, device=cells.device)
    chosen = torch.cat([queries[None, :] - offsets[:, None], torch.zeros(1, rows, dtype=torch.long,
                                                                          device=cells.device)])[rules]  # [rule, q]
    onehot = (keys[None, None, :] == chosen[:, :, None]).float()  # [rule, q, k]; q - d < 0 marks nothing
    return onehot[None].expand(batch, -1, -1, -1)


def rule_partial_sums(targets: Any, measures: Sequence[str]) -> dict[str, Tensor]:
    """Per prompt, each rule's partial sums `{measure: [batch, pattern, rule]}` on a batch's targets,
    `RULES_AT_ONCE` rules at a time."""
    if not measures:
        return {}
    parts: dict[str, list[Tensor]] = {m: [] for m in measures}
    for start in range(0, len(RULES), RULES_AT_ONCE):
        work = LayerWork(rule_attention(targets.cells, targets.first_query, slice(start, start + RULES_AT_ONCE)),
                         targets)
        for m in measures:
            parts[m].append(MEASURES[m].partial_sum(work))
    return {m: torch.cat(found, dim=-1) for m, found in parts.items()}


def add_rules(sums: dict[str, Tensor], index: Tensor, targets: Any) -> None:
    """Add one batch's (or one block's) rule sums of the patterns `index` into `sums`
    (`{measure: [pattern, rule]}`, the running sums an engine keeps)."""
    for measure, partial in rule_partial_sums(targets, tuple(sums)).items():
        sums[measure].index_add_(0, index, partial.sum(dim=0).to(sums[measure].dtype))


def new_rule_sums(measures: Sequence[str], n_patterns: int, dtype: torch.dtype,
                  device: torch.device | str) -> dict[str, Tensor]:
    """Zeroed running sums `{measure: [pattern, rule]}` for the measures that have baselines."""
    return {m: torch.zeros(n_patterns, len(RULES), dtype=dtype, device=device) for m in rule_measures(measures)}


def best_rules(sums: Mapping[str, Tensor], target_rows: Tensor, names: Sequence[str],
               pattern_measures: Mapping[str, str], own_rules: Mapping[str, str] | None = None
               ) -> dict[str, dict[str, Any]]:
    """The best positional rule of each pattern in its own measure, on its target rows:
    `{pattern: {"rule", "score", "measure", "sink", "offsink"}}` (`sink`, `offsink`: that rule's
    scores in those measures when they were scored, for the non-sink footing; `pattern_is_rule`:
    the pattern is that very rule, from `own_rules`, `{pattern: rule}`); a pattern whose
    measure has no baseline, or that has no target rows, is left out."""
    found: dict[str, dict[str, Any]] = {}
    rows = target_rows.detach().cpu().to(torch.float64)
    for i, name in enumerate(names):
        measure = pattern_measures.get(name)
        if measure is None or measure not in sums or not rows[i] > 0:
            continue

        def score(m: str, rule: int, i: int = i) -> float:
            return float(sums[m][i, rule].detach().cpu().to(torch.float64) / rows[i])

        best = max(range(len(RULES)), key=lambda r: score(measure, r))
        found[name] = {"rule": RULES[best], "score": score(measure, best), "measure": measure,
                       "pattern_is_rule": (own_rules or {}).get(name) == RULES[best],
                       **{m: score(m, best) for m in ("sink", "offsink") if m in sums}}
    return found
