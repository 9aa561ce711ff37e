"""Proof that the engine finds real heads.

1. A tiny model whose heads are set by hand to known kinds: each shipped pattern gives its own
   head `mass` > 0.95 and the other heads little.
2. The embedded SmolLM2 on repeated random tokens: the shipped induction, duplicate and
   previous-token patterns rank all 270 heads like the standard diagonal scores of the
   TransformerLens and ARENA notebooks (mean attention on the offset diagonals).
"""

from __future__ import annotations

import random

import pytest
import torch

from patternlang import detect
from patternlang.probes import repeated_random
from patternlang.testing import LAYER_HEAD_KINDS, make_hand_set_model

KINDS = ["previous_token_head", "duplicate_token_head", "bos_head", "induction_head", "current_token_head"]


def _repeated_texts(n: int, length: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    texts = []
    for _ in range(n):
        chunk = "".join(rng.sample(letters, length))
        texts.append(chunk + chunk + chunk[: length // 2])
    return texts


def test_hand_set_heads_are_found_exactly():
    model = make_hand_set_model()
    scores = detect(model, _repeated_texts(12, 10), KINDS, measures=("mass",), progress=False)
    for layer, kinds in enumerate(LAYER_HEAD_KINDS):
        for head, kind in enumerate(kinds):
            if kind not in KINDS:
                continue
            grid = scores.get(kind, "mass")
            assert grid[layer, head] > 0.95, f"L{layer}H{head} should be a {kind}"
            others = grid.clone()
            others[layer, head] = float("nan")
            assert torch.nanquantile(others.flatten(), 0.5) < 0.5, f"{kind}: the other heads should score low"
            assert scores.top(kind, 1)[0][0] == f"L{layer}H{head}"


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks from 1, ties sharing the mean of their places (scipy's rankdata "average")."""
    ranks = torch.empty(len(values), dtype=torch.float64)
    ranks[values.argsort()] = torch.arange(1, len(values) + 1, dtype=torch.float64)
    for value in values.unique():
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation: Pearson's on the ranks (no scipy: its import slows every start,
    as transformers imports it whenever it is installed)."""
    return float(torch.corrcoef(torch.stack([_ranks(a), _ranks(b)]))[0, 1])


def _stripe_scores(model, tokens: torch.Tensor, offset: int, first_row: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean attention on the diagonal `offset` below the main one, per head: the notebooks' score.

    Returns (the whole diagonal, the diagonal from row `first_row` on). The notebooks' literal
    `pattern.diagonal(1 - seq_len)` also takes two rows of the first copy, whose "targets" are BOS
    and the first random token; the stripe they mean, and draw, starts in the repeated half.
    """
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    whole, stripe = torch.zeros(n_layers, n_heads), torch.zeros(n_layers, n_heads)

    def hook(pattern, hook):
        layer = int(hook.name.split(".")[1])
        diagonal = pattern.diagonal(offset=-offset, dim1=-2, dim2=-1).float().cpu()  # [batch, head, n]
        rows = torch.arange(diagonal.shape[-1]) + offset
        whole[layer] = diagonal.mean(dim=(0, 2))
        stripe[layer] = diagonal[..., rows >= first_row].mean(dim=(0, 2))

    with torch.inference_mode():
        model.run_with_hooks(tokens, return_type=None,
                             fwd_hooks=[(lambda name: name.endswith("attn.hook_pattern"), hook)])
    return whole, stripe


@pytest.mark.model
def test_embedded_model_ranks_heads_like_the_notebooks(embedded_model):
    length = 30
    prompts = repeated_random(embedded_model, length=length, repeats=2, batch=12, seed=1)
    tokens = torch.tensor(prompts.tokens)  # [batch, 1 + 2 * length], BOS first
    scores = detect(embedded_model, prompts, ["induction_head", "duplicate_token_head", "previous_token_head"],
                    measures=("mass",), exclude_bos=False, exclude_current_token=False, progress=False)
    # ARENA: induction = diagonal(1 - seq_len), duplicate = diagonal(-seq_len), previous = diagonal(-1);
    # the second copy starts at row length + 1 (row 0 is BOS).
    oracles = {"induction_head": (length - 1, length + 1), "duplicate_token_head": (length, length + 1),
               "previous_token_head": (1, 1)}
    for name, (offset, first_row) in oracles.items():
        ours = scores.get(name, "mass").flatten()
        whole, stripe = (s.flatten() for s in _stripe_scores(embedded_model, tokens, offset, first_row))
        rho = spearman(ours, stripe)
        assert rho >= 0.9, f"{name}: Spearman {rho:.3f}"
        assert int(ours.argmax()) == int(stripe.argmax()) == int(whole.argmax()), f"{name}: a different top head"
