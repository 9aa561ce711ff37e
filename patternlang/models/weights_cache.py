"""De-quantised GGUF weights, cached on disk so that a model loads in seconds after the first time.

transformers de-quantises a GGUF file on every load (about 20 s for the embedded SmolLM2 on 2
cores). The first load saves the result as a Hugging Face folder (config, tokenizer, and the
weights as safetensors); later loads read that folder with `from_pretrained`, which gives the
same weights, hence the same logits.

- Where: `$PATTERNLANG_CACHE_DIR/weights`, else `$XDG_CACHE_HOME/patternlang/weights`, else
  `~/.cache/patternlang/weights`.
- Key: the GGUF file's name, a hash of its bytes, the dtype and patternlang's version, so a
  changed file or a new patternlang version gets a fresh entry.
- Written atomically: into a temporary folder beside the entry, renamed into place when complete;
  a crash leaves no half entry. Every entry is safe to delete (`clear_weights_cache()`,
  `patternlang cache clear`); it is rebuilt on the next load.
- `PATTERNLANG_WEIGHTS_CACHE=0` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CACHE_ENV = "PATTERNLANG_CACHE_DIR"
SWITCH_ENV = "PATTERNLANG_WEIGHTS_CACHE"
COMPLETE = "patternlang-complete"  # written last: an entry without it is not used
WEIGHTS_FILE = "model.safetensors"


def cache_root() -> Path:
    """The folder holding cached weights (see the module's docstring)."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base).expanduser() / "weights"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "patternlang" / "weights"


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def file_digest(path: Path) -> str:
    """A short hash of a file's bytes (BLAKE2b; a 90 MB file takes about 0.2 s)."""
    digest = hashlib.blake2b(digest_size=10)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_for(gguf: Path, dtype_name: str) -> Path:
    from patternlang import __version__

    return cache_root() / f"{gguf.stem}-{file_digest(gguf)}-{dtype_name}-v{__version__}"


def load_cached(entry: Path, dtype: Any) -> tuple[Any, Any] | None:
    """`(hf_model, tokenizer)` from a complete cache entry, or None when there is none."""
    if not (entry / COMPLETE).is_file():
        return None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(entry)
        hf_model = AutoModelForCausalLM.from_pretrained(entry, attn_implementation="eager", dtype=dtype)
    except Exception:  # a damaged entry is rebuilt, never trusted
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return hf_model, tokenizer


def save(entry: Path, hf_model: Any, tokenizer: Any) -> bool:
    """Write an entry atomically; False (and nothing left behind) when the disk refuses."""
    from safetensors.torch import save_model

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    except OSError:
        return False
    try:
        # save_pretrained refuses a model loaded from GGUF (it is flagged as quantised), so the
        # parts are written one by one; save_model stores tied weights (embedding, unembedding) once.
        config = hf_model.config
        quantization = getattr(config, "quantization_config", None)
        if quantization is not None:
            del config.quantization_config
        try:
            config.save_pretrained(staging)
        finally:
            if quantization is not None:
                config.quantization_config = quantization
        tokenizer.save_pretrained(staging)
        save_model(hf_model, str(staging / WEIGHTS_FILE))
        (staging / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
        if entry.exists():  # another process finished first: keep its entry
            shutil.rmtree(staging, ignore_errors=True)
            return True
        os.replace(staging, entry)
        return True
    except Exception:  # a full disk or a read-only cache only costs speed
        shutil.rmtree(staging, ignore_errors=True)
        return False


def clear_weights_cache() -> list[Path]:
    """Delete every cached entry (and any half-written one); returns what was deleted."""
    root = cache_root()
    removed = []
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def cached_entries() -> list[tuple[Path, int]]:
    """The complete entries with their sizes in bytes."""
    root = cache_root()
    if not root.is_dir():
        return []
    return [(entry, sum(f.stat().st_size for f in entry.rglob("*") if f.is_file()))
            for entry in sorted(root.iterdir()) if (entry / COMPLETE).is_file()]


def say(message: str) -> None:
    """A line on stderr about slow work (the first, cold load); never on stdout."""
    print(f"patternlang: {message}", file=sys.stderr, flush=True)
