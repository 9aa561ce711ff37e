"""Weighted descriptions: a head as a weighted sum of a few rules of the language plus BOS.

A rule marks a set of keys; a head spreads its attention over BOS and a few sets with uneven
weights. The mixture says so in the language's own terms, e.g.

    0.55 x attend k where k == q - 1 exclude bos + 0.35 x attend k where k == 0
                                                 + 0.10 x attend k where tok[k - 1] == tok[q] exclude bos

Each component's matrix is the one the replacement check uses for a single rule (`rule_attention`):
the rule's compiled cells, each row scaled to sum 1, and a row where the rule marks nothing puts
its weight on BOS (key 0). The mixture's matrix is the weighted sum, so its rows sum to 1 on every
real row.

The fit (selection half only). Per head:

1. *Finalists*: the best candidates of the family scoring on the selection half, by rank (IoU minus
   the complexity penalty), by mass, and the best fixed offsets by mass (`finalists`).
2. *Sufficient statistics of least squares*: over every real row of the selection prompts,
   `G[i, j] = <R_i, R_j>`, `b[i] = <A, R_i>` and `<A, A>`, with `A` the head's attention (BOS
   included: the replacement sets the whole row) and `R_i` the finalists' matrices
   (`MixtureStats.add`, one pass over the selection prompts), per prompt set (text, token ids),
   each set's sums divided by its `<A, A>` and added (`per_set`): each set weighs the same.
3. *Weights*: minimise `|A - sum_i w_i R_i|^2` over `w >= 0`, `sum w = 1` (`fit_weights`: the optimum
   of this convex problem lies inside one face of the simplex, where it solves the equality-
   constrained system; the faces of at most `MIXTURE_SIZE + 1` components are tried). Least
   squares, not "most mass explained": the explained mass `sum_i w_i <A, R_i>` is linear in `w`, so
   maximising it puts all the weight on one rule; the squared error rewards matching the head's
   uneven weights.
4. *Greedy, with a penalty*: BOS is always a component; rules are added one at a time (the one that
   lowers the error most), at most `MIXTURE_SIZE`, and only while each raises the fit
   `1 - error / <A, A>` (the mean over the prompt sets) by at least `MIXTURE_PENALTY` (`greedy_mixture`). Components with no weight
   are dropped.

Reported on the held-out half (`MixtureCheck`): the share of attention the mixture's matrix and the
head hold in common (1 - total variation, per row), and the IoU of the binarised mixture with the
binarised attention (`stats.binarised` with the same thresholds).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from patternlang.discovery.attention_batches import attention_batches, prompt_groups
from patternlang.discovery.descriptions import Component
from patternlang.discovery.families import Base, Candidate
from patternlang.discovery.replace import rule_attention
from patternlang.discovery.scoring import CandidateScores
from patternlang.discovery.stats import MIN_CELL, binarised, counted, renormalised

__all__ = ["MIXTURE_SIZE", "MIXTURE_PENALTY", "BOS_RULE", "FINALISTS", "CandidateKinds", "finalists", "component_rows",
           "mixture_rows", "fit_weights", "greedy_mixture", "MixtureStats", "per_set", "MixtureCheck", "fit_mixtures",
           "check_mixtures", "binarise"]

MIXTURE_SIZE = 3
"""The most rules a mixture holds besides BOS."""

MIXTURE_PENALTY = 0.02
"""A rule joins a mixture only if it raises the selection fit (1 - squared error / the attention's
squared sum) by at least this much: more components must earn their place."""

FINALISTS = {"rank": 6, "precise": 6, "unwindowed": 6, "mass": 4, "offset": 3}
"""Per head, the candidates a mixture is chosen from: the best by rank (IoU minus the complexity
penalty), by mass x coverage (much attention on cells the head all uses: a secondary component
such as an induction part beside a previous-token part, which neither rank nor mass puts first),
the same among rules without a window (a window near the diagonal makes many near copies of the
previous-token rule, which would crowd the list), by mass, and the fixed offsets by mass."""

BOS_RULE = "attend k where k == 0"

MAX_OFFSET = 16
"""Fixed offsets `k == q - d` a mixture may use: d <= 16 (as the verdicts' positional baselines). A
far offset has no target in the first d rows, where its weight goes to BOS: on short natural
prompts `k == q - 49` is BOS in disguise, and on `repeated_random` (period 50) it is the induction
target, so without this bound an induction head's mixture came out as `0.82 x k == q - 49`."""

CACHED_ROWS = 256
"""Component matrices kept per batch while the heads' sums are added (bounds the memory)."""


@dataclass(frozen=True)
class CandidateKinds:
    """Bool `[candidate]` masks `finalists` reads (computed once a run): the BOS rule, the fixed
    offsets, the fixed offsets beyond `MAX_OFFSET` (never finalists), and the rules of a base
    without a window."""

    bos: Tensor
    offsets: Tensor
    far: Tensor
    unwindowed: Tensor

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> "CandidateKinds":
        return cls(torch.tensor([c.base.cond == "k == 0" for c in candidates], dtype=torch.bool),
                   torch.tensor([c.exact for c in candidates], dtype=torch.bool),
                   torch.tensor([c.exact and c.lo > MAX_OFFSET for c in candidates], dtype=torch.bool),
                   torch.tensor([c.hi is None and not c.exact and c.base.cond != "true" for c in candidates],
                                dtype=torch.bool))


def finalists(scores: CandidateScores, candidates: Sequence[Candidate], index: int,
              kinds: CandidateKinds | None = None) -> list[int]:
    """Candidate indices a mixture of head `index` may use (the BOS rule left out: always there),
    best ranked first (`FINALISTS`); a candidate whose selection scores equal an earlier one's (the same cells
    under another name) is left out."""
    kinds = kinds or CandidateKinds.of(candidates)
    rank = scores.rank[index].clone()
    rank[torch.isnan(rank) | kinds.far] = -float("inf")
    bos, offsets = kinds.bos, kinds.offsets
    mass = scores.mass[index].clone()
    mass[torch.isnan(mass) | bos | kinds.far] = -float("inf")
    precise = mass * torch.nan_to_num(scores.coverage[index], nan=0.0)
    precise[mass == -float("inf")] = -float("inf")
    plain = torch.where(kinds.unwindowed, precise, -float("inf"))
    orders = [(torch.argsort(rank, descending=True, stable=True), rank, FINALISTS["rank"]),
              (torch.argsort(precise, descending=True, stable=True), precise, FINALISTS["precise"]),
              (torch.argsort(plain, descending=True, stable=True), plain, FINALISTS["unwindowed"]),
              (torch.argsort(mass, descending=True, stable=True), mass, FINALISTS["mass"]),
              (torch.argsort(torch.where(offsets, mass, -float("inf")), descending=True, stable=True), mass,
               FINALISTS["offset"])]
    out: list[int] = []
    seen: set[tuple[float, float]] = set()
    for order, values, wanted in orders:
        taken = 0
        for i in order.tolist():
            if taken >= wanted or values[i] == -float("inf"):
                break
            if bos[i] or i in out:
                continue
            key = (round(float(scores.iou[index, i]), 9), round(float(scores.mass[index, i]), 9))
            if key in seen:
                continue
            seen.add(key)
            out.append(i)
            taken += 1
    return out


def range_mask(candidate: Candidate, n: int) -> Tensor:
    """Bool `[n, n]`: the cells whose distance `q - k` the candidate's range allows."""
    distance = torch.arange(n)[:, None] - torch.arange(n)[None, :]
    if candidate.exact:
        return distance == candidate.lo
    allowed = distance >= candidate.lo
    if candidate.hi is not None:
        allowed &= distance <= candidate.hi
    return allowed


def component_rows(base_matrix: Tensor, candidate: Candidate | None, mask: Tensor) -> Tensor:
    """`[batch, n, n]` float: the rows a component attends by (`rule_attention` of its cells);
    `candidate` None: the BOS rule (every real row on key 0)."""
    if candidate is None or candidate.base.cond == "k == 0":
        return rule_attention(torch.zeros_like(base_matrix, dtype=torch.float32), mask)
    return rule_attention(base_matrix & range_mask(candidate, base_matrix.shape[-1]), mask)


def mixture_rows(rows: Tensor, weights: Sequence[float]) -> Tensor:
    """`sum_i weights[i] * rows[i]` over the first axis of `rows [component, batch, n, n]`."""
    w = torch.tensor(list(weights), dtype=rows.dtype)
    return torch.einsum("c,c...->...", w, rows)


def fit_weights(gram: np.ndarray, b: np.ndarray, aa: float, chosen: Sequence[int]) -> tuple[np.ndarray, float]:
    """Weights `w >= 0`, `sum w = 1` on the components `chosen` minimising `|A - sum w_i R_i|^2`
    (`w' G w - 2 b' w + aa`), and that squared error. Every face of the simplex is tried: the
    optimum is the equality-constrained optimum of the face it lies inside."""
    best_w, best = None, float("inf")
    chosen = list(chosen)
    for size in range(1, len(chosen) + 1):
        for face in itertools.combinations(range(len(chosen)), size):
            idx = [chosen[i] for i in face]
            g = gram[np.ix_(idx, idx)]
            system = np.zeros((size + 1, size + 1))
            system[:size, :size] = g
            system[:size, size] = 1.0
            system[size, :size] = 1.0
            rhs = np.concatenate([b[idx], [1.0]])
            try:
                solution = np.linalg.solve(system, rhs)
            except np.linalg.LinAlgError:
                continue  # two components with the same rows: a smaller face holds the optimum
            w = solution[:size]
            if not np.all(np.isfinite(w)) or np.any(w < -1e-9):
                continue
            w = np.clip(w, 0.0, None)
            w = w / w.sum()
            error = float(w @ g @ w - 2 * b[idx] @ w + aa)
            if error < best - 1e-12:
                best_w, best = np.zeros(len(chosen)), error
                best_w[list(face)] = w
    assert best_w is not None  # a single component is always a feasible face
    return best_w, max(best, 0.0)


def greedy_mixture(gram: np.ndarray, b: np.ndarray, aa: float, *, size: int = MIXTURE_SIZE,
                   penalty: float = MIXTURE_PENALTY) -> tuple[list[int], np.ndarray, float]:
    """Components (0 = BOS, i = the i-th finalist + 1) added greedily to BOS, their weights and the
    fit `1 - error / aa`; a rule joins only if it raises the fit by at least `penalty`; components
    whose weight is 0 are dropped (BOS included)."""
    scale = aa if aa > 0 else 1.0
    chosen = [0]
    weights, error = fit_weights(gram, b, aa, chosen)
    fit = 1.0 - error / scale
    for _ in range(size):
        trials = []
        for j in range(1, gram.shape[0]):
            if j in chosen:
                continue
            w, e = fit_weights(gram, b, aa, chosen + [j])
            trials.append((1.0 - e / scale, j, w))
        if not trials:
            break
        best_fit, j, w = max(trials, key=lambda t: (t[0], -t[1]))
        if best_fit - fit < penalty:
            break
        chosen, weights, fit = chosen + [j], w, best_fit
    kept = [(c, float(w)) for c, w in zip(chosen, weights) if w > 1e-6]
    total = sum(w for _, w in kept)
    return [c for c, _ in kept], np.array([w / total for _, w in kept]), fit


@dataclass
class MixtureStats:
    """Per head (flat index): its finalists and the running least-squares sums over its components
    (0: BOS, then the finalists): `gram [c, c]`, `b [c]`, `aa` (float64)."""

    finalists: dict[int, list[int]]
    gram: dict[int, Tensor] = field(default_factory=dict)
    b: dict[int, Tensor] = field(default_factory=dict)
    aa: dict[int, float] = field(default_factory=dict)

    def add(self, attention: Tensor, matrices: Tensor, mask: Tensor, candidates: Sequence[Candidate],
            base_position: dict[str, int]) -> None:
        """One batch: `attention [batch, head, n, n]`, `matrices [base, batch, n, n]` (the bases of
        `base_position`), `mask [batch, n]` (real positions)."""
        mask = mask.cpu()
        bos = component_rows(matrices[0], None, mask)
        cache: dict[int, Tensor] = {}  # heads share many finalists (offsets, windows): each computed once a batch

        def rows_of(i: int) -> Tensor:
            if i in cache:
                return cache[i]
            rows = component_rows(matrices[base_position[candidates[i].base.cond]], candidates[i], mask)
            if len(cache) < CACHED_ROWS:
                cache[i] = rows
            return rows

        for head, chosen in self.finalists.items():
            rows = torch.stack([bos] + [rows_of(i) for i in chosen]).reshape(len(chosen) + 1, -1)
            a = attention[:, head].reshape(-1)
            gram = (rows @ rows.T).double()
            b = (rows @ a).double()
            aa = float((a.double() ** 2).sum())
            if head in self.gram:
                self.gram[head] += gram
                self.b[head] += b
                self.aa[head] += aa
            else:
                self.gram[head], self.b[head], self.aa[head] = gram, b, aa


def per_set(groups: Sequence[MixtureStats]) -> MixtureStats:
    """The sums of each prompt set (text, token ids) divided by that set's `<A, A>`, added: the error
    minimised is then the sum over sets of each set's relative error, so a rule must fit each set,
    not only the one whose structure happens to match it (`k == q - 49` fits the 50-token repeats of
    `repeated_random` for an induction head, and not natural text). The fit `1 - error / aa` is the
    mean of the sets' fits. One set: its own sums, scaled."""
    out = MixtureStats(groups[0].finalists if groups else {})
    for stats in groups:
        for head, aa in stats.aa.items():
            if aa <= 0:
                continue
            gram, b = stats.gram[head] / aa, stats.b[head] / aa
            if head in out.gram:
                out.gram[head] += gram
                out.b[head] += b
                out.aa[head] += 1.0
            else:
                out.gram[head], out.b[head], out.aa[head] = gram, b, 1.0
    return out


def _needed(candidates: Sequence[Candidate], indices: set[int], bases: Sequence[Base],
            compiled: dict[str, Any]) -> tuple[list[Base], dict[str, Any], dict[str, int]]:
    """The bases the candidates `indices` read (the BOS base first), their compiled conjuncts and positions."""
    wanted = {candidates[i].base.cond for i in indices}
    chosen = [b for b in bases if b.cond == "k == 0"][:1] + [b for b in bases if b.cond in wanted and b.cond != "k == 0"]
    if not chosen:
        chosen = [Base("k == 0", "bos")]
    conjuncts = {cond for b in chosen for cond in b.conjuncts}
    return chosen, {k: v for k, v in compiled.items() if k in conjuncts}, {b.cond: i for i, b in enumerate(chosen)}


def fit_mixtures(model: Any, items: Sequence[Any], token_lists: Sequence[Tensor], indices: Sequence[int],
                 layers: Sequence[int], heads: Sequence[int], bases: Sequence[Base], compiled: dict[str, Any],
                 candidates: Sequence[Candidate], scores: CandidateScores, *, size: int = MIXTURE_SIZE,
                 penalty: float = MIXTURE_PENALTY, batch_size: int = 16,
                 say: Any = lambda _m: None) -> dict[int, tuple[list[int | None], list[float], float]]:
    """Per head (flat index over `layers`' heads): its mixture on the prompts `indices` (the selection
    half) as `(candidate indices, None for BOS; weights; selection fit)`, heaviest first."""
    kinds = CandidateKinds.of(candidates)
    chosen = {head: finalists(scores, candidates, head, kinds) for head in heads}
    used, sub_compiled, position = _needed(candidates, {i for c in chosen.values() for i in c}, bases, compiled)
    groups = []
    for group in prompt_groups(items, indices):
        stats = MixtureStats(chosen)
        for padded, attention, matrices in attention_batches(model, items, token_lists, group, layers, used,
                                                             sub_compiled, batch_size=batch_size, say=say,
                                                             label="mixtures, selection"):
            stats.add(attention, matrices, padded.mask, candidates, position)
        groups.append(stats)
    stats = per_set(groups)
    out: dict[int, tuple[list[int | None], list[float], float]] = {}
    for head in heads:
        if head not in stats.gram:
            continue
        parts, weights, fit = greedy_mixture(stats.gram[head].numpy(), stats.b[head].numpy(), stats.aa[head],
                                             size=size, penalty=penalty)
        named = [None if p == 0 else chosen[head][p - 1] for p in parts]
        order = sorted(range(len(parts)), key=lambda i: -weights[i])
        out[head] = ([named[i] for i in order], [float(weights[i]) for i in order], float(fit))
    return out


def binarise(rows: Tensor, cells: Tensor) -> Tensor:
    """Bool: the cells of `rows [batch, head, q, k]` that are "on" as the statistics binarise a head's
    attention (`stats.batch_stats`: >= 10% of the non-BOS row and >= 5% of the whole row)."""
    return (binarised(renormalised(rows, cells), cells) * (rows >= MIN_CELL)) > 0


@dataclass
class MixtureCheck:
    """Held-out sums per head: attention shared with the mixture (`overlap`) and with the single
    rule's matrix (`rule_overlap`), over `rows` real rows; IoU counts of the binarised mixture."""

    overlap: dict[int, float] = field(default_factory=dict)
    rule_overlap: dict[int, float] = field(default_factory=dict)
    intersection: dict[int, float] = field(default_factory=dict)
    union: dict[int, float] = field(default_factory=dict)
    rows: float = 0.0

    def fit(self, head: int) -> float | None:
        return self.overlap[head] / self.rows if head in self.overlap and self.rows else None

    def rule_fit(self, head: int) -> float | None:
        return self.rule_overlap[head] / self.rows if head in self.rule_overlap and self.rows else None

    def iou(self, head: int) -> float | None:
        union = self.union.get(head, 0.0)
        return self.intersection[head] / union if union > 0 else None


def check_mixtures(model: Any, items: Sequence[Any], token_lists: Sequence[Tensor], indices: Sequence[int],
                   layers: Sequence[int], bases: Sequence[Base], compiled: dict[str, Any],
                   candidates: Sequence[Candidate], mixtures: dict[int, tuple[list[int | None], list[float], float]],
                   rules: dict[int, int], *, batch_size: int = 16, say: Any = lambda _m: None) -> MixtureCheck:
    """The mixtures (and the single rules `rules`: head -> candidate index) on the prompts `indices`
    (the held-out half)."""
    used_candidates = {i for parts, _, _ in mixtures.values() for i in parts if i is not None} | set(rules.values())
    used, sub_compiled, position = _needed(candidates, used_candidates, bases, compiled)
    check = MixtureCheck()

    def rows_of(index: int | None, matrices: Tensor, mask: Tensor) -> Tensor:
        candidate = None if index is None else candidates[index]
        base = matrices[position[candidate.base.cond]] if candidate is not None else matrices[0]
        return component_rows(base, candidate, mask)

    batches = (batch for group in prompt_groups(items, indices)
               for batch in attention_batches(model, items, token_lists, group, layers, used, sub_compiled,
                                              batch_size=batch_size, say=say, label="mixtures, held-out"))
    for padded, attention, matrices in batches:
        mask = padded.mask.cpu()
        check.rows += float(mask.sum())
        cells = counted(padded.lengths.cpu(), attention.shape[-1])
        on = binarise(attention, cells)
        for head, (parts, weights, _fit) in mixtures.items():
            a = attention[:, head]
            rows = mixture_rows(torch.stack([rows_of(i, matrices, mask) for i in parts]), weights)
            mixed_on = binarise(rows[:, None], cells)[:, 0]
            for table, value in ((check.overlap, float(torch.minimum(a, rows).sum())),
                                 (check.intersection, float((mixed_on & on[:, head]).sum())),
                                 (check.union, float((mixed_on | on[:, head]).sum()))):
                table[head] = table.get(head, 0.0) + value
        for head, index in rules.items():
            single = rows_of(index, matrices, mask)
            check.rule_overlap[head] = check.rule_overlap.get(head, 0.0) + float(torch.minimum(attention[:, head],
                                                                                                single).sum())
    return check


def components(candidates: Sequence[Candidate], parts: Sequence[int | None], weights: Sequence[float]) -> tuple[Component, ...]:
    """The mixture as rule text and weights."""
    return tuple(Component(BOS_RULE if i is None else candidates[i].rule, float(w)) for i, w in zip(parts, weights))
