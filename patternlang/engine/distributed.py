"""Scoring with several processes through `torch.distributed`: prompts sharded by rank, sums added once.

Inside an initialised process group, `detect` gives prompt i to rank `i % world_size` (each rank
reads the prompt source and keeps its own share, so a stream stays a stream), scores its share
into its own running sums, and adds every rank's sums with one `all_reduce` at the end
(`Accumulator.all_reduce`): every rank then holds the same `Scores`, equal to one process's.

The CLI starts the group itself under `torchrun` (`init_from_environment`): gloo on the CPU,
NCCL when the model is on CUDA, each rank on the GPU `LOCAL_RANK` names, with a timeout so that
a rank that fails makes the others fail instead of waiting forever. docs/scale.md has the
command lines.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from patternlang.errors import InputError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR")
"""The environment variables `torchrun` sets for each process it starts."""
DEFAULT_TIMEOUT_S = 1800
"""How long a rank waits for the others at a collective before it fails (seconds);
`PATTERNLANG_DISTRIBUTED_TIMEOUT` sets another."""


@dataclass(frozen=True, slots=True)
class Shard:
    """This process's share of the prompts: prompt i belongs to rank `i % world_size`."""

    rank: int
    world_size: int

    def owns(self, index: int) -> bool:
        return index % self.world_size == self.rank


def current_shard() -> Shard | None:
    """This process's `Shard` inside an initialised process group of two or more; else None."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    world_size = dist.get_world_size()
    return Shard(dist.get_rank(), world_size) if world_size > 1 else None


def launched_by_torchrun(environ: Mapping[str, str] = os.environ) -> bool:
    """True when `torchrun` (or another launcher setting its variables) started this process."""
    return all(environ.get(name) for name in TORCHRUN_VARIABLES)


def torchrun_rank(environ: Mapping[str, str] = os.environ) -> int:
    """This process's rank under `torchrun` (0 when not launched by it)."""
    return int(environ.get("RANK", "0") or 0) if launched_by_torchrun(environ) else 0


def local_device(device: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The device a `torchrun` rank loads the model on: the given one, else with CUDA the GPU
    `LOCAL_RANK` names (one GPU per process), else None (the loader's default)."""
    if device is not None or not torch.cuda.is_available():
        return device
    local_rank = int(environ.get("LOCAL_RANK", "0") or 0)
    return f"cuda:{local_rank % torch.cuda.device_count()}"


def init_from_environment(model_device: torch.device, environ: Mapping[str, str] = os.environ) -> bool:
    """Start the default process group from `torchrun`'s variables, when it set them and no group
    exists: NCCL when the model is on CUDA, else gloo. Returns True when it started one (the caller
    ends it with `end_group`)."""
    import torch.distributed as dist

    if not launched_by_torchrun(environ) or not dist.is_available() or dist.is_initialized():
        return False
    backend = "nccl" if model_device.type == "cuda" else "gloo"
    if model_device.type == "cuda":
        torch.cuda.set_device(model_device)
    timeout = datetime.timedelta(seconds=_timeout_s(environ))
    try:
        dist.init_process_group(backend=backend, timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"cannot start the distributed run ({backend}, rank {environ.get('RANK')} of "
                         f"{environ.get('WORLD_SIZE')}): {exc}",
                         hint="check MASTER_ADDR and MASTER_PORT, and that every process started") from None
    return True


def end_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _timeout_s(environ: Mapping[str, str]) -> float:
    text = environ.get("PATTERNLANG_DISTRIBUTED_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise InputError(f"PATTERNLANG_DISTRIBUTED_TIMEOUT must be a positive number of seconds, not {text!r}")
    return seconds


def collective(what: str, action: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a collective step; a failure (another rank died, a timeout) becomes a clear `InputError`."""
    try:
        return action(*args, **kwargs)
    except RuntimeError as exc:  # gloo and NCCL raise RuntimeError subclasses (DistBackendError, ...)
        shard = current_shard()
        rank = f"rank {shard.rank} of {shard.world_size}" if shard else "this process"
        raise InputError(f"the distributed run failed while {what} ({rank}): {str(exc).splitlines()[0]}",
                         hint="another process of the run stopped or timed out; its own error says why") from None


def check_same_everywhere(shard: Shard, fields: Mapping[str, str]) -> None:
    """Every rank must score the same patterns, measures, heads and settings: compare a digest of
    `fields` across ranks (one small `all_reduce`) and name the first field that differs."""
    import torch.distributed as dist

    device = _collective_device()
    for name, value in fields.items():
        digest = hashlib.sha256(value.encode()).digest()[:8]
        mine = torch.tensor(list(digest), dtype=torch.float64, device=device)
        low, high = mine.clone(), mine.clone()
        collective(f"comparing {name} across ranks", dist.all_reduce, low, op=dist.ReduceOp.MIN)
        collective(f"comparing {name} across ranks", dist.all_reduce, high, op=dist.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise InputError(f"the processes of the distributed run differ in their {name}",
                             hint="start every rank with the same arguments")


def sum_counts(values: list[int], device: torch.device | None = None) -> list[int]:
    """Integers summed over every rank (prompt, token and batch counts)."""
    import torch.distributed as dist

    counts = torch.tensor(values, dtype=torch.float64, device=device or _collective_device())
    collective("adding the counts of every rank", dist.all_reduce, counts, op=dist.ReduceOp.SUM)
    return [int(round(v)) for v in counts.tolist()]


def gather_objects(value: Any) -> list[Any]:
    """Every rank's `value` (small, picklable), in rank order."""
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist.get_world_size()
    collective("gathering every rank's provenance", dist.all_gather_object, gathered, value)
    return gathered


def _collective_device() -> torch.device:
    """NCCL moves CUDA tensors only; gloo CPU tensors."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
