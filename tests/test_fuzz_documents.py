"""Atlas documents and score files, fuzzed (issue 19): hypothesis mutates the seeds in
tests/corpus/documents (truncated, deeply nested, non-finite numbers, wrong shapes and types, long
and hostile strings, keys dropped) and every case goes through the readers; none may give
anything but a result or a clear `PatternError`, take more than 10 s, or (through the CLI) write
outside the output folder. At least 2,000 generated cases in all (counted), derandomized.

The hand-written bad documents in tests/corpus/documents/bad/ go through the CLI too, each with
the words its message must hold (`"expect"` beside the document, in its `.expect` file).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patternlang import PatternError
from patternlang.atlas import read_document
from patternlang.engine.scores import Scores
from tests.fuzz_harness import clear_cli_outcome, run_cli, time_limit

SEEDS = Path(__file__).parent / "corpus" / "documents"
LIMIT_S = 10.0
COUNTS: Counter = Counter()
HOSTILE = ["../../../escape", "/etc/passwd", "x" * 5000, "</script><script>alert(1)</script>", '"><img onerror=x>',
           "javascript:alert(1)", "{{7*7}}", "\udcff", "\x00", "日本語" * 50, "L99999H0", "..", "", " ", "CON"]


def seed(name: str) -> dict:
    return json.loads((SEEDS / name).read_text())


def leaves(value, path=()):
    """Every path into a JSON value (objects and arrays), the value itself first."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:4]):  # grids are long: their first rows stand for the rest
            yield from leaves(item, (*path, i))


def replaced(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


def removed(value, path):
    if len(path) == 1:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != path[0]}
        return value[:path[0]] + value[path[0] + 1:]
    head = path[0]
    if isinstance(value, dict):
        return {**value, head: removed(value[head], path[1:])}
    copy = list(value)
    copy[head] = removed(copy[head], path[1:])
    return copy


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 1e-320, 2.0, -1.0, 1000, 10**9]),
    st.text(max_size=40), st.sampled_from(HOSTILE),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=12)


@st.composite
def mutated(draw, document: dict) -> str:
    """The seed's JSON text, changed one to three ways."""
    doc = document
    paths = list(leaves(doc))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["replace", "replace", "remove", "grid", "key", "deep"]))
        path = draw(st.sampled_from(paths))
        try:
            if how == "replace":
                doc = replaced(doc, path, draw(values))
            elif how == "remove" and path:
                doc = removed(doc, path)
            elif how == "grid":  # a row too many or too few somewhere
                grid_path = next((p for p in paths if len(p) >= 3 and p[-1] == 0), path)
                doc = replaced(doc, grid_path[:-1], draw(st.lists(st.lists(st.floats(-2, 2), max_size=5), max_size=5)))
            elif how == "key":  # a hostile key where names live
                parent = path[:-1] if path else path
                doc = replaced(doc, parent, {draw(st.sampled_from(HOSTILE)): draw(values), "x": 1})
            elif how == "deep":
                depth = draw(st.sampled_from([30, 70, 1000, 100_000]))
                return draw(st.sampled_from(["[", '{"a":'])) * depth + "1" + "]" * depth
        except (KeyError, IndexError, TypeError):
            continue
    text = json.dumps(doc, allow_nan=True)
    finish = draw(st.sampled_from(["as is", "as is", "truncated", "1e999"]))
    if finish == "truncated":
        text = text[: draw(st.integers(0, len(text)))]
    elif finish == "1e999":
        text = text.replace("0.0", "1e999", 1)
    return text


def outcome(call) -> str:
    try:
        with time_limit(LIMIT_S):
            call()
    except PatternError as error:
        assert error.message.strip() and "Traceback" not in str(error)
        return "error"
    return "result"


def files_in(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


FUZZ = settings(max_examples=1020, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


@FUZZ
@given(st.data())
def test_fuzzed_atlas_documents_are_read_or_refused(tmp_path_factory, data):
    text = data.draw(mutated(seed("atlas_small.json")))
    work = tmp_path_factory.mktemp("doc", numbered=True)
    path = work / "in" / "doc.json"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = outcome(lambda: read_document(path))
    COUNTS[f"atlas {result}"] += 1
    if result == "result" or COUNTS["atlas cli"] * 25 < COUNTS["atlas result"] + COUNTS["atlas error"]:
        out = work / "out"
        out.mkdir()
        before = files_in(work) - files_in(out)
        with time_limit(LIMIT_S):
            code, stdout, stderr = run_cli(["atlas", "--add", str(path), "--render-only", "--out", str(out)])
        assert clear_cli_outcome(code, stdout, stderr), (code, stderr[-2000:])
        assert files_in(work) - files_in(out) == before, "a write outside the output folder"
        COUNTS["atlas cli"] += 1


@FUZZ
@given(st.data())
def test_fuzzed_score_files_are_read_or_refused(tmp_path_factory, data):
    text = data.draw(mutated(seed("scores_small.json")))
    work = tmp_path_factory.mktemp("scores", numbered=True)
    path = work / "b.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = outcome(lambda: Scores.from_json(path))
    COUNTS[f"scores {result}"] += 1
    if result == "result":
        scores = Scores.from_json(path)
        for grid in scores.values.values():
            assert not grid.isinf().any()  # every number read is finite (NaN: no score)
    if result == "result" or COUNTS["scores cli"] * 25 < COUNTS["scores result"] + COUNTS["scores error"]:
        with time_limit(LIMIT_S):
            code, stdout, stderr = run_cli(["compare", str(SEEDS / "scores_small.json"), str(path), "--json", "-"])
        assert clear_cli_outcome(code, stdout, stderr), (code, stderr[-2000:])
        if code == 0:
            json.loads(stdout)  # valid JSON, no NaN or Infinity
        COUNTS["scores cli"] += 1


def test_at_least_2000_generated_cases_ran():
    generated = sum(v for k, v in COUNTS.items() if k.endswith(("result", "error")))
    if generated == 0:
        pytest.skip("run with the two fuzz tests above (this counts what they generated)")
    print("fuzz documents", dict(COUNTS))
    assert generated >= 2000, dict(COUNTS)
    assert COUNTS["atlas error"] > 100 and COUNTS["scores error"] > 100 and COUNTS["atlas result"] > 10


BAD = sorted((SEEDS / "bad").glob("*.json"))


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_hand_written_bad_documents_are_refused_with_their_words(path, tmp_path):
    words = path.with_suffix(".expect").read_text().strip()
    command = (["compare", str(SEEDS / "scores_small.json"), str(path)] if path.name.startswith("scores")
               else ["atlas", "--add", str(path), "--render-only", "--out", str(tmp_path / "out")])
    with time_limit(LIMIT_S):
        code, out, err = run_cli(command)
    assert code == 1 and clear_cli_outcome(code, out, err) and words in err, err
