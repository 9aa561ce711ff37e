"""YAML rule files: the same rules as `.pattern` files, one entry per pattern, validated
with pydantic. Every error points at its line and column in the YAML file: schema errors at the
field, rule errors inside the `rule:` value (folded and literal blocks included). Duplicate keys,
deep nesting and alias bombs are errors too (see `_RuleFileLoader`).

    patterns:
      - name: prev
        rule: attend k where k == q - 1
        description: previous token
        probe: {name: repeated_random, length: 32}
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ErrorGroup, Location, PatternError, PatternFileError
from .syntax import ast
from .syntax.parser import KEYWORDS, Place, parse_probe, parse_rule


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

    @field_validator("name")
    @classmethod
    def _not_a_keyword(cls, name: str) -> str:
        # As in `.pattern` files: a pattern named `where` could never be referred to.
        if name in KEYWORDS:
            raise ValueError(f"{name!r} is a keyword and cannot name a pattern")
        return name


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patterns: list[_RuleEntry] = Field(min_length=1)


# Bounds that keep a hostile file from hanging or exhausting memory. A rule file needs four levels
# (patterns -> list -> entry -> probe); aliases (`*name`) are counted as often as they are used,
# so an alias bomb ("billion laughs") is refused before anything is built from it.
MAX_YAML_CHARS = 500_000
MAX_YAML_DEPTH = 32
MAX_YAML_VALUES = 200_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


def _location(text: str, filename: str | None, offset: int, end: int | None = None) -> Location:
    """The place of a character offset, with lines as the parser and `Location` count them (PyYAML's
    own marks also break lines at U+0085, U+2028 and U+2029)."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    end_column = None
    if end is not None and text.count("\n", 0, end) + 1 == line:
        end_column = column + (end - offset)
    return Location(line, column, text, filename, end_column=end_column)


def _location_at(mark: Any, text: str = "", filename: str | None = None) -> Location:  # a yaml Mark
    if mark is None:
        return Location(1, 1, text, filename)
    return _location(text or mark.buffer or "", filename, mark.index)


class _YamlProblem(yaml.YAMLError):
    """A problem found while reading the YAML, with the mark it is at and a hint."""

    def __init__(self, message: str, mark: Any, hint: str | None = None):
        super().__init__(message)
        self.message, self.mark, self.hint = message, mark, hint


class _RuleFileLoader(yaml.SafeLoader):
    """PyYAML's safe loader that counts nesting while composing and refuses duplicate keys while
    constructing mappings (plain PyYAML keeps the last of two equal keys, silently)."""

    def __init__(self, text: str):
        super().__init__(text)
        self._depth = 0
        self.root: yaml.Node | None = None

    def compose_node(self, parent: Any, index: Any) -> Any:
        # PyYAML composes recursively: refuse deep nesting before Python's stack runs out.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _YamlProblem(f"the YAML is nested too deeply (more than {MAX_YAML_DEPTH} levels)",
                                   self.peek_event().start_mark,
                                   hint="a rule file is a list of flat entries under `patterns:`")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if earlier is not key_node:
                    raise _YamlProblem(*_duplicate_key(key, earlier, key_node, node is self.root))
        return super().construct_mapping(node, deep=deep)


def _duplicate_key(key: Any, earlier: Any, again: Any, at_top: bool) -> tuple[str, Any, str]:
    line = _location_at(earlier.start_mark).line
    if at_top and key == "patterns":
        return (f"a second `patterns:` key (the first is on line {line})", again.start_mark,
                "put every entry in one `patterns:` list: YAML would keep only the last one")
    where = "at the top level" if at_top else "in this entry"
    return (f"the key {key!r} is given twice {where} (first on line {line})", again.start_mark,
            "keep one of them: YAML would silently keep only the last")


def _check_expanded_size(root: yaml.Node) -> None:
    """Refuse documents whose aliases expand to too much, or refer to themselves. Each distinct
    node is visited once (sizes are added up bottom-up), so an alias bomb costs no more to check
    than it takes to write."""
    sizes: dict[int, tuple[int, int, int]] = {}  # id(node) -> values, characters, depth (aliases expanded)
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            on_path.discard(key)
            values = 1 + sum(sizes[id(child)][0] for child in children)
            chars = (len(node.value) if isinstance(node, yaml.ScalarNode) else 0) + sum(
                sizes[id(child)][1] for child in children)
            depth = 1 + max((sizes[id(child)][2] for child in children), default=0)
            if values > MAX_YAML_VALUES or chars > MAX_YAML_CHARS:
                raise _YamlProblem(f"the YAML expands to more than {MAX_YAML_VALUES} values or {MAX_YAML_CHARS} "
                                   "characters", node.start_mark,
                                   hint="aliases (`*name`) repeat what their anchor holds: use fewer of them")
            if depth > MAX_YAML_DEPTH:
                raise _YamlProblem(f"the YAML is nested too deeply (more than {MAX_YAML_DEPTH} levels)",
                                   node.start_mark, hint="aliases (`*name`) nest their anchor where they stand")
            sizes[key] = (values, chars, depth)
        elif key in on_path:  # a node inside itself, through an alias
            raise _YamlProblem("an alias (`*name`) refers to its own anchor, which never ends", node.start_mark)
        elif key not in sizes:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        items: list[yaml.Node] = node.value
        return items
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _read_yaml(text: str, filename: str) -> tuple[object, yaml.Node | None]:
    """The data of a YAML rule file and its node tree (for lines and columns), both from one pass."""

    def at(mark: Any) -> Location:
        return _location_at(mark, text, filename)

    if len(text) > MAX_YAML_CHARS:
        raise PatternFileError(f"the file is too long ({len(text)} characters, at most {MAX_YAML_CHARS})",
                               Location(1, 1, text, filename), hint="split it into several rule files")
    loader = None
    try:
        loader = _RuleFileLoader(text)  # its reader already refuses control characters
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_expanded_size(root)
        loader.root = root
        return loader.construct_document(root), root
    except _YamlProblem as problem:
        raise PatternFileError(problem.message, at(problem.mark), problem.hint) from None
    except yaml.MarkedYAMLError as exc:
        raise PatternFileError(f"not valid YAML: {exc.problem}", at(exc.problem_mark or exc.context_mark)) from None
    except yaml.reader.ReaderError as exc:
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        raise PatternFileError(f"not valid YAML: the character {what} is not allowed ({exc.reason})",
                               _location(text, filename, exc.position)) from None
    except yaml.YAMLError as exc:
        raise PatternFileError(f"not valid YAML: {exc}", Location(1, 1, text, filename)) from None
    except RecursionError:  # a safety net: the depth count above should make this unreachable
        raise PatternFileError("the YAML is nested too deeply", Location(1, 1, text, filename)) from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_module(text: str, filename: str) -> ast.Module:
    data, root = _read_yaml(text, filename)
    if data is None:
        raise PatternFileError("the file holds no rules: a YAML rule file is a `patterns:` list of entries "
                               "with `name` and `rule`", Location(1, 1, text, filename))
    if isinstance(data, list):  # a bare list of rules is accepted too
        data, root = {"patterns": data}, yaml.MappingNode("tag:yaml.org,2002:map", [
            (yaml.ScalarNode("tag:yaml.org,2002:str", "patterns"), root)])
    if not isinstance(data, dict):
        mark = root.start_mark if root is not None else None
        raise PatternFileError(f"a YAML rule file is a mapping with a `patterns:` list (or a bare list of "
                               f"entries), not a {type(data).__name__}",
                               _location_at(mark, text, filename) if mark else None)
    try:
        parsed = _RuleFile.model_validate(data)
    except ValidationError as exc:
        errors = _schema_errors(exc, root, text, filename)
        raise (errors[0] if len(errors) == 1 else ErrorGroup(errors)) from None

    definitions = []
    problems: list[PatternError] = []
    for index, entry in enumerate(parsed.patterns):
        at = _YamlPlace(root, ("patterns", index), text, filename)
        try:
            expr, settings = parse_rule(entry.rule, filename=filename, place=at.rule_place(entry.rule))
            settings += _yaml_settings(entry, at)
        except PatternError as error:
            problems.append(error)
            continue
        definitions.append(ast.Definition(entry.name, entry.description.strip(), expr, settings, source=entry.rule,
                                          loc=at.field("name")))
    if problems:
        raise problems[0] if len(problems) == 1 else ErrorGroup(problems)
    return ast.Module(tuple(definitions), filename)


def yaml_module(text: str, filename: str) -> ast.Module:
    """Read and validate a YAML rule file: its definitions as a Module, for the pipeline to check."""
    return _yaml_module(text, filename)


class _YamlPlace:
    """One entry of a YAML rule file, for pointing errors at the right line and column."""

    def __init__(self, root: Any, path: tuple[Any, ...], text: str, filename: str):
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
        return _location(self.text, self.filename, offset, end)

    def rule_place(self, rule: str) -> Place | None:
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


def _schema_errors(exc: ValidationError, root: Any, text: str, filename: str) -> list[PatternError]:
    """pydantic's problems as errors at their field, with a did-you-mean for a misspelt field name."""
    problems = exc.errors()
    # A misspelt field is both an unknown field and a missing one: report it once, as the former.
    suggested = {}
    for problem in problems:
        if problem["type"] == "extra_forbidden":
            *parent, field = problem["loc"]
            close = _closest_field(str(field), _model_at(parent))
            if close:
                suggested[tuple(parent) + (close,)] = field
    errors: list[PatternError] = []
    seen = set()
    for problem in problems:
        path, message = _without_union_branch(problem["loc"], problem["msg"])
        if (problem["type"] == "missing" and path in suggested) or path is None or (path, message) in seen:
            continue
        seen.add((path, message))
        hint = None
        # A missing field is pointed at the entry that lacks it.
        node = next((found for cut in range(len(path), -1, -1)
                     if (found := _yaml_node(root, path[:cut])) is not None), None)
        if problem["type"] == "extra_forbidden":
            *parent, field = path
            fields = list(_model_at(parent).model_fields)
            close = _closest_field(str(field), _model_at(parent))
            hint = f"did you mean {close!r}?" if close else "the fields are " + ", ".join(fields)
            node = _yaml_key_node(root, path) or node
        mark = node.start_mark if node is not None and node.start_mark else None
        loc = _location_at(mark, text, filename)
        field_path = ".".join(str(part) for part in path)
        errors.append(PatternFileError(f"{field_path}: {message}", loc, hint))
    return errors


def _without_union_branch(path: tuple[Any, ...], message: str) -> tuple[tuple[Any, ...] | None, str]:
    """`probe` is a name or a mapping: pydantic reports a problem once per branch, named after
    internal classes (`probe.str`, `probe._ProbeEntry`). Say it once, in the user's words."""
    if "probe" not in path[:-1] or path[path.index("probe") + 1] not in ("str", "_ProbeEntry"):
        return path, message
    at = path.index("probe")
    branch, rest = path[at + 1], path[at + 2:]
    if rest:  # a problem inside the mapping (a missing `name`, a key that is not text)
        return path[:at + 1] + rest, message
    if branch == "str":
        return None, message  # reported once, by the other branch
    return path[:at + 1], "a probe is a name (`probe: natural`) or a mapping with `name` and its arguments"


def _model_at(parent_path: Sequence[Any]) -> type[BaseModel]:
    return _RuleFile if not parent_path else _RuleEntry


def _closest_field(word: str, model: type[BaseModel]) -> str | None:
    close = difflib.get_close_matches(word, list(model.model_fields), n=1, cutoff=0.6)
    return close[0] if close else None


def _yaml_key_node(root: Any, path: tuple[Any, ...]) -> yaml.Node | None:
    """The key node of the last part of `path` (where an unknown field is written)."""
    parent = _yaml_node(root, path[:-1]) if path[:-1] else root
    if isinstance(parent, yaml.MappingNode):
        return next((key for key, _ in parent.value if key.value in (path[-1], str(path[-1]))), None)
    return None


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
        # `probe: repeated_random(length=8)` reads as in a .pattern file or --probe
        try:
            name, args = parse_probe(entry.probe)
        except PatternError as error:
            raise PatternFileError(f"probe: {error.message}", at.field("probe"), hint=error.hint) from None
        settings.append(ast.ProbeSetting(name, args, loc=at.field("probe")))
    elif entry.probe is not None:
        args = tuple(sorted((entry.probe.model_extra or {}).items()))
        for key, value in args:  # probe arguments are numbers or strings, as in a rule
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise PatternFileError(f"probe argument {key!r} must be a number or a string, not "
                                       f"{type(value).__name__} {value!r}"[:300], at.field("probe"))
        settings.append(ast.ProbeSetting(entry.probe.name, args, loc=at.field("probe")))
    if entry.normalize:
        settings.append(ast.NormalizeSetting(loc=at.field("normalize")))
    return tuple(settings)


def _yaml_node(root: Any, path: Sequence[Any]) -> yaml.Node | None:
    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):  # a key written as a number still finds its node
            node = next((value for key, value in node.value if key.value in (part, str(part))), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
        if node is None:
            return None
    return node
