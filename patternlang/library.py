"""Finding and loading patterns: shipped names, `.pattern` files, YAML rule files, inline rules."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from .annotate.extras import check_extras
from .errors import ErrorGroup, InputError, PatternError, PatternFileError, UnknownNameError, did_you_mean
from .files import special_file_kind
from .pattern import Pattern
from .probes.registry import validate_probe_args
from .settings import ProbeSpec
from .syntax.parser import parse_probe
from .pipeline import (MAX_PATTERN_FILE_BYTES, PATTERN_SUFFIXES, YAML_SUFFIXES, Form, build,  # noqa: F401
                       clip_path as _clip, form_of as _form_of, read_pattern_file as _read, shipped_library)
from .syntax.problems import in_line_order


# ---- the shipped library (built by the pipeline: `pipeline.shipped_library`) ----------------------

def shipped_patterns() -> list[Pattern]:
    """Every pattern that ships with patternlang, in file order."""
    return list(shipped_library().values())


def shipped_names() -> list[str]:
    return list(shipped_library())


# ---- loading ------------------------------------------------------------------------------------
PatternSpec = Union[str, Path, Pattern]


def compile_rule(text: str, name: str | None = None) -> Pattern:
    """Compile an inline rule. It may refer to shipped patterns by name. Unless named, the
    pattern is called by its own text as `unparse` prints it (one space between words, the
    settings after the expression), which is how scores label it and which reads back as the
    same rule.

    >>> compile_rule("duplicate_token_head shift +1").matrix([5, 6, 5, 6]).tolist()[3]
    [0.0, 0.0, 1.0, 0.0]
    """
    pattern = build(text, "rule", name=name)[0]
    check_extras([pattern])
    return pattern


def load_patterns(spec: PatternSpec | Sequence[PatternSpec]) -> list[Pattern]:
    """Every pattern a spec names: a file gives all of its patterns; a list gives each item's.

    A pattern that needs an extra that is not installed (parser features: the syntax extra)
    is an error here, before any model is loaded."""
    patterns = _load_patterns(spec)
    check_extras(patterns)
    return patterns


def _load_patterns(spec: PatternSpec | Sequence[PatternSpec]) -> list[Pattern]:
    if isinstance(spec, (list, tuple)):
        return [p for item in spec for p in _load_patterns(item)]
    if isinstance(spec, Pattern):
        return [spec]
    if not isinstance(spec, (str, Path)):
        raise InputError(f"cannot read patterns from a {type(spec).__name__}",
                         hint="give a shipped name, a file, rule text, a Pattern, or a list of these")
    path = _as_file(spec)
    if path is not None:
        return list(_load_file(path))
    return [load_pattern(spec)]


def load_pattern(spec: PatternSpec) -> Pattern:
    """One pattern: a shipped name, a file with one pattern, `file.pattern:name`, or rule text.

    >>> load_pattern("induction_head").settings.probe.name
    'repeated_random'
    """
    pattern = _load_pattern(spec)
    check_extras([pattern])
    return pattern


def _load_pattern(spec: PatternSpec) -> Pattern:
    if isinstance(spec, Pattern):
        return spec
    text = str(spec)
    path = _as_file(spec)
    if path is not None:
        patterns = load_patterns(path)
        if len(patterns) != 1:
            names = ", ".join(p.name for p in patterns) or "none"
            raise PatternFileError(f"{path} holds {len(patterns)} patterns ({names})",
                                   hint=f"choose one with {path}:NAME")
        return patterns[0]
    file_part, sep, name = text.rpartition(":")
    # `heads.pattern:name`. Rule text has spaces, so a ".yaml:" inside a rule's string is no file,
    # unless a file of that name exists (paths may have spaces too).
    if (sep and Path(file_part).suffix in PATTERN_SUFFIXES + YAML_SUFFIXES
            and (not any(c.isspace() for c in text) or _is_file(Path(file_part)))):
        return named_pattern(Path(file_part), name)
    shipped = shipped_library()
    if text.strip() in shipped:
        return shipped[text.strip()]
    if text.strip() and _is_dir(Path(text)):
        raise PatternFileError(f"{text} is a directory, not a pattern",
                               hint="give a .pattern or YAML file, a shipped name or a rule")
    if re.fullmatch(r"[A-Za-z_]\w*", text.strip()):
        raise UnknownNameError(f"unknown pattern {text!r}", hint=did_you_mean(text, shipped)
                               or "run `patternlang list` to see the shipped patterns")
    if Path(text).suffix in PATTERN_SUFFIXES + YAML_SUFFIXES:
        raise PatternFileError(f"no such file: {text}")
    return build(text, "rule")[0]


def named_pattern(path: Path, name: str) -> Pattern:
    """The pattern `name` in the file at `path`."""
    patterns = {p.name: p for p in load_patterns(path)}
    if name not in patterns:
        raise UnknownNameError(f"{path} has no pattern {name!r}; it has " + ", ".join(patterns),
                               hint=did_you_mean(name, patterns))
    return patterns[name]


# ---- pattern arguments (the command line's) ------------------------------------------------------
def pattern_argument(text: str) -> str | Path | tuple[Path, str]:
    """One pattern argument as written on a command line: a shipped name or rule text as it is, a
    file as a `Path`, `file.pattern:NAME` as `(Path, NAME)`.

    A string with spaces reads as rule text, so files are handed over as `Path`s: that way
    `"my heads/x.pattern:induction"` is a file and a name, not a broken rule.

    >>> pattern_argument("induction_head")
    'induction_head'
    """
    suffixes = PATTERN_SUFFIXES + YAML_SUFFIXES
    if text in shipped_names():
        return text
    not_a_directory(text)
    if Path(text).suffix in suffixes:
        if not _is_file(Path(text)):  # checked here: the loader's own check fails on names too long for the OS
            raise PatternFileError(f"no such file: {text}")
        return Path(text)
    file_part, sep, name = text.rpartition(":")
    # A rule may hold ".pattern:" inside a string; it is a file only when it exists or has no spaces.
    if sep and Path(file_part).suffix in suffixes and (_is_file(Path(file_part)) or not any(c.isspace() for c in text)):
        not_a_directory(file_part)
        if not _is_file(Path(file_part)):
            raise PatternFileError(f"no such file: {file_part}")
        return Path(file_part), name
    return text


def load_pattern_argument(text: str) -> Pattern:
    """The one pattern a command-line argument names (see `pattern_argument`)."""
    spec = pattern_argument(text)
    return named_pattern(*spec) if isinstance(spec, tuple) else load_pattern(spec)


def load_pattern_arguments(texts: Sequence[str]) -> list[Pattern]:
    """Every pattern the command-line arguments name; a file gives all of its patterns."""
    found: list[Pattern] = []
    for text in texts:
        spec = pattern_argument(text)
        found += [named_pattern(*spec)] if isinstance(spec, tuple) else load_patterns(spec)
    return found


def pattern_in_file(text: str, name: str) -> Pattern:
    """`--pattern NAME` of the file `text` (an error when `text` names no file)."""
    spec = pattern_argument(text)
    if not isinstance(spec, Path):
        raise InputError(f"--pattern chooses a pattern from a file, and {text!r} is not a .pattern or YAML file",
                         hint="leave out --pattern, or name a file")
    return named_pattern(spec, name)


def not_a_directory(text: str) -> None:
    """A directory given where a pattern file is expected is an error that names the files in it."""
    try:
        is_directory = Path(text).is_dir()
    except (OSError, ValueError):  # a name too long for the file system is no directory either
        return
    if is_directory:
        raise InputError(f"{text!r} is a directory, not a pattern file",
                         hint=f"name the .pattern or YAML files in it, e.g. {str(Path(text) / '*.pattern')!r}")


def probe_argument(text: str) -> ProbeSpec:
    """`repeated_random` or `repeated_random(length=64, seed=1)`, read by the language's grammar
    and checked against the probe's arguments (no model, no torch)."""
    name, args = parse_probe(text)
    validate_probe_args(name, args)
    return ProbeSpec(name, args)


def _as_file(spec: PatternSpec) -> Path | None:
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith(PATTERN_SUFFIXES + YAML_SUFFIXES)):
        path = Path(spec)
        if _is_dir(path):
            raise PatternFileError(f"{path} is a directory, not a pattern file",
                                   hint="give the .pattern or YAML files inside it, e.g. " + f"{path}/*.pattern")
        if not _is_file(path):
            kind = _special_kind(path)
            if kind is not None:
                raise PatternFileError(f"{_clip(str(path))} is {kind}, not a pattern file",
                                       hint="give a .pattern or YAML file")
            raise PatternFileError(f"no such file: {_clip(str(path))}")
        if _form_of(path) is None:
            raise PatternFileError(f"{path} is not a pattern file",
                                   hint="pattern files end in .pattern, .yaml or .yml")
        return path
    return None


def pattern_files(path: str | Path) -> list[Path]:
    """A file as it is, or the pattern files in a directory (`.pattern`, `.yaml`, `.yml`; sorted by
    name; not its sub-directories). A directory without any is an error."""
    path = Path(path)
    if not _is_dir(path):
        return [path]
    try:
        files = sorted(child for child in path.iterdir() if _form_of(child) is not None and _is_file(child))
    except OSError as exc:
        raise PatternFileError(f"cannot read the directory {path}: {exc.strerror or exc}") from None
    if not files:
        raise PatternFileError(f"{path} holds no pattern files", hint="pattern files end in .pattern, .yaml or .yml")
    return files


def check_files(paths: Sequence[str | Path]) -> dict[str, list[Pattern]]:
    """Check files and return their patterns; every problem of every file is raised at once,
    file by file in the order given, and by line and column within each file."""
    found: dict[str, list[Pattern]] = {}
    errors: list[PatternError] = []
    for path in paths:
        try:
            found[str(path)] = load_patterns(Path(path))
        except ErrorGroup as group:
            errors.extend(in_line_order(group.errors))
        except PatternError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(errors)
    return found


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long for the OS, a NUL byte: no directory
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _special_kind(path: Path) -> str | None:
    """What a path that exists but is no regular file is (a FIFO, a device, ...), or None."""
    try:
        return special_file_kind(path.stat().st_mode)
    except (OSError, ValueError):
        return None


def _load_file(path: Path) -> tuple[Pattern, ...]:
    return build(_read(path), _form_of(path) or "pattern", str(path))
