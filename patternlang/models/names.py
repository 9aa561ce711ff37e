"""Model names patternlang knows: the embedded model's, and TransformerLens' registry of hub models.

TransformerLens ships its registry as data (official names, their short aliases, and the
hub models its bridge supports). It is read from the installed package's files without
importing TransformerLens (that import takes seconds), once per process. Without those
files the set is just the embedded names, and every other name goes to the hub unchecked.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from patternlang.models.embedded import EMBEDDED_NAMES

_TL_PACKAGE = "transformer_lens"
_TL_OFFICIAL_NAMES_FILE = "supported_models.py"  # OFFICIAL_MODEL_NAMES, a literal list
_TL_ALIASES_FILE = Path("tools", "model_registry", "data", "model_aliases.json")
_TL_BRIDGE_MODELS_FILE = Path("tools", "model_registry", "data", "supported_models.json")


@lru_cache(maxsize=1)
def known_hub_names() -> dict[str, str]:
    """Every hub name and alias TransformerLens knows, lower-cased, mapped to its official name.

    Aliases map to the name the hub knows ("pythia-70m" -> "EleutherAI/pythia-70m"): the
    TransformerLens bridge passes names to the hub as they are and does not resolve aliases.
    Empty when TransformerLens' registry files cannot be read.
    """
    folder = _package_folder(_TL_PACKAGE)
    if folder is None:
        return {}
    names: dict[str, str] = {}
    for official in _official_names(folder / _TL_OFFICIAL_NAMES_FILE):
        names[official.lower()] = official
    aliases = _read_json(folder / _TL_ALIASES_FILE)
    for official, alias_list in (aliases.get("aliases") or {}).items() if isinstance(aliases, dict) else ():
        names.setdefault(str(official).lower(), str(official))
        for alias in alias_list or ():
            names.setdefault(str(alias).lower(), str(official))
    bridge = _read_json(folder / _TL_BRIDGE_MODELS_FILE)
    for entry in (bridge.get("models") or ()) if isinstance(bridge, dict) else ():
        model_id = entry.get("model_id") if isinstance(entry, dict) else None
        if isinstance(model_id, str) and model_id:
            names.setdefault(model_id.lower(), model_id)
    return names


def official_hub_name(text: str) -> str | None:
    """The hub name TransformerLens knows `text` by (case-insensitive, aliases resolved), or None.

    >>> official_hub_name("GPT2"), official_hub_name("no-such-model-anywhere")   # doctest: +SKIP
    ('gpt2', None)
    """
    return known_hub_names().get(text.strip().lower())


def suggest_model_name(text: str) -> str | None:
    """A "did you mean 'x'?" hint for a misspelt model name, or None when nothing is close.

    Compared case-insensitively with the embedded model's names, every known name and
    alias, and the repository part of `owner/name` names (so "SmolLM2-360M-Instruct"
    suggests "HuggingFaceTB/SmolLM2-360M-Instruct"). Where two names read the same, the
    embedded model's wins, then TransformerLens' official names and aliases.
    """
    index = _suggestion_index()
    close = difflib.get_close_matches(text.strip().lower(), list(index), n=1, cutoff=0.75)
    return f"did you mean {index[close[0]]!r}?" if close else None


def with_suggestion(suggestion: str | None, advice: str) -> str:
    """A hint: the did-you-mean first when there is one, then the general advice."""
    return f"{suggestion} Otherwise, {advice}" if suggestion else advice


def is_near_embedded_name(text: str) -> bool:
    """True for a near-miss of the embedded model's names ("HuggingFaceTB/SmolLM2-135M-Instuct").

    Such a name is a typo, not another hub repository, far more often than not: the names
    of the embedded model's real siblings ("SmolLM2-360M-Instruct") are known and claimed
    before this is asked.
    """
    return _closest(text, EMBEDDED_NAMES, cutoff=0.9) is not None


def _closest(text: str, candidates: tuple[str, ...], cutoff: float = 0.75) -> str | None:
    by_key = {name.lower(): name for name in candidates}
    close = difflib.get_close_matches(text.strip().lower(), list(by_key), n=1, cutoff=cutoff)
    return by_key[close[0]] if close else None


@lru_cache(maxsize=1)
def _suggestion_index() -> dict[str, str]:
    """Lower-cased spelling -> the name to suggest, first writer wins (the priority order)."""
    index = {name.lower(): name for name in EMBEDDED_NAMES}
    folder = _package_folder(_TL_PACKAGE)
    aliases = _read_json(folder / _TL_ALIASES_FILE) if folder is not None else None
    for official, alias_list in (aliases.get("aliases") or {}).items() if isinstance(aliases, dict) else ():
        index.setdefault(str(official).lower(), str(official))
        for alias in alias_list or ():
            index.setdefault(str(alias).lower(), str(alias))
    # A repository name alone ("Llama-3.2-1B") suggests the original publisher's copy: owners
    # of TransformerLens' official models first, then the others alphabetically.
    official_owners = {name.split("/")[0].lower() for name in index.values() if "/" in name}
    names = sorted(set(known_hub_names().values()), key=str.lower)
    for name in names:
        index.setdefault(name.lower(), name)
    for name in sorted(names, key=lambda n: (n.split("/")[0].lower() not in official_owners, n.lower())):
        owner, slash, repository = name.partition("/")
        if slash and repository:
            index.setdefault(repository.lower(), name)
    return index


def _package_folder(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)  # finds, does not import
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _official_names(path: Path) -> list[str]:
    """`OFFICIAL_MODEL_NAMES` from TransformerLens' source, read as a literal (never executed)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    for node in tree.body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign):
            target, assigned = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, assigned = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "OFFICIAL_MODEL_NAMES" and assigned is not None:
            try:
                value = ast.literal_eval(assigned)
            except ValueError:
                return []
            return [name for name in value if isinstance(name, str)] if isinstance(value, list) else []
    return []
