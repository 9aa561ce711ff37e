"""Streamed prompt sources (`probes/stream.py`) and `detect` read in chunks: same prompts, same
messages as `from_file`, same scores whatever the chunking, memory flat in the prompts."""

from __future__ import annotations

import json

import pytest
import torch

from patternlang.engine import detect
from patternlang.engine.accumulate import Accumulator, PatternGroup
from patternlang.engine.chunks import ChunkReader, StreamedPrompts
from patternlang.engine.measures import Exclusions
from patternlang.errors import InputError
from patternlang.probes import from_file, stream
from patternlang.probes import prompt_files as files
from patternlang.probes.stream import open_prompts
from patternlang.testing import make_hand_set_model
from patternlang.testing.oracle import random_attention, random_detection
from tests.conftest import LABELLED_SPANS, LABELLED_TEXT, SPAN_RULES, assert_same_scores, run, texts
from tests.conftest import SCALE_PATTERNS as PATTERNS



@pytest.fixture(scope="module")
def model():
    return make_hand_set_model(n_layers=2, n_ctx=64)


# ---- reading ------------------------------------------------------------------------------------
def test_streamed_files_read_what_from_file_reads(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_bytes("\ufeffThe cat\r\n\n   \n  sat on\nthe mat.  \n".encode())
    assert [p for p, _ in open_prompts(txt)] == list(from_file(txt).texts)
    jsonl = tmp_path / "p.jsonl"
    rows = [{"text": "Mary and John", "spans": {"IO": [[0, 4]]}}, "bare text", {"prompt": "x"}]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    streamed = list(open_prompts(jsonl))
    whole = from_file(jsonl)
    assert [p for p, _ in streamed] == list(whole.texts)
    assert [s for _, s in streamed] == list(whole.spans)
    tokens = tmp_path / "t.jsonl"
    tokens.write_text("[1, 2, 3]\n{\"tokens\": [4, 5]}\n")
    assert [p for p, _ in open_prompts(tokens)] == [(1, 2, 3), (4, 5)]
    listed = tmp_path / "p.json"
    listed.write_text(json.dumps(["a b", "c"]))
    assert [p for p, _ in open_prompts(listed)] == ["a b", "c"]


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", '{"text": "ok"}\n\n{"text": \n', "bad.jsonl:3"),
    ("mixed.jsonl", '"text"\n[1, 2]\n', "line 2: a file holds text prompts or token-id prompts, not both"),
    ("fields.jsonl", '{"txt": "a"}\n', 'line 1: an object needs exactly one of the fields'),
    ("empty.txt", "\n  \n", "holds no prompts"),
    ("nul.txt", "ok\nbad\x00\n", "a NUL byte at byte 6, line 2"),
])
def test_streamed_files_report_the_line_like_from_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content.encode())
    with pytest.raises(InputError) as streamed:
        list(open_prompts(path))
    assert message in str(streamed.value)
    with pytest.raises(InputError) as whole:
        from_file(path)
    assert message in str(whole.value)


def test_streamed_files_report_bad_utf8_and_overlong_lines(tmp_path, monkeypatch):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 8, line 2\)"):
        list(open_prompts(path))
    monkeypatch.setattr(stream, "MAX_LINE_BYTES", 16)
    path.write_text("short\n" + "x" * 40 + "\n")
    with pytest.raises(InputError, match="line 2 is longer than 16 bytes"):
        list(open_prompts(path))


def test_streamed_files_have_no_whole_file_bound(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text("".join(f"prompt {i}\n" for i in range(200)))
    monkeypatch.setattr(files, "MAX_PROMPT_FILE_BYTES", 100)
    with pytest.raises(InputError, match="more than the 100 bytes"):
        from_file(path)
    assert sum(1 for _ in open_prompts(path)) == 200  # read a line at a time instead


def test_tables_parquet_and_datasets(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2], "text": ["a b", "c d"]}), tmp_path / "t.parquet")
    source = open_prompts(tmp_path / "t.parquet")
    assert source.total == 2 and [p for p, _ in source] == ["a b", "c d"]
    pq.write_table(pa.table({"ids": [[1, 2, 3], [4]]}), tmp_path / "ids.parquet")
    assert [p for p, _ in open_prompts(tmp_path / "ids.parquet", column="ids")] == [(1, 2, 3), (4,)]
    with pytest.raises(InputError, match=r"no column 'txt'.*\n.*did you mean 'text'"):
        open_prompts(tmp_path / "t.parquet", column="txt")
    with pytest.raises(InputError, match="no column named text, prompt or tokens"):
        open_prompts(tmp_path / "ids.parquet")
    pq.write_table(pa.table({"text": ["fine", None]}), tmp_path / "null.parquet")
    with pytest.raises(InputError, match="row 2: a prompt is a string or a list of token ids, not NoneType"):
        list(open_prompts(tmp_path / "null.parquet"))
    datasets.Dataset.from_dict({"prompt": ["x y", "z"]}).save_to_disk(str(tmp_path / "ds"))
    assert [p for p, _ in open_prompts(tmp_path / "ds")] == ["x y", "z"]
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a Hugging Face dataset"):
        open_prompts(tmp_path / "plain")
    with pytest.raises(InputError, match="applies to Parquet files"):
        open_prompts(_txt(tmp_path), column="text")


def _txt(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("a\n")
    return path


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module

    def without_pyarrow(name, *args):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *args)

    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    monkeypatch.setattr(importlib, "import_module", without_pyarrow)
    with pytest.raises(InputError, match="needs the pyarrow package") as error:
        open_prompts(tmp_path / "t.parquet")
    assert "pip install pyarrow" in str(error.value)


def test_the_reader_holds_one_chunk_at_a_time():
    read = []

    def source():
        for i in range(100):
            read.append(i)
            yield f"prompt {i}", None

    chunks = iter(ChunkReader(source(), size=8))
    first = next(chunks)
    assert first.indices == list(range(8)) and len(read) == 8  # nothing read ahead of the chunk
    second = next(chunks)
    assert second.indices == list(range(8, 16)) and len(read) == 16


def test_shards_split_every_prompt_once():
    from patternlang.engine.distributed import Shard

    entries = [(f"p{i}", None) for i in range(23)]
    owned = [[i for chunk in ChunkReader(entries, size=4, shard=Shard(rank, 3)) for i in chunk.indices]
             for rank in range(3)]
    assert sorted(sum(owned, [])) == list(range(23)) and owned[1] == list(range(1, 23, 3))


# ---- scoring in chunks ----------------------------------------------------------------------------
def test_chunks_and_batches_change_no_score(model):
    prompts = texts(23)
    whole = detect(model, prompts, PATTERNS, measures="mass,tv,lift", progress=False, per_prompt=True)
    chunked = detect(model, prompts, PATTERNS, measures="mass,tv,lift", progress=False, per_prompt=True,
                     chunk_size=4, batch_size=3)
    assert_same_scores(whole, chunked)
    for name in whole.patterns:
        torch.testing.assert_close(whole.per_prompt[name]["mass"], chunked.per_prompt[name]["mass"], equal_nan=True)
    assert chunked.settings["n_batches"] == 5 * 2 + 1  # chunks of 4 (batches of 3 and 1), the last of 3


def test_a_streamed_file_scores_like_the_list(model, tmp_path):
    prompts = texts(30, seed=1)
    path = tmp_path / "p.txt"
    path.write_text("\n".join(prompts) + "\n")
    listed = detect(model, prompts, PATTERNS, progress=False, per_prompt=True)
    streamed = detect(model, path, PATTERNS, progress=False, per_prompt=True, chunk_size=7)
    assert_same_scores(listed, streamed)
    for name in listed.patterns:  # per-prompt rows in the file's order
        torch.testing.assert_close(listed.per_prompt[name]["mass"], streamed.per_prompt[name]["mass"], equal_nan=True)
    shown = streamed.sources[0].prompts
    assert isinstance(shown, StreamedPrompts) and len(shown) == 30 and shown[17] == prompts[17]
    generated = detect(model, iter(prompts), PATTERNS, progress=False, chunk_size=9)
    assert_same_scores(listed, generated)


def test_streamed_bad_prompts_name_their_line_or_number(model, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('"ab"\n' * 5 + '{"text": ""}\n')
    with pytest.raises(InputError, match="line 6: the prompt is empty"):
        detect(model, path, "previous_token_head", progress=False, chunk_size=2)
    too_long = ["ab"] * 5 + ["a" * 80]  # the model's context is 64
    with pytest.raises(InputError, match="prompt 5 has 81 tokens"):
        detect(model, too_long, "previous_token_head", progress=False, chunk_size=2)


# ---- the accumulator's state ------------------------------------------------------------------------
def test_state_dict_covers_every_sum_and_resumes_exactly():
    g = torch.Generator().manual_seed(0)
    lengths = [5, 7, 4, 6]
    detection = random_detection(2, lengths, g)
    attention = [random_attention(4, 3, lengths, g) for _ in range(2)]

    def fresh():
        return Accumulator(n_patterns=2, n_layers=2, n_heads=3, measures=("mass", "tv", "lift"),
                           groups=[PatternGroup((0, 1), Exclusions(bos=True))], heads={0: None, 1: (0, 2)})

    def add(acc, rows):
        acc.start_batch(detection[:, rows], torch.tensor([lengths[i] for i in rows]), rows)
        for layer in range(2):
            acc.add_layer(layer, attention[layer][rows])

    whole = fresh()
    add(whole, [0, 1, 2, 3])
    first = fresh()
    add(first, [0, 1])
    state = first.state_dict()
    floats = {name for name, value in vars(first).items() if isinstance(value, torch.Tensor)
              and value.is_floating_point()}
    floats |= {name for name, value in vars(first).items() if isinstance(value, dict) and value
               and all(isinstance(v, torch.Tensor) and v.is_floating_point() for v in value.values())}
    assert floats - {"per_prompt"} <= {name.split("/")[0] for name in state["sums"]}
    resumed = fresh()
    resumed.load_state_dict(state)
    add(resumed, [2, 3])
    a, b = whole.result(), resumed.result()
    for measure in ("mass", "tv", "lift"):
        torch.testing.assert_close(a.values[measure], b.values[measure], equal_nan=True)
        torch.testing.assert_close(a.ci_high[measure], b.ci_high[measure], equal_nan=True)
    assert torch.equal(a.n_rows, b.n_rows) and a.n_prompts_total == b.n_prompts_total == 4
    other = Accumulator(n_patterns=1, n_layers=2, n_heads=3, measures=("mass",),
                        groups=[PatternGroup((0,), Exclusions())], heads={0: None, 1: None})
    with pytest.raises(ValueError, match="do not fit"):
        other.load_state_dict(state)


def test_detect_reads_at_most_a_chunk_ahead_of_what_it_scored(model, monkeypatch):
    from patternlang.engine import readers as detection  # the hooked reader runs the passes

    read: list[int] = []

    def prompts():
        for index, text in enumerate(texts(20, seed=2)):
            read.append(index)
            yield text

    read_at_batch = []
    real = detection.run_attention_hooks

    def spy(*args, **kwargs):
        read_at_batch.append(len(read))
        return real(*args, **kwargs)

    monkeypatch.setattr(detection, "run_attention_hooks", spy)
    detect(model, prompts(), "previous_token_head", progress=False, chunk_size=4, batch_size=2)
    assert len(read_at_batch) == 10
    assert max(n_read - 2 * batch for batch, n_read in enumerate(read_at_batch)) <= 4  # one chunk, no more


# ---- labelled spans in a streamed file ------------------------------------------------------------
def test_a_labelled_file_whose_first_chunk_has_no_spans_scores_like_the_whole_file(tmp_path):
    """Whether a streamed file labels its prompts is known once it is read: a first chunk without
    spans is no error (it was), and the scores equal those of the file read whole."""
    from patternlang.testing.predicting import make_predicting_model

    path = tmp_path / "late.jsonl"
    lines = [{"text": LABELLED_TEXT[:5]}] * 4 + [{"text": LABELLED_TEXT, "spans": LABELLED_SPANS}] * 3
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    model = make_predicting_model(1.0)
    whole = detect(model, from_file(path), SPAN_RULES, progress=False)
    streamed = detect(model, path, SPAN_RULES, progress=False, chunk_size=2)
    assert_same_scores(whole, streamed)
    assert streamed.evidence[streamed.patterns[0]].n_rows == 3  # the END row of each labelled prompt
    folder = tmp_path / "checkpoint"  # a finished run's checkpoint remembers that the file was labelled
    detect(model, path, SPAN_RULES, progress=False, chunk_size=2, checkpoint=folder)
    assert_same_scores(whole, detect(model, path, SPAN_RULES, progress=False, chunk_size=2, checkpoint=folder))


def test_a_span_pattern_on_a_streamed_file_without_spans_is_an_error(tmp_path, capsys, no_model):
    from patternlang.testing.predicting import make_predicting_model

    path = tmp_path / "bare.jsonl"
    path.write_text("".join(json.dumps({"text": "abcab"}) + "\n" for _ in range(5)))
    with pytest.raises(InputError, match="reads labelled spans .* but the prompts have none"):
        detect(make_predicting_model(1.0), path, SPAN_RULES, progress=False, chunk_size=2)
    code, _, err = run(capsys, "detect", "name_mover_head", "--prompts", str(path))
    assert code == 1 and "reads labelled spans" in err and "JSONL prompt file" in err
