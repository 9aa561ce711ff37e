"""The settings pass: `measure`, `exclude`, `probe` and `normalize`, checked without a model.

Measures come from the torch-free measure table (`measure_table.py`, read live) and probes from
the probe registry, which validates each probe's arguments without building any prompt.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import PatternError, UnknownNameError, did_you_mean
from ..measure_table import measure_names
from ..settings import EXCLUSIONS, RANK_ORDERS, ProbeSpec, Requirement, Settings
from . import ast
from .problems import Problems
from .. import probes


def check_settings(settings: tuple[ast.Setting, ...], problems: Problems) -> Settings:
    """The settings of one definition; each problem is reported, the rest are kept."""
    return _SettingsChecker(problems).check(settings)


class _SettingsChecker(ast.Visitor[None]):
    def __init__(self, problems: Problems):
        self.problems = problems
        self.values: dict[str, Any] = {}  # Settings fields by name
        self.seen: dict[str, ast.Setting] = {}

    def check(self, settings: tuple[ast.Setting, ...]) -> Settings:
        for setting in settings:
            self.visit(setting)
        return Settings(**self.values)

    def once(self, key: str, node: ast.Setting) -> bool:
        if key in self.seen:
            self.problems.add(PatternError(f"the setting {key!r} is given twice", node.loc))
            return False
        self.seen[key] = node
        return True

    def visit_MeasureSetting(self, node: ast.MeasureSetting) -> None:
        names = measure_names()
        if node.measure not in names:
            self.problems.add(UnknownNameError(f"unknown measure {node.measure!r}; measures are " + ", ".join(names),
                                               node.loc, did_you_mean(node.measure, names)))
        elif self.once("measure", node):
            self.values["measure"] = node.measure

    def visit_ExcludeSetting(self, node: ast.ExcludeSetting) -> None:
        if node.what not in EXCLUSIONS:
            self.problems.add(UnknownNameError(f"cannot exclude {node.what!r}; write `exclude bos` or "
                                               "`exclude current`", node.loc, did_you_mean(node.what, EXCLUSIONS)))
        elif self.once(f"exclude {node.what}", node):
            self.values["exclude_bos" if node.what == "bos" else "exclude_current"] = True

    def visit_ProbeSetting(self, node: ast.ProbeSetting) -> None:
        if not self.once("probe", node):
            return
        try:
            probes.validate_probe_args(node.probe, node.args)  # the pairs: a repeated argument is an error
        except PatternError as exc:
            exc.location = exc.location or node.loc
            self.problems.add(exc)
            return
        self.values["probe"] = ProbeSpec(node.probe, node.args)

    def visit_NormalizeSetting(self, node: ast.NormalizeSetting) -> None:
        if self.once("normalize", node):
            self.values["normalize"] = True

    def visit_RankSetting(self, node: ast.RankSetting) -> None:
        if node.order not in RANK_ORDERS:
            self.problems.add(UnknownNameError(f"cannot rank {node.order!r}; write `rank lowest` or `rank highest`",
                                               node.loc, did_you_mean(node.order, RANK_ORDERS)))
        elif self.once("rank", node):
            self.values["rank"] = node.order

    def visit_RequireSetting(self, node: ast.RequireSetting) -> None:
        names = measure_names()
        if node.measure not in names:
            self.problems.add(UnknownNameError(f"unknown measure {node.measure!r} in `require`; measures are "
                                               + ", ".join(names), node.loc, did_you_mean(node.measure, names)))
            return
        if not math.isfinite(node.value):
            self.problems.add(PatternError(f"`require` needs a finite number, not {node.value!r}", node.loc))
            return
        requirement = Requirement(node.measure, node.op, node.value)
        if self.once(f"require {requirement}", node):
            self.values["requires"] = (*self.values.get("requires", ()), requirement)
