"""Probes whose prompts carry labelled spans (`span[k]` reads them): `ioi` and `needle`.

`ioi`: the indirect-object-identification prompts of Wang et al. 2022 ("Interpretability in
the Wild", the IOI paper's templates, names, places and objects), each stopping before the
indirect object's second mention: "When Mary and John went to the store, John gave a drink
to" (the model should continue " Mary"). Balanced: prompts alternate ABBA (the indirect
object named first) and BABA (the subject named first). Labels: `IO` (the indirect object's
name), `S1` and `S2` (the subject's first and second mention), `END` (the last word, where
the answer is predicted). `ioi_cases` also gives each prompt's answer and subject names.

`needle`: a needle sentence holding a pass key, inside filler text of a chosen length (the
passkey-retrieval filler of Mohtashami & Jaggi 2023), with the question at the end: "... The
pass key is 68203. Remember it. 68203 is the pass key. ... What is the pass key? The pass key
is 68203.". Labels: `needle` (the whole needle sentence), `key` (each mention of the key inside it),
`question` (the question at the end), `END` (its last word) and `answer` (the key said once
more after it, so that a rule can read the model copying it: teacher forcing, as when Wu et
al. 2024 score retrieval heads while the model generates the answer).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from patternlang.errors import InputError
from patternlang.prompts import MAX_PROMPTS, Prompts
from patternlang.spans import Labels, label_spans

# ---- ioi --------------------------------------------------------------------------------------
# The IOI paper's BABA templates ([B] the subject, [A] the indirect object), cut before the answer;
# the ABBA form swaps the first two names.
IOI_TEMPLATES = (
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to",
)
# Names, places and objects from the IOI paper's lists: each one token after a space in GPT-2's
# and SmolLM2's tokenizers.
IOI_NAMES = ("Mary", "John", "Alice", "Bob", "Tom", "James", "Dan", "Sid", "Kate", "Carl", "Michael", "Jessica",
             "Lisa", "Sarah", "David", "Paul", "Anna", "Emma", "Daniel", "Laura", "Martin", "Amy", "Mark", "Peter",
             "Jane", "Rose", "Sam", "Ben", "Lucy", "Jack", "Eric", "Nick", "Adam", "Kevin", "Ryan", "Susan",
             "Helen", "Frank", "Grace", "Henry")
IOI_PLACES = ("store", "garden", "restaurant", "school", "hospital", "office", "house", "station")
IOI_OBJECTS = ("ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack")


@dataclass(frozen=True, slots=True)
class IOICase:
    """One IOI prompt: its text, labelled spans, answer (the indirect object) and subject."""

    text: str
    spans: Labels
    io: str
    subject: str
    order: str  # "ABBA" or "BABA"
    template: int


IOI_VARIANTS = ("ioi", "abc")
"""`ioi`: the prompts themselves; `abc`: the IOI paper's ABC dataset, the same prompts (templates,
places, objects, token positions and labels) with the three names replaced by three other,
different names, so that nothing in the prompt says which name comes next (the corrupted run of
activation patching)."""


def ioi_cases(batch: int = 64, seed: int = 0, variant: str = "ioi") -> list[IOICase]:
    """`batch` IOI prompts; even ones ABBA, odd ones BABA; templates taken in turn, names, places
    and objects drawn with `seed`. `variant="abc"`: the same prompts with the names at IO, S1 and
    S2 replaced by three new names, all different (`io` and `subject` are then the names at IO
    and S1; S2 names a third person)."""
    if variant not in IOI_VARIANTS:
        raise InputError(f"the ioi probe's variant is one of {', '.join(IOI_VARIANTS)}, not {variant!r}")
    rng = random.Random(seed)
    abc = random.Random(seed + 0xABC)  # its own stream: the clean prompts' draws stay as they were
    cases = []
    for index in range(batch):
        template = IOI_TEMPLATES[index % len(IOI_TEMPLATES)]
        io, subject = rng.sample(IOI_NAMES, 2)
        place, thing = rng.choice(IOI_PLACES), rng.choice(IOI_OBJECTS)
        order = "ABBA" if index % 2 == 0 else "BABA"
        second_subject = subject
        if variant == "abc":
            io, subject, second_subject = abc.sample([n for n in IOI_NAMES if n not in (io, subject)], 3)
        first, second = ((io, "IO"), (subject, "S1")) if order == "ABBA" else ((subject, "S1"), (io, "IO"))
        head, rest = template.split("[B] and [A]", 1)
        middle, tail = rest.split("[B]", 1)
        def fill(text: str, place: str = place, thing: str = thing) -> str:
            return text.replace("[PLACE]", place).replace("[OBJECT]", thing)
        tail = fill(tail)
        body, end_word = tail.rsplit(" ", 1)
        text, spans = label_spans([
            (fill(head), None), first, (" and ", None), second, (fill(middle), None), (second_subject, "S2"),
            (body + " ", None), (end_word, "END"),
        ])
        cases.append(IOICase(text, spans, io, subject, order, index % len(IOI_TEMPLATES)))
    return cases


def ioi(batch: int = 64, seed: int = 0, variant: str = "ioi") -> Prompts:
    """The `ioi` probe: `ioi_cases` as labelled text prompts (`variant="abc"`: the ABC dataset,
    the corrupted prompts of activation patching, one for each prompt of the same seed).

    >>> p = ioi(batch=2)
    >>> p.texts[0]
    'Then, Jane and Sam went to the store. Sam gave a computer to'
    >>> [(label, p.texts[0][start:end]) for label, start, end in p.spans[0]]
    [('IO', 'Jane'), ('S1', 'Sam'), ('S2', 'Sam'), ('END', 'to')]
    """
    check_size("ioi", "batch", batch, 1, MAX_PROMPTS)
    cases = ioi_cases(batch, seed, variant)
    what = "IOI prompts" if variant == "ioi" else "ABC prompts (the IOI prompts with three other names)"
    return Prompts._already_checked(texts=tuple(c.text for c in cases), name="ioi",
                                    description=f"{batch} {what} (Wang et al. 2022 templates, ABBA/BABA), "
                                                f"seed {seed}", spans=tuple(c.spans for c in cases))


# ---- needle -----------------------------------------------------------------------------------
FILLER = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again.")
"""The passkey-retrieval filler (Mohtashami & Jaggi 2023), repeated to the length asked for."""
MAX_NEEDLE_FILLER = 100_000


def needle_case(length: int, depth: int, rng: random.Random) -> tuple[str, Labels, str]:
    """One needle prompt: `length` filler sentences, the needle after `depth` percent of them."""
    key = str(rng.randrange(10_000, 100_000))
    filler = [FILLER[i % len(FILLER)] for i in range(length)]
    cut = round(length * depth / 100)
    parts: list[tuple[str, str | None]] = []
    if cut:
        parts.append((" ".join(filler[:cut]) + " ", None))
    parts += [("The pass key is ", "needle"), (key, "key"), (". Remember it. ", "needle"), (key, "key"),
              (" is the pass key.", "needle")]
    if cut < length:
        parts.append((" " + " ".join(filler[cut:]), None))
    parts += [(" ", None), ("What is the pass key? The pass key", "question"), (" ", None), ("is", "END"),
              (" ", None), (key, "answer"), (".", None)]
    text, spans = label_spans(parts)
    # Keys labelled before the needle around them: a token of the key reads "key", the rest "needle".
    order = {"key": 0, "END": 1, "answer": 2, "needle": 3, "question": 4}
    return text, tuple(sorted(spans, key=lambda s: order[s[0]])), key


def needle(batch: int = 16, length: int = 40, depth: int = 50, seed: int = 0) -> Prompts:
    """The `needle` probe: a pass key hidden in filler text, asked for at the end.

    `length` filler sentences (about 5 tokens each), the needle after `depth` percent of them.

    >>> needle(batch=1, length=2).texts[0]  # doctest: +NORMALIZE_WHITESPACE
    'The grass is green. The pass key is 60494. Remember it. 60494 is the pass key. The sky is blue.
     What is the pass key? The pass key is 60494.'
    """
    check_size("needle", "batch", batch, 1, MAX_PROMPTS)
    check_size("needle", "length", length, 0, MAX_NEEDLE_FILLER)
    check_size("needle", "depth", depth, 0, 100)
    rng = random.Random(seed)
    cases = [needle_case(length, depth, rng) for _ in range(batch)]
    return Prompts._already_checked(texts=tuple(c[0] for c in cases), name="needle",
                                    description=f"{batch} pass keys in {length} filler sentences at depth {depth}%",
                                    spans=tuple(c[1] for c in cases))


def check_size(probe: str, name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"argument {name!r} of probe {probe!r} must be a whole number from {low} to {high:,}, "
                         f"got {value!r}")
