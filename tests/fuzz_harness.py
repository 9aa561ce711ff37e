"""Run inputs through patternlang's public entry points and classify what comes out.

An input family (inline rules, `.pattern` files, YAML files, command lines, ...) is a `Family`:
a name, a generator of cheap random inputs, and the entry points every input goes through. The
only outcomes allowed are a result or a clear error (a `PatternError` with a message, or the CLI
exiting 1, or 2 for a usage error), each within `TIME_LIMIT_S`; anything else fails the test
with the input that caused it. Adding a family (prompt files, say) is one generator and one
`Family(...)` line in `FAMILIES`.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from patternlang import PatternError, check_files, load_pattern, load_patterns, shipped_patterns
from patternlang.cli import main
from patternlang.syntax.parser import KEYWORDS, parse_probe

TIME_LIMIT_S = 5.0
CORPUS = Path(__file__).parent / "corpus"

# Token texts every compiled result is evaluated on: long runs of one character (the regex
# trap), word-start markers, a newline, another script, an empty text, an undecodable byte.
TOKENS = ["<s>", "=" * 81, "-" * 64, "Ġcat", " the", "\n", "日本語", "", "#" * 64, "\udcff", " cat", "."]


class SlowInput(BaseException):
    """Raised by the timer; a BaseException so that no `except Exception` in the code swallows it."""


class ReachedModel(BaseException):
    """A fuzzed command line got as far as loading a model or a tokenizer (too slow for a fuzz run)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the block after `seconds` (on the main thread of a POSIX system; elsewhere the
    elapsed time is still checked afterwards)."""
    def interrupt(signum, frame):
        raise SlowInput(f"took more than {seconds} s")

    try:
        previous = signal.signal(signal.SIGALRM, interrupt)
    except (AttributeError, ValueError):  # no SIGALRM, or not the main thread
        previous = None
    if previous is not None:
        signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.perf_counter()
    try:
        yield
    finally:
        if previous is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if time.perf_counter() - started > seconds:
        raise SlowInput(f"took {time.perf_counter() - started:.1f} s (at most {seconds} s)")


# ---- entry points -------------------------------------------------------------------------------
# Each takes the input (prepared by the family: a str, a path, or argv) and returns "result" or
# "error", or raises for anything that is neither.

def _evaluate(patterns) -> None:
    for pattern in patterns:
        matrix = pattern.matrix(str_tokens=TOKENS)
        if not torch.isfinite(matrix).all():
            raise AssertionError(f"pattern {pattern.name!r} gives a non-finite detection matrix")


def api_outcome(call: Callable[[], object]) -> str:
    """"result" if `call()` returns, "error" for a clear `PatternError`; anything else propagates."""
    try:
        call()
    except PatternError as error:
        rendered = str(error)
        if not error.message.strip() or not rendered.strip() or "Traceback" in rendered:
            raise AssertionError(f"an unclear error: {type(error).__name__}({rendered!r})") from error
        return "error"
    return "result"


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`patternlang ARGV` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exited:
            code = exited.code
    return (code if isinstance(code, int) else 0 if code is None else -1), out.getvalue(), err.getvalue()


def clear_cli_outcome(code: int, out: str, err: str) -> bool:
    """Exit 0, or 1 with a message (on stderr, or as JSON with --json), or 2 (usage); no traceback."""
    if code not in (0, 1, 2) or "Traceback" in err + out:
        return False
    if code == 1:
        return err.startswith("patternlang: ") and len(err.strip()) > len("patternlang:") or '"ok": false' in out
    return code == 0 or bool((err + out).strip())  # usage: the help may go to stdout


def cli_outcome(argv: list[str]) -> str:
    """"result" for exit 0, "error" for a clear exit 1 or 2; anything else fails."""
    code, out, err = run_cli(argv)
    if not clear_cli_outcome(code, out, err):
        raise AssertionError(f"exit code {code}, stderr: {err[-2000:]!r}")
    return "result" if code == 0 else "error"


def rule_load_pattern(rule: str) -> str:
    return api_outcome(lambda: _evaluate([load_pattern(rule)]))


def rule_parse_probe(text: str) -> str:
    """What `--probe` takes is read by the same grammar (start symbol `probe_spec`)."""
    return api_outcome(lambda: parse_probe(text))


def rule_cli_compile(rule: str) -> str:
    return cli_outcome(["compile", rule, "--tokens", "a b a ="])


def file_load_patterns(path: Path) -> str:
    return api_outcome(lambda: _evaluate(load_patterns(path)))


def file_check_files(path: Path) -> str:
    return api_outcome(lambda: check_files([path]))


def file_cli_check(path: Path) -> str:
    return cli_outcome(["check", str(path)])


def file_cli_compile(path: Path) -> str:
    return cli_outcome(["compile", str(path), "--tokens", "x y x", "--json"])


def cli_main(argv: list[str]) -> str:
    return cli_outcome(argv)


@dataclass(frozen=True)
class EntryPoint:
    name: str
    run: Callable[[object], str]
    every: int = 1  # in generated runs, only every n-th input goes through (the slow entry points)


@dataclass(frozen=True)
class Family:
    """A kind of input: how to make one at random, how to hand it over, where it goes in."""

    name: str
    generate: Callable[[random.Random], object]
    entry_points: tuple[EntryPoint, ...]
    count: int                                   # generated inputs per test run
    prepare: Callable[[object, Path], object] = lambda value, workdir: value  # e.g. write a file
    corpus_glob: str | None = None               # hand-written cases under tests/corpus


def _write_file(suffix: str) -> Callable[[object, Path], Path]:
    def write(value, workdir: Path) -> Path:
        path = workdir / f"case{suffix}"
        path.write_bytes(value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass"))
        return path
    return write


@dataclass
class Tally:
    """Outcomes per entry point, for the summary line and the JSON record."""

    inputs: int = 0
    outcomes: dict[str, Counter] = field(default_factory=dict)

    def add(self, entry: str, outcome: str) -> None:
        self.outcomes.setdefault(entry, Counter())[outcome] += 1

    def summary(self, family: str) -> str:
        parts = [f"{entry}: {c['result']} result / {c['error']} error" for entry, c in self.outcomes.items()]
        return f"fuzz {family}: {self.inputs} inputs; " + "; ".join(parts)

    def as_json(self) -> dict:
        return {"inputs": self.inputs, "outcomes": {e: dict(c) for e, c in self.outcomes.items()}}


def run_one(family: Family, value: object, workdir: Path, tally: Tally, *, index: int | None = None,
            label: str = "") -> dict[str, str]:
    """Every entry point of `family` on one input (in generated runs, only those due at `index`)."""
    prepared = family.prepare(value, workdir)
    tally.inputs += 1
    outcomes = {}
    for entry in family.entry_points:
        if index is not None and index % entry.every:
            continue
        try:
            with time_limit(TIME_LIMIT_S):
                outcome = entry.run(prepared)
        except (Exception, SlowInput, ReachedModel) as exc:
            shown = repr(value)
            shown = shown if len(shown) < 600 else shown[:300] + " ... " + shown[-300:]
            raise AssertionError(f"{family.name} {label or f'input #{index}'} via {entry.name}: "
                                 f"{type(exc).__name__}: {exc}\ninput: {shown}") from exc
        tally.add(entry.name, outcome)
        outcomes[entry.name] = outcome
    return outcomes


def run_generated(family: Family, workdir: Path, seed: int = 0) -> Tally:
    """`family.count` generated inputs, each from its own seeded generator (so one reproduces alone)."""
    tally = Tally()
    for index in range(family.count):
        rng = random.Random(f"{seed}:{family.name}:{index}")
        run_one(family, family.generate(rng), workdir, tally, index=index)
    return tally


def record(tallies: dict[str, Tally], path: Path) -> None:
    path.write_text(json.dumps({name: t.as_json() for name, t in tallies.items()}, indent=2))


# ---- generators -----------------------------------------------------------------------------------
NAMES = ["q", "k", "tok", "str", "word", "start", "special", "lower", "strip", "startswith", "endswith",
         "contains", "matches", "iequals", "word_start", "true", "false", "bos", "current", "mass", "tv",
         "repeated_random", "natural", "file", "induction_head", "previous_token_head", "bos_head", "x", "p1",
         "_", "length", "seed", "path"]
OPERATORS = ["|", "&", "+", "-", "*", "(", ")", "[", "]", ",", "==", "!=", "<", "<=", ">", ">=", "=", ":",
             "+1", "-1", "+999999999"]
LITERALS = ["0", "1", "3", "0.5", "1e999", "1e38", "-0", "99999999999999999999", '"a"', '"Ġ"', '""', "'x'",
            '"(a+)+$"', '"^(=+)+$"', '"(?=a)"', '"(a)\\1"', '"("', '"\\s"', '"""doc"""', '"""', '"', "'"]
WEIRD = ["\n", "\t", "\r", "\x00", "\x0c", "\u2028", "\ufeff", "é", "日", "\\", "#", "$", "@", "`", "\udcff", "…"]
PIECES = list(KEYWORDS) + NAMES + OPERATORS + LITERALS + WEIRD


def _soup(rng: random.Random, low: int = 0, high: int = 30) -> str:
    out = []
    for _ in range(rng.randint(low, high)):
        out.append(rng.choice(PIECES))
        out.append(rng.choice([" ", " ", " ", "", "\n", "  "]))
    return "".join(out)


def _mutate(rng: random.Random, text: str, rounds: int | None = None) -> str:
    """A few random edits: cut, copy, insert, glue, swap, wrap, truncate."""
    for _ in range(rounds or rng.randint(1, 3)):
        n = len(text)
        i, j = sorted(rng.randint(0, n) for _ in range(2))
        action = rng.randrange(11)
        if action == 0:
            text = text[:i] + text[j:]
        elif action == 1:
            text = text[:j] + text[i:j] + text[j:]
        elif action in (2, 3):
            text = text[:i] + rng.choice([" ", ""]) + rng.choice(PIECES) + rng.choice([" ", ""]) + text[i:]
        elif action == 4:  # glue two words together
            spaces = [m.start() for m in re.finditer(" ", text)]
            if spaces:
                at = rng.choice(spaces)
                text = text[:at] + text[at + 1:]
        elif action == 5:  # swap two words
            words = text.split(" ")
            a, b = rng.randrange(len(words)), rng.randrange(len(words))
            words[a], words[b] = words[b], words[a]
            text = " ".join(words)
        elif action == 6:
            depth = rng.choice([1, 3, 50, 200])
            text = rng.choice(["(" * depth + text + ")" * depth, "not " * depth + text,
                               text + " shift +1" * depth])
        elif action == 7:
            text = text[:i]
        elif action == 8:
            text = f"({text}) {rng.choice(['|', '&', '+', '-'])} ({text})"
        elif action == 9:
            text = text[:i] + rng.choice(WEIRD) + text[i:]
        else:
            text = text[:i] + rng.choice(LITERALS) + text[j:]
    return text


# Small edits that often keep a rule valid, so that generated inputs also reach the compiler and
# the evaluation of the matrices, not only the parser.
_MILD = [(r"==", ["!=", "==", "<=", ">"]), (r"\bq\b", ["k", "q - 1", "q + 2", "0"]),
         (r"\btok\b", ["str", "word", "tok"]), (r"\b\d+\b", ["0", "1", "7", "100000", "-2"]),
         (r'"[^"]*"', ['"a"', '"(a+)+$"', '"^\\s*[.,]$"', '"\\p{Han}"', '""', '" "']),
         (r"\band\b", ["or", "and not"]), (r"\+1\b", ["-1", "+0", "+3"])]


def _mild(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 2)):
        found, choices = rng.choice(_MILD)
        places = list(re.finditer(found, text))
        if places:
            place = rng.choice(places)
            text = text[:place.start()] + rng.choice(choices) + text[place.end():]
        else:  # wrap the expression; settings (`probe natural`) stay at the end
            settings = re.search(r"\s(?:probe|measure|exclude)\s.*$|\snormalize\s*$", text)
            cut = settings.start() if settings else len(text)
            expr, tail = text[:cut], text[cut:]
            text = rng.choice([f"({expr}) shift +1", f"normalize({expr})", f"0.5 * ({expr})",
                               f"({expr}) | bos_head", f"({expr}) & (attend k where k < q)"]) + tail
    return text


def _shipped_rules() -> list[str]:
    rules = []
    for pattern in shipped_patterns():
        source = pattern.source
        if source.lstrip().startswith("pattern"):
            source = source.split(":", 1)[1]
            if '"""' in source:
                source = source.rsplit('"""', 1)[1]
        rules.append(" ".join(source.split()))
    return rules


def _corpus_texts(glob: str) -> list[str]:
    # The huge cases (deep nesting, long lines) are left out: mutating them is slow and adds nothing.
    texts = [path.read_bytes().decode("utf-8", "replace") for path in sorted(CORPUS.glob(glob))]
    return [text for text in texts if len(text) < 4_000]


_SEEDS: dict[str, list[str]] = {}


def seeds(kind: str) -> list[str]:
    """Texts to mutate: the shipped definitions and the corpus, read once."""
    if kind not in _SEEDS:
        shipped = sorted(Path(p.filename).read_text(encoding="utf-8") for p in shipped_patterns()
                         if p.filename and p.filename.endswith(kind))
        if kind == "rule":
            _SEEDS[kind] = _shipped_rules() + [_strip_header(t) for t in _corpus_texts("rules/*.rule")]
        elif kind == "good rule":
            _SEEDS[kind] = _shipped_rules() + [_strip_header(t) for t in _corpus_texts("rules/*.rule")
                                               if t.startswith("# expect: result")]
        else:
            _SEEDS[kind] = sorted(set(shipped)) + _corpus_texts(f"*/*{kind}")
    return _SEEDS[kind]


def generate_rule(rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.15:
        return _soup(rng)
    if choice < 0.45:
        return _mild(rng, rng.choice(seeds("good rule")))
    return _mutate(rng, rng.choice(seeds("rule")))


def _sound_definitions(rng: random.Random) -> list[tuple[str, str]]:
    """(name, rule) pairs that should check: mildly edited good rules, some referring to earlier ones."""
    pairs: list[tuple[str, str]] = []
    for number in range(rng.randint(1, 4)):
        if pairs and rng.random() < 0.3:
            rule = f"{rng.choice(pairs)[0]} {rng.choice(['|', '&', '+'])} {rng.choice(pairs)[0]}"
        else:
            rule = _mild(rng, rng.choice(seeds("good rule")))
        pairs.append((f"p{number}", rule))
    return pairs


def generate_pattern_file(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.3:
        text = "".join(f'pattern {name}:\n    """Doc of {name}."""\n    {rule}\n'
                       for name, rule in _sound_definitions(rng))
    elif choice < 0.6:  # a shipped or corpus file, edited line by line and character by character
        text = _edit_lines(rng, rng.choice(seeds(".pattern")))
    else:  # definitions whose names collide, refer to each other, and hold mutated rules
        names = [rng.choice(["a", "b", "c", "induction_head", "where", "p1", "orq"]) for _ in range(rng.randint(1, 6))]
        parts = []
        for name in names:
            doc = rng.choice(["", '"""A doc."""', '"""unclosed', '"one line"'])
            body = rng.choice([generate_rule(rng), " | ".join(rng.sample(names, min(2, len(names))))])
            parts.append(f"pattern {name}:\n    {doc}\n    {body}\n")
        text = "".join(parts)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:
        at = rng.randint(0, len(data))
        data = data[:at] + rng.choice([b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf"]) + data[at:]
    return data


YAML_PIECES = [": ", "- ", "[", "]", "{", "}", "&a ", "*a", "!!str ", "!!python/object:os.system ", "<<: ", "'",
               '"', "|", ">", "#", "\t", "---", "...", "? ", ",", "\n  ", "\n", "~", "null", "yes", "1e999"]
FIELD_NAMES = ["name", "rule", "description", "measure", "exclude_bos", "exclude_current", "probe", "normalize",
               "rul", "desciption", "patterns", "nmae", "length"]


def _edit_lines(rng: random.Random, text: str, pieces: list[str] | None = None) -> str:
    """A file edited line by line: lines dropped or copied (in YAML, often a duplicate key), a
    piece of syntax inserted (when `pieces` are given), mild edits and mutations."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(lines))
        action = rng.randrange(6 if pieces else 5)
        if action == 0:
            del lines[at]
        elif action == 1:
            lines.insert(at, lines[rng.randrange(len(lines))])
        elif pieces and action == 2:
            column = rng.randint(0, len(lines[at]))
            lines[at] = lines[at][:column] + rng.choice(pieces) + lines[at][column:]
        elif action == (3 if pieces else 2):
            lines[at] = _mild(rng, lines[at])
        else:
            lines[at] = _mutate(rng, lines[at], 1)
        if not lines:
            lines = [""]
    return "\n".join(lines)


def _yaml_scalar(rng: random.Random) -> str:
    value = rng.choice([generate_rule(rng), rng.choice(NAMES), "true", "3", "-1", "", "[a, b]", "{name: natural}"])
    style = rng.randrange(3)
    if style == 0:
        return json.dumps(value)
    if style == 1:
        return ">\n      " + value.replace("\n", " ")
    return value


def generate_yaml_file(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.3:
        text = "patterns:\n" + "".join(f"  - name: {name}\n    rule: {json.dumps(rule, ensure_ascii=False)}\n"
                                        for name, rule in _sound_definitions(rng))
    elif choice < 0.6:
        text = _edit_lines(rng, rng.choice(seeds(".yaml")), pieces=YAML_PIECES)
    else:
        entries = []
        for number in range(rng.randint(0, 4)):
            if rng.random() < 0.5:  # a sound entry around a mildly edited rule
                rule = json.dumps(_mild(rng, rng.choice(seeds("good rule"))), ensure_ascii=False)
                extra = rng.choice(["", "\n    probe: natural", "\n    measure: tv", "\n    normalize: true"])
                entries.append(f"  - name: p{number}\n    rule: {rule}{extra}")
                continue
            fields = rng.sample(FIELD_NAMES, rng.randint(0, 4))
            if rng.random() < 0.7:
                fields = ["name", "rule"] + fields
            entries.append("  - " + "\n    ".join(f"{f}: {_yaml_scalar(rng)}" for f in fields))
        text = rng.choice(["patterns:\n"] * 4 + ["pattern:\n", "", "patterns: []\n"]) + "\n".join(entries) + "\n"
        if rng.random() < 0.2:
            text = _mutate(rng, text, 1)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.03:
        at = rng.randint(0, len(data))
        data = data[:at] + rng.choice([b"\xff", b"\x00", b"\xef\xbb\xbf"]) + data[at:]
    return data


# Placeholders in command lines, replaced by files made in the work folder (see `prepare_cli`).
CLI_FILES = {
    "{good.pattern}": "pattern a: attend k where k == 0\npattern b: a shift +1\n",
    "{one.pattern}": "pattern only: attend k where k == q - 1\n",
    "{bad.pattern}": "pattern a: attend k where tok[k] < tok[q]\npattern b: missing_head\n",
    "{good.yaml}": "patterns:\n  - name: y\n    rule: attend k where k == 0\n",
    "{bad.yaml}": "patterns:\n  - name: y\n    rul: attend k\n",
    "{spaced name.pattern}": "pattern s: attend k where k == q\n",
    "{empty.yaml}": "",
    "{prompts.txt}": "The cat sat. The cat sat.\nA second prompt\n",
    "{ids.jsonl}": '{"tokens": [1, 2, 3]}\n{"tokens": [4, 5]}\n',
    "{bad ids.jsonl}": '{"tokens": [1, 18446744073709551616]}\n',
    "{mixed.jsonl}": '{"text": "a"}\n{"tokens": [1]}\n',
}


def generate_cli(rng: random.Random) -> list[str]:
    command = rng.choice(["compile"] * 5 + ["check"] * 3 + ["list", "bogus", "", "--help", "-h"])
    argv = [command] if command else []
    placeholders = list(CLI_FILES) + ["{dir.pattern}", "{missing.pattern}"]
    if command == "compile":
        source = rng.choice([generate_rule(rng), rng.choice(placeholders), "induction_head", "bos_haed",
                             rng.choice(placeholders) + ":" + rng.choice(["a", "b", "zz", ""]), ""])
        argv.append(source)
        if rng.random() < 0.9:
            argv += ["--tokens", rng.choice(["a b a b", "", "   ", "= " * 40, "日本 語 。", "x", _soup(rng, 1, 5)])]
        if rng.random() < 0.05:
            argv += ["--prompt", "text"]  # with --tokens: an error before any tokenizer loads
            if "--tokens" not in argv:
                argv += ["--tokens", "a"]
    elif command == "check":
        argv += rng.sample(placeholders, rng.randint(0, 3))
    options = [["--json"], ["--show"], ["-p", rng.choice(["a", "b", "only", "", "zz"])],
               ["--max-tokens", rng.choice(["0", "-1", "3", "x", "99999999999999999999"])],
               ["--out", rng.choice(["m.json", "m.html", "m.txt", "m", "sub/m.json", "m.png"])],
               ["--bogus"], ["--"], ["--model", "nowhere"], ["--no-bos"], ["--json", "--json"]]
    for option in rng.sample(options, rng.randint(0, 3)):
        if option[0] == "--out" and option[1].endswith(".png") and rng.random() < 0.8:
            continue  # PNGs are slow to draw: a few are enough
        argv += option
    if rng.random() < 0.1:
        rng.shuffle(argv)
    return argv


def prepare_cli(argv: list[str], workdir: Path) -> list[str]:
    """Make the files the placeholders name, and replace the placeholders with their paths."""
    files = workdir / "cli-files"
    if not files.exists():
        files.mkdir()
        for placeholder, text in CLI_FILES.items():
            (files / placeholder.strip("{}")).write_text(text, encoding="utf-8")
        (files / "dir.pattern").mkdir()

    def fill(arg: str) -> str:
        return re.sub(r"\{([^{}]+\.(?:pattern|yaml|txt|jsonl|json|pt))\}", lambda m: str(files / m.group(1)), arg)
    return [fill(arg) for arg in argv]


def _strip_header(text: str) -> str:
    """A corpus rule without its first line when that is an `# expect:` line."""
    first, _, rest = text.partition("\n")
    return rest if first.startswith("# expect:") else text


def expectation(data: bytes) -> tuple[str | None, str | None]:
    """A corpus file's `# expect: result` or `# expect: error | words of the message`."""
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")
    match = re.match(r"#\s*expect:\s*(result|error)\s*(?:\|\s*(.*\S))?", first)
    return (match.group(1), match.group(2)) if match else (None, None)


# ---- prompt files ----------------------------------------------------------------------------------
PROMPT_SUFFIXES = (".txt", ".jsonl", ".json")
_JSON_PIECES = ['{"text": "the cat"}', '{"prompt": "a b"}', '{"tokens": [1, 2, 3]}', '"bare text"', "[4, 5, 6]",
                '{"tokens": [-1]}', '{"tokens": [1.5]}', '{"tokens": [18446744073709551616]}', '{"text": 3}',
                '{"tokens": []}', '{"text": ""}', "null", "true", "{}", "[[1]]", '{"tokens": "abc"}',
                '{"text": "x", "tokens": [1]}', "1e999", '"\\ud800"', '{"tokens": [999999]}', '[' * 40]


def generate_prompt_file(rng: random.Random) -> tuple[str, bytes]:
    """A prompt file's suffix and bytes: sound files, broken JSON, mixed kinds, bytes that are no UTF-8."""
    suffix = rng.choice(PROMPT_SUFFIXES)
    choice = rng.random()
    if suffix == ".txt":
        lines = [rng.choice(["The cat sat.", "", "  ", "日本 語", "= " * 50, _soup(rng, 1, 6), "\t", "a\x00b"])
                 for _ in range(rng.randint(0, 8))]
        text = "\n".join(lines)
    else:
        items = [rng.choice(_JSON_PIECES) if rng.random() < 0.5 else json.dumps(
            rng.choice([{"text": _soup(rng, 1, 4)}, {"tokens": [rng.randint(-3, 70_000) for _ in range(3)]}]))
            for _ in range(rng.randint(0, 6))]
        text = "\n".join(items) if suffix == ".jsonl" else "[" + ", ".join(items) + "]"
    if choice < 0.3:
        text = _mutate(rng, text, rounds=rng.randint(1, 3))
    data = text.encode("utf-8", "surrogatepass")
    if choice > 0.9:  # bytes that are no text: a BOM, a lone continuation byte, a NUL
        position = rng.randint(0, len(data))
        data = data[:position] + rng.choice([b"\xef\xbb\xbf", b"\x80", b"\x00", b"\xff\xfe"]) + data[position:]
    return suffix, data


def prepare_prompt_file(value: tuple[str, bytes] | bytes, workdir: Path) -> Path:
    suffix, data = value if isinstance(value, tuple) else (".txt", value)
    path = workdir / f"prompts{suffix}"
    path.write_bytes(data)
    return path


def prompt_file_outcome(path: Path) -> str:
    """Read the file, then check its token ids against a vocabulary of 50,000 and a context of 64."""
    from patternlang.probes import from_file
    from patternlang.prompts import check_token_ids

    def read() -> None:
        prompts = from_file(path)
        if prompts.tokens is not None:
            check_token_ids(prompts.tokens, d_vocab=50_000, n_ctx=64)
    return api_outcome(read)


# ---- detect's command lines ----------------------------------------------------------------------------
def generate_detect(rng: random.Random) -> list[str]:
    """`patternlang detect` with every kind of option, right and wrong; `--model` always names a
    checkpoint file, so no tokenizer is read. Valid command lines reach the model loader, which the
    harness stops: everything the user wrote must be checked before that."""
    patterns = rng.sample(["bos_head", "induction_head", "bos_haed", "{good.pattern}", "{bad.pattern}",
                           "{good.pattern}:b", "{dir.pattern}", "{missing.pattern}", "{spaced name.pattern}:s",
                           "attend k where k == q - 1", "attend k where", generate_rule(rng)], rng.randint(0, 3))
    argv = ["detect", *patterns, "--model", rng.choice(["{model.pt}", "{model.pt}", "gtp2", "/no/such/dir/"])]
    options = [
        ["--measure", rng.choice(["mass", "tv,mul", "mas", "", ",,", "mass tv", "abs,argmax,mul,tv,mass"])],
        ["--heads", rng.choice(["L1H2", "5.1,6.9", "abc", "", "99.1", "L1H2 x", "-1.2", "1.2.3", "L" * 50])],
        ["--prompts", rng.choice(["{prompts.txt}", "{ids.jsonl}", "{bad ids.jsonl}", "{mixed.jsonl}",
                                  "{missing.txt}", "{dir.pattern}", "/dev/zero", "{good.pattern}"])],
        ["--probe", rng.choice(["natural", "repeated_random(length=8)", "repeated_random(vocab_lo=10, vocab_hi=5)",
                                "file()", "bogus", "repeated_random(length=", "natural(batch=0)"])],
        ["--json", rng.choice(["s.json", "s.txt", "-", "sub/s.json", "{dir.pattern}"])],
        ["--csv", rng.choice(["s.csv", "s.json", "s"])],
        ["--heatmap", rng.choice(["h.png", "h.html", "h.gif", "{dir.pattern}/h.png"])],
        ["--batch-size", rng.choice(["0", "-3", "4", "x", "99999999999999999999"])],
        ["--device", rng.choice(["cpu", "cuda", "tpu", "", "cuda:99"])],
        ["--top", rng.choice(["0", "3", "-1", "x"])],
        [rng.choice(["--exclude-bos", "--include-bos", "--exclude-current", "--include-current", "--no-progress",
                     "--bogus"])],
    ]
    for option in rng.sample(options, rng.randint(0, 5)):
        argv += option
    return argv


def detect_outcome(argv: list[str]) -> str:
    """A valid command line reaches the model loader (stopped there): that counts as a result."""
    try:
        return cli_outcome(argv)
    except ReachedModel:
        return "result"


# A new family is one generator and one line here.
FAMILIES = [
    Family("rules", generate_rule,
           (EntryPoint("load_pattern", rule_load_pattern), EntryPoint("parse_probe", rule_parse_probe, every=5),
            EntryPoint("cli compile", rule_cli_compile, every=50)),
           count=5_500, prepare=lambda text, workdir: _strip_header(text) if isinstance(text, str) else text,
           corpus_glob="rules/*.rule"),
    Family("pattern_files", generate_pattern_file,
           (EntryPoint("load_patterns", file_load_patterns), EntryPoint("check_files", file_check_files, every=4),
            EntryPoint("cli check", file_cli_check, every=40), EntryPoint("cli compile", file_cli_compile, every=80)),
           count=2_000, prepare=_write_file(".pattern"), corpus_glob="pattern_files/*.pattern"),
    Family("yaml_files", generate_yaml_file,
           (EntryPoint("load_patterns", file_load_patterns), EntryPoint("check_files", file_check_files, every=4),
            EntryPoint("cli check", file_cli_check, every=40), EntryPoint("cli compile", file_cli_compile, every=80)),
           count=1_800, prepare=_write_file(".yaml"), corpus_glob="yaml_files/*.y*ml"),
    Family("cli_arguments", generate_cli, (EntryPoint("main", cli_main),), count=700, prepare=prepare_cli),
    Family("detect_arguments", generate_detect, (EntryPoint("detect", detect_outcome),), count=400,
           prepare=prepare_cli),
    Family("prompt_files", generate_prompt_file, (EntryPoint("from_file", prompt_file_outcome),), count=1_000,
           prepare=prepare_prompt_file, corpus_glob="prompt_files/*"),
]
