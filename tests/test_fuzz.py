"""Bad input of every kind gets a result or a clear error: never a traceback, a hang or a crash.

Three layers, all reproducible (fixed seeds, `derandomize=True`):
- the committed corpus of hand-written bad inputs (tests/corpus), each through every entry point,
  some with the outcome and the words of the message they must give;
- generated inputs (tests/fuzz_harness.py): mutations of the shipped patterns and of the corpus,
  token soups from the grammar's keywords, operators and names, over inline rules, `.pattern`
  files, YAML files and command lines, at least 10,000 in all, each within 5 seconds;
- hypothesis: random text, token soups and mutated valid rules.
The counts by outcome are printed (a `fuzz ...` line per family) and written as JSON to the
path in $PATTERNLANG_FUZZ_COUNTS, or else to pytest's temporary folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patternlang import PatternError, compile_rule
from patternlang.pipeline import check_module
from patternlang.syntax.parser import parse_module
from tests.fuzz_harness import (CORPUS, FAMILIES, TIME_LIMIT_S, ReachedModel, Tally, clear_cli_outcome, expectation,
                                prepare_cli, record, run_cli, run_generated, run_one, time_limit)
from tests.rule_strategies import rules

FAMILY = {family.name: family for family in FAMILIES}
TALLIES: dict[str, Tally] = {}


@pytest.fixture
def guarded(monkeypatch, tmp_path):
    """A work folder as the current directory, and no model or tokenizer loads: a fuzzed command
    that gets that far is a failure (everything the user wrote is checked before)."""
    def refuse(*args, **kwargs):
        raise ReachedModel("the command went on to load a model or a tokenizer")

    for module, name in [("patternlang.models", "load_model"), ("patternlang.tokenization", "tokenize_prompt")]:
        if module in sys.modules or _importable(module):
            monkeypatch.setattr(f"{module}.{name}", refuse, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def _report(capsys, name: str, tally: Tally, tmp_path_factory) -> None:
    TALLIES[name] = tally
    path = Path(os.environ.get("PATTERNLANG_FUZZ_COUNTS") or tmp_path_factory.getbasetemp() / "fuzz_counts.json")
    record(TALLIES, path)
    with capsys.disabled():  # shown without -s, so the counts can be quoted
        print(f"\n{tally.summary(name)}  [{path}]")


# ---- the committed corpus ---------------------------------------------------------------------------
CORPUS_CASES = [(family.name, path) for family in FAMILIES if family.corpus_glob
                for path in sorted(CORPUS.glob(family.corpus_glob))]


def test_the_corpus_is_there():
    counts = {name: sum(1 for n, _ in CORPUS_CASES if n == name) for name in FAMILY}
    assert counts["rules"] >= 40 and counts["pattern_files"] >= 15 and counts["yaml_files"] >= 25, counts
    assert counts["prompt_files"] >= 8, counts


@pytest.mark.parametrize("family_name, path", CORPUS_CASES, ids=[f"{n}/{p.name}" for n, p in CORPUS_CASES])
def test_corpus_file(family_name, path, guarded):
    family = FAMILY[family_name]
    data = path.read_bytes()
    value = data.decode("utf-8") if family_name == "rules" else data
    if family_name == "prompt_files":  # a prompt file has no room for an `# expect:` line: its name says
        value = (path.suffix, data)
    outcomes = run_one(family, value, guarded, Tally(), label=path.name)
    expected, words = expectation(data)
    if family_name == "prompt_files":
        expected, words = ("result" if path.stem in ("sound", "token_ids") else "error"), None
    if expected is not None:  # what the Python API gives (a file of two patterns is an error to `compile`)
        assert list(outcomes.values())[0] == expected, outcomes
    if words:
        assert words in _api_message(family, value, guarded), f"the message should say {words!r}"


def _api_message(family, value, workdir) -> str:
    """The message the Python API gives for a corpus case (its first entry point)."""
    from patternlang import load_pattern, load_patterns

    try:
        if family.name == "rules":
            load_pattern(family.prepare(value, workdir))
        else:
            load_patterns(family.prepare(value, workdir))
    except PatternError as error:
        return str(error)
    return ""


CLI_CASES = json.loads((CORPUS / "cli.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CLI_CASES, ids=[" ".join(c["argv"])[:60] for c in CLI_CASES])
def test_corpus_command_line(case, guarded):
    argv = prepare_cli(case["argv"], guarded)
    with time_limit(TIME_LIMIT_S):
        code, out, err = run_cli(argv)
    allowed = case["exit"] if isinstance(case["exit"], list) else [case["exit"]]
    assert code in allowed, f"exit {code}, stderr: {err[-1500:]}"
    assert clear_cli_outcome(code, out, err), (code, out[-500:], err[-1500:])


# ---- generated inputs ---------------------------------------------------------------------------------
def test_at_least_ten_thousand_generated_inputs():
    assert sum(family.count for family in FAMILIES) >= 10_000


@pytest.mark.parametrize("family_name", list(FAMILY))
def test_generated_inputs(family_name, guarded, capsys, tmp_path_factory):
    tally = run_generated(FAMILY[family_name], guarded)
    _report(capsys, family_name, tally, tmp_path_factory)
    assert tally.inputs == FAMILY[family_name].count


# ---- hypothesis ---------------------------------------------------------------------------------------
PIECES = ["attend", "k", "q", "where", "tok", "str", "word", "[", "]", "(", ")", "==", "!=", "<", "and", "or",
          "not", "shift", "+1", "-", "+", "|", "&", "*", "weight", "0.5", "normalize", '"a"', "'", '"', ",",
          "pattern", ":", "measure", "exclude", "bos", "probe", "repeated_random", "=", "1", "#", "\n",
          "induction_head", "startswith", "matches", '"("', "1e999", "-0", "\\", "\u00e9", "\x00",
          "orq", "measuretv", "andnot", '"(a+)+$"', '"(?=a)"', '"""']
HYPOTHESIS_TALLY = Tally()


def _only_pattern_errors(text: str) -> None:
    with time_limit(TIME_LIMIT_S):
        HYPOTHESIS_TALLY.inputs += 1
        for entry, run in (("compile_rule", lambda: compile_rule(text)),
                           ("check_module", lambda: check_module(parse_module(text)))):
            try:
                run()
                HYPOTHESIS_TALLY.add(entry, "result")
            except PatternError as error:
                assert error.message and str(error)  # rendering must not fail either
                HYPOTHESIS_TALLY.add(entry, "error")


FAST = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text(max_size=80))
def test_random_text(text):
    _only_pattern_errors(text)


@FAST
@given(st.lists(st.sampled_from(PIECES), max_size=25), st.sampled_from([" ", "", "\n"]))
def test_random_token_soup(pieces, separator):
    _only_pattern_errors(separator.join(pieces))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules(), data=st.data())
def test_mutations_of_valid_rules(rule, data):
    words = rule.replace("(", " ( ").replace(")", " ) ").replace("[", " [ ").replace("]", " ] ").split()
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["drop", "swap", "insert", "replace", "glue"]))
        if not words:
            break
        i = data.draw(st.integers(0, len(words) - 1))
        if action == "drop":
            del words[i]
        elif action == "swap":
            j = data.draw(st.integers(0, len(words) - 1))
            words[i], words[j] = words[j], words[i]
        elif action == "insert":
            words.insert(i, data.draw(st.sampled_from(PIECES)))
        elif action == "glue" and i + 1 < len(words):
            words[i:i + 2] = [words[i] + words[i + 1]]
        else:
            words[i] = data.draw(st.sampled_from(PIECES))
    _only_pattern_errors(" ".join(words))


def test_hypothesis_counts(capsys, tmp_path_factory):
    """Runs after the hypothesis tests above (file order) and reports what they saw."""
    _report(capsys, "hypothesis_rules", HYPOTHESIS_TALLY, tmp_path_factory)
