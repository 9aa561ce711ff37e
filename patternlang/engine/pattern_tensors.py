"""What each pattern expects, per batch: the detection tensors `[pattern, batch, query_pos, key_pos]`.

A `Detector` is one pattern as the engine sees it: a patternlang `Pattern` (all of
them are evaluated together, on features built once per batch), a fixed `[q, k]`
tensor, or a function of one prompt's token ids (used for TransformerLens' own
head detection patterns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.batching import Batch
from patternlang.engine.shapes import Detection
from patternlang.compiler import BatchFeatures, evaluate_all
from patternlang.errors import InputError
from patternlang.library import load_patterns
from patternlang.pattern import Pattern
from patternlang.settings import Settings


@dataclass(frozen=True, slots=True)
class Detector:
    """One pattern to score, under a unique `name`. Exactly one of the three sources is set."""

    name: str
    pattern: Pattern | None = None
    matrix: Tensor | None = None  # fixed [q, k], every prompt must have length q
    per_prompt: Callable[[Tensor], Tensor] | None = None  # token ids [pos] -> [pos, pos]

    @property
    def settings(self) -> Settings | None:
        """The pattern's own settings (measure, exclusions), None for tensors and functions."""
        return None if self.pattern is None else self.pattern.settings


def resolve_patterns(patterns: Any, *, allow_negative: bool = False) -> list[Detector]:
    """Turn the user's patterns into `Detector`s with unique names.

    Accepts one spec or a list: shipped names, `Pattern` objects, rule text, `.pattern`/YAML
    files (every pattern in them), `file.pattern:name`, or lower-triangular `[q, k]` tensors.

    >>> [d.name for d in resolve_patterns(["attend k where k == q - 1", torch.eye(3)])]
    ['attend k where k == q - 1', 'tensor_1']
    """
    specs = list(patterns) if isinstance(patterns, (list, tuple)) else [patterns]
    if not specs:
        raise InputError("no patterns given", hint="pass a pattern name such as 'induction_head', rule text, or a file")
    detectors: list[Detector] = []
    for index, spec in enumerate(specs):
        if isinstance(spec, Tensor):
            detectors.append(Detector(f"tensor_{index}", matrix=check_matrix(spec, index, allow_negative)))
        elif isinstance(spec, Detector):
            detectors.append(spec)
        else:
            detectors.extend(_load(spec))
    return _unique_names(detectors)


def _load(spec: Any) -> list[Detector]:
    if not isinstance(spec, (str, Path, Pattern)):
        raise InputError(f"cannot use {type(spec).__name__} as a pattern",
                         hint="pass a pattern name, rule text, a file, a Pattern or a [q, k] tensor")
    return [Detector(p.name, pattern=p) for p in load_patterns(spec)]  # inline rules are named by their text


def _unique_names(detectors: list[Detector]) -> list[Detector]:
    seen: dict[str, int] = {}
    unique = []
    for detector in detectors:
        count = seen.get(detector.name, 0) + 1
        seen[detector.name] = count
        if count > 1:
            detector = Detector(f"{detector.name}#{count}", detector.pattern, detector.matrix, detector.per_prompt)
        unique.append(detector)
    return unique


def check_matrix(matrix: Tensor, index: int, allow_negative: bool = False) -> Tensor:
    """A raw detection tensor checked: 2-D, square, finite, lower-triangular (and >= 0 unless allowed)."""
    shape = tuple(matrix.shape)
    if matrix.dim() != 2 or shape[0] != shape[1]:
        raise InputError(f"pattern {index}: a detection tensor must be a square [q, k] matrix, got shape {shape}")
    values = matrix.detach().to("cpu", torch.float32)
    if not torch.isfinite(values).all():
        raise InputError(f"pattern {index}: the detection tensor has NaN or infinite values")
    if (values.triu(diagonal=1) != 0).any():
        raise InputError(f"pattern {index}: the detection tensor of shape {shape} is not lower-triangular",
                         hint="a query can only attend to keys at or before it (k <= q); use torch.tril")
    if not allow_negative and (values < 0).any():
        raise InputError(f"pattern {index}: the detection tensor has negative values",
                         hint="detection values are attention targets and weights, >= 0")
    return values


def check_matrix_sizes(detectors: Sequence[Detector], lengths: Sequence[int]) -> None:
    """Every fixed tensor must have the length of every prompt."""
    for index, detector in enumerate(detectors):
        if detector.matrix is None:
            continue
        size = detector.matrix.shape[0]
        wrong = [i for i, n in enumerate(lengths) if n != size]
        if wrong:
            first = wrong[0]
            raise InputError(
                f"pattern {index} ({detector.name}) is a tensor of shape {tuple(detector.matrix.shape)}, "
                f"but prompt {first} has {lengths[first]} tokens",
                hint="a raw detection tensor fits only prompts of exactly its length; "
                     "use a pattern rule to score prompts of any length",
            )


def detection_tensors(detectors: Sequence[Detector], batch: Batch, *, device: torch.device | None = None,
                      **inputs: Any) -> Detection:
    """The detection tensors of one batch, `[pattern, batch, query_pos, key_pos]` float32 on `device`:
    every query row of `detection_block`, on the batch's `batch_features` (`inputs`: its keywords,
    `strings`, `texts`, `offsets`, `syntax`, `labels`, `predictions`, `special_ids`).

    Language patterns share one `BatchFeatures` (built once per batch) and one `evaluate_all`
    call, which writes each pattern straight into the result (no stacked copy).
    """
    device = device or batch.tokens.device
    features = batch_features(detectors, batch, device=device, **inputs)
    return detection_block(detectors, batch, features, 0, batch.tokens.shape[1], device=device)


def batch_features(
    detectors: Sequence[Detector],
    batch: Batch,
    *,
    strings: Any = None,
    texts: Sequence[Sequence[str]] | None = None,
    offsets: Sequence[Sequence[tuple[int, int]]] | None = None,
    syntax: Sequence[Any] | None = None,
    labels: Sequence[Any] | None = None,
    predictions: dict[int | None, Tensor] | None = None,
    special_ids: Sequence[int] = (),
    device: torch.device | None = None,
) -> BatchFeatures | None:
    """The batch's `BatchFeatures` (feature tables `[batch, pos]`, shared by every pattern and every
    query block), or None when no detector is a language pattern."""
    if not any(d.pattern is not None for d in detectors):
        return None
    device = device or batch.tokens.device
    return BatchFeatures.build(batch.tokens.to(device), batch.mask.to(device),
                               strings=strings, texts=texts, offsets=offsets, syntax=syntax,
                               labels=labels, predictions=predictions, special_ids=special_ids)


def detection_block(detectors: Sequence[Detector], batch: Batch, features: BatchFeatures | None, q_start: int,
                    q_stop: int, *,
                    device: torch.device | None = None) -> Detection:
    """The detection tensors of queries `q_start .. q_stop-1` over keys `0 .. q_stop-1`:
    `[pattern, batch, q_stop - q_start, q_stop]` float32, equal to those rows of the full
    tensors cut to `q_stop` keys (every pattern is lower-triangular).

    `features` is the batch's `batch_features` (None without language patterns); each block
    evaluates on its own window of them, so that blocks never share pairwise results.
    """
    device = device or batch.tokens.device
    n_batch, width = batch.tokens.shape
    full = q_start == 0 and q_stop == width
    out = torch.empty(len(detectors), n_batch, q_stop - q_start, q_stop, dtype=torch.float32, device=device)
    language = [i for i, d in enumerate(detectors) if d.pattern is not None]
    if language:
        if features is None:
            raise ValueError("language patterns need the batch's features (`batch_features`)")
        window = features if full else features.window(q_start, q_stop)
        patterns = [pattern for i in language if (pattern := detectors[i].pattern) is not None]
        if language == list(range(language[0], language[-1] + 1)):
            evaluate_all(patterns, window, out=out[language[0]: language[-1] + 1])
        else:  # language patterns mixed with tensors: evaluate, then place them
            out[language] = evaluate_all(patterns, window, device).to(torch.float32)
        del window  # its memo holds every pattern's intermediate results
        if full:
            features.memo.clear()
    for i, detector in enumerate(detectors):
        if detector.matrix is not None:
            # check_matrix_sizes: every prompt has this length
            out[i] = detector.matrix[q_start:q_stop, :q_stop].to(device)
        elif detector.per_prompt is not None:
            # A function of a whole prompt: called per block, one prompt's matrix alive at a time.
            out[i] = 0.0
            tokens = batch.tokens.cpu()
            for row, length in enumerate(batch.lengths.tolist()):
                stop = min(q_stop, length)
                if stop <= q_start:
                    continue
                matrix = torch.as_tensor(detector.per_prompt(tokens[row, :length]), dtype=torch.float32)
                out[i, row, : stop - q_start, :stop] = matrix[q_start:stop, :stop].to(device)
    return out
