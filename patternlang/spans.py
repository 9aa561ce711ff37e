"""Labelled spans of a text prompt: character ranges with a label ("IO", "S1", "needle", ...).

A prompt's labels are a tuple of `(label, start, end)` triples, character offsets into its
text (`text[start:end]` is the span), in the order they were given. JSONL prompt files give
them as `{"text": ..., "spans": {"IO": [[start, end]], ...}}` and probes that build prompts
from templates (`ioi`, `needle`) label the parts they insert. A model token carries a span's
label when its own character span overlaps the labelled one by at least one character; a
token that overlaps several labelled spans carries the first of them in the prompt's order,
and a token that overlaps none (or covers no character, like a prepended BOS) reads "".
That is `span[k]` in a rule (`syntax/span_labels.py`).

This module imports no torch: the prompt files and probes use it.

>>> spans = check_spans({"IO": [[5, 9]], "S": [[0, 4]]}, "John Mary", 0)
>>> spans
(('IO', 5, 9), ('S', 0, 4))
>>> token_labels(spans, [(0, 0), (0, 4), (4, 9)])
['', 'S', 'IO']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from patternlang.errors import InputError

Labels = tuple[tuple[str, int, int], ...]
"""One prompt's labelled spans: `(label, start, end)` in the order given."""

MAX_LABEL_CHARS = 100
MAX_SPANS_PER_PROMPT = 10_000


def check_spans(spans: Any, text: str, index: int) -> Labels:
    """A prompt's labelled spans, checked against its text: `{label: [[start, end], ...]}` or a
    sequence of `(label, start, end)`; each range `0 <= start < end <= len(text)`."""
    if isinstance(spans, Mapping):
        triples = []
        for label, ranges in spans.items():
            if not isinstance(ranges, Sequence) or isinstance(ranges, str):
                raise InputError(f"prompt {index}: the spans of label {label!r} must be a list of "
                                 f"[start, end] pairs", hint='write "spans": {"IO": [[5, 9]]}')
            if len(ranges) == 2 and all(isinstance(x, int) for x in ranges):
                ranges = [ranges]  # one pair given without its list
            for pair in ranges:
                if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                    raise InputError(f"prompt {index}: a span of label {label!r} must be a [start, end] pair, "
                                     f"not {pair!r}")
                triples.append((label, *pair))
    elif isinstance(spans, Sequence) and not isinstance(spans, str):
        triples = list(spans)
    else:
        raise InputError(f"prompt {index}: spans must be an object {{label: [[start, end], ...]}}, "
                         f"not {type(spans).__name__}")
    if len(triples) > MAX_SPANS_PER_PROMPT:
        raise InputError(f"prompt {index} has {len(triples):,} labelled spans, more than {MAX_SPANS_PER_PROMPT:,}")
    checked = []
    for triple in triples:
        if not isinstance(triple, Sequence) or len(triple) != 3:
            raise InputError(f"prompt {index}: a labelled span is (label, start, end), not {triple!r}")
        label, start, end = triple
        if not isinstance(label, str) or not label or len(label) > MAX_LABEL_CHARS:
            raise InputError(f"prompt {index}: a span's label must be a non-empty string of at most "
                             f"{MAX_LABEL_CHARS} characters, not {label!r}")
        if any(isinstance(x, bool) or not isinstance(x, int) for x in (start, end)):
            raise InputError(f"prompt {index}: span {label!r} has offsets {start!r}, {end!r}; they must be integers")
        if not 0 <= start < end <= len(text):
            raise InputError(f"prompt {index}: span {label!r} [{start}, {end}) is not a non-empty range inside "
                             f"the text of {len(text)} characters",
                             hint="offsets count characters from 0; the end is exclusive")
        checked.append((label, int(start), int(end)))
    return tuple(checked)


def token_labels(spans: Labels, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """The label of every token (its character span in `offsets`), "" outside every span;
    the plain definition (the reference evaluator's)."""
    labels = []
    for begin, end in offsets:
        label = ""
        if end > begin:
            label = next((name for name, start, stop in spans if begin < stop and start < end), "")
        labels.append(label)
    return labels


def label_spans(text_parts: Sequence[tuple[str, str | None]]) -> tuple[str, Labels]:
    """Join `(text, label or None)` parts into one text and its labelled spans (for probes).

    >>> label_spans([("When ", None), ("Mary", "IO"), (" left", None)])
    ('When Mary left', (('IO', 5, 9),))
    """
    text, spans, position = [], [], 0
    for part, label in text_parts:
        if label is not None and part:
            spans.append((label, position, position + len(part)))
        text.append(part)
        position += len(part)
    return "".join(text), tuple(spans)
