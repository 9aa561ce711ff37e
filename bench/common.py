"""Shared pieces of the benchmarks: the module protocol, the model, the prompts, the pattern
sets, timing, memory and the machine.

The module protocol (every `bench/<name>.py` that `bench/run_all.py` runs follows it):

    def run(*, tiny: bool, log=print) -> dict      # measures; JSON-serialisable; tiny: the hand-set model, seconds
    def render(results: dict) -> str                # its markdown section; every number comes from `results`
    def target_rows(results: dict) -> list[tuple[str, str, bool | None]]   # (target, measured, met)

Optionally `run` takes `repeats: int | None = None` (run_all's `--repeats`: every contender of
the module gets that many timed runs, and the results record it), and the module has
`write_files(results, folder) -> list[Path]` for files RESULTS.md links to (plots). Each module
also runs standalone, `python bench/<name>.py [--tiny]`, through `standalone()`, which writes
`bench/results_<name>.json`.

Timings on a shared machine are noisy, so every comparison runs its contenders side by
side in one process, alternating (A, B, A, B, ...), and keeps each one's best time:
noise only ever adds time, so the minimum is the cleanest estimate of the cost.

Peak memory is the resident set size (RSS) of this process, sampled every millisecond in
a thread while the measured call runs, minus the RSS just before it (the model and
everything already loaded). `tracemalloc` would not see torch's allocations.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import platform
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

# Benchmarks time the engine; which scores are undefined on random prompts is not their business.
warnings.filterwarnings("ignore", message="some scores are undefined")

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "bench"
if str(REPO) not in sys.path:  # `python bench/x.py` puts bench/ on the path, not the repo: this checkout wins
    sys.path.insert(0, str(REPO))

HEADLINE_PATTERNS = ("previous_token_head", "duplicate_token_head", "induction_head", "bos_head")
"""The 4 shipped patterns of the 4-pattern figures (the first three are TransformerLens' own)."""


# ---- the module protocol ----------------------------------------------------------------------
TargetRow = tuple[str, str, "bool | None"]
"""(target, what was measured, met: True, False, or None where it was not measured)."""


class BenchModule(Protocol):
    """What `bench/run_all.py` needs of a benchmark module (see the module docstring)."""

    def run(self, *, tiny: bool, log: Callable[[str], Any] = print) -> dict[str, Any]: ...

    def render(self, results: dict[str, Any]) -> str: ...

    def target_rows(self, results: dict[str, Any]) -> list[TargetRow]: ...


def is_bench_module(module: Any) -> bool:
    return all(callable(getattr(module, name, None)) for name in ("run", "render", "target_rows"))


def accepts(fn: Callable[..., Any], keyword: str) -> bool:
    """Whether `fn` takes the keyword argument `keyword` (run_all passes `repeats` only where it does)."""
    import inspect

    parameters = inspect.signature(fn).parameters
    return keyword in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def results_path(name: str) -> Path:
    return BENCH_DIR / f"results_{name}.json"


def standalone(name: str, run: Callable[..., dict[str, Any]], argv: Sequence[str] | None = None,
               description: str = "", add_arguments: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """`python bench/<name>.py [--tiny] [--repeats R] [--json PATH] [module options]`: runs the
    module and writes its results (default `bench/results_<name>.json`). Options added by
    `add_arguments` go to `run` as keywords, except those left at None; `--repeats` only where
    `run` takes `repeats`."""
    import argparse
    import inspect

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="the hand-set tiny model at tiny sizes, seconds (CI)")
    if "repeats" in inspect.signature(run).parameters:
        parser.add_argument("--repeats", type=int, default=None, help="timed runs of every contender (best of them)")
    parser.add_argument("--json", type=Path, default=results_path(name), help="where the results go")
    if add_arguments is not None:
        add_arguments(parser)
    args = vars(parser.parse_args(argv))
    tiny, out = args.pop("tiny"), args.pop("json")
    if args.get("repeats") is not None and args["repeats"] < 1:
        raise SystemExit(f"{name}: --repeats must be at least 1, not {args['repeats']}")
    options = {key: value for key, value in args.items() if value is not None}
    results = run(tiny=tiny, **options)
    write_json(out, results)
    print(f"{name}: results written to {out}")
    return results


# ---- the model ------------------------------------------------------------------------------
_TINY_MODELS: dict[str, Any] = {}


def load_bench_model(tiny: bool = False, *, device: str | None = None, dtype: str | None = None) -> Any:
    """The embedded SmolLM2-135M-Instruct (`load_model()`), or with `tiny` the hand-set
    2-layer model of `patternlang.testing` (instant; what CI runs the benchmarks on).
    The same object on every call (modules run by run_all share one load)."""
    if not tiny:
        from patternlang.models import load_model

        return load_model(device=device or "cpu", dtype=dtype)  # cached by load_model
    if "tiny" in _TINY_MODELS:
        return _TINY_MODELS["tiny"]
    from transformer_lens import ActivationCache

    from patternlang.testing import make_hand_set_model

    model = make_hand_set_model(n_layers=2, n_ctx=64)
    plain_run_with_cache = model.run_with_cache

    def run_with_cache(*args: Any, **kwargs: Any):
        # TransformerLens' detect_head reads `cache["pattern", layer, "attn"]`, which needs an
        # ActivationCache; HookedRootModule returns a plain dict.
        output, cache = plain_run_with_cache(*args, **kwargs)
        return output, ActivationCache(cache, model)

    model.run_with_cache = run_with_cache
    _TINY_MODELS["tiny"] = model
    return model


def model_label(model: Any) -> str:
    cfg = model.cfg
    dtype = str(getattr(cfg, "dtype", "float32")).removeprefix("torch.")
    return f"{getattr(cfg, 'model_name', type(model).__name__)} ({cfg.n_layers} layers x {cfg.n_heads} heads, {dtype})"


# ---- prompts --------------------------------------------------------------------------------
def token_prompts(model: Any, n_prompts: int, n_tokens: int, *, seed: int = 0) -> list[list[int]]:
    """`n_prompts` prompts of exactly `n_tokens` token ids: BOS, then random tokens repeated
    (the induction probe `repeated_random`, cut to length), so every pattern has targets."""
    from patternlang import probes

    half = max(1, n_tokens // 2)
    prompts = probes.repeated_random(model, length=half, repeats=2, batch=n_prompts, seed=seed)
    return [list(row[:n_tokens]) for row in prompts.tokens]


def text_prompts(model: Any, n_prompts: int, n_tokens: int) -> list[str]:
    """`n_prompts` English texts of about `n_tokens` tokens (BOS included), each a passage of
    the shipped `natural` corpus said twice, so that duplicate and induction heads have targets.

    Texts, because TransformerLens' `detect_head` takes texts.
    """
    from patternlang import probes

    tokenizer = model.tokenizer
    corpus = " ".join(probes.natural().texts)
    specials = set(getattr(tokenizer, "all_special_ids", None) or ())
    ids = [i for i in tokenizer.encode(corpus) if i not in specials]
    half = max(1, (n_tokens - 1) // 2)
    texts = []
    for index in range(n_prompts):
        start = (index * 7 * half // 4) % max(1, len(ids) - half)  # overlapping passages, all different
        passage = tokenizer.decode(ids[start:start + half])
        texts.append(passage + passage)
    return texts


# ---- patterns -------------------------------------------------------------------------------
def engine_only(pattern) -> bool:
    """Whether a pattern reads only what the engine itself provides (tokens, texts, offsets):
    the benchmarks time the engine on token-id prompts, not a parser or a model pre-pass."""
    return not (set(pattern.needs) - {"tokens", "texts", "special_ids", "offsets"})


def pattern_set(n_patterns: int) -> list[str]:
    """`n` patterns to score: the 4 headline patterns first, then the other shipped ones, then
    generated rules (`attend k where k == q - N`, `attend k where tok[k] == tok[q] shift +N`)."""
    from patternlang.library import shipped_patterns

    names = list(HEADLINE_PATTERNS)
    # Patterns that need more than the tokens (labelled spans, the model's predictions, a parse)
    # are benchmarked on their own (model_aware.py).
    names += [p.name for p in shipped_patterns() if p.name not in names and engine_only(p)]
    offset = 2
    while len(names) < n_patterns:
        names.append(f"attend k where k == q - {offset}")
        if len(names) < n_patterns:
            names.append(f"attend k where tok[k] == tok[q] shift +{offset}")
        offset += 1
    return names[:n_patterns]


# ---- timing ---------------------------------------------------------------------------------
@dataclass
class Timings:
    """Every run's seconds per contender; `best` is the minimum (noise only adds time)."""

    runs: dict[str, list[float]] = field(default_factory=dict)

    def best(self, name: str) -> float:
        return min(self.runs[name])

    def add(self, name: str, seconds: float) -> None:
        self.runs.setdefault(name, []).append(seconds)


def time_call(fn: Callable[[], Any], *, sync: bool = False) -> tuple[float, Any]:
    """Seconds one call takes, and its result (`sync`: wait for CUDA before reading the clock)."""
    if sync:
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def alternate(contenders: dict[str, Callable[[], Any]], repeats: int, *, warmup: bool = True,
              sync: bool = False, timings: Timings | None = None) -> Timings:
    """Run the contenders in turn, `repeats` rounds, after one untimed warm-up round."""
    timings = timings or Timings()
    if warmup:
        for fn in contenders.values():
            fn()
    for _ in range(repeats):
        for name, fn in contenders.items():
            seconds, _ = time_call(fn, sync=sync)
            timings.add(name, seconds)
    return timings


# ---- memory ---------------------------------------------------------------------------------
def _release_free_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back, so RSS falls again


def rss_bytes() -> int:
    """This process's resident set size (psutil, else /proc/self/statm)."""
    try:
        import psutil
    except ImportError:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process(os.getpid()).memory_info().rss


@dataclass
class PeakMemory:
    """Peak RSS above the RSS at entry, in bytes (CUDA: peak allocated above the entry)."""

    baseline: int = 0
    peak: int = 0

    @property
    def delta(self) -> int:
        return max(0, self.peak - self.baseline)


@contextlib.contextmanager
def peak_memory(device: str = "cpu", interval_s: float = 0.001) -> Iterator[PeakMemory]:
    """Measure the peak memory of the block: `with peak_memory() as mem: ...; mem.delta`."""
    _release_free_memory()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        result = PeakMemory(baseline=torch.cuda.memory_allocated())
        try:
            yield result
        finally:
            torch.cuda.synchronize()
            result.peak = torch.cuda.max_memory_allocated()
        return
    result = PeakMemory(baseline=rss_bytes())
    result.peak = result.baseline
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result.peak = max(result.peak, rss_bytes())
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result.peak = max(result.peak, rss_bytes())


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


# ---- the forward pass the engine is compared with ----------------------------------------------
def plain_forward(model: Any, token_lists: Sequence[torch.Tensor], plan: list[list[int]]) -> None:
    """The model's own forward pass over the same right-padded batches, no hooks (the floor)."""
    from patternlang.engine.batching import pad_batch
    from patternlang.models.facts import model_facts

    facts = model_facts(model)
    with torch.inference_mode():
        for indices in plan:
            batch = pad_batch(token_lists, indices, facts.pad_id, facts.device)
            model(batch.tokens, return_type=None)


def stopped_forward(model: Any, token_lists: Sequence[torch.Tensor], plan: list[list[int]]) -> None:
    """The forward pass `detect` itself runs (hooked, stopped after the last layer's attention)
    with nothing done in the hooks: what is left of `detect` is the scoring."""
    from patternlang.engine.batching import pad_batch
    from patternlang.engine.forward import run_attention_hooks
    from patternlang.models.facts import model_facts

    facts = model_facts(model)
    layers = list(range(facts.n_layers))
    for indices in plan:
        batch = pad_batch(token_lists, indices, facts.pad_id, facts.device)
        run_attention_hooks(model, batch.tokens, layers, lambda layer, pattern: None)


def detect_plan(model: Any, token_lists: Sequence[torch.Tensor], n_patterns: int, n_measures: int,
                batch_size: int | None = None) -> list[list[int]]:
    """The batches `detect` makes of these prompts (the same functions, the same free memory),
    so that the forward pass it is compared with runs exactly the same batches."""
    from patternlang.engine.batching import auto_budget, bytes_per_prompt_estimate, plan_batches
    from patternlang.models.facts import model_facts

    return plan_batches(
        [t.numel() for t in token_lists], batch_size,
        bytes_per_prompt=bytes_per_prompt_estimate(model, n_patterns, n_measures),
        memory_budget=auto_budget(model_facts(model).device) if batch_size is None else None,
    )


def as_token_lists(model: Any, prompts: Any) -> list[torch.Tensor]:
    from patternlang.engine.batching import tokenize

    return tokenize(model, prompts)


# ---- the machine and the results file -------------------------------------------------------
def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        # read when the benchmarks run, never assumed: RESULTS.md says what this run had
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cuda": torch.version.cuda,
    }
    with contextlib.suppress(ImportError):
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["transformer_lens"] = version("transformer-lens")
        info["transformers"] = version("transformers")
    return info


def load_loads() -> tuple[float, float, float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return os.getloadavg()
    return None


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def seconds_text(seconds: float) -> str:
    """Seconds with the digits that matter: "365.3 s", "5.21 s", "0.012 s"."""
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds:.3f} s"


def runs_phrase(repeats: int) -> str:
    """How a best time was taken, in words: "best of 3 runs", or "one run"."""
    return "one run" if repeats == 1 else f"best of {repeats} runs"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
