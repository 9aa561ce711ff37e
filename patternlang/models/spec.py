"""What a user asked for, what it resolves to, and what a loader declares.

These are plain records with no behaviour, so every module of the package (and a
third-party loader) can import them without pulling in the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ClaimedTarget = str | Path
"""What a loader reads: a hub name, a local file or folder."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """A user's model argument, examined once, before any loader looks at it.

    `text` is the name as typed (stripped), None when the argument was a `Path` or left
    out; `path` is the existing file or folder it names (resolved), None for a plain name.
    Both None means "the default model".
    """

    text: str | None = None
    path: Path | None = None

    @property
    def is_default(self) -> bool:
        return self.text is None and self.path is None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What a model name refers to, decided without loading anything.

    `source` names the loader that reads it (the `ModelLoader.source` of a registered
    loader); `target` is the hub name or the local path.
    """

    source: str
    target: ClaimedTarget


@dataclass(frozen=True, slots=True)
class ModelLoader:
    """One entry of the loader registry.

    `claim(request)` returns what this loader would read (a name or a path) when the
    request is for it, else None; it must not load anything, and it is tried in
    registry order. `load(target, *, device, dtype)` builds the model; it raises
    `ModelLoadError` with the cause when it cannot. `describes` says what it claims,
    for hints and docs ("a .gguf file"). `quantisation` names the format of quantised
    weights it de-quantises ("Q4_1 GGUF"), None when it loads weights as saved; it ends up
    in `ModelFacts.quantisation`.
    """

    source: str
    describes: str
    claim: Callable[[ModelRequest], ClaimedTarget | None]
    load: Callable[..., Any]
    quantisation: str | None = None
