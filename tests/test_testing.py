"""`patternlang.testing` is for tests, benchmarks and users: the rest of the package never imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import patternlang

PACKAGE = Path(patternlang.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_outside_testing_imports_it():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        if any(name == "patternlang.testing" or name.startswith("patternlang.testing.")
               for name in imported_modules(path)):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_the_check_resolves_relative_imports():
    # The check above is only worth something if it catches `from .testing import x` too.
    assert "patternlang.errors" in imported_modules(PACKAGE / "cli.py")  # `from .errors import ...`
    assert "patternlang.errors" in imported_modules(PACKAGE / "engine" / "scores.py")


def test_importing_the_package_and_cli_leaves_testing_unloaded():
    code = ("import sys, patternlang, patternlang.engine, patternlang.report, patternlang.cli; "
            "print(any(m.startswith('patternlang.testing') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_bench_and_tests_do_not_import_the_tests_folder():
    root = PACKAGE.parent
    old_modules = {"tests." + name for name in ("engine_fakes", "tiny_models")}
    for folder in ("bench", "tests"):
        for path in (root / folder).glob("*.py"):
            assert not old_modules & imported_names(path), path


def imported_names(path: Path) -> set[str]:
    """Module names a file outside the package imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names
