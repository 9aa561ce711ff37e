"""Issue 19: nothing gets in, nothing silently wrong. One test (at least) per finding of the issue,
each built from the small inputs the issue describes; each failed on the code before the fix.

The seeds are tests/corpus/documents/atlas_small.json (an atlas document of the hand-set model)
and scores_small.json (its scores); every case is one of them changed.
"""

from __future__ import annotations

import json
import math
import time
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from patternlang.atlas import render_site
from patternlang.engine.scores import Scores
from patternlang.errors import InputError
from patternlang.files import NAME_LIMIT, inside, json_depth, read_json, safe_file_name
from tests.conftest import run


SEEDS = Path(__file__).parent / "corpus" / "documents"


def atlas_document() -> dict:
    return json.loads((SEEDS / "atlas_small.json").read_text())


def scores_document() -> dict:
    return json.loads((SEEDS / "scores_small.json").read_text())


def write(path: Path, data, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, **kwargs))
    return path


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


def refused(capsys, *args, words: str = "") -> str:
    """The CLI run with `args` exits 1 with a message (containing `words`), no traceback."""
    code, _, err = run(capsys, *[str(a) for a in args])
    assert code == 1, err
    assert "Traceback" not in err and "error:" in err, err
    assert words in err, err
    return err


# --------------------------------------------------------------------------- 1, 3: file names from data


def test_f1_a_model_id_with_dot_dot_writes_nothing_outside_the_output_folder(capsys, tmp_path):
    doc = atlas_document()
    doc["model"]["id"] = "../../victim/settings"
    source = write(tmp_path / "in" / "doc.json", doc)
    victim = write(tmp_path / "victim" / "settings.json", '{"mine": true}')
    out = tmp_path / "work" / "deeper" / "out"
    out.mkdir(parents=True)
    outside_before = files_under(tmp_path) - files_under(out)
    code, _, err = run(capsys, "atlas", "--add", str(source), "--render-only", "--out", str(out))
    assert code == 0, err
    assert files_under(tmp_path) - files_under(out) == outside_before  # nothing new outside OUT
    assert victim.read_text() == '{"mine": true}'
    assert len(list((out / "data").glob("*.json"))) == 1


def test_f1_a_document_copied_into_data_renders_inside_the_folder(capsys, tmp_path):
    doc = atlas_document()
    doc["model"]["id"] = "../../../escaped"
    out = tmp_path / "a" / "b" / "out"
    write(out / "data" / "copied.json", doc)
    before = files_under(tmp_path) - files_under(out)
    code, _, err = run(capsys, "atlas", "--render-only", "--out", str(out))
    assert code == 0, err
    assert files_under(tmp_path) - files_under(out) == before
    assert not (tmp_path / "escaped.html").exists() and not list(tmp_path.rglob("escaped*"))


def test_inside_refuses_paths_that_leave_the_folder(tmp_path):
    assert inside(tmp_path, "a/b.html") == (tmp_path / "a/b.html").resolve()
    for bad in ("../x", "a/../../x", "/etc/passwd"):
        with pytest.raises(InputError, match="outside the output folder"):
            inside(tmp_path, bad)


def test_safe_file_name_is_safe_bounded_and_distinct():
    names = ["../../x", "..", ".", "", "a/b", "a\\b", "x" * 300, "x" * 301, "日本語", "a b", "a_b", "CON", "\0"]
    safe = [safe_file_name(n) for n in names]
    assert len(set(safe)) == len(names)
    for s in safe:
        assert s and len(s) <= NAME_LIMIT and "/" not in s and "\\" not in s and not s.startswith(".")
        assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in s)


def test_f3_a_300_character_pattern_name_renders(capsys, tmp_path):
    doc = atlas_document()
    name = "p" * 300
    doc["patterns"][name] = doc["patterns"].pop("induction_head")
    for drawn in doc["heads"].values():
        if drawn["pattern"] == "induction_head":
            drawn["pattern"] = name
    source = write(tmp_path / "doc.json", doc)
    out = tmp_path / "out"
    code, _, err = run(capsys, "atlas", "--add", str(source), "--render-only", "--out", str(out))
    assert code == 0, err
    pages = list((out / "patterns").glob("*.html"))
    assert len(pages) == 2 and all(len(p.name) <= NAME_LIMIT + 5 for p in pages)


# --------------------------------------------------------------------------- 2: markup from data


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def test_f2_a_model_id_with_markup_stays_text(capsys, tmp_path):
    doc = atlas_document()
    doc["model"]["id"] = 'x"><img src=x onerror="window.owned=1">'
    doc["model"]["name"] = "'\"><svg onload=alert(1)>"
    source = write(tmp_path / "doc.json", doc)
    out = tmp_path / "out"
    code, _, err = run(capsys, "atlas", "--add", str(source), "--render-only", "--out", str(out))
    assert code == 0, err
    pages = list(out.rglob("*.html"))
    assert len(pages) > 6
    for page in pages:
        parser = Elements()
        parser.feed(page.read_text())
        tags = {tag for tag, _ in parser.found}
        assert "img" not in tags and "svg" not in tags or all("onload" not in a for t, a in parser.found), page
        assert not any(k.startswith("on") for _, attrs in parser.found for k in attrs), page
        for _, attrs in parser.found:
            assert not (attrs.get("href") or "").lower().startswith("javascript:"), page


# --------------------------------------------------------------------------- 4, 5, 6: document checks


@pytest.mark.parametrize("text, words", [
    ('{"a": NaN}', "not valid JSON"),
    ('{"a": Infinity}', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nests 100000 levels deep"),
    ('{"a": "\\ud800' + "x" * 10, "not valid JSON"),
])
def test_read_json_refuses_non_finite_deep_and_broken_json(tmp_path, text, words):
    path = write(tmp_path / "bad.json", text)
    with pytest.raises(InputError, match="bad.json") as error:
        read_json(path, "the file")
    assert words in error.value.message


def test_json_depth_skips_strings():
    assert json_depth('{"a": "[[[[{{{{", "b": [[], {"c": [1]}]}') == 4
    assert json_depth('"\\"[["') == 0


def _nan_in_a_score(doc):
    doc["patterns"]["induction_head"]["scores"]["mass"][0][0] = math.nan


def _inf_in_a_score(doc):
    doc["patterns"]["induction_head"]["scores"]["mass"][0][0] = math.inf


ATLAS_CASES = {
    "f4 NaN": (_nan_in_a_score, "not valid JSON"),
    "f4 1e999": (lambda d: d["patterns"]["induction_head"]["scores"]["mass"][1].__setitem__(0, "1e999"),
                 "field patterns.induction_head.scores.mass.1.0"),
    "f4 inf": (_inf_in_a_score, "not valid JSON"),
    "f5 grid shape": (lambda d: d["patterns"]["induction_head"]["scores"]["mass"].pop(),
                      "patterns.induction_head.scores.mass: 1 rows, the model has 2 layers"),
    "f5 int for an object": (lambda d: d["patterns"].__setitem__("induction_head", 3),
                             "field patterns.induction_head"),
    "f5 huge model": (lambda d: d["model"].__setitem__("n_layers", 1_000_000), "field model.n_layers"),
    "f5 head out of the model": (lambda d: d["heads"].__setitem__("L9H0", d["heads"]["L0H0"]), "heads.L9H0"),
    "f5 string for a number": (lambda d: d["model"].__setitem__("n_heads", "3"), "field model.n_heads"),
    "f5 out of range": (lambda d: d["patterns"]["induction_head"]["scores"]["mass"][0].__setitem__(1, 1e308),
                        "outside the measure's range"),
    "f5 short triangle": (lambda d: d["heads"]["L1H0"]["examples"][0]["attention"].pop(), "a triangle of"),
    "f5 list for the model": (lambda d: d.__setitem__("model", []), "field model"),
}


@pytest.mark.parametrize("case", list(ATLAS_CASES))
def test_f4_f5_bad_atlas_documents_are_refused_naming_file_and_field(capsys, tmp_path, case):
    change, words = ATLAS_CASES[case]
    doc = atlas_document()
    change(doc)
    text = json.dumps(doc).replace('"1e999"', "1e999")
    source = write(tmp_path / "doc.json", text)
    out = tmp_path / "out"
    started = time.perf_counter()
    err = refused(capsys, "atlas", "--add", source, "--render-only", "--out", out, words=words)
    assert "doc.json" in err
    assert time.perf_counter() - started < 10
    assert not out.exists() or not list(out.rglob("*.html"))


def test_f5_render_site_refuses_a_bad_document_before_writing(tmp_path):
    doc = atlas_document()
    doc["patterns"]["induction_head"]["scores"]["mass"][0] = [0.1]
    with pytest.raises(InputError, match="scores.mass.0.: 1 values, the model has 3 heads"):
        render_site([doc], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.html"))


def test_f6_deeply_nested_json_is_refused_by_atlas_and_compare(capsys, tmp_path):
    deep = write(tmp_path / "deep.json", '{"a":' * 100_000 + "1" + "}" * 100_000)
    refused(capsys, "atlas", "--add", deep, "--render-only", "--out", tmp_path / "out", words="nests 100000 levels")
    good = write(tmp_path / "good.json", scores_document())
    refused(capsys, "compare", good, deep, words="nests 100000 levels")


# --------------------------------------------------------------------------- 7, 8: score files


def test_f7_an_infinite_score_in_b_is_refused_before_writing_json(capsys, tmp_path):
    a = write(tmp_path / "a.json", scores_document())
    b_doc = scores_document()
    b_doc["patterns"]["induction_head"]["scores"]["mass"][0][0] = math.inf
    b = write(tmp_path / "b.json", json.dumps(b_doc).replace("Infinity", "1e999"))
    refused(capsys, "compare", a, b, "--json", "-", words="b.json")
    b.write_text(json.dumps(b_doc))  # the literal Infinity
    refused(capsys, "compare", a, b, "--json", "-", words="not valid JSON")


@pytest.mark.parametrize("value, words", [
    (1e308, "outside the measure's range [0, 1]"),
    (-0.5, "outside the measure's range [0, 1]"),
    ("1e999", "patterns.induction_head.scores.mass.0.0"),
    ("-1e999", "patterns.induction_head.scores.mass.0.0"),
    ("0.5", "patterns.induction_head.scores.mass.0.0"),
])
def test_f8_compare_refuses_non_finite_and_out_of_range_scores(capsys, tmp_path, value, words):
    a = write(tmp_path / "a.json", scores_document())
    doc = scores_document()
    doc["patterns"]["induction_head"]["scores"]["mass"][0][0] = value
    text = json.dumps(doc).replace('"1e999"', "1e999").replace('"-1e999"', "-1e999")
    b = write(tmp_path / "b.json", text)
    err = refused(capsys, "compare", a, b, words=words)
    assert "b.json" in err


def test_scores_schema_checks_shapes_and_counts(tmp_path):
    doc = scores_document()
    doc["n_layers"] = 5
    with pytest.raises(InputError, match="5 layers"):
        Scores.from_dict(doc)
    doc = scores_document()
    doc["n_heads"] = 10**9
    with pytest.raises(InputError, match="field n_heads"):
        Scores.from_dict(doc)
    assert Scores.from_json(write(tmp_path / "s.json", scores_document())).n_heads == 3


def test_the_seeds_are_valid():
    from patternlang.atlas.schema import validate_document

    validate_document(atlas_document())
    Scores.from_dict(scores_document())


# --------------------------------------------------------------------------- 9, 12: the weights cache


def test_f9_same_size_damage_to_the_cached_weights_is_found_and_rebuilt(tiny_gguf, capsys):
    from patternlang.models import clear_model_cache, load_model, weights_cache

    gguf, reads = tiny_gguf
    clear_model_cache()
    load_model(gguf, device="cpu")
    capsys.readouterr()
    (entry, _), = weights_cache.cached_entries()
    marker = json.loads((entry / weights_cache.COMPLETE).read_text())
    assert set(marker["sha256"]) >= {weights_cache.WEIGHTS_FILE, "config.json"}
    weights = entry / weights_cache.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 256] = bytes(256)  # zeroed in the middle, same size
    weights.write_bytes(bytes(data))
    clear_model_cache()
    load_model(gguf, device="cpu")
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "damaged" in err and "rebuilding" in err, err
    assert len(reads) == 2  # de-quantised again
    assert weights_cache.intact(entry)  # the rebuilt entry, with its own digests
    clear_model_cache()


def test_an_entry_written_before_digests_gets_them_recorded(tiny_gguf, capsys):
    from patternlang.models import clear_model_cache, load_model, weights_cache

    gguf, reads = tiny_gguf
    clear_model_cache()
    load_model(gguf, device="cpu")
    (entry, _), = weights_cache.cached_entries()
    (entry / weights_cache.COMPLETE).write_text("2026-01-01T00:00:00\n")  # the old marker
    clear_model_cache()
    load_model(gguf, device="cpu")
    assert len(reads) == 1
    assert weights_cache.WEIGHTS_FILE in json.loads((entry / weights_cache.COMPLETE).read_text())["sha256"]
    clear_model_cache()


@pytest.mark.parametrize("kind", ["a regular file", "below a file", "not writable"])
def test_f12_an_unusable_cache_folder_is_said_once_and_runs_go_on(tiny_gguf, capsys, monkeypatch, tmp_path, kind):
    import os

    from patternlang.models import clear_model_cache, load_model, weights_cache

    gguf, reads = tiny_gguf
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    if kind == "a regular file":
        folder = blocker
    elif kind == "below a file":
        folder = blocker / "cache"
    else:
        folder = tmp_path / "readonly"
        folder.mkdir()
        real = os.access
        monkeypatch.setattr(weights_cache.os, "access",
                            lambda p, mode, real=real: False if Path(p) == folder else real(p, mode))
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(folder))
    monkeypatch.setattr(weights_cache, "_said_unusable", set())
    for _ in range(2):
        clear_model_cache()
        load_model(gguf, device="cpu")
    err = capsys.readouterr().err
    assert err.count("cannot use the cache folder") == 1, err
    assert str(folder) in err and "going on without a cache" in err
    assert "cached afterwards" not in err and "cached in" not in err
    assert len(reads) == 2
    clear_model_cache()


def test_f9_the_sampled_digest_finds_16_mb_zeroed_and_the_full_one_any_byte(tmp_path):
    from patternlang.models import weights_cache

    rng = torch.Generator().manual_seed(0)
    path = tmp_path / "w.bin"
    original = torch.randint(1, 255, (40 << 20,), dtype=torch.uint8, generator=rng).numpy().tobytes()
    path.write_bytes(original)
    sampled, full = weights_cache.sha256_of(path), weights_cache.sha256_of(path, full=True)
    damaged = bytearray(original)
    damaged[12 << 20:28 << 20] = bytes(16 << 20)  # 16 MB zeroed, the same size
    path.write_bytes(bytes(damaged))
    assert weights_cache.sha256_of(path) != sampled
    one_bit = bytearray(original)
    one_bit[(5 << 20) + 12345] ^= 1  # inside a gap between sampled blocks
    path.write_bytes(bytes(one_bit))
    assert weights_cache.sha256_of(path, full=True) != full
    assert weights_cache.sha256_of(path) == sampled  # what the sample can miss (the module says so)


# --------------------------------------------------------------------------- 10, 11: checkpoints


@pytest.fixture
def finished_checkpoint(tmp_path):
    from patternlang.engine import detect
    from patternlang.testing import make_hand_set_model

    model = make_hand_set_model(n_layers=2, n_ctx=64)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"w{i % 7} w{i % 5} w{i % 3} w{i % 7} w{i % 5}\n" for i in range(12)))
    folder = tmp_path / "ckpt"
    options = dict(measures="mass", progress=False, batch_size=4)
    scores = detect(model, prompts, "previous_token_head", checkpoint=folder, **options)

    def rerun():
        return detect(model, prompts, "previous_token_head", checkpoint=folder, **options)

    assert rerun().n_prompts == scores.n_prompts == 12  # intact: read straight back
    return folder / "detect.pt", rerun


def _float_tensors(value, path=()):
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _float_tensors(item, (*path, key))


@pytest.mark.parametrize("damage", ["one value changed", "every float halved", "digest removed"])
def test_f10_a_changed_checkpoint_is_refused_as_damaged(finished_checkpoint, damage):
    path, rerun = finished_checkpoint
    state = torch.load(path, weights_only=True)
    tensors = list(_float_tensors(state))
    assert tensors
    if damage == "one value changed":
        tensors[0][1].view(-1)[0] += 0.25
    elif damage == "every float halved":
        for _, tensor in tensors:
            tensor.mul_(0.5)
    else:
        del state["sha256"]
    torch.save(state, path)
    with pytest.raises(InputError) as error:
        rerun()
    assert "damaged: delete the folder to start over" in error.value.message


def test_f10_bits_flipped_in_the_file_are_never_resumed_from(finished_checkpoint):
    path, rerun = finished_checkpoint
    data = bytearray(path.read_bytes())
    state = torch.load(path, weights_only=True)
    raws = [t.reshape(-1).view(torch.uint8).numpy().tobytes() for _, t in _float_tensors(state)]
    found = [bytes(data).find(raw[:32]) for raw in sorted(raws, key=len, reverse=True) if len(set(raw[:32])) > 4]
    at = next(a for a in found if a > 0)
    data[at + 3] ^= 0x10  # one bit inside the tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as error:
        rerun()
    assert "damaged" in error.value.message or "cannot read the checkpoint" in error.value.message


class Payload:
    def __reduce__(self):
        return (print, ("the payload ran",))


@pytest.mark.parametrize("content", ["random bytes", "a pickle payload"])
def test_f11_refused_checkpoints_are_refused_in_our_own_words(finished_checkpoint, capsys, content):
    path, rerun = finished_checkpoint
    if content == "random bytes":
        path.write_bytes(bytes(range(256)) * 8)
    else:
        torch.save({"format": 1, "x": Payload()}, path)
    with pytest.raises(InputError) as error:
        rerun()
    text = str(error.value) + (error.value.hint or "")
    assert "cannot read the checkpoint" in text and "nothing in it was run" in text
    assert "weights_only" not in text and "\x1b" not in text and "torch.load" not in text
    assert "the payload ran" not in capsys.readouterr().out


# --------------------------------------------------------------------------- 13, 15: messages


def test_f13_span_errors_have_no_empty_field(capsys, tmp_path):
    from patternlang.probes.prompt_files import from_file as read_prompt_file

    path = write(tmp_path / "p.jsonl", '{"text": "John gave Mary", "spans": {"IO": [[9, 99]]}}\n'
                 '{"text": "a b", "spans": {"IO": [[0, "x"]]}}\n')
    with pytest.raises(InputError) as error:
        read_prompt_file(path)
    text = str(error.value)
    assert ": :" not in text and "line 1: span 'IO' [9, 99)" in text, text
    path.write_text('{"text": "a b", "spans": {"IO": [[0, "x"]]}}\n')
    with pytest.raises(InputError) as error:
        read_prompt_file(path)
    assert ": :" not in str(error.value) and "line 1: span 'IO' has offsets" in str(error.value)
    code, _, err = run(capsys, "detect", "previous_token_head", "--prompts", str(path))
    assert code == 1 and ": :" not in err and "line 1: span 'IO'" in err, err


@pytest.mark.parametrize("measures", [3, 3.5, b"mass", {"mass"}, ["mass", None], [["mass"]], object()])
def test_f15_measures_of_a_wrong_type_are_a_pattern_error(measures):
    from patternlang import PatternError, detect
    from patternlang.testing import make_hand_set_model

    with pytest.raises(PatternError) as error:
        detect(make_hand_set_model(n_layers=1, n_ctx=32), ["a b c"], "previous_token_head", measures=measures,
               progress=False)
    assert "measures must be" in error.value.message and error.value.hint


# --------------------------------------------------------------------------- 14: str[k] of byte pieces


def _texts_covering_every_byte_piece(tokenizer):
    """Texts (every assigned character from U+0080 on, 64 at a time, run together and spaced; astral
    planes sampled) chosen so that each token of the vocabulary that decodes to "�" alone occurs in one."""
    pieces = {i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i])}
    codes = [c for c in range(0x80, 0x110000)  # assigned characters only: the tokenizer drops bytes of others
             if unicodedata.category(chr(c)) not in ("Cn", "Cs") and (c < 0x10000 or 0xE0000 <= c < 0xE0200
                                                                          or c % 61 == 0)]
    chars = [chr(c) for c in codes]
    texts = [t for i in range(0, len(chars), 64) for t in ("".join(chars[i:i + 64]), " " + " ".join(chars[i:i + 64]))]
    chosen, left = [], set(pieces)
    for text, ids in zip(texts, tokenizer(texts, add_special_tokens=False)["input_ids"]):
        if left & set(ids):
            chosen.append((text, ids))
            left -= set(ids)
    return pieces, left, chosen


def test_f14_str_of_byte_pieces_is_the_same_from_text_and_from_ids_over_the_vocabulary():
    from patternlang.tokenization import default_tokenizer, token_texts

    tokenizer = default_tokenizer()
    pieces, missed, chosen = _texts_covering_every_byte_piece(tokenizer)
    assert len(pieces) > 300 and not missed  # every byte piece of the embedded vocabulary is exercised
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for text, ids in chosen:
        ids = bos + list(ids)
        from_text, from_ids = token_texts(tokenizer, ids, text=text), token_texts(tokenizer, ids)
        assert from_text == from_ids, text[:20]
        for position, piece in enumerate(from_ids[len(bos):], start=len(bos)):
            assert piece in text, (text[:20], position, piece)  # a piece reads characters of the text
            assert "\ufffd" not in piece or "\ufffd" in text, (text[:20], position, piece)


def test_f14_the_rule_of_the_issue_marks_the_same_cells_either_way():
    from patternlang import compile_rule
    from patternlang.tokenization import default_tokenizer, token_texts, tokenize_prompt

    tokenizer = default_tokenizer()
    ids, from_text = tokenize_prompt("日本語")
    from_ids = token_texts(tokenizer, ids)
    assert from_text == from_ids and from_ids[1:] == ["日", "日", "本", "語", "語", "語"]
    rule = compile_rule("attend k where str[k] == str[q] and k < q")
    special = {tokenizer.bos_token_id}
    a, b = rule.matrix(ids, from_text, special_ids=special), rule.matrix(ids, from_ids, special_ids=special)
    assert torch.equal(a, b) and int(a.sum()) == 4


# --------------------------------------------------------------------------- 16: compile --show for every pattern


def _compile_case(pattern, model, tmp_path):
    """The command line that shows `pattern` on a text prompt: --prompt, or for a pattern reading
    spans, prompt 0 of its own probe (labelled) as a line of a JSONL file."""
    from patternlang.probes import make_probe

    if "spans" not in pattern.needs:
        text = "The cat saw a dog near the river. The cat saw it."
        return ["--prompt", text], text, None
    probe = make_probe(pattern.settings.probe.name, pattern.settings.probe.args, model=model)
    text, labels = list(probe)[0], probe.spans[0]
    spans = {}
    for label, start, end in labels:
        spans.setdefault(label, []).append([start, end])
    path = tmp_path / f"{pattern.name}.jsonl"
    path.write_text(json.dumps({"text": text, "spans": spans}) + "\n")
    return ["--prompts", str(path), "--index", "0"], text, spans


@pytest.mark.model
def test_f16_compile_shows_every_shipped_pattern_on_a_text_prompt(embedded_model, capsys, tmp_path):
    from patternlang.engine.explanation import explain
    from patternlang.library import shipped_patterns

    for pattern in shipped_patterns():
        args, text, spans = _compile_case(pattern, embedded_model, tmp_path)
        page = tmp_path / f"{pattern.name}.html"
        code, out, err = run(capsys, "compile", pattern.name, *args, "--show", "--out", str(page), "--json")
        assert code == 0, (pattern.name, err)
        assert page.is_file() and "Traceback" not in err
        shown = json.loads(out.splitlines()[0])
        if "predictions" in pattern.needs:
            assert "to its logits" in err, err
        if "syntax" in pattern.needs:
            assert "parsing the prompt with spaCy" in err, err
        why = explain(embedded_model, pattern, "L0H0", text, spans=spans)  # the engine's own matrix
        assert shown["matrix"] == why.matrix.tolist(), pattern.name
        assert shown["tokens"] == list(why.tokens)


def test_f16_compile_says_what_a_pattern_lacks_in_cli_words(capsys, no_model):
    err = refused(capsys, "compile", "name_mover_head", "--prompt", "When Mary and John", words="--spans")
    assert "syntax=" not in err and "Annotations" not in err
    err = refused(capsys, "compile", "determiner_head", "--tokens", "the cat", words="--prompt TEXT")
    assert "syntax=" not in err
    refused(capsys, "compile", "name_mover_head", "--prompt", "x", "--spans", "{bad", words="--spans is not JSON")


# --------------------------------------------------------------------------- progress off a terminal


def test_a_long_run_off_a_terminal_writes_a_line_at_most_every_30_s(capsys):
    from patternlang.engine.progress import LOG_EVERY, ProgressReporter, progress_reporter

    now = [0.0]
    reporter = ProgressReporter(100, "scoring 8 prompts", display="log", delay=LOG_EVERY, clock=lambda: now[0])
    for t, step in [(1, 1), (20, 10), (29.9, 20), (31, 30), (45, 40), (60, 50), (62, 60), (95, 80), (96, 100)]:
        now[0] = t
        reporter.advance(step - reporter.done, f"layer {step % 7}")
    reporter.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["patternlang: scoring 8 prompts: 30/100 steps (30%), 31 s so far; layer 2",
                     "patternlang: scoring 8 prompts: 60/100 steps (60%), 1 min 2 s so far; layer 4",
                     "patternlang: scoring 8 prompts: 80/100 steps (80%), 1 min 35 s so far; layer 3"]
    quiet = progress_reporter(True, 10, "a short run")  # stderr is captured here: not a terminal
    assert quiet.display == "log" and quiet.delay == LOG_EVERY
    quiet.advance(10)
    assert capsys.readouterr().err == ""  # under 30 s: nothing


# --------------------------------------------------------------------------- found beyond the list


def test_a_document_or_score_file_that_is_not_utf8_is_refused_not_a_traceback(capsys, tmp_path):
    bad = tmp_path / "latin1.json"
    bad.write_bytes(b'{"format": "patternlang.atlas/1", "x": "\xe9t\xe9"}')
    refused(capsys, "atlas", "--add", bad, "--render-only", "--out", tmp_path / "out", words="not UTF-8")
    good = write(tmp_path / "good.json", scores_document())
    refused(capsys, "compare", good, bad, words="not UTF-8")
