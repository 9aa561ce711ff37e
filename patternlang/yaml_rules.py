"""YAML rule files: the same rules as `.pattern` files, one entry per pattern, validated
with pydantic. Every error points at its line and column in the YAML file: schema errors at the
field, rule errors inside the `rule:` value (folded and literal blocks included).

    patterns:
      - name: prev
        rule: attend k where k == q - 1
        description: previous token
        probe: {name: repeated_random, length: 32}
"""

from __future__ import annotations


import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ErrorGroup, Location, PatternError, PatternFileError
from .syntax import ast
from .syntax.parser import parse_rule


class _ProbeEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class _RuleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_]\w*$")
    rule: str = Field(min_length=1)
    description: str = ""
    measure: str | None = None  # checked by the settings pass, against the measure registry
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
            expr, settings = parse_rule(entry.rule, filename=filename, place=at.rule_place(entry.rule))
        except PatternError as error:
            problems.append(error)
            continue
        definitions.append(ast.Definition(entry.name, entry.description.strip(), expr,
                                          settings + _yaml_settings(entry, at), source=entry.rule,
                                          loc=at.field("name")))
    if problems:
        raise problems[0] if len(problems) == 1 else ErrorGroup(problems)
    return ast.Module(tuple(definitions), filename)


def yaml_module(text: str, filename: str) -> ast.Module:
    """Read and validate a YAML rule file: its definitions as a Module, for the pipeline to check."""
    return _yaml_module(text, filename)


def check_yaml(text: str, filename: str, library: dict | None = None) -> list:
    """Read, validate, check and compile a YAML rule file against a library of known patterns."""
    from .pipeline import build

    return list(build(text, "yaml", filename, library=library))


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

    def rule_place(self, rule: str):
        """Where a (line, column) of the `rule:` value lies in the file (see parser.Place)."""
        value = _yaml_node(self.node, ("rule",)) if isinstance(self.node, yaml.MappingNode) else None
        if value is None or value.start_mark is None:
            return None
        offsets = _value_offsets(rule, self.text, value.start_mark.index, value.end_mark.index)
        line_starts = [0]
        for line in rule.splitlines(keepends=True):
            line_starts.append(line_starts[-1] + len(line))

        def place(line: int, column: int, end: int | None = None) -> Location:
            if not offsets:
                return self._location(value.start_mark.index)
            index = line_starts[min(line, len(line_starts)) - 1] + column - 1
            first = offsets[min(max(index, 0), len(offsets) - 1)]
            return self._location(first, first + max((end or column + 1) - column, 1))
        return place


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
