"""An oracle for the engine's measures: scores computed one prompt, one head and one pattern at a
time in plain Python, and the random attention and detection tensors to compare it on."""

from __future__ import annotations

import math
from typing import Any

import torch
from transformer_lens.head_detector import compute_head_attention_similarity_score

from patternlang.engine.measures import MEASURES, Exclusions


def random_attention(batch: int, heads: int, lengths: list[int], generator: torch.Generator) -> torch.Tensor:
    """Causal softmax rows on the real block; garbage in padded query rows (they must never count)."""
    width = max(lengths)
    scores = torch.randn(batch, heads, width, width, generator=generator) * 2
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    attention = scores.masked_fill(~causal, float("-inf")).softmax(-1)
    for b, length in enumerate(lengths):
        real = scores[b, :, :length, :length].masked_fill(~causal[:length, :length], float("-inf")).softmax(-1)
        attention[b, :, :length, :length] = real
        attention[b, :, :length, length:] = 0.0
        attention[b, :, length:, :] = torch.rand(heads, width - length, width, generator=generator)
    return attention


def random_detection(n_patterns: int, lengths: list[int], generator: torch.Generator, density: float = 0.3) -> torch.Tensor:
    """Sparse non-negative lower-triangular patterns, zero on padding: [pattern, batch, q, k]."""
    width = max(lengths)
    values = torch.rand(n_patterns, len(lengths), width, width, generator=generator)
    keep = torch.rand(n_patterns, len(lengths), width, width, generator=generator) < density
    detection = (values * keep).tril()
    for b, length in enumerate(lengths):
        detection[:, b, length:, :] = 0
        detection[:, b, :, length:] = 0
    return detection


def oracle_rows(attention: list[list[float]], detection: list[list[float]],
                excl: Exclusions) -> list[tuple[float, float, float, float, float, float]]:
    """Per target row: (mass, tv, argmax hit, chance mass, sink, offsink). `attention`/`detection` are one
    prompt's L x L. `sink`: the raw attention on key 0; `offsink`: the raw (not renormalised) weighted
    attention on counted target keys other than 0."""
    rows = []
    size = len(attention)
    for q in range(size):
        keys = [k for k in range(q + 1) if not (excl.bos and k == 0) and not (excl.current and k == q)]
        if not keys:
            continue
        d = [detection[q][k] for k in keys]
        if max(d) <= 0:
            continue
        a = [attention[q][k] for k in keys]
        offsink = sum(x * y / max(d) for k, x, y in zip(keys, a, d) if k != 0)
        total = sum(a)
        a = [x / total for x in a]
        mass = sum(x * y / max(d) for x, y in zip(a, d))
        tv = sum(min(x, y / sum(d)) for x, y in zip(a, d))
        best = max(range(len(keys)), key=lambda i: (a[i], -i))  # first maximum
        chance_mass = sum(y / max(d) for y in d) / len(keys)
        rows.append((mass, tv, 1.0 if d[best] > 0 else 0.0, chance_mass, attention[q][0], offsink))
    return rows


def uniform_attention_matrix(length: int, excl: Exclusions) -> torch.Tensor:
    """The chance head by its definition: each row spread evenly over its counted keys."""
    out = torch.zeros(length, length, dtype=torch.float64)
    for q in range(length):
        keys = [k for k in range(q + 1) if not (excl.bos and k == 0) and not (excl.current and k == q)]
        for k in keys:
            out[q, k] = 1.0 / len(keys)
    return out


def oracle_baselines(detection: torch.Tensor, lengths: Any, excl: Exclusions) -> dict[str, torch.Tensor]:
    """{measure: [pattern]}: the scores of the uniform head (argmax: a key picked at random),
    computed row by row from the definitions."""
    n_patterns = detection.shape[0]
    out = {m: torch.full((n_patterns,), math.nan, dtype=torch.float64) for m in MEASURES}
    for p in range(n_patterns):
        rows: list[tuple[float, float, float, float, float]] = []
        mul: list[float] = []
        abs_: list[float] = []
        for b, length in enumerate(lengths):
            d = detection[p, b, :length, :length].double()
            for q in range(length):
                keys = [k for k in range(q + 1) if not (excl.bos and k == 0) and not (excl.current and k == q)]
                values = [float(d[q, k]) for k in keys]
                if not keys or max(values) <= 0:
                    continue
                n = len(keys)
                rows.append((sum(v / max(values) for v in values) / n,
                             sum(min(1.0 / n, v / sum(values)) for v in values),
                             sum(1 for v in values if v > 0) / n,
                             (1.0 / n) if 0 in keys else 0.0,
                             sum(v / max(values) for k, v in zip(keys, values) if k != 0) / n))
            uniform = uniform_attention_matrix(length, excl).float()
            for measure, bucket in (("mul", mul), ("abs", abs_)):
                bucket.append(compute_head_attention_similarity_score(
                    uniform.clone(), d.float().clone(), exclude_bos=excl.bos, exclude_current_token=excl.current,
                    error_measure=measure))
        if rows:
            for i, m in enumerate(("mass", "tv", "argmax", "sink", "offsink")):
                out[m][p] = sum(r[i] for r in rows) / len(rows)
            out["lift"][p] = 1.0
        out["mul"][p] = sum(mul) / len(mul)
        out["abs"][p] = sum(abs_) / len(abs_)
    return out


def oracle_scores(attention: torch.Tensor, detection: torch.Tensor, lengths: Any,
                  excl: Exclusions) -> dict[str, torch.Tensor]:
    """{measure: [pattern, head]} computed prompt by prompt, head by head."""
    n_patterns, _, _, _ = detection.shape
    heads = attention.shape[1]
    out = {m: torch.full((n_patterns, heads), math.nan, dtype=torch.float64) for m in MEASURES}
    for p in range(n_patterns):
        for h in range(heads):
            rows: list[tuple[float, float, float, float, float, float]] = []
            mul: list[float] = []
            abs_: list[float] = []
            for b, length in enumerate(lengths):
                a = attention[b, h, :length, :length]
                d = detection[p, b, :length, :length]
                rows += oracle_rows(a.tolist(), d.tolist(), excl)
                for measure, bucket in (("mul", mul), ("abs", abs_)):
                    bucket.append(compute_head_attention_similarity_score(
                        a.clone(), d.clone(), exclude_bos=excl.bos, exclude_current_token=excl.current,
                        error_measure=measure))
            if rows:
                for i, m in enumerate(("mass", "tv", "argmax")):
                    out[m][p, h] = sum(r[i] for r in rows) / len(rows)
                out["sink"][p, h] = sum(r[4] for r in rows) / len(rows)
                out["offsink"][p, h] = sum(r[5] for r in rows) / len(rows)
                out["lift"][p, h] = sum(r[0] for r in rows) / sum(r[3] for r in rows)
            out["mul"][p, h] = sum(mul) / len(mul)
            out["abs"][p, h] = sum(abs_) / len(abs_)
    return out
