"""Prompt sets: Prompts, repeated_random, natural, prompt files, the probe registry, as_prompts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from patternlang.testing import BOS_ID, make_hand_set_model

from patternlang import probes
from patternlang.errors import InputError, PatternTypeError, UnknownNameError
from patternlang.probes import (
    PROBES,
    Prompts,
    as_prompts,
    from_file,
    get_probe,
    make_probe,
    natural,
    probe_names,
    repeated_random,
    validate_probe_args,
)


@pytest.fixture(scope="module")
def tiny():
    return make_hand_set_model()


class FakeTokenizer:
    """What repeated_random reads from a Hugging Face tokenizer."""

    def __init__(self, size: int, bos: int = 1, special=(0, 1, 2)):
        self.size, self.bos_token_id, self.all_special_ids = size, bos, list(special)

    def __len__(self) -> int:
        return self.size


# ---------------------------------------------------------------------------
# Prompts


def test_prompts_basics():
    texts = Prompts(texts=["a b", "c"], name="t", description="two")
    assert (len(texts), texts.kind, list(texts), texts[1], texts.texts) == (2, "text", ["a b", "c"], "c", ("a b", "c"))
    tokens = Prompts(tokens=[[1, 2, 3], torch.tensor([4, 5, 6])])
    assert tokens.kind == "tokens" and tokens.tokens == ((1, 2, 3), (4, 5, 6))
    assert tokens.as_tensor().tolist() == [[1, 2, 3], [4, 5, 6]]
    assert tokens.take(1).tokens == ((1, 2, 3),)
    with pytest.raises(InputError, match="different lengths"):
        Prompts(tokens=[[1], [1, 2]]).as_tensor()
    with pytest.raises(InputError, match="holds text"):
        texts.as_tensor()


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of"),
    ({"texts": ["a"], "tokens": [[1]]}, "exactly one of"),
    ({"texts": []}, "is empty"),
    ({"texts": "one prompt"}, "texts=\\(text,\\)"),
    ({"texts": ["a", "", "b"]}, "prompt 1 is empty"),
    ({"texts": ["a", 3]}, r"prompt 1 is an integer \(3\), not text"),
    ({"tokens": [[1], []]}, "prompt 1 is empty"),
    ({"tokens": [[1, -2]]}, "cannot be negative"),
    ({"tokens": [[1, 2.0]]}, "must be integers"),
    ({"tokens": [[True]]}, "must be integers"),
    ({"tokens": ["abc"]}, "text inside"),
    ({"tokens": [torch.tensor([1.0])]}, "1-D integers"),
    ({"tokens": [torch.tensor([[1]])]}, "1-D integers"),
])
def test_prompts_refuse_bad_contents(kwargs, message):
    with pytest.raises(InputError, match=message):
        Prompts(**kwargs)


# ---------------------------------------------------------------------------
# repeated_random


def test_repeated_random_shape_bos_and_repeats():
    prompts = repeated_random(length=10, repeats=3, batch=5, vocab=(100, 200), bos_id=7, seed=4)
    rows = torch.tensor(prompts.tokens)
    assert rows.shape == (5, 1 + 30)
    assert torch.all(rows[:, 0] == 7)
    body = rows[:, 1:].reshape(5, 3, 10)
    assert torch.equal(body[:, 0], body[:, 1]) and torch.equal(body[:, 0], body[:, 2])
    assert body.min() >= 100 and body.max() < 200
    assert len({tuple(r) for r in body[:, 0].tolist()}) == 5  # different random tokens per prompt
    assert prompts.name == "repeated_random(length=10, repeats=3, batch=5, seed=4)"
    assert "[100, 200)" in prompts.description


def test_repeated_random_is_deterministic_and_seeded():
    first = repeated_random(length=20, batch=4, vocab=(0, 1000), bos_id=0, seed=1)
    assert repeated_random(length=20, batch=4, vocab=(0, 1000), bos_id=0, seed=1) == first
    assert repeated_random(length=20, batch=4, vocab=(0, 1000), bos_id=0, seed=2) != first
    # The draw is torch.randint on a generator seeded with `seed`: reproducible across machines.
    expected = torch.randint(0, 1000, (4, 20), generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.tensor(first.tokens)[:, 1:21], expected)


def test_repeated_random_without_bos():
    prompts = repeated_random(length=6, repeats=2, batch=2, vocab=(10, 20), prepend_bos=False)
    assert torch.tensor(prompts.tokens).shape == (2, 12)


def test_repeated_random_default_range_for_a_large_vocabulary():
    rows = torch.tensor(repeated_random(FakeTokenizer(49152), length=200, batch=8).tokens)
    assert torch.all(rows[:, 0] == 1)
    assert rows[:, 1:].min() >= 1000 and rows[:, 1:].max() < 20000
    small = torch.tensor(repeated_random(FakeTokenizer(5000), length=200, batch=8).tokens)
    assert small[:, 1:].min() >= 1000 and small[:, 1:].max() < 5000


def test_repeated_random_default_range_for_a_small_vocabulary(tiny):
    rows = torch.tensor(repeated_random(tiny, length=30, batch=16).tokens)
    assert torch.all(rows[:, 0] == BOS_ID)
    assert rows[:, 1:].min() >= 3 and rows[:, 1:].max() < 100  # above the special ids 0, 1, 2
    assert set(rows[:, 1:].unique().tolist()) == set(range(3, 100))  # and all of the rest


@pytest.mark.parametrize("kwargs, error, message", [
    ({"length": 0}, InputError, "'length' of repeated_random must be at least 1"),
    ({"repeats": -1}, InputError, "'repeats'"),
    ({"batch": "8"}, PatternTypeError, "must be an integer, not a string"),
    ({"length": 2.5}, PatternTypeError, "not a number"),
    ({"seed": True}, PatternTypeError, "not a boolean"),
    ({"vocab": (5, 5)}, InputError, "lo < hi"),
    ({"vocab": (5,)}, InputError, "pair of token ids"),
    ({"vocab": (0, 101)}, InputError, "past the model's vocabulary of 100"),
    ({"length": 40, "repeats": 2}, InputError, "81 tokens long, more than the model's context of 64"),
])
def test_repeated_random_refuses_bad_arguments(tiny, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message) if error is InputError else message):
        repeated_random(tiny, **kwargs)


def test_repeated_random_needs_a_vocabulary_and_bos_without_a_model():
    with pytest.raises(InputError, match="vocabulary range"):
        repeated_random(length=5)
    with pytest.raises(InputError, match="BOS token id") as info:
        repeated_random(length=5, vocab=(10, 20))
    assert "bos_id=" in str(info.value)


# ---------------------------------------------------------------------------
# natural


def test_natural_corpus():
    prompts = natural()
    assert prompts.kind == "text" and len(prompts) >= 60
    assert prompts.name == "natural"
    assert all(text.strip() == text and text for text in prompts)
    # Duplicate-token and induction heads need words that come back within a prompt.
    with_repeats = [text for text in prompts
                    if any(n > 1 for n in _counts(re.findall(r"[A-Za-z][\w'-]{3,}", text)).values())]
    assert len(with_repeats) >= 40
    assert any(len(word) >= 15 for text in prompts for word in re.findall(r"[\w-]+", text))  # multi-token words
    assert sum(bool(re.search(r"\d", text)) for text in prompts) >= 5


def _counts(words):
    counts = {}
    for word in words:
        counts[word.lower()] = counts.get(word.lower(), 0) + 1
    return counts


def test_natural_batch():
    first = natural(batch=3)
    assert first.texts == natural().texts[:3]
    assert first.name == "natural(batch=3)"
    with pytest.raises(InputError, match="cannot take batch=1000"):
        natural(batch=1000)
    with pytest.raises(InputError, match="at least 1"):
        natural(batch=0)


# ---------------------------------------------------------------------------
# Prompt files


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_txt_file(tmp_path):
    path = write(tmp_path, "p.txt", "The cat sat.\n\n  \nA dog ran.  \r\nlast line")
    prompts = from_file(path)
    assert prompts.texts == ("The cat sat.", "A dog ran.  ", "last line")
    assert prompts.name == "p.txt"


def test_jsonl_file_with_texts(tmp_path):
    path = write(tmp_path, "p.jsonl", '{"text": "one"}\n\n{"prompt": "two", "id": 3}\n"three"\n')
    assert from_file(path).texts == ("one", "two", "three")


def test_jsonl_file_with_tokens(tmp_path):
    path = write(tmp_path, "p.jsonl", '{"tokens": [1, 2, 3]}\n[4, 5]\n')
    assert from_file(path).tokens == ((1, 2, 3), (4, 5))


def test_json_file(tmp_path):
    path = write(tmp_path, "p.json", json.dumps(["one", {"text": "two"}]))
    assert from_file(path).texts == ("one", "two")


@pytest.mark.parametrize("name, text, message", [
    ("p.jsonl", '{"text": "ok"}\n{"text": "ok"}\n{"text": oops}\n', r"p\.jsonl:3:\d+\n.*\n.*\nerror: line 3 is not valid JSON"),
    ("p.jsonl", '{"text": "ok"}\n{"tokens": [1, 2]}\n', r"p\.jsonl:2:1\n(.*\n)*error: line 2: a file holds text prompts or token-id"),
    ("p.jsonl", '{"txt": "typo"}\n', r"line 1: an object needs exactly one of the fields"),
    ("p.jsonl", '{"text": "a", "tokens": [1]}\n', r"exactly one of the fields"),
    ("p.jsonl", '{"text": "  "}\n', r"line 1: the prompt is empty"),
    ("p.jsonl", '{"tokens": []}\n', r"line 1 is empty"),
    ("p.jsonl", '{"tokens": [1, -1]}\n', r"line 1: position 1: token ids cannot be negative, found -1"),
    ("p.jsonl", '{"tokens": [1, "a"]}\n', r"line 1: position 1: token ids must be integers, found 'a'"),
    ("p.jsonl", '{"tokens": [1, true]}\n', r"line 1: position 1: token ids must be integers, found True"),
    ("p.jsonl", '{"tokens": [1, 2.0]}\n', r"line 1: position 1: token ids must be integers, found 2.0"),
    ("p.jsonl", '3\n', r"a string or a list of token ids, not int"),
    ("p.json", '{"text": "x"}', r"must hold a JSON list"),
    ("p.json", '["a", 5]', r"p\.json: item 2: a prompt is a string"),
    ("p.json", '["a",\n  ]', r"p\.json:2:\d+.*\n.*\n.*\nerror: not valid JSON"),
    ("p.txt", "\n  \n\n", r"holds no prompts"),
    ("p.jsonl", "", r"holds no prompts"),
    ("p.json", "[]", r"holds no prompts"),
    ("p.csv", "a,b", r"unknown file type '\.csv'"),
    ("p.txt", b"caf\xe9\n", r"not UTF-8 text \(byte 3, line 1\)"),
])
def test_bad_prompt_files(tmp_path, name, text, message):
    with pytest.raises(InputError) as info:
        from_file(write(tmp_path, name, text))
    assert re.search(message, str(info.value)), str(info.value)


def test_missing_prompt_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        from_file(tmp_path / "none.txt")
    with pytest.raises(InputError, match="is a directory"):
        from_file(tmp_path)


# ---------------------------------------------------------------------------
# The registry


def test_probe_names_and_definitions():
    assert probe_names() == ["file", "ioi", "natural", "needle", "parsed_prose", "repeated_random"]
    assert [arg.name for arg in PROBES["repeated_random"].args] == [
        "length", "repeats", "batch", "seed", "vocab_lo", "vocab_hi"]


@pytest.mark.parametrize("name, args", [
    ("repeated_random", {}),
    ("repeated_random", {"length": 64, "repeats": 3, "batch": 4, "seed": -1}),
    ("natural", {"batch": 10}),
    ("file", {"path": "prompts.txt"}),
])
def test_valid_probe_args(name, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # file paths are relative to the working directory
    write(tmp_path, "prompts.txt", "one\n")
    validate_probe_args(name, args)


@pytest.mark.parametrize("name, args, error, message, hint", [
    ("repeated_randm", {}, UnknownNameError, "unknown probe 'repeated_randm'", "did you mean 'repeated_random'?"),
    ("zzz", {}, UnknownNameError, "unknown probe 'zzz'", "probes are file, ioi, natural, needle, parsed_prose, repeated_random"),
    ("repeated_random", {"lenght": 5}, UnknownNameError, "has no argument 'lenght'", "did you mean 'length'?"),
    ("natural", {"xyz": 5}, UnknownNameError, "has no argument 'xyz'", "its arguments are batch"),
    ("repeated_random", {"length": "64"}, PatternTypeError, "must be an integer, not a string ('64')", None),
    ("repeated_random", {"length": 6.5}, PatternTypeError, "must be an integer, not a number (6.5)", None),
    ("file", {"path": 3}, PatternTypeError, "'path' of probe 'file' must be a string", None),
    ("repeated_random", {"length": 0}, InputError, "must be at least 1, got 0", None),
])
def test_invalid_probe_args(name, args, error, message, hint):
    with pytest.raises(error) as info:
        validate_probe_args(name, args)
    assert type(info.value) is error
    assert message in info.value.message
    assert info.value.hint == hint or (hint is None)


def test_make_probe_from_spec_pairs(tiny):
    prompts = make_probe("repeated_random", (("length", 8), ("batch", 3)), model=tiny)
    assert torch.tensor(prompts.tokens).shape == (3, 17)
    assert prompts == repeated_random(tiny, length=8, batch=3)
    with pytest.raises(InputError, match="'length' is given twice"):
        make_probe("repeated_random", (("length", 8), ("length", 9)), model=tiny)


def test_make_probe_vocab_bounds(tiny):
    args = {"length": 20, "batch": 4}
    rows = torch.tensor(make_probe("repeated_random", {**args, "vocab_lo": 50, "vocab_hi": 60}, tiny).tokens)
    assert rows[:, 1:].min() >= 50 and rows[:, 1:].max() < 60
    rows = torch.tensor(make_probe("repeated_random", {**args, "vocab_lo": 90}, tiny).tokens)
    assert rows[:, 1:].min() >= 90 and rows[:, 1:].max() < 100  # vocab_hi defaults to the vocabulary's end
    with pytest.raises(InputError, match="past the model's vocabulary"):
        make_probe("repeated_random", {**args, "vocab_hi": 500}, tiny)


def test_make_probe_natural_and_file(tmp_path):
    assert make_probe("natural", {"batch": 2}) == natural(batch=2)
    path = write(tmp_path, "p.txt", "one\ntwo\n")
    assert make_probe("file", {"path": str(path)}).texts == ("one", "two")
    with pytest.raises(InputError, match="needs a path"):
        make_probe("file", {})


def test_get_probe_binds_arguments(tiny):
    build = get_probe("repeated_random", length=5, batch=2)
    assert build.__name__ == "repeated_random"
    assert build(tiny) == repeated_random(tiny, length=5, batch=2)
    with pytest.raises(UnknownNameError):
        get_probe("repeated_random", size=5)


def test_probe_prompts_feed_the_engine_tokenizer(tiny):
    from patternlang.engine.batching import tokenize

    rows = tokenize(tiny, repeated_random(tiny, length=4, batch=2))
    assert [row.tolist() for row in rows] == [list(r) for r in repeated_random(tiny, length=4, batch=2).tokens]
    short = [text[:40] for text in natural(batch=2)]
    for row, text in zip(tokenize(tiny, short), short):
        assert row[0].item() == BOS_ID
        assert tiny.to_string(row[1:]) == text
    with pytest.raises(InputError, match="more than the model's context"):  # never cut silently
        tokenize(tiny, natural(batch=2))


# ---------------------------------------------------------------------------
# as_prompts


def test_as_prompts_accepts_every_form(tmp_path, tiny):
    given = Prompts(texts=("a",))
    assert as_prompts(given) is given
    assert as_prompts("The cat").texts == ("The cat",)
    assert as_prompts(["a", "b"]).texts == ("a", "b")
    assert as_prompts([[1, 2], (3, 4, 5)]).tokens == ((1, 2), (3, 4, 5))
    assert as_prompts([1, 2, 3]).tokens == ((1, 2, 3),)
    assert as_prompts([torch.tensor([1, 2]), torch.tensor([3])]).tokens == ((1, 2), (3,))
    assert as_prompts(torch.tensor([[1, 2], [3, 4]])).tokens == ((1, 2), (3, 4))
    assert as_prompts(torch.tensor([1, 2, 3])).tokens == ((1, 2, 3),)
    assert as_prompts(write(tmp_path, "p.txt", "x\ny\n")).texts == ("x", "y")
    assert as_prompts(torch.tensor([[5, 99]]), model=tiny).tokens == ((5, 99),)


@pytest.mark.parametrize("value, message", [
    ("", "the prompt is empty"),
    ([], "no prompts given"),
    (["a", "", "c"], "prompt 1 is empty"),
    ([[1, 2], []], "prompt 1 is empty"),
    (["a", [1]], "prompt 0 is text but prompt 1 is not"),
    (torch.zeros(2, 2, 2, dtype=torch.long), "must be \\[batch, pos\\] or \\[pos\\]"),
    (torch.zeros(2, 3), "integer token ids, not torch.float32"),
    (torch.zeros(0, 3, dtype=torch.long), "no rows"),
    ({"text": "a"}, "cannot use dict as prompts"),
    (b"bytes", "cannot use bytes"),
    (3.5, "cannot use float"),
])
def test_as_prompts_refuses(value, message):
    with pytest.raises(InputError, match=message):
        as_prompts(value)


def test_as_prompts_checks_ids_against_the_model(tiny):
    with pytest.raises(InputError, match="prompt 1, position 1: token id 100 is outside the model's vocabulary of 100 tokens"):
        as_prompts([[1, 2], [3, 100]], model=tiny)
    probes.check_token_ids(Prompts(texts=("any text",)), tiny)  # texts are checked when tokenized


# ---------------------------------------------------------------------------
# Prompt files are read with a bound: clear errors in seconds, bounded memory

def finishes_within(seconds: float, function, *args):
    """Run `function(*args)` in a thread; fail (instead of hanging the suite) if it takes longer."""
    import threading

    outcome: dict = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} did not finish within {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".json"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, suffix):
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"is a named pipe \(FIFO\), not a regular file"):
        finishes_within(10, from_file, fifo)


def test_devices_and_directories_are_refused(tmp_path):
    with pytest.raises(InputError, match="'/dev/zero' is a character device, not a regular file"):
        finishes_within(10, from_file, "/dev/zero")
    with pytest.raises(InputError, match="is a directory"):
        from_file(tmp_path)
    folder = tmp_path / "looks.json"
    folder.mkdir()
    with pytest.raises(InputError, match="is a directory"):
        from_file(folder)


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".json"])
def test_a_huge_file_is_refused_before_reading(tmp_path, suffix):
    huge = tmp_path / f"huge{suffix}"
    with open(huge, "wb") as handle:
        handle.truncate(11 * 2**30)  # sparse: 11 GiB that take no room
    with pytest.raises(InputError) as caught:
        finishes_within(10, from_file, huge)
    assert "has 11 GiB, more than the 256 MiB patternlang reads" in caught.value.message
    assert "split it into files of at most 256 MiB" in caught.value.hint


def test_the_byte_and_prompt_caps(tmp_path, monkeypatch):
    from patternlang.probes import prompt_files as files

    monkeypatch.setattr(files, "MAX_PROMPT_FILE_BYTES", 10)
    with pytest.raises(InputError, match="has 11 bytes, more than the 10 bytes"):
        from_file(write(tmp_path, "p.txt", "0123456789\n"))
    monkeypatch.setattr(files, "MAX_PROMPT_FILE_BYTES", 2**20)
    monkeypatch.setattr(files, "MAX_PROMPTS", 3)
    for name, text in [("p.txt", "a\nb\n\nc\nd\n"), ("p.jsonl", '"a"\n"b"\n"c"\n"d"\n'), ("p.json", '["a","b","c","d"]')]:
        with pytest.raises(InputError) as caught:
            from_file(write(tmp_path, name, text))
        assert "the file holds more than 3 prompts" in str(caught.value), name
        assert "split" in caught.value.hint
    assert from_file(write(tmp_path, "p.txt", "a\nb\nc\n")).texts == ("a", "b", "c")


@pytest.mark.parametrize("name, data, message", [
    ("p.txt", b"ok\n\x00\x01\x02binary", r"is a binary file, not text \(a NUL byte at byte 3, line 2\)"),
    ("p.json", b"\x89PNG\r\n\x1a\n\x00\x00", r"is a binary file"),
    ("p.jsonl", b'"ok"\n"caf\xe9"\n', r"is not UTF-8 text \(byte 9, line 2\)"),
    ("p.jsonl", b"\xff\xfe\"\x00a\x00\"\x00", r"is a binary file"),  # UTF-16
    ("p.jsonl", b'"a"\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n", r"line 2 cannot be read as JSON: it is nested too deeply"),
    ("p.json", b"[" * 100_000 + b"]" * 100_000, r"cannot be read as JSON: it is nested too deeply"),
    ("p.json", b"[[1, " + b"9" * 5000 + b"]]", r"cannot be read as JSON: Exceeds the limit"),
    ("p.jsonl", b'{"tokens": [1, 1180591620717411303424]}\n', r"p\.jsonl:1:1\n(.*\n)*error: line 1: position 1: token id "
                                                            r"1180591620717411303424 does not fit in 64 bits"),
    ("p.json", b'[[1, 2], [3, 18446744073709551616]]', r"item 2: position 1: token id 18446744073709551616 does not fit"),
    ("p.txt", ("x" * 1_000_001).encode(), r"line 1 has 1,000,001 characters"),
    ("p.json", b'["a"] ["b"]', r"p\.json:1:7\n(.*\n)*error: not valid JSON: Extra data"),
    ("p.json", b'["a" "b"]', r"p\.json:1:6\n(.*\n)*error: not valid JSON: Expecting ',' delimiter"),
    ("p.json", b'\n\n["a",\n oops]', r"p\.json:4:2\n   4 \|  oops\]\n"),
    ("p.json", b'"one prompt"', r"must hold a JSON list of prompts, not a str"),
    ("p.json", b'', r"p\.json:1:1\n(.*\n)*error: not valid JSON: Expecting value"),
    ("p.json", b'["a", 5, ' + b'"x", ' * 1_000_000 + b'oops]', r"p\.json: item 2: a prompt is a string"),  # stops at item 2
])
def test_unreadable_prompt_files(tmp_path, name, data, message):
    with pytest.raises(InputError) as caught:
        finishes_within(10, from_file, write(tmp_path, name, data))
    assert re.search(message, str(caught.value)), str(caught.value)


def test_blank_lines_are_skipped_fast_and_lines_keep_their_numbers(tmp_path):
    text = "\n" * 3 + "  \t\n" + "first\r\n" + "\n" * 2 + "  second  \n"
    assert from_file(write(tmp_path, "p.txt", text)).texts == ("first", "  second  ")
    with pytest.raises(InputError, match=r"p\.jsonl:6:\d+"):
        from_file(write(tmp_path, "p.jsonl", '\n\n"a"\n  \n\n{"text": oops}\n'))
    many = "\n" * (30 * 2**20) + "last\n"  # 30 MiB of blank lines: no Python loop over them
    assert finishes_within(10, from_file, write(tmp_path, "blank.txt", many)).texts == ("last",)


def test_a_byte_order_mark_is_not_part_of_the_first_prompt(tmp_path):
    assert from_file(write(tmp_path, "p.txt", "\ufefffirst\nsecond\n")).texts == ("first", "second")


@pytest.mark.parametrize("path, message", [
    ("", "the prompt file path is empty"),
    ("bad\x00name.txt", "cannot read prompt file"),
    ("x" * 5000 + ".txt", "cannot read prompt file"),
    (3, "must be a string or a Path, not int"),
])
def test_unusable_prompt_file_paths(path, message):
    with pytest.raises(InputError, match=message):
        from_file(path)


# ---------------------------------------------------------------------------
# Probe arguments: complete checks at check time, without building anything

@pytest.mark.parametrize("name, args, error, message", [
    ("repeated_random", {"vocab_lo": 10, "vocab_hi": 5}, InputError, "vocab_lo=10 is not below vocab_hi=5"),
    ("repeated_random", {"vocab_lo": 7, "vocab_hi": 7}, InputError, "vocab_lo=7 is not below vocab_hi=7"),
    ("repeated_random", {"vocab_lo": -1}, InputError, "'vocab_lo' of probe 'repeated_random' must be at least 0"),
    ("repeated_random", {"vocab_hi": 0}, InputError, "'vocab_hi' of probe 'repeated_random' must be at least 1"),
    ("repeated_random", {"vocab_hi": 2**64}, InputError, "must be at most 9223372036854775807"),
    ("repeated_random", {"length": 10**12}, InputError, "'length' of probe 'repeated_random' must be at most 1048576, "
                                                        "got 1000000000000"),
    ("repeated_random", {"length": -5}, InputError, "must be at least 1, got -5"),
    ("repeated_random", {"repeats": 0}, InputError, "'repeats' of probe 'repeated_random' must be at least 1"),
    ("repeated_random", {"batch": 0}, InputError, "'batch' of probe 'repeated_random' must be at least 1"),
    ("repeated_random", {"batch": 10**7}, InputError, "must be at most 1000000"),
    ("repeated_random", {"length": 600_000, "repeats": 2}, InputError, "1,200,001 tokens long (length x repeats)"),
    ("repeated_random", {"length": 1000, "batch": 100_000}, InputError, "200,100,000 in all, more than the 16,777,216"),
    ("repeated_random", {"seed": 2**64}, InputError, "'seed' of probe 'repeated_random' must be at most"),
    ("repeated_random", {"seed": 10**5000}, InputError, "got <an integer of 16610 bits>"),
    ("repeated_random", {"seed": 1.5}, PatternTypeError, "must be an integer, not a number (1.5)"),
    ("repeated_random", {"batch": True}, PatternTypeError, "must be an integer, not a boolean (True)"),
    ("natural", {"batch": 1000}, InputError, "natural has 61 prompts; cannot take batch=1000"),
    ("natural", {"batch": "all"}, PatternTypeError, "must be an integer, not a string ('all')"),
    ("file", {}, InputError, "probe 'file' needs a path, as in file(path=\"prompts.txt\")"),
    ("file", {"path": "missing.txt"}, InputError, "prompt file 'missing.txt' does not exist"),
    ("file", {"path": ""}, InputError, "the prompt file path is empty"),
    ("file", {"path": "/dev/zero"}, InputError, "is a character device"),
    ("file", {"path": "."}, InputError, "is a directory"),
    ("file", {"path": ["a.txt"]}, PatternTypeError, "'path' of probe 'file' must be a string, not a list"),
])
def test_probe_arguments_are_checked_completely_at_check_time(tmp_path, monkeypatch, name, args, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as caught:
        validate_probe_args(name, args)
    assert type(caught.value) is error
    assert message in caught.value.message, caught.value.message


def test_a_probe_file_of_unknown_type(tmp_path):
    path = write(tmp_path, "prompts.csv", "a,b\n")
    with pytest.raises(InputError, match="unknown file type '.csv'"):
        validate_probe_args("file", {"path": str(path)})


def test_absurd_sizes_are_refused_before_allocating():
    with pytest.raises(InputError, match="must be at most 1048576"):
        finishes_within(5, lambda: repeated_random(length=10**12, vocab=(0, 10), bos_id=0))
    with pytest.raises(InputError, match="more than the 16,777,216 a probe may hold"):
        finishes_within(5, lambda: repeated_random(length=100_000, batch=1000, vocab=(0, 10), bos_id=0))
    with pytest.raises(InputError, match="goes past the largest token id"):
        repeated_random(length=2, vocab=(0, 2**64), bos_id=0)
    with pytest.raises(InputError, match="'bos_id' of repeated_random must be at least 0"):
        repeated_random(length=2, vocab=(0, 10), bos_id=-1)


@pytest.mark.parametrize("args, message", [
    ("not pairs", "must be a dict or (name, value) pairs"),
    ([("length",)], "must be (name, value) pairs"),
    ([("length", 8), ("length", 9)], "'length' is given twice"),
])
def test_malformed_argument_lists(args, message):
    with pytest.raises(InputError) as caught:
        validate_probe_args("repeated_random", args)
    assert message in caught.value.message


@pytest.mark.parametrize("setting, message", [
    ("probe repeated_random(vocab_lo=10, vocab_hi=5)", "vocab_lo=10 is not below vocab_hi=5"),
    ("probe file()", "needs a path"),
    ('probe file(path="missing.txt")', "does not exist"),
    ("probe repeated_random(length=1000000000000)", "must be at most 1048576"),
])
def test_the_checker_reports_probe_arguments_before_anything_runs(tmp_path, monkeypatch, setting, message):
    from patternlang.errors import PatternError
    from patternlang.library import load_pattern

    monkeypatch.chdir(tmp_path)
    with pytest.raises(PatternError) as caught:
        load_pattern(f"attend k where k == 0\n{setting}")
    assert message in str(caught.value)


def test_a_long_line_is_shown_clipped_around_the_error(tmp_path):
    line = '["' + "a" * 5000 + '", oops, "' + "b" * 5000 + '"]'
    with pytest.raises(InputError) as caught:
        from_file(write(tmp_path, "p.json", line))
    shown = str(caught.value)
    assert "p.json:1:5006" in shown and "error: not valid JSON: Expecting value" in shown
    source_line, caret = shown.splitlines()[1:3]
    assert len(source_line) < 140 and source_line.count("a") < 100
    assert source_line[caret.index("^"):].startswith("oops")  # the caret still points at the mistake
