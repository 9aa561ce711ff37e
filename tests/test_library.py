"""Loading patterns: shipped names, .pattern files, file.pattern:name, YAML rule files, inline rules."""

from __future__ import annotations

import re
import textwrap
import time

import pytest
import torch

from patternlang import (ErrorGroup, PatternFileError, PatternSyntaxError, UnknownNameError, check_files,
                         compile_rule, load_pattern, load_patterns, shipped_names, shipped_patterns)
from patternlang.resources import grammar_path, patterns_dir

CLASSIC = ["previous_token_head", "duplicate_token_head", "induction_head", "current_word_head",
           "current_token_head", "bos_head"]


def test_shipped_library_has_the_classic_heads_with_docs_and_probes():
    names = shipped_names()
    for name in CLASSIC:
        assert name in names
    for pattern in shipped_patterns():
        assert pattern.doc, f"{pattern.name} needs a docstring"
        assert pattern.settings.probe is not None, f"{pattern.name} needs a default probe"
    assert load_pattern("induction_head").settings.probe.name == "repeated_random"


def test_grammar_and_patterns_are_found():
    assert grammar_path().is_file()
    assert any(patterns_dir().glob("*.pattern"))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_pattern_file_with_references_docstrings_and_settings(tmp_path):
    path = write(tmp_path, "heads.pattern", '''
        # my heads
        pattern dup:
            """Earlier copies of the current token."""
            attend k where tok[k] == tok[q] and k < q
            exclude bos
        pattern my_induction:
            dup shift +1
            measure tv
            probe repeated_random(length=20, batch=4)
        pattern mix: 0.8 * my_induction + 0.2 * bos_head
        ''')
    patterns = {p.name: p for p in load_patterns(path)}
    assert list(patterns) == ["dup", "my_induction", "mix"]
    assert patterns["dup"].doc == "Earlier copies of the current token."
    assert patterns["dup"].settings.exclude_bos
    induction = patterns["my_induction"]
    assert induction.settings.measure == "tv"
    assert induction.settings.probe.kwargs() == {"length": 20, "batch": 4}
    tokens = torch.tensor([1, 2, 3, 1, 2, 3])
    assert torch.equal(induction.matrix(tokens), load_pattern("induction_head").matrix(tokens))
    assert torch.allclose(patterns["mix"].matrix(tokens)[4], torch.tensor([0.2, 0, 0.8, 0, 0, 0]))
    assert load_pattern(f"{path}:mix").name == "mix"
    with pytest.raises(PatternFileError, match="holds 3 patterns"):
        load_pattern(path)
    with pytest.raises(UnknownNameError, match="did you mean 'dup'"):
        load_pattern(f"{path}:dupp")


def test_yaml_rule_file(tmp_path):
    path = write(tmp_path, "rules.yaml", '''
        patterns:
          - name: prev
            rule: attend k where k == q - 1
            description: previous token
            measure: mass
            exclude_current: true
            probe: {name: repeated_random, length: 8}
          - name: prev_induction
            rule: prev shift +1
        ''')
    patterns = {p.name: p for p in load_patterns(path)}
    assert patterns["prev"].settings.exclude_current and patterns["prev"].doc == "previous token"
    assert patterns["prev"].settings.probe.kwargs() == {"length": 8}
    # (q, q - 1) moved one key later is the diagonal, except row 0 which had no target
    assert patterns["prev_induction"].matrix([1, 2, 3]).tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_yaml_schema_errors_name_file_line_and_field(tmp_path):
    path = write(tmp_path, "bad.yaml", '''
        patterns:
          - name: ok
            rule: attend k
          - name: broken
            rule: attend k where k == q
            measur: tv
        ''')
    with pytest.raises(PatternFileError) as info:
        load_patterns(path)
    message = str(info.value)
    assert "patterns.1.measur" in message and "Extra inputs are not permitted" in message
    assert f"{path}:7:" in message  # the line of the misspelt field


def test_yaml_rule_errors_point_into_the_file(tmp_path):
    path = write(tmp_path, "bad_rule.yaml", '''
        patterns:
          - name: broken
            rule: attend k where tok[k] = tok[q]
        ''')
    with pytest.raises(PatternSyntaxError) as info:
        load_patterns(path)
    assert info.value.location.line == 4
    assert info.value.location.column == len("    rule: attend k where tok[k] ") + 1
    assert "rule: attend k where tok[k] = tok[q]" in str(info.value)


def test_yaml_that_is_not_yaml(tmp_path):
    path = write(tmp_path, "broken.yaml", "patterns: [\n  - name: x\n")
    with pytest.raises(PatternFileError, match="not valid YAML"):
        load_patterns(path)


def test_check_files_reports_problems_of_every_file(tmp_path):
    good = write(tmp_path, "good.pattern", "pattern a: attend k where k == 0\n")
    bad1 = write(tmp_path, "bad1.pattern", "pattern b: attend k where tok[k] < tok[q]\n")
    bad2 = write(tmp_path, "bad2.pattern", "pattern c: nothing_here\n")
    assert [p.name for p in check_files([good])[str(good)]] == ["a"]
    with pytest.raises(ErrorGroup) as info:
        check_files([good, bad1, bad2])
    assert len(info.value.errors) == 2


def test_missing_files_and_unknown_names():
    with pytest.raises(PatternFileError, match="no such file"):
        load_pattern("nowhere.pattern")
    with pytest.raises(UnknownNameError, match="did you mean 'induction_head'"):
        load_pattern("induction_haed")


def test_compile_rule_and_matrix_inputs():
    rule = compile_rule("attend k where str[k] == str[q] and k < q")
    single = rule.matrix(str_tokens=["a", "b", "a"])
    assert single.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]
    batch = rule.matrix([[1, 2, 1], [3, 3, 4]], [["a", "b", "a"], ["c", "c", "d"]])
    assert batch.shape == (2, 3, 3) and batch[1, 1, 0] == 1
    with pytest.raises(Exception, match="token strings"):
        rule.matrix([1, 2, 1])


def test_yaml_checker_errors_point_into_the_file_even_in_folded_rules(tmp_path):
    path = write(tmp_path, "kinds.yaml", '''
        patterns:
          - name: one_line
            rule: attend k where tok[k] < tok[q]
          - name: folded
            rule: >
              attend k where k <= q and
                (k == 1) and tok[q] < 3
          - name: twice
            rule: "attend k measure mass"
            measure: tv
        ''')
    with pytest.raises(ErrorGroup) as info:
        load_patterns(path)
    places = sorted((e.location.line, e.location.column) for e in info.value.errors)
    assert places == [(4, 33), (8, 29), (11, 5)]


def test_keywords_are_reserved():
    with pytest.raises(PatternSyntaxError, match="'where' is a keyword"):
        load_patterns_from_text("pattern where: attend k\n")
    with pytest.raises(PatternSyntaxError, match="parentheses"):
        compile_rule("bos_head | attend k where k == q")


def load_patterns_from_text(text):
    from patternlang.pipeline import check_module
    from patternlang.syntax.parser import parse_module

    return check_module(parse_module(text))


def test_yaml_entries_with_the_same_rule_text_keep_their_own_lines(tmp_path):
    path = write(tmp_path, "same.yaml", """
        - name: x
          rule: attend k where kk == q
        - name: y
          rule: attend k where kk == q
        """)
    with pytest.raises(ErrorGroup) as info:
        load_patterns(path)
    assert sorted(e.location.line for e in info.value.errors) == [3, 5]


def test_rule_text_that_mentions_a_yaml_file_is_still_a_rule():
    assert load_pattern('attend k where str[k] == "a.yaml:"').matrix(str_tokens=["a.yaml:", "b"])[1, 0] == 1


@pytest.mark.parametrize("text, line, message", [
    ("patterns:\n  - name: a\n    rule: attend k\n    rule: attend k where k == 0\n", 4,
     "the key 'rule' is given twice in this entry (first on line 3)"),
    ("patterns:\n  - name: a\n    rule: attend k\npatterns:\n  - name: b\n    rule: attend k\n", 4,
     "a second `patterns:` key (the first is on line 1)"),
    ("version: 1\npatterns:\n  - {name: a, rule: attend k}\nversion: 2\n", 4,
     "the key 'version' is given twice at the top level"),
    ("patterns:\n  - name: a\n    rule: attend k\n    probe: {name: natural, name: repeated_random}\n", 4,
     "the key 'name' is given twice"),
])
def test_yaml_duplicate_keys_are_errors_with_their_line(tmp_path, text, line, message):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(PatternFileError) as info:
        load_patterns(path)
    assert message in info.value.message and info.value.location.line == line


@pytest.mark.parametrize("text", [
    "[" * 10_000 + "]" * 10_000,                                   # deep flow nesting
    "{a: " * 3_000 + "}" * 3_000,
    "".join("  " * i + "a:\n" for i in range(300)),                 # deep block nesting
    "- " * 5_000 + "x\n",
    "patterns: &a [*a]\n",                                          # an alias inside itself
    # a billion laughs: nine levels of ten aliases each
    "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(9)),
    "b: &b {x: 1, y: 2}\n" + "".join(                               # the same through merge keys
        f"{chr(99 + i)}: &{chr(99 + i)} {{<<: [" + ", ".join([f"*{chr(98 + i)}"] * 10) + "]}\n" for i in range(8)),
    "r: &r \"" + "attend k where k == q or " * 400 + "k == 0\"\npatterns:\n" + "  - {name: a, rule: *r}\n" * 500,
])
def test_hostile_yaml_is_a_quick_pattern_error(tmp_path, text):
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(PatternFileError) as info:
        load_patterns(path)
    assert time.perf_counter() - started < 3
    assert any(words in info.value.message for words in ("nested too deeply", "expands to more than", "own anchor"))


@pytest.mark.parametrize("text, hint, line", [
    ("patterns:\n  - name: a\n    rul: attend k\n", "did you mean 'rule'?", 3),
    ("patterns:\n  - name: a\n    rule: attend k\n    desciption: x\n", "did you mean 'description'?", 4),
    ("pattern:\n  - name: a\n    rule: attend k\n", "did you mean 'patterns'?", 1),
    ("patterns:\n  - name: a\n    rule: attend k\n    colour: red\n", "the fields are name, rule, description", 4),
])
def test_yaml_misspelt_fields_get_a_did_you_mean_once(tmp_path, text, hint, line):
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(PatternFileError) as info:  # one error: not also "rule: Field required"
        load_patterns(path)
    assert hint in info.value.hint and info.value.location.line == line


@pytest.mark.parametrize("text, message", [
    ("", "holds no rules"),
    ("just text\n", "not a str"),
    ("patterns:\n  - name: a\x00\n", "U+0000 is not allowed"),
    ("patterns: !!python/object/apply:os.system [ls]\n", "could not determine a constructor"),
    ("a: 1\n---\nb: 2\n", "another document"),
    ("? [a]\n: 1\n", "unhashable key"),
])
def test_yaml_that_is_not_a_rule_file(tmp_path, text, message):
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(PatternFileError, match=re.escape(message)):
        load_patterns(path)


def test_yaml_aliases_within_bounds_still_work(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text("patterns:\n  - {name: a, rule: &r attend k where k == 0}\n  - {name: b, rule: *r}\n")
    assert [p.name for p in load_patterns(path)] == ["a", "b"]


@pytest.mark.parametrize("text, message, line, column", [
    ("patterns:\n  - name: a\n    rule: attend k\n    probe: [natural]\n",
     "patterns.0.probe: a probe is a name (`probe: natural`) or a mapping", 4, 12),
    ("patterns:\n  - name: a\n    rule: attend k\n    probe: {length: 3}\n", "patterns.0.probe.name: Field required", 4, 12),
    ("patterns:\n  - name: a\n  - rule: attend k\n", "patterns.1.name: Field required", 3, 5),
    ("patterns:\n  - name: a\n    rule: attend k\n    1: x\n", "patterns.0.1: Keys should be strings", 4, 8),
])
def test_yaml_schema_errors_in_the_users_words_at_their_place(tmp_path, text, message, line, column):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises((PatternFileError, ErrorGroup)) as info:
        load_patterns(path)
    error = info.value.errors[-1] if isinstance(info.value, ErrorGroup) else info.value
    assert message in error.message and "_ProbeEntry" not in str(info.value)
    assert (error.location.line, error.location.column) == (line, column)


def test_yaml_errors_count_lines_as_the_file_shows_them(tmp_path):
    # PyYAML also breaks lines at U+2028; the error must still show the line it names.
    path = tmp_path / "sep.yaml"
    path.write_text("# a\u2028b\npatterns:\n  - name: a\n    rule: attend k\n")
    with pytest.raises(PatternFileError) as info:
        load_patterns(path)
    shown, caret = str(info.value).splitlines()[1:3]
    assert info.value.location.line == 2 and shown.endswith("patterns:") and shown[caret.index("^")] == ":"


def test_yaml_probe_arguments_are_numbers_or_strings_and_the_rule_form_works(tmp_path):
    from patternlang import PatternError, load_patterns

    bad = tmp_path / "bad.yaml"
    for value in ("[1]", "{a: 1}", "true"):
        bad.write_text(f"patterns:\n  - name: a\n    rule: attend k\n    probe: {{name: repeated_random, seed: {value}}}\n")
        with pytest.raises(PatternError, match="probe argument 'seed' must be a number or a string") as raised:
            load_patterns(bad)
        assert raised.value.location.line == 4
    good = tmp_path / "good.yaml"
    good.write_text("patterns:\n  - name: a\n    rule: attend k\n    probe: repeated_random(length=8, seed=2)\n")
    assert str(load_patterns(good)[0].settings.probe) == "repeated_random(length=8, seed=2)"
    good.write_text("patterns:\n  - name: a\n    rule: attend k\n    probe: repeated_random(vocab_lo=10, vocab_hi=5)\n")
    with pytest.raises(PatternError, match="vocab_lo=10 is not below vocab_hi=5"):
        load_patterns(good)


def test_special_files_are_named_as_such(tmp_path):
    import os

    from patternlang import PatternFileError, check_files

    fifo = tmp_path / "pipe.pattern"
    os.mkfifo(fifo)
    with pytest.raises(PatternFileError, match="is a named pipe"):
        check_files([fifo])
    with pytest.raises(PatternFileError, match="is a character device"):
        check_files(["/dev/null"])
