"""Start-up time: the embedded model's `load_model()` and a 2-prompt `patternlang detect`, cold and
warm, before and after, side by side in one run (each case in a fresh process).

    python bench/startup.py                      # writes bench/STARTUP.md and bench/startup.json
    python bench/startup.py --baseline 19a18fe   # adds a column: the warm cache of that commit's code

Columns: "no cache" is the GGUF path (`PATTERNLANG_WEIGHTS_CACHE=0`: de-quantised on every load,
as before the cache existed); "cold" is the first load with the cache on and empty (de-quantises
and writes the cache); "warm" reads the cache. With `--baseline REF`, the package as it was at
REF (`git archive`, first on `PYTHONPATH`) runs on a warm cache of its own, in the same
interpreter. Every case runs `--rounds` times, interleaved, and the best run is kept. A last,
instrumented warm run says where the time of a warm start goes.

Targets (2-core machine, warm cache): `load_model()` <= 3 s; the 2-prompt detect <= 8 s.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROMPTS = "The cat sat on the mat. The cat sat on the mat.\nOne two three four, one two three.\n"
TARGETS = {"load_model": 3.0, "detect_2_prompts": 8.0}

# load_model() in a fresh process: the imports of torch, transformers and transformer_lens are
# timed apart ("imports excluded", as the issue measured); what load_model imports after them
# (the bridge, the model's class) counts in the call.
LOAD = ("import time; t0 = time.perf_counter(); import torch, transformers, transformer_lens; "
        "from patternlang.models import load_model; t1 = time.perf_counter(); load_model(); "
        "t2 = time.perf_counter(); import json; print(json.dumps({'imports': t1 - t0, 'load': t2 - t1}))")

# Where a warm start's time goes: the stages of one `patternlang detect` process, timed inside it.
BREAKDOWN = r'''
import gc, os, time, json, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as patternlang.cli.main does, before torch loads
T0 = time.perf_counter(); marks = {}
collecting = {"seconds": 0.0}
def on_collection(phase, info):  # every collection the process makes, timed
    if phase == "start":
        collecting["started"] = time.perf_counter()
    else:
        collecting["seconds"] += time.perf_counter() - collecting["started"]
gc.callbacks.append(on_collection)
def mark(name, since):
    now = time.perf_counter(); marks[name] = now - since; return now
t = T0
import typer, rich; t = mark("import typer, rich (the CLI)", t)
from patternlang.collector import collector_paused
with collector_paused():  # as the detect command imports them
    import torch; t = mark("import torch", t)
    import transformers; t = mark("import transformers", t)
    import transformer_lens; t = mark("import transformer_lens", t)
    from transformer_lens.model_bridge import TransformerBridge; t = mark("import transformer_lens.model_bridge (with transformers' modelling code)", t)
    import transformers.models.llama.modeling_llama; t = mark("import the Llama model class", t)
    import patternlang.cli as cli
    import patternlang.engine as engine
    import patternlang.library as library
    import patternlang.pipeline as pipeline
    import patternlang.models as models
    from patternlang.models import loaders, weights_cache
    import patternlang.engine.readers as scoring  # the hooked reader runs the passes
    t = mark("import patternlang (CLI, engine, models)", t)
def timed(module, name, label):
    original = getattr(module, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            marks[label] = marks.get(label, 0.0) + time.perf_counter() - start
    setattr(module, name, wrapper)
timed(library, "shipped_library", "patterns: the shipped library (parse, check, compile)")
pipeline.shipped_library = library.shipped_library  # the pipeline builds it; both names call the timed one
timed(weights_cache, "stamped_digest", "load: the GGUF file's key (from its stamp)")
timed(weights_cache, "read_model", "load: the model from the safetensors cache")
timed(weights_cache, "load_cached", "load: the cache entry (tokenizer + model)")
timed(loaders, "_boot_transformers", "load: TransformerBridge.boot_transformers")
timed(models, "load_model", "load_model() in all")
timed(scoring, "run_attention_hooks", "score: the forward passes with hooks")
timed(engine, "detect", "score: detect() in all")
start = time.perf_counter()
try:
    cli.main(["detect", "previous_token_head", "--prompts", sys.argv[1], "--no-progress"])
except SystemExit:
    pass
marks["the detect command in all (from its arguments to the table)"] = time.perf_counter() - start
marks["the process in all (from the interpreter's start)"] = time.perf_counter() - T0
marks["of which garbage collection (gc.callbacks), all stages"] = collecting["seconds"]
print(json.dumps(list(marks.items())), file=sys.stderr)
'''


def run(command: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout, done.stderr


def baseline_source(ref: str, folder: Path) -> Path:
    """The patternlang package as it was at `ref`, unpacked into `folder`."""
    archive = folder / "baseline.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), ref, "patternlang",
                    "grammars", "patterns"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "baseline", filter="data")
    return folder / "baseline"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each warm case; the best is kept")
    parser.add_argument("--cold-rounds", type=int, default=1, help="runs of each cold and no-cache case")
    parser.add_argument("--baseline", metavar="REF", help="also time the warm cache of the code at this git ref")
    parser.add_argument("--baseline-python", metavar="PYTHON", default=sys.executable,
                        help="the interpreter (virtual environment) the baseline runs in (default: this one)")
    args = parser.parse_args(argv)
    loads = [load_average()]
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        prompts = folder / "two.txt"
        prompts.write_text(PROMPTS)
        load = [sys.executable, "-c", LOAD]
        detect = [sys.executable, "-m", "patternlang.cli", "detect", "previous_token_head", "--prompts", str(prompts),
                  "--no-progress"]
        interpreters = {}
        # This checkout's package first on the path, whichever copy the interpreter has installed.
        base = {**os.environ, "PATTERNLANG_WEIGHTS_CACHE": "1", "PYTHONPATH": str(REPO)}
        cases = {
            "no cache": {**base, "PATTERNLANG_WEIGHTS_CACHE": "0", "PATTERNLANG_CACHE_DIR": str(folder / "none")},
            "cold": {**base, "PATTERNLANG_CACHE_DIR": str(folder / "cold")},
            "warm": {**base, "PATTERNLANG_CACHE_DIR": str(folder / "warm")},
        }
        if args.baseline:
            source = baseline_source(args.baseline, folder)
            cases[f"warm, {args.baseline}"] = {**base, "PATTERNLANG_CACHE_DIR": str(folder / "baseline-cache"),
                                               "PYTHONPATH": str(source)}
            interpreters[f"warm, {args.baseline}"] = args.baseline_python

        def command_for(name: str, command: list[str]) -> list[str]:
            return [interpreters.get(name, sys.executable), *command[1:]]

        for name, env in cases.items():
            if name.startswith("warm"):
                run(command_for(name, load), env)  # fills this case's cache
        samples: dict[str, dict[str, list[float]]] = {
            row: {} for row in ("load_model", "load_model_process", "detect_2_prompts")}

        def keep(row: str, case: str, seconds: float) -> None:
            samples[row].setdefault(case, []).append(seconds)

        for round_ in range(max(args.rounds, args.cold_rounds)):
            for name, env in cases.items():  # interleaved: every case sees the same machine load
                slow = not name.startswith("warm")
                if slow and round_ >= args.cold_rounds:
                    continue
                for command in (load, detect):
                    if name == "cold":
                        subprocess.run(["rm", "-rf", env["PATTERNLANG_CACHE_DIR"]], check=True)
                    wall, out, _ = run(command_for(name, command), env)
                    if command is load:
                        inner = json.loads(out.strip().splitlines()[-1])
                        keep("load_model", name, inner["load"])
                        keep("load_model_process", name, wall)
                    else:
                        keep("detect_2_prompts", name, wall)
            loads.append(load_average())
        _, _, err = run([sys.executable, "-c", BREAKDOWN, str(prompts)], cases["warm"])
        breakdown = json.loads(err.strip().splitlines()[-1])
    results = {row: {case: min(runs) for case, runs in by_case.items()} for row, by_case in samples.items()}
    medians = {row: {case: statistics.median(runs) for case, runs in by_case.items()}
               for row, by_case in samples.items()}
    scipy = importlib.util.find_spec("scipy") is not None
    baseline_scipy = None
    if args.baseline:
        baseline_scipy = subprocess.run([args.baseline_python, "-c", "import importlib.util as u; "
                                         "print(u.find_spec('scipy') is not None)"],
                                        capture_output=True, text=True).stdout.strip() == "True"
    report = {"date": datetime.datetime.now().isoformat(timespec="minutes"), "rounds": args.rounds,
              "cold_rounds": args.cold_rounds, "baseline": args.baseline, "cpus": os.cpu_count(),
              "load_average": loads, "scipy_installed": scipy, "python": sys.executable,
              "baseline_python": args.baseline_python if args.baseline else None,
              "baseline_scipy_installed": baseline_scipy,
              "results": results, "medians": medians, "samples": samples, "warm_breakdown": breakdown}
    write_report(report, list(cases))
    return report


def write_report(report: dict, cases: list[str]) -> None:
    results = report["results"]
    command = "python bench/startup.py" + (f" --baseline {report['baseline']}" if report["baseline"] else "")
    if report["baseline"] and report["baseline_python"] != report["python"]:
        command += " --baseline-python OTHER_VENV/bin/python"
    lines = [
        "# Start-up: the embedded model's load and a 2-prompt detect, cold and warm", "",
        f"Generated by `{command}` on {report['date']}, {report['cpus']} CPUs, load average "
        f"{report['load_average'][0]} at the start and {report['load_average'][-1]} at the end (other work "
        f"shares the machine; every case is the best of its runs: {report['rounds']} warm, "
        f"{report['cold_rounds']} cold, the median in brackets; cases interleaved). Each case is a fresh process. scipy "
        f"{'is' if report['scipy_installed'] else 'is not'} installed (transformers imports it at start-up "
        "when it is).", "",
        "- **no cache**: `PATTERNLANG_WEIGHTS_CACHE=0`, the GGUF file de-quantised on every load (as before "
        "the cache existed);",
        "- **cold**: the first load, cache on and empty (de-quantises, then writes the cache);",
        "- **warm**: the cache filled by an earlier load.",
    ]
    if report["baseline"]:
        other = report["baseline_python"] != report["python"]
        lines.append(f"- **warm, {report['baseline']}**: the same, with the package as it was at commit "
                     f"{report['baseline']}"
                     + (f", run by another virtual environment, in which scipy "
                        f"{'is' if report['baseline_scipy_installed'] else 'is not'} installed" if other else "")
                     + ".")
    lines += ["", "| what | " + " | ".join(cases) + " | target (warm) | met |",
              "|---|" + "---|" * (len(cases) + 2)]
    labels = {"load_model": "`load_model()` call (after importing torch, transformers, transformer_lens)",
              "load_model_process": "`python -c \"...; load_model()\"`, the whole process",
              "detect_2_prompts": "`patternlang detect previous_token_head --prompts two.txt`, end to end"}
    for row, label in labels.items():
        cells = [f"{results[row][case]:.1f} s ({report['medians'][row][case]:.1f})" if case in results[row] else ""
                 for case in cases]
        target = TARGETS.get(row)
        met = ""
        if target:
            best, median = results[row]["warm"], report["medians"][row]["warm"]
            met = "yes (best and median)" if median <= target else ("best run only" if best <= target else "no")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {f'<= {target:.0f} s' if target else ''} | {met} |")
        print(f"startup, {row}: " + ", ".join(f"{case} {results[row][case]:.1f} s" for case in cases
                                             if case in results[row]))
    lines += ["", "Where a warm `patternlang detect` spends its time (one instrumented run; the load's parts "
              "are inside `load_model()` and the scoring's inside `detect()`, both inside the command; the "
              "end-to-end time above also holds the interpreter's start and exit):", "",
              "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in report["warm_breakdown"]]
    (BENCH / "STARTUP.md").write_text("\n".join(lines) + "\n")
    (BENCH / "startup.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
