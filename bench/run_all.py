"""Run the benchmark modules in one process (the model loads once) and write bench/RESULTS.md.

    python bench/run_all.py                        # `make bench`: SmolLM2-135M, every module in MODULES
    python bench/run_all.py --tiny                 # `make bench-tiny`: the hand-set tiny model, seconds (CI)
    python bench/run_all.py --repeats 3            # every contender of every module: best of 3 runs
    python bench/run_all.py --modules overhead scaling
    python bench/run_all.py --render               # redraw RESULTS.md and the plots from bench/results.json
    python bench/run_all.py --merge --modules describe_record   # rerun one module, merge it into bench/results.json

Each module follows the protocol in bench/common.py (`run`, `render`, `target_rows`). This
script collects their results into bench/results.json and writes RESULTS.md from that file
alone: the header (date, command, times, the machine as found at run time, versions, model,
load average), the targets table (every module's `target_rows`), then every module's
`render`. A listed module that is absent, does not follow the protocol or fails is announced
in RESULTS.md, never skipped silently (and a failure makes the exit status 1). With --tiny
nothing is written unless --out is given: the tiny run only proves that every module still
runs. The GPU figures come from bench/gpu.py (bench/results_gpu.json), run on a GPU machine.

With --merge only the given --modules run, and their entries replace (or join) those of the
existing results.json in --out (default bench/); the other modules' entries stay as they were,
the header records which modules were rerun, when, by which command and on what load, and
RESULTS.md is written again. A tiny run never merges into a full one, nor the reverse.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_DIR,
    BenchModule,
    TargetRow,
    accepts,
    is_bench_module,
    load_bench_model,
    load_loads,
    machine,
    model_label,
    table,
    write_json,
)

MODULES = ("vs_transformer_lens", "overhead", "scaling", "model_aware", "blocked_memory", "long_context", "distributed", "checkpointing",
           "effects", "describe", "describe_record")
"""What `make bench` runs, in this order (other helpers' modules included: absent ones are announced)."""
GPU_RESULTS = BENCH_DIR / "results_gpu.json"


def load_module(name: str) -> tuple[BenchModule | None, str | None]:
    """(the module, None), or (None, why it cannot run)."""
    if not (BENCH_DIR / f"{name}.py").is_file():
        return None, f"bench/{name}.py does not exist in this checkout"
    module = importlib.import_module(name)
    if not is_bench_module(module):
        return None, f"bench/{name}.py does not follow the module protocol of bench/common.py (run, render, target_rows)"
    return module, None


def run_all(*, tiny: bool, modules: Sequence[str] = MODULES, repeats: int | None = None, out: Path | None,
            command: str = "python bench/run_all.py", log=print) -> dict[str, Any]:
    started = time.perf_counter()
    header: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command, "tiny": tiny, "repeats": repeats, "machine": machine(), "load_before": load_loads(),
        "engine": engine_facts(),
    }
    load_started = time.perf_counter()
    model = load_bench_model(tiny=tiny)  # modules get the same object from load_bench_model
    header["model_load_s"] = time.perf_counter() - load_started
    header["model"] = model_label(model)
    entries: dict[str, Any] = {}
    for name in modules:
        module_started = time.perf_counter()
        module, why = load_module(name)
        if module is None:
            entries[name] = {"status": "not run", "why": why}
            log(f"run_all: NOT RUN {name}: {why}")
            continue
        options = {"repeats": repeats} if repeats is not None and accepts(module.run, "repeats") else {}
        if repeats is not None and not options:
            log(f"run_all: note: {name}.run takes no `repeats`; it uses its own")
        try:
            entries[name] = {"status": "ok", "results": module.run(tiny=tiny, log=log, **options)}
        except (Exception, SystemExit) as error:  # noqa: BLE001 - one failing module must not hide the others' figures
            entries[name] = {"status": "failed", "why": f"{type(error).__name__}: {error}"}
            log(f"run_all: FAILED {name}:\n{traceback.format_exc()}")
        entries[name]["seconds"] = time.perf_counter() - module_started
        log(f"run_all: {name} {entries[name]['status']} in {entries[name]['seconds']:.0f} s")
    header["load_after"] = load_loads()
    header["total_s"] = time.perf_counter() - started
    results = {"header": header, "modules": entries}
    log(f"run_all: done in {header['total_s'] / 60:.1f} minutes")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "results.json", results)
        write_report(out)
    return results


def read_mergeable(folder: Path) -> dict[str, Any]:
    """`folder/results.json`, checked to be a results file a run can be merged into (SystemExit if not)."""
    path = folder / "results.json"
    if not path.is_file():
        raise SystemExit(f"run_all: --merge: {path} does not exist: run the whole benchmark first "
                         "(`make bench` or `python bench/run_all.py`), or leave out --merge")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(f"run_all: --merge: {path} cannot be read ({error}): rerun the whole benchmark") from None
    if not isinstance(results, dict) or set(results) != {"header", "modules"}:
        raise SystemExit(f"run_all: --merge: {path} is not a results file of the module protocol (header and "
                         "modules): rerun the whole benchmark")
    return results


def merge(folder: Path, fresh: dict[str, Any], log=print) -> dict[str, Any]:
    """Merge the module entries of `fresh` (a `run_all` run of some modules) into `folder/results.json`
    and write RESULTS.md again: the other modules' entries and the header stay; the header's
    `merged` list records each merge (modules, date, command, load, model)."""
    results = read_mergeable(folder)
    header, new_header = results["header"], fresh["header"]
    if bool(header.get("tiny")) != bool(new_header["tiny"]):
        kinds = ("the tiny model's", "the full model's")
        raise SystemExit(f"run_all: --merge: {folder / 'results.json'} holds {kinds[not header.get('tiny')]} figures "
                         f"and this run {kinds[not new_header['tiny']]}: they do not mix; use another --out")
    bad = [name for name, entry in fresh["modules"].items() if entry["status"] != "ok"]
    if bad:
        raise SystemExit(f"run_all: --merge: {', '.join(bad)} did not run to the end: nothing merged, the "
                         "figures in results.json stay as they were")
    if header.get("model") != new_header["model"]:
        log(f"run_all: note: merging figures of {new_header['model']} into a report of {header.get('model')}")
    results["modules"].update(fresh["modules"])
    header.setdefault("merged", []).append({
        "modules": list(fresh["modules"]), "date": new_header["date"], "command": new_header["command"],
        "model": new_header["model"], "load_before": new_header["load_before"], "load_after": new_header["load_after"],
        "total_s": new_header["total_s"]})
    write_json(folder / "results.json", results)
    write_report(folder, log=log)
    return results


def engine_facts() -> dict[str, Any]:
    """Engine constants the prose of RESULTS.md mentions, read when the benchmarks run."""
    from patternlang.engine import batching, measures

    facts = {"query_block": getattr(measures, "QUERY_BLOCK", None), "max_batch_rows": getattr(batching, "MAX_BATCH_ROWS", None)}
    return {key: value for key, value in facts.items() if value is not None}


def write_report(folder: Path, log=print) -> str:
    """RESULTS.md (and the modules' plots) in `folder`, from `folder/results.json` alone (and
    bench/results_gpu.json, if there is one): `--render` gives the same report as the run."""
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    if set(results) != {"header", "modules"}:
        raise SystemExit(f"run_all: {folder / 'results.json'} was written before the module protocol "
                         "(no header and modules): rerun `make bench` (or `python bench/run_all.py`) to renew it")
    gpu = json.loads(GPU_RESULTS.read_text(encoding="utf-8")) if GPU_RESULTS.is_file() else None
    for name, entry in results["modules"].items():
        module, _ = load_module(name)
        if entry["status"] == "ok" and module is not None and callable(getattr(module, "write_files", None)):
            module.write_files(entry["results"], folder)
    report = render(results, gpu)
    (folder / "RESULTS.md").write_text(report, encoding="utf-8")
    log(f"run_all: wrote {folder / 'results.json'} and {folder / 'RESULTS.md'}")
    return report


# ---- RESULTS.md -----------------------------------------------------------------------------
def met_text(met: bool | None) -> str:
    return "not measured" if met is None else "yes" if met else "**no**"


def render(results: dict[str, Any], gpu: dict[str, Any] | None = None) -> str:
    """RESULTS.md from the figures as saved in results.json (and results_gpu.json, if any)."""
    header, entries = results["header"], results["modules"]
    lines = ["# Benchmarks", "", "Written by `bench/run_all.py` from the `results.json` beside it (do not edit by hand; rerun "
             "`make bench`).", "", *render_header(header, entries), ""]
    problems = [f"- **{entry['status'].upper()}: `{name}`**: {entry['why']}. Its figures and targets are missing "
                "from this report." for name, entry in entries.items() if entry["status"] != "ok"]
    if problems:
        lines += ["## Modules not in this report", "", *problems, ""]

    rows: list[TargetRow] = []
    sections: list[str] = []
    for name, entry in entries.items():
        module = load_module(name)[0] if entry["status"] == "ok" else None
        if entry["status"] != "ok":
            rows.append((f"`{name}`'s targets", f"{entry['status']}: {entry['why']}", None))
        elif module is None:
            rows.append((f"`{name}`'s targets", "its module is gone: this report cannot render its results", None))
        else:
            rows += module.target_rows(entry["results"])
            sections.append(module.render(entry["results"]))
    gpu_module = load_module("gpu")[0]
    if gpu is not None and gpu_module is not None:
        rows += gpu_module.target_rows(gpu)
        sections.append(gpu_module.render(gpu))
    else:
        rows.append(("GPU targets (bench/gpu.py)", "not measured: " + no_gpu_reason(header), None))
        sections.append("## GPU\n\n**Not measured.** " + no_gpu_reason(header).capitalize() + ". `bench/gpu.py` "
                        "measures the GPU figures on a CUDA machine and writes `bench/results_gpu.json`, which the "
                        "next `make bench` (or `python bench/run_all.py --render`) puts here; none are estimated.\n")
    lines += ["## Targets", "", table(["target", "measured", "met"],
                                      [(target, measured, met_text(met)) for target, measured, met in rows]), ""]
    lines += [section.rstrip("\n") + "\n" for section in sections]
    lines += ["## What makes it fast", "", why_fast(header.get("engine", {})), ""]
    return "\n".join(lines)


def render_header(header: dict[str, Any], entries: dict[str, Any]) -> list[str]:
    m = header["machine"]
    gpu = (f"GPU: {m['gpu']}" + (f" (x{m['gpu_count']})" if m.get("gpu_count", 1) > 1 else "")
           if m.get("gpu") else "no GPU visible to torch")
    repeats = (f"`--repeats {header['repeats']}`, passed to every module that takes it (each section states "
               "its runs)" if header.get("repeats") else "each module's own number of runs (stated in its section)")
    times = ", ".join(f"`{name}` {entry['seconds']:.0f} s" for name, entry in entries.items() if "seconds" in entry)
    merged = [(f"- **Rerun and merged later:** {', '.join(f'`{name}`' for name in m['modules'])} on {m['date']} by "
               f"`{m['command']}` ({m['total_s'] / 60:.1f} minutes; model {m['model']}; load average before / after "
               f"{_load(m['load_before'])} / {_load(m['load_after'])}); the other modules' figures are from the run "
               "above") for m in header.get("merged", [])]
    return [
        f"- **Date:** {header['date']}",
        (f"- **Command:** `{header['command']}`, {header['total_s'] / 60:.1f} minutes in all (model load "
         f"{header['model_load_s']:.1f} s; {times})"),
        f"- **Repeats:** {repeats}",
        (f"- **Machine:** {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
         f"{m['memory_gib']} GiB RAM, {gpu}; {m['platform']}"),
        (f"- **Software:** Python {m['python']}, torch {m['torch']}, transformer-lens {m.get('transformer_lens', '?')}, "
         f"transformers {m.get('transformers', '?')}"),
        f"- **Model:** {header['model']}" + (" (the hand-set tiny model: `--tiny`)" if header["tiny"] else ""),
        (f"- **Load average** before / after: {_load(header['load_before'])} / {_load(header['load_after'])} "
         "(where the machine is shared, only ratios measured side by side in one run mean much)"),
        *merged,
    ]


def no_gpu_reason(header: dict[str, Any]) -> str:
    found = header["machine"].get("gpu")
    where = f"the machine of this run has a GPU ({found})" if found else "the machine of this run has no GPU"
    return f"no bench/results_gpu.json; {where}"


def _load(values: Any) -> str:
    return "?" if not values else " ".join(f"{v:.2f}" for v in values)


def why_fast(engine: dict[str, Any]) -> str:
    block = engine.get("query_block")
    blocks = (f"Long prompts go by blocks of {block} queries" if block else "Long prompts go by blocks of queries")
    return f"""\
- One batched forward pass per batch of prompts for *all* patterns (TransformerLens: one pass per
  prompt *and* per pattern), stopped right after the last layer's attention pattern.
- The detection tensors of every pattern are built once per batch, on features shared by all
  patterns, and written straight into one tensor (`evaluate_all(out=...)`, no stacked copy).
- Per layer, one batched matmul multiplies every head's attention rows by every pattern's rows
  at once (`cell_products`: `einsum("bhqk,bqkc->bqhc")`, patterns last); an extra column of
  counted cells gives each row's attention sum in the same matmul, so `mass` (with its
  renormalisation) and `mul` need no elementwise pass over the attention. {blocks}
  that read only the keys up to their last query (about half the work), through strided views
  of the attention and the detection tensor (no copies).
- The sums stay on the device in float64 (no `.item()` per head); nothing is kept per prompt,
  so memory depends on the batch, never on the number of prompts.
- Batches are sized from free memory, longest prompts first, so long prompts get small batches.

Not covered by these figures: `tv` (an elementwise minimum per pattern and layer, with no matmul
form) and `abs` cost more per pattern than `mass`, `mul` and `argmax`; `detect(..., measures=None)`
scores every pattern with the union of the patterns' own measures (`mass` and `tv` for the
shipped patterns), which these benchmarks do not time."""


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the hand-set tiny model at tiny sizes, in seconds (CI)")
    parser.add_argument("--modules", nargs="+", default=list(MODULES), help="the modules to run, in order")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs of every contender in every module (default: each module's own)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json, RESULTS.md and the plots (default: bench/, none with --tiny)")
    parser.add_argument("--render", action="store_true",
                        help="only redraw RESULTS.md and the plots from the results.json in --out (default bench/)")
    parser.add_argument("--merge", action="store_true",
                        help="run only --modules and merge their entries into the results.json in --out (default "
                             "bench/; with --tiny, --out is required), keeping the other modules' entries; then "
                             "write RESULTS.md")
    args = parser.parse_args(argv)
    if args.merge and args.render:
        parser.error("--merge runs modules and --render runs none: give one of them")
    if args.merge and args.tiny and args.out is None:
        parser.error("--merge with --tiny needs --out: the tiny model's figures never go into bench/results.json")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, not {args.repeats}")
    if args.render:
        folder = args.out or BENCH_DIR
        write_report(folder)
        return json.loads((folder / "results.json").read_text(encoding="utf-8"))
    out = args.out if args.out is not None else (None if args.tiny else BENCH_DIR)
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python bench/run_all.py", *(shlex.quote(a) for a in arguments)])
    if args.merge:
        folder = args.out or BENCH_DIR
        read_mergeable(folder)  # said before the modules run, not after
        fresh = run_all(tiny=args.tiny, modules=args.modules, repeats=args.repeats, out=None, command=command)
        return merge(folder, fresh)  # a module that failed or did not run replaces nothing (exit 1)
    results = run_all(tiny=args.tiny, modules=args.modules, repeats=args.repeats, out=out, command=command)
    if any(entry["status"] == "failed" for entry in results["modules"].values()):
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()
