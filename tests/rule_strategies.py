"""Hypothesis strategies that write random (valid) rules, and random prompts for them."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from patternlang.compiler import BatchFeatures

# A small vocabulary where texts collide in interesting ways: case, leading spaces, markers.
VOCAB = ["<s>", " the", "the", " The", "cat", " cat", "Ġcat", ".", ",", " sat", "s", "\n", " a", "a", "!",
         " ?", ". "]
SPECIAL_IDS = {0}

positions = st.sampled_from(["q", "k", "q - 1", "k - 1", "k + 1", "q - 2", "k + 2", "0", "1", "3"])
literals = st.sampled_from(['"the"', '" the"', '"cat"', '"."', '"a"'])
prefixes = st.sampled_from(['" "', '"Ġ"', '"c"', '"T"', '""'])
regexes = st.sampled_from(['"^[.,]$"', '"[A-Z]"', '"^\\s"', '"at$"'])
ordered = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
equality = st.sampled_from(["==", "!="])


@st.composite
def comparisons(draw) -> str:
    choice = draw(st.integers(0, 11))
    p1, p2 = draw(positions), draw(positions)
    if choice == 0:
        return f"{p1} {draw(ordered)} {p2}"
    if choice == 1:
        return f"tok[{p1}] {draw(equality)} tok[{p2}]"
    if choice == 2:
        return f"str[{p1}] {draw(equality)} str[{p2}]"
    if choice == 3:
        return f"word[{p1}] {draw(ordered)} word[{p2}] - {draw(st.integers(0, 2))}"
    if choice == 4:
        return f"startswith(str[{p1}], {draw(prefixes)})"
    if choice == 5:
        return f"iequals(str[{p1}], str[{p2}])"
    if choice == 6:
        return f"lower(strip(str[{p1}])) == {draw(literals)}"
    if choice == 7:
        return f"matches(str[{p1}], {draw(regexes)})"
    if choice == 8:
        return f"start[{p1}]"
    if choice == 9:
        return f"q - k {draw(ordered)} {draw(st.integers(0, 3))}"
    if choice == 10:
        return f"sentence[{p1}] {draw(ordered)} sentence[{p2}] - {draw(st.integers(0, 1))}"
    return f"special[{p1}] or str[{p1}] == {draw(literals)}"


def conditions(max_leaves: int = 6, leaves=None):
    """Conditions built with and, or and not over `leaves` (default: `comparisons()`)."""
    return st.recursive(
        comparisons() if leaves is None else leaves,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda t: f"({t[0]}) and ({t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]}) or ({t[1]})"),
            inner.map(lambda c: f"not ({c})"),
        ),
        max_leaves=max_leaves,
    )


selections = st.sampled_from(["", "last ", "first "])  # attend k / attend last k / attend first k


def rules(max_leaves: int = 4):
    attend = st.one_of(st.tuples(selections, conditions()).map(lambda t: f"attend {t[0]}k where {t[1]}"),
                       selections.map(lambda s: f"attend {s}k"))
    return st.recursive(
        attend.map(lambda a: f"({a})"),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["|", "&", "+", "-"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, st.integers(-3, 3)).map(lambda t: f"({t[0]} shift {t[1]:+d})"),
            st.tuples(st.sampled_from(["0.5", "2", "0.25"]), inner).map(lambda t: f"({t[0]} * {t[1]})"),
            inner.map(lambda e: f"normalize({e})"),
        ),
        max_leaves=max_leaves,
    )


prompts = st.lists(st.integers(0, len(VOCAB) - 1), min_size=1, max_size=12)


# ---- the parser's features (syntax extra), on random annotations ------------------------------
POS_LABELS = ["", "NOUN", "VERB", "DET", "ADP", "PROPN"]
DEP_LABELS = ["", "nsubj", "dobj", "det", "poss", "ROOT"]
ENT_LABELS = ["", "PERSON", "GPE"]
syntax_literals = st.sampled_from(['"NOUN"', '"VERB"', '"det"', '"dobj"', '"PERSON"', '""', '"noun"'])


@st.composite
def syntax_comparisons(draw) -> str:
    choice = draw(st.integers(0, 8))
    p1, p2 = draw(positions), draw(positions)
    field = draw(st.sampled_from(["pos", "tag", "dep", "ent", "lemma"]))
    if choice == 0:
        return f"{field}[{p1}] {draw(equality)} {draw(syntax_literals)}"
    if choice == 1:
        return f"{field}[{p1}] {draw(equality)} {field}[{p2}]"
    if choice == 2:
        return f"dephead[{p1}] {draw(ordered)} {p2}"
    if choice == 3:
        return f"dephead[dephead[{p1}]] == {p2}"
    if choice == 4:
        return f"ancestor({p1}, {p2})"
    if choice == 5:
        return f"entstart[{p1}] == entstart[{p2}] and ent[{p1}] != \"\""
    if choice == 6:
        return f"lower({field}[{p1}]) == {draw(syntax_literals)}"
    if choice == 7:
        return f"tok[dephead[{p1}]] == tok[{p2}]"
    return draw(comparisons())


def attend_combinations(leaves, max_leaves: int = 3):
    """Rules `attend k where C` over conditions of `leaves`, combined with |, &, +, - and shifts."""
    attend = st.tuples(selections, conditions(4, leaves)).map(lambda t: f"(attend {t[0]}k where {t[1]})")
    return st.recursive(
        attend,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["|", "&", "+", "-"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(inner, st.integers(-2, 2)).map(lambda t: f"({t[0]} shift {t[1]:+d})"),
        ),
        max_leaves=max_leaves,
    )


def syntax_rules(max_leaves: int = 3):
    return attend_combinations(syntax_comparisons(), max_leaves)


@st.composite
def annotations_for(draw, n: int):
    """Random parser annotations of a prompt of n tokens (heads anywhere, cycles included)."""
    from patternlang.annotate import Annotations

    def strings(labels):
        return tuple(draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n)))

    def positions_(allow):
        return tuple(draw(st.lists(st.integers(-1, n - 1), min_size=n, max_size=n))) if allow else (-1,) * n

    pos = strings(POS_LABELS)
    return Annotations(pos=pos, tag=strings(["", "NN", "VBD", "DT"]), dep=strings(DEP_LABELS),
                       ent=strings(ENT_LABELS), lemma=tuple(p.lower() for p in pos),
                       dephead=positions_(True), entstart=positions_(True))


@st.composite
def annotated_prompts(draw):
    prompt = draw(prompts)
    return prompt, draw(annotations_for(len(prompt)))


# ---- batches for the compiler (shared by test_compiler, test_syntax, test_model_features and
# test_compiler_windows) -------------------------------------------------------------------------
STRINGS = dict(enumerate(VOCAB))


def token_features(batch: list[list[int]]) -> BatchFeatures:
    """Token-id prompts as the compiler's batch (the small vocabulary's texts)."""
    width = max(len(p) for p in batch)
    tokens = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.bool)
    for i, prompt in enumerate(batch):
        tokens[i, : len(prompt)] = torch.tensor(prompt)
        mask[i, : len(prompt)] = True
    return BatchFeatures.build(tokens, mask, strings=STRINGS, special_ids=SPECIAL_IDS)


def annotated_features(batch) -> BatchFeatures:
    """`annotated_prompts` as the compiler's batch, with their parser annotations."""
    width = max(len(p) for p, _ in batch)
    tokens = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.bool)
    for i, (prompt, _) in enumerate(batch):
        tokens[i, : len(prompt)] = torch.tensor(prompt)
        mask[i, : len(prompt)] = True
    return BatchFeatures.build(tokens, mask, strings=STRINGS, special_ids=SPECIAL_IDS,
                               syntax=[annotations for _, annotations in batch])


# ---- model-aware features: span[k], pred[q], predicted(...), lens_predicted(...) ----
LABELS = ["IO", "S1", "S2", "END", "needle"]
TOP = 4  # ranked predictions kept per position (rules read up to this many)
LENS_LAYERS = (0, 2)
label_literals = st.sampled_from(['"IO"', '"S1"', '"END"', '"needle"', '""', '"io"'])


@st.composite
def model_comparisons(draw) -> str:
    choice = draw(st.integers(0, 8))
    p1, p2 = draw(positions), draw(positions)
    if choice == 0:
        return f"span[{p1}] == {draw(label_literals)}"
    if choice == 1:
        return f"span[{p1}] {draw(st.sampled_from(['==', '!=']))} span[{p2}]"
    if choice == 2:
        return f"tok[{p1}] == pred[{p2}]"
    if choice == 3:
        return f"pred[{p1}] != pred[{p2}]"
    if choice == 4:
        return f"predicted(tok[{p1}], {p2}, {draw(st.integers(1, TOP))})"
    if choice == 5:
        return f"lens_predicted(tok[{p1}], {p2}, {draw(st.integers(1, TOP))}, {draw(st.sampled_from(LENS_LAYERS))})"
    if choice == 6:
        return f"predicted(pred[{p1}], {p2}, 2) and {p1} {draw(ordered)} {p2}"
    if choice == 7:
        return f"lower(span[{p1}]) == {draw(label_literals)}"
    return draw(comparisons())


def model_rules():
    return attend_combinations(model_comparisons(), max_leaves=3)


@st.composite
def model_prompts(draw):
    """A prompt, its tokens' character offsets (some empty), labelled spans over those characters and
    ranked predictions (token ids of the small vocabulary, repeats allowed) per layer."""
    tokens = draw(st.lists(st.integers(0, len(VOCAB) - 1), min_size=1, max_size=10))
    n = len(tokens)
    widths = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    offsets, position = [], 0
    for width in widths:
        offsets.append((position, position + width))
        position += width
    labels = ()
    if position > 0:
        triples = draw(st.lists(st.tuples(st.sampled_from(LABELS), st.integers(0, position - 1),
                                          st.integers(1, 4)), max_size=4))
        labels = tuple((label, start, min(position, start + length)) for label, start, length in triples)
    ranked = {layer: [draw(st.lists(st.integers(0, len(VOCAB) - 1), min_size=TOP, max_size=TOP)) for _ in range(n)]
              for layer in (None, *LENS_LAYERS)}
    return tokens, offsets, labels, ranked


def model_features(batch) -> BatchFeatures:
    """`model_prompts` as the compiler's batch: offsets, labelled spans and ranked predictions."""
    width = max(len(p[0]) for p in batch)
    tokens = torch.zeros(len(batch), width, dtype=torch.long)
    mask = torch.zeros(len(batch), width, dtype=torch.bool)
    predictions = {layer: torch.zeros(len(batch), width, TOP, dtype=torch.long) for layer in (None, *LENS_LAYERS)}
    for i, (prompt, _, _, ranked) in enumerate(batch):
        tokens[i, : len(prompt)] = torch.tensor(prompt)
        mask[i, : len(prompt)] = True
        for layer, rows in ranked.items():
            predictions[layer][i, : len(prompt)] = torch.tensor(rows)
    return BatchFeatures.build(tokens, mask, strings=STRINGS, special_ids=SPECIAL_IDS,
                               offsets=[p[1] for p in batch], labels=[p[2] for p in batch], predictions=predictions)
