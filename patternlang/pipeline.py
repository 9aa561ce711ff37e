"""The recipe from text to compiled patterns: parse -> link -> kinds -> settings -> compile.

`.pattern` files, YAML rule files and inline rules all come in through `build`; each stage is
a public function of its own module that a user can run alone:

    module = parse(text, "pattern")                    # syntax/parser.py, yaml_rules.py
    patterns = check_module(module, library)           # link, kinds, settings, compile

Every problem of a file is collected across the passes and raised together. `build` is cached
by the source text, so loading a pattern twice compiles it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from .compiler import compile_expr
from .errors import PatternError, PatternFileError
from .pattern import Pattern
from .resources import patterns_dir
from .settings import Settings
from .syntax import ast
from .syntax.kinds import check_kinds
from .syntax.link import LinkTarget, link
from .syntax.parser import parse_module, parse_rule
from .syntax.problems import Problems
from .syntax.settings_pass import check_settings
from .syntax.unparse import rule_text

Form = Literal["pattern", "yaml", "rule"]
PATTERN_SUFFIXES = (".pattern",)
YAML_SUFFIXES = (".yaml", ".yml")
MAX_PATTERN_FILE_BYTES = 16 * 2**20


def parse(text: str, form: Form, filename: str | None = None, *, name: str | None = None) -> ast.Module:
    """Text -> AST, for a `.pattern` file, a YAML rule file or one inline rule.

    An inline rule becomes a module of one definition, named `name` or else by its own text
    as `unparse` writes it, so the name reads back as the same rule."""
    if form == "pattern":
        return parse_module(text, filename=filename)
    if form == "yaml":
        from .yaml_rules import yaml_module  # deliberate lazy load: pydantic and PyYAML, only for YAML files

        return yaml_module(text, filename or "<yaml>")
    expr, settings = parse_rule(text, filename=filename)
    definition = ast.Definition(name or rule_text(expr, settings), "", expr, settings, source=text,
                                loc=getattr(expr, "loc", None))
    return ast.Module((definition,), filename)


def check_module(module: ast.Module, library: Mapping[str, Pattern] | None = None, *,
                 inline: bool = False) -> list[Pattern]:
    """Link, check and compile the definitions of one module against a library of known patterns.

    Names defined in the module come first, then the library's (by default the shipped
    patterns; pass `{}` for none); an `inline` rule's own name is no name to refer to (the rule
    `induction_head` is the shipped pattern). Every problem of every pass is raised at once (an
    `ErrorGroup` when there are several)."""
    if library is None:
        library = shipped_library()
    problems = Problems()
    targets = {name: LinkTarget(p.expr, p.settings.normalize) for name, p in library.items()}
    to_link = module
    if inline:  # names no rule can write, so nothing refers to the rule itself
        to_link = ast.Module(tuple(d.replace(name=f"<rule {i}>") for i, d in enumerate(module.definitions)),
                             module.filename)
    normalized = {d.name: any(isinstance(s, ast.NormalizeSetting) for s in d.settings) for d in to_link.definitions}
    by_link_name = link(to_link, targets, problems, normalized)
    linked = {d.name: by_link_name.get(t.name) for d, t in zip(module.definitions, to_link.definitions)}
    settings: list[Settings] = []
    for definition in module.definitions:
        problems.pattern = None if inline else definition.name  # an inline rule is its own name
        check_kinds(definition.expr, problems)
        settings.append(check_settings(definition.settings, problems))
    problems.pattern = None
    problems.raise_if_any()
    patterns = []
    for definition, checked in zip(module.definitions, settings):
        expr = linked[definition.name]
        if expr is None:  # link leaves out only definitions with problems, raised above
            raise PatternError(f"pattern {definition.name!r} could not be linked", definition.loc)
        patterns.append(compile_pattern(definition, expr, checked, module.filename))
    return patterns


def compile_pattern(definition: ast.Definition, linked: ast.PExpr, settings: Settings,
                    filename: str | None = None) -> Pattern:
    """A checked definition compiled into a `Pattern` with its Program."""
    expr = ast.Normalize(linked) if settings.normalize else linked
    try:
        program = compile_expr(expr)
    except RecursionError:  # the link pass bounds depth; this is a last guard
        raise PatternError(f"pattern {definition.name!r} is nested too deeply to compile", definition.loc) from None
    return Pattern(definition.name, definition.doc, definition.source, settings, linked, program, filename,
                   definition.loc, rule_text(definition.expr, definition.settings))


def build(text: str, form: Form, filename: str | None = None, *, name: str | None = None,
          library: Mapping[str, Pattern] | None = None) -> tuple[Pattern, ...]:
    """Parse, check and compile a source text: every pattern it defines.

    With the default library (the shipped patterns) the result is cached by the text."""
    if library is None:
        return _build_cached(text, form, filename, name)
    return tuple(check_module(parse(text, form, filename, name=name), library, inline=form == "rule"))


@lru_cache(maxsize=256)
def _build_cached(text: str, form: Form, filename: str | None, name: str | None) -> tuple[Pattern, ...]:
    return tuple(check_module(parse(text, form, filename, name=name), shipped_library(), inline=form == "rule"))


def check_yaml(text: str, filename: str, library: Mapping[str, Pattern] | None = None) -> list[Pattern]:
    """Read, validate, check and compile a YAML rule file against a library of known patterns."""
    return list(build(text, "yaml", filename, library=library))


# ---- pattern files and the shipped library ----------------------------------------------------
def form_of(path: Path) -> Form | None:
    """The form of a pattern file by its suffix ("pattern" or "yaml"); None for any other file."""
    if path.suffix in PATTERN_SUFFIXES:
        return "pattern"
    if path.suffix in YAML_SUFFIXES:
        return "yaml"
    return None


def clip_path(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_pattern_file(path: Path) -> str:
    """A pattern file's text; special files (FIFOs, devices) and huge files are refused."""
    try:
        if not path.is_file():
            raise PatternFileError(f"{clip_path(str(path))} is not a regular file")
        size = path.stat().st_size
        if size > MAX_PATTERN_FILE_BYTES:
            raise PatternFileError(f"{path} is {size:,} bytes, more than a pattern file may be "
                                   f"({MAX_PATTERN_FILE_BYTES:,})", hint="split it into several files")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternFileError(f"cannot read {path}: {exc}") from None


@lru_cache(maxsize=1)
def shipped_library() -> dict[str, Pattern]:
    """The shipped patterns by name; a file may refer to the files sorted before it (the default
    library of `check_module` and `build`)."""
    patterns: dict[str, Pattern] = {}
    for path in sorted(patterns_dir().iterdir()):
        form = form_of(path)
        if form is not None:
            for pattern in build(read_pattern_file(path), form, str(path), library=dict(patterns)):
                patterns[pattern.name] = pattern
    return patterns
