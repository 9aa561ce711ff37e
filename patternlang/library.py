"""Finding and loading patterns: shipped names, `.pattern` files, YAML rule files, inline rules."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, Union

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .compiler import BatchFeatures, Program, compile_expr
from .errors import ErrorGroup, InputError, Location, PatternError, PatternFileError, UnknownNameError
from .resources import patterns_dir
from .settings import MEASURES, ProbeSpec, Settings
from .syntax import ast
from .syntax.checker import CheckedDefinition, Checker, did_you_mean
from .syntax.parser import parse_module, parse_rule

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
    if any(len(row) == 0 for row in rows):
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
        if tokens.dim() not in (1, 2):
            raise InputError(f"tokens must be [pos] or [batch, pos], got shape {tuple(tokens.shape)}")
        return ([tokens.tolist()], True) if tokens.dim() == 1 else (tokens.tolist(), False)
    tokens = list(tokens)
    if tokens and isinstance(tokens[0], (list, tuple, torch.Tensor)):
        return [[int(t) for t in row] for row in tokens], False
    return [[int(t) for t in tokens]], True


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
    if sep and Path(file_part).suffix in PATTERN_SUFFIXES + YAML_SUFFIXES:
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
        return _check_yaml(text, str(path), library)
    return Checker(library).check_module(parse_module(text, filename=str(path)))


# ---- YAML rule files ------------------------------------------------------------------------------
class _ProbeEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class _RuleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_]\w*$")
    rule: str = Field(min_length=1)
    description: str = ""
    measure: Literal[MEASURES] | None = None  # type: ignore[valid-type]
    exclude_bos: bool = False
    exclude_current: bool = False
    probe: str | _ProbeEntry | None = None
    normalize: bool = False


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patterns: list[_RuleEntry] = Field(min_length=1)


def _yaml_module(text: str, filename: str) -> ast.Module:
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = Location(mark.line + 1, mark.column + 1, text, filename) if mark else Location(1, 1, text, filename)
        raise PatternFileError(f"not valid YAML: {getattr(exc, 'problem', exc)}", loc) from None
    if isinstance(data, list):  # a bare list of rules is accepted too
        data, root = {"patterns": data}, yaml.MappingNode("tag:yaml.org,2002:map", [
            (yaml.ScalarNode("tag:yaml.org,2002:str", "patterns"), root)])
    try:
        parsed = _RuleFile.model_validate(data)
    except ValidationError as exc:
        errors = []
        for problem in exc.errors():
            field_path = ".".join(str(part) for part in problem["loc"])
            node = _yaml_node(root, problem["loc"])
            mark = node.start_mark if node is not None and node.start_mark else None
            loc = Location(mark.line + 1, mark.column + 1, text, filename) if mark else Location(1, 1, text, filename)
            errors.append(PatternFileError(f"{field_path}: {problem['msg']}", loc))
        raise (errors[0] if len(errors) == 1 else ErrorGroup(errors)) from None

    definitions = []
    problems: list[PatternError] = []
    for index, entry in enumerate(parsed.patterns):
        at = _YamlPlace(root, ("patterns", index), text, filename)
        try:
            expr, settings = parse_rule(entry.rule, filename=filename)
        except PatternError as error:
            problems.append(at.move_into_rule(error, entry.rule))
            continue
        definitions.append(ast.Definition(entry.name, entry.description.strip(), expr,
                                          settings + _yaml_settings(entry, at), source=entry.rule,
                                          loc=at.field("name")))
    if problems:
        raise problems[0] if len(problems) == 1 else ErrorGroup(problems)
    return ast.Module(tuple(definitions), filename)


def _check_yaml(text: str, filename: str, library: dict[str, CheckedDefinition]) -> list[CheckedDefinition]:
    module = _yaml_module(text, filename)
    try:
        return Checker(library).check_module(module)
    except PatternError as error:
        # The checker saw each rule on its own; put its findings back in their place in the file.
        root = yaml.compose(text)
        if not isinstance(root, yaml.MappingNode):
            root = yaml.MappingNode("tag:yaml.org,2002:map", [(yaml.ScalarNode("tag:yaml.org,2002:str", "patterns"), root)])
        places = {d.source: _YamlPlace(root, ("patterns", i), text, filename) for i, d in enumerate(module.definitions)}
        for problem in error.errors if isinstance(error, ErrorGroup) else [error]:
            loc = problem.location
            if loc is not None and loc.source in places and loc.source != text:
                places[loc.source].move_into_rule(problem, loc.source)
        raise


class _YamlPlace:
    """One entry of a YAML rule file, for pointing errors at the right line and column."""

    def __init__(self, root, path: tuple, text: str, filename: str):
        self.node = _yaml_node(root, path)
        self.text = text
        self.filename = filename

    def field(self, name: str) -> Location | None:
        if not isinstance(self.node, yaml.MappingNode):
            return None
        for key, _ in self.node.value:
            if key.value == name:
                return self._location(key.start_mark.index)
        return None

    def _location(self, offset: int, end: int | None = None) -> Location:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        end_column = None
        if end is not None and self.text.count("\n", 0, end) + 1 == line:
            end_column = column + (end - offset)
        return Location(line, column, self.text, self.filename, end_column=end_column)

    def move_into_rule(self, error: PatternError, rule: str) -> PatternError:
        value = _yaml_node(self.node, ("rule",)) if isinstance(self.node, yaml.MappingNode) else None
        loc = error.location
        if loc is None or value is None or value.start_mark is None:
            return error
        offsets = _value_offsets(rule, self.text, value.start_mark.index, value.end_mark.index)
        lines = rule.splitlines(keepends=True) or [""]
        start = sum(len(l) for l in lines[: loc.line - 1]) + loc.column - 1
        width = (loc.end_column - loc.column) if loc.end_column else 1
        if not offsets:
            return error
        first = offsets[min(max(start, 0), len(offsets) - 1)]
        error.location = self._location(first, first + max(width, 1))
        return error


def _value_offsets(value: str, text: str, start: int, end: int) -> list[int]:
    """File offset of each character of a YAML scalar's value: quotes, indentation and folded
    line breaks in the file are skipped over, so the two can be walked side by side."""
    offsets, j = [], start
    for char in value:
        while j < end and text[j] != char and not (char.isspace() and text[j].isspace()):
            j += 1
        offsets.append(min(j, max(end - 1, start)))
        j = min(j + 1, end)
    return offsets


def _yaml_settings(entry: _RuleEntry, at: _YamlPlace) -> tuple[ast.Setting, ...]:
    settings: list[ast.Setting] = []
    if entry.measure:
        settings.append(ast.MeasureSetting(entry.measure, loc=at.field("measure")))
    if entry.exclude_bos:
        settings.append(ast.ExcludeSetting("bos", loc=at.field("exclude_bos")))
    if entry.exclude_current:
        settings.append(ast.ExcludeSetting("current", loc=at.field("exclude_current")))
    if isinstance(entry.probe, str):
        settings.append(ast.ProbeSetting(entry.probe, (), loc=at.field("probe")))
    elif entry.probe is not None:
        settings.append(ast.ProbeSetting(entry.probe.name, tuple(sorted((entry.probe.model_extra or {}).items())),
                                         loc=at.field("probe")))
    if entry.normalize:
        settings.append(ast.NormalizeSetting(loc=at.field("normalize")))
    return tuple(settings)


def _yaml_node(root, path) -> yaml.Node | None:
    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
        if node is None:
            return None
    return node
