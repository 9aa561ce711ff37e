"""Why a head scored: its real attention beside the pattern's matrix on one prompt, with the
prompt's scores.

`explain` is the recipe, reusing the engine's own steps so the picture is what was scored:
tokenize (`engine.batching.tokenize`, the texts, offsets and labelled spans `detect` reads) ->
one forward pass hooked on the head's layer only (`engine.forward.run_attention_hooks`), or, when
the pattern reads the model's predictions or a measure reads the heads' outputs (`copying`), the
engine's deferred pass to the logits (`engine.model_outputs.run_with_outputs`) -> the pattern's
detection matrix (`engine.pattern_tensors.detection_tensors` on a batch of one, on those
predictions) and the counted cells and target rows (`engine.measures.prepare_targets`) -> the
prompt's scores from that same pass (`engine.detection.score_tokens`, what `detect` runs). The
result, an `Explanation`, is drawn by `report.explain_text` (terminal), `report.explain_png` and
`report.explain_html`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.hooked import HookedModel
from patternlang.engine.batching import pad_batch, tokenize
from patternlang.engine.forward import run_attention_hooks
from patternlang.engine.inputs import PromptInputs, _token_texts, model_pass, prompt_inputs
from patternlang.engine.measures import MEASURES, Exclusions, prepare_targets
from patternlang.engine.options import check_measures, pattern_setting
from patternlang.engine.pattern_tensors import check_matrix_sizes, resolve_patterns
from patternlang.engine.run import score_tokens
from patternlang.errors import InputError
from patternlang.heads import head_label, parse_heads
from patternlang.models.facts import model_facts
from patternlang.prompts import Prompts, split_prompts
from patternlang.tokenization import check_token_ids_before_loading

__all__ = ["MAX_TOKENS", "Explanation", "PromptInputs", "explain", "model_pass", "prompt_argument", "prompt_inputs"]

MAX_TOKENS = 512
"""Longest prompt `explain` draws: two [q, k] grids of 512 tokens already hold half a million cells."""

__all__ = ["MAX_TOKENS", "Explanation", "explain"]


@dataclass(frozen=True, eq=False)
class Explanation:
    """One head's attention and one pattern's matrix on one prompt, with the prompt's scores.

    Rows are query positions, columns key positions (TransformerLens' `[query_pos, key_pos]`).
    `counted[q, k]` is False where the measures do not look (key 0 with exclude bos, the
    diagonal with exclude current); `target_rows[q]` is True where the pattern marks a counted
    key, the rows `mass`, `tv` and `argmax` average over. `scores[measure]` is this head's score
    on this prompt alone (NaN where undefined, `why_undefined` says why).

    Print it for the terminal grids, `save("why.html")` / `.png` / `.json` for a file; in Jupyter it
    shows as the interactive HTML grids.
    """

    pattern: str
    rule: str
    head: str  # "L5H1"
    layer: int
    head_index: int
    model: str
    tokens: tuple[str, ...]  # each token's text (a special token that decodes to nothing: its name)
    token_ids: tuple[int, ...]
    attention: Tensor = field(repr=False)  # float32 [q, k], the head's attention
    matrix: Tensor = field(repr=False)  # float32 [q, k], the pattern's detection matrix
    counted: Tensor = field(repr=False)  # bool [q, k]
    target_rows: Tensor = field(repr=False)  # bool [q]
    scores: Mapping[str, float] = field(default_factory=dict)
    exclude_bos: bool = False
    exclude_current: bool = False
    prompt_index: int | None = None  # the prompt's number among the scores' prompts, when known
    span_labels: tuple[str, ...] | None = None  # each token's labelled span ("" outside), when the pattern reads them
    predicted: tuple[str, ...] | None = None  # each position's top-1 next-token prediction, when the pattern reads them

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def title(self) -> str:
        """`induction_head · L5H1 · model`."""
        return f"{self.pattern} · {self.head} · {self.model}"

    @property
    def excluded(self) -> str:
        """Which keys are left out, in words ("" when none)."""
        parts = (["key 0 (exclude bos)"] if self.exclude_bos else []) + (
            ["the diagonal (exclude current)"] if self.exclude_current else [])
        return " and ".join(parts)

    def why_undefined(self, measure: str) -> str | None:
        """Why `scores[measure]` is NaN on this prompt, or None when it is a number."""
        value = self.scores.get(measure, math.nan)
        if not math.isnan(value):
            return None
        if MEASURES[measure].averaged_over == "target rows" and not bool(self.target_rows.any()):
            return "no target rows: the pattern marks no counted key on this prompt"
        if not bool(torch.isfinite(self.attention[self.counted]).all()):
            return "the head's attention holds non-finite values on counted cells"
        return "the head has no counted attention on this prompt"

    def scores_line(self) -> str:
        """`scores on this prompt: mass 0.931 · tv 0.880`."""
        parts = []
        for measure, value in self.scores.items():
            parts.append(f"{measure} {value:.3f}" if not math.isnan(value) else f"{measure} undefined")
        where = "this prompt" if self.prompt_index is None else f"prompt {self.prompt_index}"
        return f"scores on {where}: " + " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Everything drawn, as JSON-ready values (NaN as None)."""
        def grid(tensor: Tensor) -> list[list[float | None]]:
            return [[None if math.isnan(v) else v for v in row] for row in tensor.tolist()]

        return {
            "pattern": self.pattern, "rule": self.rule, "head": self.head, "layer": self.layer,
            "head_index": self.head_index, "model": self.model, "tokens": list(self.tokens),
            "token_ids": list(self.token_ids), "prompt_index": self.prompt_index,
            "exclusions": {"bos": self.exclude_bos, "current": self.exclude_current},
            "scores": {m: None if math.isnan(v) else v for m, v in self.scores.items()},
            "attention": grid(self.attention), "matrix": grid(self.matrix),
            "counted": self.counted.tolist(), "target_rows": self.target_rows.tolist(),
            "span_labels": None if self.span_labels is None else list(self.span_labels),
            "predicted": None if self.predicted is None else list(self.predicted),
        }

    def save(self, path: str | Path) -> Path:
        """Write the drawing to `path`: `.png`, `.html` (interactive, self-contained) or `.json`."""
        from patternlang.report.save import save_explanation  # lazy: report draws, and sits above the engine

        return save_explanation(self, path)

    def to_text(self, *, width: int = 120, max_tokens: int = 40) -> str:
        """The terminal drawing as plain text (no colour)."""
        from patternlang.report.explain_text import explanation_to_text  # lazy: report draws, and sits above the engine

        return explanation_to_text(self, width=width, max_tokens=max_tokens)

    def __str__(self) -> str:
        return self.to_text()

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from patternlang.report.explain_text import render_explanation_text  # lazy: report draws, and sits above the engine

        yield render_explanation_text(self)

    def _repr_html_(self) -> str:
        from patternlang.report.explain_html import explanation_html  # lazy: report draws, and sits above the engine

        return explanation_html(self)

    def __repr__(self) -> str:
        return (f"Explanation({self.pattern!r}, {self.head}, {self.n_tokens} tokens, "
                + ", ".join(f"{m}={v:.3f}" for m, v in self.scores.items()) + ")")


def explain(
    model: HookedModel,
    pattern: Any,
    head: Any,
    prompt: Any,
    *,
    measures: str | Sequence[str] | None = None,
    exclude_bos: bool | None = None,
    exclude_current_token: bool | None = None,
    prepend_bos: bool = True,
    prompt_index: int | None = None,
    spans: Any = None,
) -> Explanation:
    """Show why `head` scores what it does against `pattern` on one prompt.

    Args:
        model: a TransformerLens model, as for `detect`.
        pattern: one pattern, as `detect` takes it: a shipped name, rule text, a file holding one
            pattern or `file.pattern:name`, a `Pattern`, or an engine `Detector`.
        head: "L5H1", "5.1" or (5, 1).
        prompt: a text (tokenized like `detect` does, BOS per `prepend_bos`) or token ids, at most
            `MAX_TOKENS` tokens; or a `Prompts` holding one prompt (with its labelled spans, if any).
        measures, exclude_bos, exclude_current_token: as for `detect` (None: the pattern's own).
        spans: the text prompt's labelled spans, `{"IO": [[5, 9]], ...}` (character ranges, end
            exclusive; docs/model_features.md), for a pattern that reads `span[...]`.

    Returns:
        An `Explanation`: the head's attention `[q, k]`, the pattern's matrix `[q, k]` (exactly
        what `detect` scores), the counted cells, the target rows and the prompt's scores, equal to
        `detect(model, [prompt], pattern, heads=head)` for that head.

    >>> why = explain(model, "previous_token_head", "L2H3", "The cat sat on the mat.")  # doctest: +SKIP
    >>> print(why)                     # attention and pattern, side by side   # doctest: +SKIP
    >>> why.save("why.html")           # hover a cell for its tokens and values  # doctest: +SKIP
    >>> text = "When Mary and John went to the store, John gave a drink to"
    >>> explain(model, "name_mover_head", "L23H1", text,  # doctest: +SKIP
    ...         spans={"IO": [[5, 9]], "S1": [[14, 18]], "S2": [[38, 42]], "END": [[56, 58]]})
    """
    detectors = resolve_patterns(pattern)
    if len(detectors) != 1:
        names = ", ".join(d.name for d in detectors)
        raise InputError(f"explain draws one pattern, and {pattern!s} holds {len(detectors)} ({names})",
                         hint="name one, e.g. file.pattern:NAME")
    detector = detectors[0]
    chosen_measures = check_measures(measures, detectors)
    exclusions = Exclusions(bos=pattern_setting(exclude_bos, detector, "exclude_bos"),
                            current=pattern_setting(exclude_current_token, detector, "exclude_current"))
    facts = model_facts(model)
    layer, head_index = _one_head(head, *facts.shape)

    item, prompt_set = _one_prompt(prompt, spans)
    if prompt_set is None and "spans" in getattr(detector.pattern, "needs", ()):
        raise InputError(f"pattern {detector.name!r} reads labelled spans (span[...]), and this prompt has none",
                         hint='give them: explain(..., spans={"IO": [[5, 9]], ...}); on the command line '
                              "--probe ioi --index N or --prompts FILE.jsonl (a line with \"spans\"); "
                              "Scores.show draws a labelled prompt of the scores")
    items = [item]
    if not isinstance(item, str) and len(item) > MAX_TOKENS:
        raise _too_long(len(item))
    token_lists = tokenize(model, items, prepend_bos=prepend_bos)
    ids = token_lists[0]
    n = ids.numel()
    if n > MAX_TOKENS:
        raise _too_long(n)
    check_matrix_sizes(detectors, [n])
    inputs = prompt_inputs(model, prompt_set, items, token_lists, detectors)

    # One forward pass: hooked on the head's layer only, or (predictions, `copying`) the engine's
    # deferred pass to the logits; the layer's attention is kept for scoring.
    batch = pad_batch(token_lists, [0], facts.pad_id, torch.device("cpu"))
    passed = model_pass(model, batch.tokens, [layer], detectors, chosen_measures)
    layer_attention = passed.attention[layer] if passed is not None else _hooked_attention(model, batch, layer)

    # The detection matrix, the counted cells and the target rows, by the engine's own code.
    detection = inputs.detection(model, batch, detectors, None if passed is None else passed.predictions)
    targets = prepare_targets(detection, batch.lengths, exclusions, ("mass",))
    matrix = detection[0, 0].clone()
    counted = targets.cells[0].clone()
    target_rows = targets.prepared("row_weight")[0, :, 0] > 0

    tallies, _ = score_tokens(
        model, token_lists, detectors, measures=chosen_measures, exclusions=[exclusions],
        heads={layer: (head_index,)}, attention_source=None if passed is not None else (lambda _layer: layer_attention),
        outputs_source=None if passed is None else (lambda _tokens: _fresh(passed)),
        texts=inputs.texts, offsets=inputs.offsets, syntax=inputs.syntax, labels=inputs.labels,
    )
    scores = {m: float(tallies.values[m][0, layer, head_index]) for m in chosen_measures}
    return Explanation(
        pattern=detector.name,
        rule=_rule_of(detector),
        head=head_label(layer, head_index),
        layer=layer,
        head_index=head_index,
        model=facts.described,
        tokens=tuple(_token_texts(model, ids.tolist(), item)),
        token_ids=tuple(int(i) for i in ids.tolist()),
        attention=layer_attention[0, head_index].to("cpu", torch.float32),
        matrix=matrix,
        counted=counted,
        target_rows=target_rows,
        scores=scores,
        exclude_bos=exclusions.bos,
        exclude_current=exclusions.current,
        prompt_index=prompt_index,
        span_labels=inputs.span_labels(0),
        predicted=_predicted_texts(model, passed),
    )


def _fresh(passed: Any) -> Any:
    """The pass's outputs with their own attention dict: `score_tokens` pops the layers it reduces."""
    return replace(passed, attention=dict(passed.attention))


def _hooked_attention(model: HookedModel, batch: Any, layer: int) -> Tensor:
    """The layer's attention `[batch, head, q, k]` from one pass stopped after it."""
    captured: dict[int, Tensor] = {}

    def keep(hooked_layer: int, attention: Tensor) -> None:
        captured[hooked_layer] = attention.detach().clone()

    run_attention_hooks(model, batch.tokens.to(model_facts(model).device), [layer], keep)
    return captured[layer]


def prompt_argument(prompt: str | None, tokens: str | None, model: str | None) -> str | list[int]:
    """`--prompt TEXT` as its text, or `--tokens "1 504 2"` as token ids, checked before the model
    `model` (a name, None for the embedded one) loads."""
    if prompt is not None:
        if not prompt:
            raise InputError("--prompt is empty")
        return prompt
    parts = (tokens or "").replace(",", " ").split()
    if not parts:
        raise InputError("--tokens is empty")
    bad = next((part for part in parts if not part.isdigit()), None)
    if bad is not None:
        raise InputError(f"--tokens takes token ids (integers), and {bad!r} is not one",
                         hint='write --tokens "1 504 2", or give the text with --prompt')
    ids = tuple(int(part) for part in parts)
    if len(ids) > MAX_TOKENS:
        raise InputError(f"--tokens has {len(ids)} tokens; a head's attention is drawn for at most {MAX_TOKENS}",
                         hint="shorten the prompt")
    check_token_ids_before_loading(Prompts(tokens=(ids,), name="--tokens"), model)
    return list(ids)


def _one_prompt(prompt: Any, spans: Any) -> tuple[Any, Any]:
    """The one prompt to draw, and a `Prompts` holding it with its labelled spans (None without spans)."""
    if isinstance(prompt, Prompts):
        if len(prompt) != 1:
            raise InputError(f"explain draws one prompt, and the prompt set {prompt.name!r} holds {len(prompt)}",
                             hint="pick one: Scores.show(pattern, head, i) draws prompt i of the scores")
        if spans is None:
            return next(iter(prompt)), prompt
        prompt = next(iter(prompt))
    items = split_prompts(prompt)
    if len(items) != 1:
        raise InputError(f"explain draws one prompt, got {len(items)}",
                         hint="pass one text or one list of token ids; Scores.show(pattern, head, i) "
                              "draws prompt i of the scores")
    if spans is None:
        return items[0], None
    if not isinstance(items[0], str):
        raise InputError("labelled spans are character ranges of a text prompt, and this prompt is token ids",
                         hint="give the prompt as text")
    return items[0], Prompts(texts=(items[0],), spans=(spans,), name="prompt")


def _predicted_texts(model: HookedModel, passed: Any) -> tuple[str, ...] | None:
    """Each position's top-1 prediction from the final logits, as text (None without that pass)."""
    if passed is None or None not in passed.predictions:
        return None
    ids = passed.predictions[None][0, :, 0].tolist()
    return tuple(_token_texts(model, ids, None))


def _one_head(head: Any, n_layers: int, n_heads: int) -> tuple[int, int]:
    """`(layer, head)` from "L5H1", "5.1" or (5, 1), checked against the model's shape."""
    chosen = parse_heads(head, n_layers, n_heads)  # the range error names the model's shape
    pairs = [(layer, h) for layer, hs in chosen.items() for h in (range(n_heads) if hs is None else hs)]
    if len(pairs) != 1:
        raise InputError(f"explain draws one head, and {head!r} names {len(pairs)}",
                         hint='name one head, e.g. "L5H1" or (5, 1)')
    return pairs[0]


def _too_long(n: int) -> InputError:
    return InputError(f"the prompt has {n} tokens; a head's attention is drawn for at most {MAX_TOKENS}",
                      hint="shorten the prompt (a few sentences show a pattern), or pick a part of it; "
                           "detect scores long prompts")


def _rule_of(detector: Any) -> str:
    if detector.pattern is not None:
        return getattr(detector.pattern, "rule", "") or detector.name
    if detector.matrix is not None:
        return f"a fixed {list(detector.matrix.shape)} detection tensor"
    return f"{detector.name} (a function of the prompt's tokens)"
