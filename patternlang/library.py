"""Finding and loading patterns: shipped names, `.pattern` files, YAML rule files, inline rules."""

from __future__ import annotations

import operator
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Union

import torch

from .compiler import BatchFeatures, Program, compile_expr
from .errors import ErrorGroup, InputError, PatternError, PatternFileError, UnknownNameError, did_you_mean
from .resources import patterns_dir
from .settings import Settings
from .syntax import ast
from .syntax.checker import CheckedDefinition, Checker
from .syntax.parser import parse_module, parse_rule
from .yaml_rules import check_yaml

PATTERN_SUFFIXES = (".pattern",)
YAML_SUFFIXES = (".yaml", ".yml")
_SPECIAL_TEXT = re.compile(r"^(<\|.*\|>|<s>|</s>|<bos>|<eos>|<pad>|<unk>|\[CLS\]|\[SEP\]|\[PAD\])$")


@dataclass(frozen=True, eq=False)
class Pattern:
    """A named, checked pattern: its source, settings and compiled Program.

    >>> p = compile_rule("attend k where k == q - 1")
    >>> p.matrix([7, 8, 9]).tolist()
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """

    name: str
    doc: str
    source: str
    settings: Settings
    expr: ast.PExpr = field(repr=False)
    filename: str | None = None

    @cached_property
    def program(self) -> Program:
        expr = ast.Normalize(self.expr) if self.settings.normalize else self.expr
        return compile_expr(expr)

    def evaluate(self, features: BatchFeatures) -> torch.Tensor:
        """Detection tensor on a batch: [batch, query_pos, key_pos], float32."""
        return self.program(features)

    def matrix(self, tokens: Any = None, str_tokens: Sequence[str] | Sequence[Sequence[str]] | None = None, *,
               special_ids: Collection[int] | None = None) -> torch.Tensor:
        """The detection matrix for one prompt [q, k] or a batch [batch, q, k].

        `tokens`: token ids (a list, a 1-D or 2-D tensor, or a list of lists); `str_tokens`: the
        tokens' text, needed by rules that read `str`, `word` or `start`. With only `str_tokens`,
        equal strings get equal ids.
        """
        features, single = _features_for(tokens, str_tokens, special_ids)
        result = self.evaluate(features)
        return result[0] if single else result

    @property
    def description(self) -> str:
        """The docstring's first paragraph, on one line."""
        first = self.doc.strip().split("\n\n")[0]
        return " ".join(line.strip() for line in first.splitlines())

    def __repr__(self) -> str:
        where = f" from {self.filename}" if self.filename else ""
        return f"<Pattern {self.name}{where}: {self.source.strip().splitlines()[-1] if self.source else ''}>"


def _features_for(tokens, str_tokens, special_ids) -> tuple[BatchFeatures, bool]:
    if tokens is None and str_tokens is None:
        raise InputError("give token ids, token strings, or both")
    str_rows = None
    if str_tokens is not None:
        one_prompt = len(str_tokens) == 0 or isinstance(str_tokens[0], str)
        str_rows = [list(str_tokens)] if one_prompt else [list(row) for row in str_tokens]
    if tokens is None:
        vocab: dict[str, int] = {}
        rows = [[vocab.setdefault(s, len(vocab)) for s in row] for row in str_rows]
        single = one_prompt
    else:
        rows, single = _token_rows(tokens)
    if not rows or any(len(row) == 0 for row in rows):
        raise InputError("a prompt has no tokens")
    strings = None
    if str_rows is not None:
        if len(str_rows) != len(rows) or any(len(s) != len(r) for s, r in zip(str_rows, rows)):
            raise InputError(f"str_tokens do not match tokens: {[len(s) for s in str_rows]} strings for "
                             f"{[len(r) for r in rows]} tokens")
        strings = {}
        for row, texts in zip(rows, str_rows):
            for token, text in zip(row, texts):
                if strings.setdefault(token, text) != text:
                    raise InputError(f"token id {token} has two texts: {strings[token]!r} and {text!r}")
        if special_ids is None:
            special_ids = {t for t, s in strings.items() if _SPECIAL_TEXT.match(s)}
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    return BatchFeatures.build(ids, mask, strings=strings, special_ids=special_ids or ()), single


def _token_rows(tokens) -> tuple[list[list[int]], bool]:
    """Token ids as rows of ints, and whether they were one prompt."""
    if isinstance(tokens, torch.Tensor):
        if tokens.dim() not in (1, 2) or tokens.is_floating_point():
            raise InputError(f"tokens must be integer ids [pos] or [batch, pos], got a {tokens.dtype} tensor "
                             f"of shape {tuple(tokens.shape)}")
        return ([tokens.tolist()], True) if tokens.dim() == 1 else (tokens.tolist(), False)
    if isinstance(tokens, (str, bytes)) or not hasattr(tokens, "__iter__"):
        raise InputError(f"tokens must be a list of token ids, not {type(tokens).__name__}",
                         hint="for token texts, pass str_tokens=[...]")
    tokens = list(tokens)
    one_prompt = not (tokens and isinstance(tokens[0], (list, tuple, torch.Tensor)))
    rows = [tokens] if one_prompt else [list(row) for row in tokens]
    for row in rows:
        for token in row:
            if isinstance(token, str):
                raise InputError(f"token ids must be integers, found the text {token!r}",
                                 hint="for token texts, pass str_tokens=[...]")
            try:
                operator.index(token)
            except TypeError:
                raise InputError(f"token ids must be integers, found {token!r}") from None
    return [[operator.index(t) for t in row] for row in rows], one_prompt


def _to_pattern(checked: CheckedDefinition) -> Pattern:
    return Pattern(checked.name, checked.doc, checked.source, checked.settings, checked.expr, checked.filename)


# ---- the shipped library ----------------------------------------------------------------------
@lru_cache(maxsize=1)
def _shipped() -> dict[str, Pattern]:
    patterns: dict[str, Pattern] = {}
    checked: dict[str, CheckedDefinition] = {}
    for path in sorted(patterns_dir().iterdir()):
        if path.suffix in PATTERN_SUFFIXES + YAML_SUFFIXES:
            for definition in _check_file(path, checked):
                checked[definition.name] = definition
                patterns[definition.name] = _to_pattern(definition)
    return patterns


def _shipped_definitions() -> dict[str, CheckedDefinition]:
    return {name: CheckedDefinition(p.name, p.doc, p.expr, p.settings, p.source, p.filename)
            for name, p in _shipped().items()}


def shipped_patterns() -> list[Pattern]:
    """Every pattern that ships with patternlang, in file order."""
    return list(_shipped().values())


def shipped_names() -> list[str]:
    return list(_shipped())


# ---- loading ------------------------------------------------------------------------------------
PatternSpec = Union[str, Path, Pattern]


def compile_rule(text: str, name: str | None = None) -> Pattern:
    """Compile an inline rule. It may refer to shipped patterns by name. Unless named, the
    pattern is called by its own text (spaces collapsed), which is how scores label it.

    >>> compile_rule("duplicate_token_head shift +1").matrix([5, 6, 5, 6]).tolist()[3]
    [0.0, 0.0, 1.0, 0.0]
    """
    expr, settings = parse_rule(text)
    checked = Checker(_shipped_definitions()).check_rule(expr, settings, name=name or " ".join(text.split()),
                                                         source=text)
    return _to_pattern(checked)


def load_patterns(spec: PatternSpec | Sequence[PatternSpec]) -> list[Pattern]:
    """Every pattern a spec names: a file gives all of its patterns; a list gives each item's."""
    if isinstance(spec, (list, tuple)):
        return [p for item in spec for p in load_patterns(item)]
    if isinstance(spec, Pattern):
        return [spec]
    path = _as_file(spec)
    if path is not None:
        return [_to_pattern(d) for d in _check_file(path, _shipped_definitions())]
    return [load_pattern(spec)]


def load_pattern(spec: PatternSpec) -> Pattern:
    """One pattern: a shipped name, a file with one pattern, `file.pattern:name`, or rule text.

    >>> load_pattern("induction_head").settings.probe.name
    'repeated_random'
    """
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
    # `heads.pattern:name`; rule text always has spaces, so a ".yaml:" inside a rule's string is no file.
    if sep and not any(c.isspace() for c in text) and Path(file_part).suffix in PATTERN_SUFFIXES + YAML_SUFFIXES:
        patterns = {p.name: p for p in load_patterns(Path(file_part))}
        if name not in patterns:
            raise UnknownNameError(f"{file_part} has no pattern {name!r}; it has " + ", ".join(patterns),
                                   hint=did_you_mean(name, patterns))
        return patterns[name]
    shipped = _shipped()
    if text in shipped:
        return shipped[text]
    if re.fullmatch(r"[A-Za-z_]\w*", text.strip()):
        raise UnknownNameError(f"unknown pattern {text!r}", hint=did_you_mean(text, shipped)
                               or "run `patternlang list` to see the shipped patterns")
    if Path(text).suffix in PATTERN_SUFFIXES + YAML_SUFFIXES:
        raise PatternFileError(f"no such file: {text}")
    return compile_rule(text)


def _as_file(spec: PatternSpec) -> Path | None:
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith(PATTERN_SUFFIXES + YAML_SUFFIXES)):
        path = Path(spec)
        if not path.is_file():
            raise PatternFileError(f"no such file: {path}")
        return path
    return None


def check_files(paths: Sequence[str | Path]) -> dict[str, list[Pattern]]:
    """Check files and return their patterns; every problem of every file is raised at once."""
    found: dict[str, list[Pattern]] = {}
    errors: list[PatternError] = []
    for path in paths:
        try:
            found[str(path)] = load_patterns(Path(path))
        except ErrorGroup as group:
            errors.extend(group.errors)
        except PatternError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorGroup(errors)
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternFileError(f"cannot read {path}: {exc}") from None


def _check_file(path: Path, library: dict[str, CheckedDefinition]) -> list[CheckedDefinition]:
    text = _read(path)
    if path.suffix in YAML_SUFFIXES:
        return check_yaml(text, str(path), library)
    return Checker(library).check_module(parse_module(text, filename=str(path)))
