"""The probe registry: each probe's name, arguments and generator, as `probe name(arg=value)` in a pattern names them.

`validate_probe_args` checks a probe and its arguments completely without importing torch
(the pattern checker calls it): unknown names, types, ranges, required arguments, sizes
too large to build, crossed vocabulary ranges and prompt files that cannot be read.
Adding a probe is one `PROBES.register(ProbeDefinition(...))`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from patternlang.errors import InputError, PatternTypeError, UnknownNameError, did_you_mean
from patternlang.probes import generators, labelled
from patternlang.probes.prompt_files import check_prompt_file, from_file
from patternlang.registry import Registry
from patternlang.prompts import MAX_PROMPT_TOKENS, MAX_PROMPTS, MAX_TOKEN_ID, Prompts, describe_value, show_int

ArgType = Literal["int", "float", "str"]
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,)}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string"}


@dataclass(frozen=True, slots=True)
class ProbeArg:
    """One argument a probe takes in pattern files, with its type and the range it must lie in."""

    name: str
    type: ArgType
    default: int | float | str | None
    doc: str
    minimum: int | None = None
    maximum: int | None = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class ProbeDefinition:
    """A named probe: its arguments, the checks that span several of them, and the function that builds its prompts.

    `check(args)` runs after every argument alone passed (torch-free, no prompts built);
    `build(args, model)` makes the prompts, `model` None or a loaded model.
    """

    name: str
    doc: str
    args: tuple[ProbeArg, ...]
    build: Callable[[Mapping[str, Any], Any], Prompts]
    check: Callable[[Mapping[str, Any]], None] | None = None

    def arg(self, name: str) -> ProbeArg | None:
        return next((arg for arg in self.args if arg.name == name), None)


# ---------------------------------------------------------------------------
# repeated_random


def _check_repeated_random(args: Mapping[str, Any]) -> None:
    generators.check_repeated_random_sizes(length=args.get("length", 50), repeats=args.get("repeats", 2),
                                           batch=args.get("batch", 32))
    lo, hi = args.get("vocab_lo"), args.get("vocab_hi")
    if lo is not None and hi is not None and lo >= hi:
        raise InputError(f"probe 'repeated_random' draws token ids from [vocab_lo, vocab_hi), but "
                         f"vocab_lo={lo} is not below vocab_hi={hi}", hint="swap them, or make vocab_hi larger")


def _build_repeated_random(args: Mapping[str, Any], model: Any) -> Prompts:
    kwargs = {key: args[key] for key in ("length", "repeats", "batch", "seed") if key in args}
    if "vocab_lo" in args or "vocab_hi" in args:
        if "vocab_lo" in args and "vocab_hi" in args:
            default_lo = default_hi = None
        elif model is None:
            raise InputError("repeated_random needs both vocab_lo and vocab_hi without a model")
        else:  # the bound not given is the model's default one
            size, _, bos, special = generators.vocab_facts(model)
            default_lo, default_hi = generators.random_vocab_range(None, size, special, bos)
        kwargs["vocab"] = (args.get("vocab_lo", default_lo), args.get("vocab_hi", default_hi))
    return generators.repeated_random(model, **kwargs)


# ---------------------------------------------------------------------------
# natural and file


def _check_natural(args: Mapping[str, Any]) -> None:
    if "batch" in args:
        generators.check_natural_batch(args["batch"])


def _build_natural(args: Mapping[str, Any], model: Any) -> Prompts:
    return generators.natural(batch=args.get("batch"))


def _check_parsed_prose(args: Mapping[str, Any]) -> None:
    if "batch" in args:
        generators.check_prose_batch(args["batch"])


def _build_parsed_prose(args: Mapping[str, Any], model: Any) -> Prompts:
    return generators.parsed_prose(batch=args.get("batch"))


def _build_ioi(args: Mapping[str, Any], model: Any) -> Prompts:
    return labelled.ioi(batch=args.get("batch", 64), seed=args.get("seed", 0), variant=args.get("variant", "ioi"))


def _check_ioi(args: Mapping[str, Any]) -> None:
    if args.get("variant", "ioi") not in labelled.IOI_VARIANTS:
        raise InputError(f"argument 'variant' of probe 'ioi' is one of {', '.join(labelled.IOI_VARIANTS)}, "
                         f"not {args['variant']!r}", hint="abc: the corrupted prompts of activation patching")


def _build_needle(args: Mapping[str, Any], model: Any) -> Prompts:
    return labelled.needle(**{key: args[key] for key in ("batch", "length", "depth", "seed") if key in args})


def _check_file(args: Mapping[str, Any]) -> None:
    check_prompt_file(args["path"])


def _build_file(args: Mapping[str, Any], model: Any) -> Prompts:
    if "path" not in args:
        raise _missing_path()
    return from_file(args["path"])


def _missing_path() -> InputError:
    return InputError("probe 'file' needs a path, as in file(path=\"prompts.txt\")",
                      hint="the path is relative to the working directory")


PROBES: Registry[ProbeDefinition] = Registry("probe")
"""The probes, by name, in registration order (`probe_names()` sorts them)."""
for _probe in (
    ProbeDefinition(
        "repeated_random",
        "BOS + random tokens repeated; the standard induction probe",
        (
            ProbeArg("length", "int", 50, "random tokens before each repeat", minimum=1, maximum=MAX_PROMPT_TOKENS),
            ProbeArg("repeats", "int", 2, "times the random tokens appear", minimum=1, maximum=MAX_PROMPT_TOKENS),
            ProbeArg("batch", "int", 32, "number of prompts", minimum=1, maximum=MAX_PROMPTS),
            ProbeArg("seed", "int", 0, "random seed; the same seed gives the same tokens",
                     minimum=generators.SEED_RANGE[0], maximum=generators.SEED_RANGE[1]),
            ProbeArg("vocab_lo", "int", None, "first token id drawn (default: 1000, or the first id "
                     "after the special ones in a vocabulary under 2000 tokens)", minimum=0, maximum=MAX_TOKEN_ID - 1),
            ProbeArg("vocab_hi", "int", None, "one past the last token id drawn (default: 20000 or "
                     "the vocabulary size, whichever is smaller)", minimum=1, maximum=MAX_TOKEN_ID),
        ),
        _build_repeated_random,
        _check_repeated_random,
    ),
    ProbeDefinition(
        "natural",
        "English sentences and short paragraphs shipped with patternlang",
        (ProbeArg("batch", "int", None, "keep only the first `batch` prompts", minimum=1),),
        _build_natural,
        _check_natural,
    ),
    ProbeDefinition(
        "parsed_prose",
        "English prose paragraphs for the syntactic patterns (parsed with spaCy when a pattern reads the parse)",
        (ProbeArg("batch", "int", None, "keep only the first `batch` prompts", minimum=1),),
        _build_parsed_prose,
        _check_parsed_prose,
    ),
    ProbeDefinition(
        "ioi",
        "indirect-object prompts (Wang et al. 2022 templates, ABBA/BABA balanced), labelled IO, S1, S2, END",
        (
            ProbeArg("batch", "int", 64, "number of prompts", minimum=1, maximum=MAX_PROMPTS),
            ProbeArg("seed", "int", 0, "random seed for names, places and objects", minimum=0, maximum=2**32 - 1),
            ProbeArg("variant", "str", "ioi", "ioi: the prompts; abc: the same prompts with three other names "
                     "(the IOI paper's ABC dataset, the corrupted run of activation patching)"),
        ),
        _build_ioi,
        _check_ioi,
    ),
    ProbeDefinition(
        "needle",
        "a pass key (the needle) in filler text, asked for at the end; labelled needle, key, question, END",
        (
            ProbeArg("batch", "int", 16, "number of prompts", minimum=1, maximum=MAX_PROMPTS),
            ProbeArg("length", "int", 40, "filler sentences (about 5 tokens each)", minimum=0,
                     maximum=labelled.MAX_NEEDLE_FILLER),
            ProbeArg("depth", "int", 50, "where the needle sits, in percent of the filler", minimum=0, maximum=100),
            ProbeArg("seed", "int", 0, "random seed for the pass keys", minimum=0, maximum=2**32 - 1),
        ),
        _build_needle,
    ),
    ProbeDefinition(
        "file",
        "prompts read from a .txt, .jsonl or .json file (path relative to the working directory)",
        (ProbeArg("path", "str", None, "the file to read", required=True),),
        _build_file,
        _check_file,
    ),
):
    PROBES.register(_probe)
del _probe


def probe_names() -> list[str]:
    """The names of the probes, sorted."""
    return sorted(PROBES)


def validate_probe_args(name: str, args: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> None:
    """Check a probe name and its arguments without building any prompts (and without torch).

    Raises `UnknownNameError` (with a "did you mean") for an unknown probe or argument,
    `PatternTypeError` for a value of the wrong type, `InputError` for a value out of
    range, a missing required argument, sizes too large to build, crossed ranges, or a
    prompt file that cannot be read.

    >>> validate_probe_args("repeated_random", {"length": 64})
    >>> validate_probe_args("repeated_randm", {})
    Traceback (most recent call last):
    ...
    patternlang.errors.UnknownNameError: error: unknown probe 'repeated_randm'
    hint: did you mean 'repeated_random'?
    >>> validate_probe_args("repeated_random", {"vocab_lo": 10, "vocab_hi": 5})
    Traceback (most recent call last):
    ...
    patternlang.errors.InputError: error: probe 'repeated_random' draws token ids from [vocab_lo, vocab_hi), but vocab_lo=10 is not below vocab_hi=5
    hint: swap them, or make vocab_hi larger
    """
    definition = _definition(name)
    arg_dict = as_arg_dict(args)
    for arg_name, value in arg_dict.items():
        arg = definition.arg(arg_name)
        if arg is None:
            known = [a.name for a in definition.args]
            raise UnknownNameError(f"probe {name!r} has no argument {arg_name!r}",
                                   hint=did_you_mean(str(arg_name), known) or f"its arguments are {', '.join(known)}")
        _check_arg(name, arg, value)
    for arg in definition.args:
        if arg.required and arg.name not in arg_dict:
            if definition.name == "file":
                raise _missing_path()
            raise InputError(f"probe {name!r} needs the argument {arg.name!r}", hint=arg.doc)
    if definition.check is not None:
        definition.check(arg_dict)


def _check_arg(probe: str, arg: ProbeArg, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, _PYTHON_TYPES[arg.type]):
        raise PatternTypeError(f"argument {arg.name!r} of probe {probe!r} must be {_TYPE_WORDS[arg.type]}, "
                               f"not {describe_value(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"argument {arg.name!r} of probe {probe!r} must be a finite number, got {value}")
    if not isinstance(value, (int, float)):  # a string has no range
        return
    if arg.minimum is not None and value < arg.minimum:
        raise InputError(f"argument {arg.name!r} of probe {probe!r} must be at least {arg.minimum}, "
                         f"got {_shown(value)}")
    if arg.maximum is not None and value > arg.maximum:
        raise InputError(f"argument {arg.name!r} of probe {probe!r} must be at most {arg.maximum}, "
                         f"got {_shown(value)}")


def _shown(value: int | float) -> str:
    return show_int(value) if isinstance(value, int) else str(value)


def get_probe(name: str, **args: Any) -> Callable[..., Prompts]:
    """The probe `name` with its arguments checked and bound: call it with an optional model.

    >>> make = get_probe("repeated_random", length=8, batch=2)
    >>> prompts = make(model)   # doctest: +SKIP
    """
    validate_probe_args(name, args)
    definition = PROBES[name]

    def build(model: Any = None) -> Prompts:
        return definition.build(args, model)

    build.__name__ = name
    build.__doc__ = definition.doc
    return build


def build_probe(name: str, args: Mapping[str, Any] | Sequence[tuple[str, Any]] = (), model: Any = None) -> Prompts:
    """Check the arguments and build the prompts of a named probe (token ids not yet checked against `model`)."""
    arg_dict = as_arg_dict(args)
    validate_probe_args(name, arg_dict)
    return PROBES[name].build(arg_dict, model)


def _definition(name: str) -> ProbeDefinition:
    if not isinstance(name, str) or name not in PROBES:
        raise UnknownNameError(f"unknown probe {name!r}",
                               hint=did_you_mean(str(name), PROBES) or f"probes are {', '.join(probe_names())}")
    return PROBES[name]


def as_arg_dict(args: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Probe arguments as a dict, from a dict or from `(name, value)` pairs (a name given twice is an error)."""
    if isinstance(args, Mapping):
        return dict(args)
    if isinstance(args, (str, bytes)) or not hasattr(args, "__iter__"):
        raise InputError(f"probe arguments must be a dict or (name, value) pairs, not {type(args).__name__}")
    pairs = list(args)
    if not all(isinstance(pair, (tuple, list)) and len(pair) == 2 for pair in pairs):
        raise InputError("probe arguments must be (name, value) pairs")
    seen: set[Any] = set()
    for arg_name, _ in pairs:
        if arg_name in seen:
            raise InputError(f"probe argument {arg_name!r} is given twice")
        seen.add(arg_name)
    return dict(pairs)
