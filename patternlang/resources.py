"""Where the grammar and the shipped patterns live, in a wheel or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    # A wheel carries the folders inside the package; a source checkout (editable
    # install, or running from the repo) keeps them at the top level.
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"patternlang is installed without its {name}/ folder")


def grammar_path() -> Path:
    return _data_dir("grammars") / "patternlang.lark"


def patterns_dir() -> Path:
    return _data_dir("patterns")


def data_path(filename: str) -> Path:
    return _PACKAGE_DIR / "data" / filename
