"""Checkpoints of a `detect` run: its running sums and how far it got, saved atomically every N batches.

A checkpoint file holds the accumulator's state (`Accumulator.state_dict`), the place in the
prompt source (`position`: prompts read before the chunk in progress, with a SHA-256 of those
prompts; `done`: the prompts of that chunk already scored), the run's counts, and a
fingerprint of everything that determines the scores: the model (its name, facts and a digest
of its weights), the patterns' compiled source text, the measures, exclusions, heads,
`prepend_bos`, whether per-prompt scores are kept, the prompt source, the patternlang version
and, in a distributed run, the rank and world size (one file per rank). A restart with the
same arguments continues where the file says; a restart that differs is refused, naming what
differs. Files are written to a temporary file in the folder, fsynced and renamed into place
(`os.replace`), so a run killed at any moment leaves the previous checkpoint whole; they are
read with `torch.load(..., weights_only=True)`, which loads tensors and plain containers only.
Each carries a SHA-256 of its contents (`state_digest`): a file changed since it was written is
refused as damaged, never resumed from.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from patternlang.version import __version__
from patternlang.errors import InputError

CHECKPOINT_FORMAT = 1
DEFAULT_CHECKPOINT_EVERY = 50
"""Batches between two checkpoints when `checkpoint_every` is not given."""
_START_OVER = "delete the folder (or the file) to start over, or give another --checkpoint folder"


def checkpoint_name(shard: Any) -> str:
    """The file of one process: `detect.pt`, or `detect.rank1-of-4.pt` in a distributed run."""
    return "detect.pt" if shard is None else f"detect.rank{shard.rank}-of-{shard.world_size}.pt"


class CheckpointFile:
    """One run's checkpoint file in `directory` (created when missing)."""

    def __init__(self, directory: str | Path, fingerprint: dict[str, str], shard: Any = None):
        self.directory = _checked_directory(directory)
        self.fingerprint = fingerprint
        self.path = self.directory / checkpoint_name(shard)
        others = sorted(p.name for p in self.directory.glob("detect*.pt")
                        if p.name != self.path.name and _world_of(p.name) != _world_of(self.path.name))
        if others:
            raise InputError(f"checkpoint folder {str(self.directory)!r} holds {others[0]}, written by a run with "
                             f"{_processes(others[0])}; this run has {_processes(self.path.name)}",
                             hint="resume with as many processes as before, or " + _START_OVER)

    def load(self) -> dict[str, Any] | None:
        """The saved state, checked against this run's fingerprint; None when there is none yet."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file fails in many ways
            # In our own words: PyTorch's message advises loading with weights_only=False (running
            # whatever the file holds) and carries terminal colour codes.
            what = ("it holds objects other than tensors and plain containers, which patternlang never loads"
                    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc)
                    else "it is not a checkpoint patternlang wrote, or it is truncated")
            raise InputError(f"cannot read the checkpoint {str(self.path)!r}: {what}; nothing in it was run",
                             hint=_START_OVER) from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"{str(self.path)!r} is not a patternlang detect checkpoint of format {CHECKPOINT_FORMAT}",
                             hint=_START_OVER)
        kept = state.pop(DIGEST_KEY, None)
        if kept != state_digest(state):
            why = "its contents differ from what was written (SHA-256)" if kept is not None else \
                "it carries no SHA-256 of its contents"
            raise InputError(f"the checkpoint {str(self.path)!r} was not resumed: {why}; damaged: delete the "
                             "folder to start over")
        saved = state.get("fingerprint", {})
        differing = [key for key in self.fingerprint if saved.get(key) != self.fingerprint[key]]
        differing += [key for key in saved if key not in self.fingerprint]
        if differing:
            details = "; ".join(f"{key}: {_clip(saved.get(key))} then, {_clip(self.fingerprint.get(key))} now"
                                for key in differing[:3])
            raise InputError(f"the checkpoint in {str(self.directory)!r} belongs to another run: its "
                             f"{', '.join(differing)} differ ({details})",
                             hint="rerun with the same arguments to resume, or " + _START_OVER)
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` (with this run's fingerprint) atomically: temporary file, fsync, rename."""
        state = {"format": CHECKPOINT_FORMAT, "fingerprint": dict(self.fingerprint), **state}
        state[DIGEST_KEY] = state_digest(state)
        temporary = self.directory / f".{self.path.name}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as handle:
                torch.save(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            _fsync_directory(self.directory)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise InputError(f"cannot write the checkpoint {str(self.path)!r}: {exc.strerror or exc}") from None


DIGEST_KEY = "sha256"


def state_digest(state: Any) -> str:
    """A SHA-256 of a checkpoint's contents: every key, type, number, text and tensor (its dtype,
    shape and bytes), in order; what `save` stores and `load` checks."""
    digest = hashlib.sha256()
    _digest_into(digest, state)
    return digest.hexdigest()


def _digest_into(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _digest_into(digest, key)
            _digest_into(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _digest_into(digest, item)
    else:
        text = repr(value).encode("utf-8", "surrogatepass")
        digest.update(f"S{type(value).__name__}{len(text)}:".encode() + text)


def prompts_mismatch(directory: Path, position: int, read: int) -> InputError:
    """The prompts differ from those the checkpoint was written on."""
    if read < position:
        what = f"the prompt source ends after {read} prompts, but the checkpointed run had read {position}"
    else:
        what = f"the first {position} prompts differ from those the checkpointed run read"
    return InputError(f"the checkpoint in {str(directory)!r} belongs to another run: {what}",
                      hint="rerun with the same prompts to resume, or " + _START_OVER)


def run_fingerprint(model: Any, facts: Any, detectors: Sequence[Any], *, measures: Sequence[str], exclusions: Sequence[Any],
                    heads: Any, prepend_bos: bool, per_prompt: bool, source: str, shard: Any) -> dict[str, str]:
    """What determines a run's scores, as text, for a checkpoint to be checked against."""
    return {
        "patternlang version": str(__version__),
        "model": f"{facts.described}; weights {weights_digest(model)}",
        "patterns": "\n".join(f"{d.name}: {_pattern_text(d)}" for d in detectors),
        "measures": ",".join(measures),
        "exclusions": ",".join(f"bos={e.bos} current={e.current}" for e in exclusions),
        "heads": repr(sorted(heads.items())),
        "prepend_bos": str(prepend_bos),
        "per_prompt": str(per_prompt),
        "prompt source": source,
        "processes": "1" if shard is None else f"rank {shard.rank} of {shard.world_size}",
    }


def weights_digest(model: Any) -> str:
    """A digest of the model's parameters and buffers: each one's name, shape, dtype, sum, norm and
    a strided sample of its values (one pass over the weights, no copy of them)."""
    digest = hashlib.sha256()
    named = list(getattr(model, "named_parameters", lambda: [])()) + list(getattr(model, "named_buffers", lambda: [])())
    with torch.no_grad():
        for name, tensor in named:
            if not isinstance(tensor, torch.Tensor) or tensor.is_meta:
                continue
            flat = tensor.detach().reshape(-1)
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            if flat.numel() and (tensor.is_floating_point() or tensor.is_complex()):
                summary = torch.stack([flat.sum(dtype=torch.float64),
                                       torch.linalg.vector_norm(flat, dtype=torch.float64)])
                sample = flat[:: max(1, flat.numel() // 64)][:64].to("cpu", torch.float64)
                digest.update(summary.cpu().numpy().tobytes() + sample.numpy().tobytes())
            elif flat.numel():
                digest.update(flat[:: max(1, flat.numel() // 64)][:64].cpu().to(torch.int64).numpy().tobytes())
    return digest.hexdigest()[:16]


def prompt_digest_update(digest: Any, prompt: Any, spans: Any) -> None:
    """Add one prompt (text or token ids) and its labelled spans to a running SHA-256."""
    if isinstance(prompt, str):
        digest.update(b"t" + prompt.encode("utf-8", "surrogatepass"))
    else:
        try:
            digest.update(b"i" + torch.as_tensor(prompt, dtype=torch.int64).reshape(-1).numpy().tobytes())
        except (TypeError, ValueError, RuntimeError, OverflowError):  # not token ids: checked later, when tokenized
            digest.update(b"r" + repr(prompt).encode())
    digest.update(b"\x00" + repr(spans).encode() + b"\x01")


def _pattern_text(detector: Any) -> str:
    pattern = detector.pattern
    if pattern is not None:
        return getattr(pattern, "rule", "") or repr(pattern)
    if detector.matrix is not None:
        matrix = detector.matrix.detach().to("cpu", torch.float64).contiguous()
        return f"tensor {tuple(matrix.shape)} {hashlib.sha256(matrix.numpy().tobytes()).hexdigest()[:16]}"
    function = detector.per_prompt
    return f"function {getattr(function, '__module__', '')}.{getattr(function, '__qualname__', repr(function))}"


def _checked_directory(directory: str | Path) -> Path:
    path = Path(directory).expanduser()
    try:
        if path.exists() and not stat.S_ISDIR(os.stat(path).st_mode):
            raise InputError(f"--checkpoint {str(path)!r} is a file, not a folder",
                             hint="give a folder (created when missing)")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot use {str(path)!r} as a checkpoint folder: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise InputError(f"the checkpoint folder {str(path)!r} is not writable")
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable too (POSIX); where a folder cannot be opened, the rename is enough."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _world_of(name: str) -> str:
    return name.split("-of-")[-1] if "-of-" in name else "1"


def _processes(name: str) -> str:
    count = _world_of(name).removesuffix(".pt")
    return "1 process" if count == "1" else f"{count} processes"


def _clip(value: Any, limit: int = 80) -> str:
    text = "(none)" if value is None else str(value).replace("\n", " | ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
