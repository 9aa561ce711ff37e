"""What `patternlang atlas` does, apart from reading its options (cli.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from patternlang.atlas import (build_atlas, load_documents, read_document, render_site, with_current_verdicts,
                              write_document)
from patternlang.errors import InputError


def run_atlas(out: Path, *, models: Sequence[str] = (), patterns: str | None = None, probe: Any = None,
              add: Sequence[Path] = (), render_only: bool = False, batch_size: int | None = None,
              device: str | None = None, progress: bool = True, say: Callable[[str], None] = print,
              effects: Sequence[str] = (), effects_top_k: int | None = None, effects_prompts: int | None = None,
              describe: bool = False) -> None:
    """`patternlang atlas`. `effects`: `auto` (the default set, each metric on its own probe) and/or
    metric names; without `patterns`, a model whose document exists keeps its patterns as they are
    and only gains the effects (and descriptions) asked for."""
    from patternlang.library import load_patterns  # lazy: the CLI imports this module at start-up

    for path in add:  # documents from elsewhere: checked, then copied into DIR/data
        write_document(read_document(path), out)
        say(f"added {path}")
    if render_only:
        if models or patterns or probe or effects or describe:
            raise InputError("--render-only renders the documents already in the atlas; it takes no "
                             "--model, --patterns, --probe, --effects or --describe")
        docs = load_documents(out)
        if not docs:
            raise InputError(f"no atlas documents in {out / 'data'}", hint="build one: patternlang atlas --out DIR")
        render_site([with_current_verdicts(doc) for doc in docs], out)  # verdicts by this version's rules
        say(f"rendered {len(docs)} model(s) into {out}: {_size(out)}; open {out / 'index.html'}")
        return
    chosen = None
    if patterns:
        chosen = load_patterns([part.strip() for part in patterns.split(",") if part.strip()])
    names = list(models) or [None]

    def loader(name: str | None) -> Callable[[], Any]:
        def load() -> Any:
            from patternlang.models import load_model  # lazy: torch and transformers, when a model is needed

            say(f"loading {name or 'the embedded model'} ...")
            return load_model(name, device=device)
        return load

    started = time.perf_counter()

    def done(doc: dict) -> None:
        say(f"{doc['model']['id']}: {len(doc['patterns'])} patterns, "
            f"{doc['model']['n_layers']}x{doc['model']['n_heads']} heads ({time.perf_counter() - started:.0f} s)")

    if effects:
        from patternlang.effects.atlas import check_effects  # lazy: torch; checked before any model is loaded

        effects = check_effects(effects)
    if effects_prompts is not None and effects_prompts == 1:
        raise InputError("--effects-prompts must be 0 (every prompt) or at least 2 (an interval over prompts)")
    build_atlas([loader(name) for name in names], out, patterns=chosen, probe=probe, progress=progress,
                batch_size=batch_size, on_model=done, effects=list(effects), describe=describe,
                effects_top_k=effects_top_k, effects_prompts=effects_prompts,
                keep_patterns=bool(effects or describe) and not patterns, say=say)
    say(f"wrote the atlas into {out}: {_size(out)}; open {out / 'index.html'}")


def _size(folder: Path) -> str:
    """The site's size: how many files, and their total in MiB (the whole folder, not index.html)."""
    files = [f for f in folder.rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    return f"{len(files)} files, {total / 2**20:.1f} MiB"
