"""The `copying` measure against TransformerLens' own direct logit attribution on the embedded
SmolLM2-135M (a TransformerBridge).

The oracle takes each head's output from `cache.stack_head_results(apply_ln=True)` (`hook_z`
through `W_O`, divided by the final norm's cached scale `ln_final.hook_scale`), projects it on the
unembedding directions of the attended tokens, and weighs it by the head's cached attention over
the pattern's target cells, each pattern's matrix written out by its definition here (labelled
spans for `name_mover_head`, the final logits' top 10 for `copy_suppression_head`). Then the mean
over target rows, every prompt's rows pooled (docs/model_features.md).

One difference of convention, followed on purpose: `apply_ln_to_stack` divides by the scale but
does not multiply by the final norm's weight, and the bridge does not fold that weight into `W_U`
(SmolLM2's RMSNorm weight averages 1.8, so `resid / scale @ W_U` misses the logits by tens). The
documented definition is the direct effect on the model's real logits, so the oracle multiplies
by the weight, as `(resid / scale * w) @ W_U` gives the logits back.
"""

from __future__ import annotations

import pytest
import torch

from patternlang import detect
from patternlang.probes import make_probe
from patternlang.spans import token_labels
from patternlang.tokenization import token_offsets

pytestmark = pytest.mark.model

HEADS = [(24, 4), (23, 1), (23, 0), (10, 3), (0, 8)]
NATURAL = ["The cat sat on the mat, and the cat looked at the dog on the mat.",
           "Alice gave Bob a book. Then Bob gave Alice the book back, and Alice read the book."]


def final_norm_weight(model) -> torch.Tensor:
    (weight,) = [p for name, p in model.ln_final.named_parameters() if name.endswith("weight")]
    return weight.detach().float()


def oracle_copying(model, texts, matrices) -> dict[tuple[int, int], float]:
    """TransformerLens' direct logit attribution of each head in HEADS, attention-weighted over each
    prompt's target cells (`matrices[i]`, `[q, k]`), pooled over every prompt's target rows."""
    n_heads = model.cfg.n_heads
    weight = final_norm_weight(model)
    totals = {head: 0.0 for head in HEADS}
    rows = 0
    for text, matrix in zip(texts, matrices):
        tokens = model.to_tokens(text)
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith(
                ("attn.hook_z", "attn.hook_pattern", "ln_final.hook_scale")))
            stack = cache.stack_head_results(layer=-1, apply_ln=True)  # [layer * head, batch, pos, d_model]
        directions = (model.W_U.detach().float()[:, tokens[0]] * weight[:, None]).T  # [k, d_model]
        target_rows = matrix.amax(dim=1) > 0
        row_max = matrix.amax(dim=1, keepdim=True).clamp(min=1e-30)
        rows += int(target_rows.sum())
        for layer, head in HEADS:
            direct = stack[layer * n_heads + head, 0].float() @ directions.T  # [q, k]
            attention = cache["pattern", layer][0, head].float()
            per_row = (attention * (matrix / row_max) * direct).sum(dim=1)
            totals[(layer, head)] += float(per_row[target_rows].sum())
    return {head: total / rows for head, total in totals.items()}


def engine_copying(model, prompts, pattern) -> dict[tuple[int, int], float]:
    scores = detect(model, prompts, pattern, measures=["copying"], heads=HEADS, progress=False)
    grid = scores.get(pattern, "copying")
    return {head: float(grid[head]) for head in HEADS}


def test_copying_of_name_movers_equals_transformer_lens_dla(embedded_model):
    prompts = make_probe("ioi", {"batch": 2})
    matrices = []
    for text, spans in zip(prompts.texts, prompts.spans):
        ids = embedded_model.to_tokens(text)[0].tolist()
        labels = token_labels(spans, token_offsets(embedded_model.tokenizer, ids, text))
        matrix = torch.zeros(len(ids), len(ids))
        for q, query in enumerate(labels):
            for k, key in enumerate(labels[: q + 1]):
                matrix[q, k] = float(query == "END" and key == "IO")
        matrices.append(matrix)
    expected = oracle_copying(embedded_model, prompts.texts, matrices)
    assert max(abs(v) for v in expected.values()) > 0.3  # some head does move the name
    assert engine_copying(embedded_model, prompts, "name_mover_head") == pytest.approx(expected, abs=1e-4)


def test_copying_on_the_models_predictions_equals_transformer_lens_dla(embedded_model):
    matrices = []
    specials = set(embedded_model.tokenizer.all_special_ids)
    for text in NATURAL:
        tokens = embedded_model.to_tokens(text)
        with torch.inference_mode():
            top = embedded_model(tokens, return_type="logits")[0].topk(10, dim=-1).indices
        ids = tokens[0].tolist()
        matrix = torch.zeros(len(ids), len(ids))
        for q in range(len(ids)):
            for k in range(q):
                matrix[q, k] = float(ids[k] in top[q].tolist() and ids[k] not in specials)
        matrices.append(matrix)
    assert sum(int(m.amax(dim=1).gt(0).sum()) for m in matrices) >= 5  # the prompts have target rows
    expected = oracle_copying(embedded_model, NATURAL, matrices)
    assert engine_copying(embedded_model, NATURAL, "copy_suppression_head") == pytest.approx(expected, abs=1e-4)
