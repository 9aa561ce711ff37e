"""Golden scores: the engine's exact output on fixed runs, to prove a refactor changes nothing.

`golden_scores()` runs every shipped pattern on its own shipped probe (a few prompts each) with
the embedded SmolLM2 model, a few runs that take the other paths (several patterns and batches
in chunks, query blocks, a subset of heads, a streamed labelled file), and the hand-set model on
the classic patterns; each result is `Scores.to_dict()` with every float grid replaced by the
base64 of its float32 bytes (exact, and small). `tests/data/golden_scores.json` holds the output
of the code before the engine was rebuilt (issue 18); `tests/test_golden_scores.py` recomputes it.

    python -m patternlang.testing.golden tests/data/golden_scores.json
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from patternlang.engine.detection import detect
from patternlang.engine.scores import Scores
from patternlang.library import compile_rule, load_patterns, shipped_patterns
from patternlang.models import load_model
from patternlang.probes import make_probe
from patternlang.testing.hand_set import make_hand_set_model

# Small but fixed: every probe's prompt count and length, so a run takes a few minutes on a CPU.
PROBE_ARGS: dict[str, dict[str, Any]] = {
    "natural": {"batch": 4},
    "repeated_random": {"batch": 4, "length": 20},
    "ioi": {"batch": 4},
    "needle": {"batch": 3, "length": 6},
    "parsed_prose": {"batch": 4},
}
ROW_MEASURES = ("mass", "tv", "argmax", "mul", "abs", "lift")
CLASSIC = ["previous_token_head", "duplicate_token_head", "induction_head", "current_token_head", "bos_head"]
HAND_SET_PROMPTS = ["abcabcabc", "the cat sat. the cat sat.", "xyzzy xyzzy", "ab"]


def encode(grid: torch.Tensor) -> str:
    """A float tensor as the base64 of its float32 little-endian bytes (exact)."""
    array = grid.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4")
    return base64.b64encode(array.tobytes()).decode("ascii")


def decode(text: str, shape: tuple[int, ...]) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype="<f4").copy()).reshape(shape)


def scores_record(scores: Scores) -> dict[str, Any]:
    """`to_dict()` with every grid as `encode` writes it (and per-prompt grids stacked)."""
    data = scores.to_dict()
    for index, name in enumerate(scores.patterns):
        entry = data["patterns"][name]
        entry["scores"] = {m: encode(scores.values[m][index]) for m in scores.measures}
        if "ci95" in entry:
            entry["ci95"] = {m: {"low": encode(scores.ci_low[m][index]), "high": encode(scores.ci_high[m][index])}
                             for m in scores.measures}
        if "per_prompt" in entry:
            entry["per_prompt"] = {m: encode(scores.per_prompt[name][m]) for m in scores.measures}
            entry["per_prompt_shape"] = list(scores.per_prompt[name][scores.measures[0]].shape)
    return data


def _probe(model: Any, spec: Any) -> Any:
    name = spec.name if spec is not None else "natural"
    args = {**(dict(spec.args) if spec is not None else {}), **PROBE_ARGS.get(name, {})}
    return make_probe(name, args, model=model)


PER_PROMPT = ("bos_head", "fuzzy_duplicate_head", "ioi_induction_head", "possessive_head", "previous_token_head",
              "sentence_start_head")
"""The shipped patterns whose per-prompt scores the file keeps (every fifth of the library when it was
written; named, so that a pattern added to the library since changes nothing)."""


def golden_scores(model: Any = None, *, hand_set: bool = True) -> dict[str, Any]:
    """Every run's `scores_record`, by run name (see the module docstring)."""
    model = load_model() if model is None else model
    runs: dict[str, dict[str, Any]] = {}
    patterns = shipped_patterns()
    for pattern in patterns:
        own = pattern.settings.measure
        measures = ROW_MEASURES + ((own,) if own and own not in ROW_MEASURES else ())
        scores = detect(model, _probe(model, pattern.settings.probe), pattern, measures=measures,
                        per_prompt=pattern.name in PER_PROMPT, progress=False)
        runs[f"shipped/{pattern.name}"] = scores_record(scores)
    natural = _probe(model, None)
    runs["chunks"] = scores_record(detect(model, natural, CLASSIC + ["previous_word_head", "local_window_head"],
                                          batch_size=2, chunk_size=3, per_prompt=True, progress=False))
    runs["own_measures"] = scores_record(detect(model, natural, ["copy_suppression_head", "local_window_head",
                                                                 "bos_head"], progress=False))
    runs["blocks"] = scores_record(detect(model, natural, CLASSIC, measures=ROW_MEASURES, attention="blocks",
                                          progress=False))
    runs["heads"] = scores_record(detect(model, natural, CLASSIC, heads="L1H2 L3H0 L3H4 L7H8", exclude_bos=True,
                                         exclude_current_token=True, progress=False))
    ioi = _probe(model, next(p.settings.probe for p in patterns if p.name == "name_mover_head"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ioi.jsonl"
        lines = []
        for text, labels in zip(ioi.texts, ioi.spans):
            spans: dict[str, list[list[int]]] = {}
            for label, start, end in labels:
                spans.setdefault(label, []).append([start, end])
            lines.append(json.dumps({"text": text, "spans": spans}))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        # name_mover_head as it was written when the file was made (since then it adds `require copying > 0`,
        # which scores copying too: another pass, the same mass).
        name_mover = compile_rule('attend k where span[q] == "END" and span[k] == "IO" measure mass',
                                  name="name_mover_head")
        runs["streamed"] = scores_record(detect(model, path, [name_mover, "s_inhibition_head"],
                                                chunk_size=2, progress=False))
    if hand_set:
        tiny = make_hand_set_model()
        runs["hand_set"] = scores_record(detect(tiny, HAND_SET_PROMPTS, load_patterns(CLASSIC),
                                                measures=ROW_MEASURES, per_prompt=True, progress=False))
    return runs


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else Path("tests/data/golden_scores.json")
    text = json.dumps(golden_scores(), indent=1, sort_keys=True)
    target.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {target} ({len(text):,} characters)")


if __name__ == "__main__":
    main(sys.argv[1:])
