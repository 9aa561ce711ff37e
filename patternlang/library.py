"""Finding and loading patterns: shipped names, `.pattern` files, YAML rule files, inline rules."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from .annotate.extras import check_extras
from .errors import ErrorGroup, PatternError, PatternFileError, UnknownNameError, did_you_mean
from .files import special_file_kind
from .pattern import Pattern
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
        patterns = {p.name: p for p in load_patterns(Path(file_part))}
        if name not in patterns:
            raise UnknownNameError(f"{file_part} has no pattern {name!r}; it has " + ", ".join(patterns),
                                   hint=did_you_mean(name, patterns))
        return patterns[name]
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
