"""The cache of de-quantised GGUF weights: keyed by the file, written atomically, safe to delete."""

from __future__ import annotations

import pytest
import torch

from patternlang.models import weights_cache


def test_the_key_follows_the_file_bytes_and_the_env_var_moves_the_cache(tmp_path, cache_dir):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"one")
    first = weights_cache.entry_for(gguf, "float32")
    assert first.parent == cache_dir and first.name.startswith("m-") and first.name.endswith("-float32-v0.1.0")
    gguf.write_bytes(b"two")
    assert weights_cache.entry_for(gguf, "float32") != first
    assert weights_cache.entry_for(gguf, "float16") != weights_cache.entry_for(gguf, "float32")


def test_incomplete_entries_are_never_used_and_clear_deletes_everything(tmp_path, cache_dir, monkeypatch):
    entry = cache_dir / "m-abc-float32-v0.1.0"
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{}")  # a crash before the entry was complete
    assert weights_cache.load_cached(entry, torch.float32) is None
    assert weights_cache.cached_entries() == []
    (entry / weights_cache.COMPLETE).write_text("now")
    assert weights_cache.load_cached(entry, torch.float32) is None  # complete but unreadable: rebuilt
    assert not entry.exists()
    (cache_dir / ".m-half").mkdir()
    assert [p.name for p in weights_cache.clear_weights_cache()] == [".m-half"]
    monkeypatch.setenv(weights_cache.SWITCH_ENV, "0")
    assert not weights_cache.enabled()


def test_cache_info_and_clear_cover_the_whole_cache_folder(capsys, cache_dir, monkeypatch):
    from patternlang import tokenization as tokenize
    from patternlang.cli import main

    entry = cache_dir / "m-abc-float32-v0.1.0"
    entry.mkdir(parents=True)
    (entry / weights_cache.COMPLETE).write_text("now")
    (entry / "model.safetensors").write_bytes(b"w" * 3 * 2**20)
    tokenizer = tokenize._cache_dir()
    tokenizer.mkdir(parents=True)
    (tokenizer / "tokenizer.json").write_bytes(b"t" * 2**20)
    joined = weights_cache.cache_folder("gguf") / "gemma.gguf"
    joined.parent.mkdir(parents=True)
    joined.write_bytes(b"g" * 2 * 2**20)
    assert tokenizer.parent.parent == joined.parent.parent == cache_dir.parent  # all under one folder
    with pytest.raises(SystemExit):
        main(["cache", "info"])
    out = capsys.readouterr().out
    assert "m-abc-float32-v0.1.0  3 MiB" in out and "gguf/gemma.gguf  2 MiB" in out
    assert "tokenizers/SmolLM2-135M-Instruct  1 MiB" in out and "in all: 6 MiB" in out
    with pytest.raises(SystemExit):
        main(["cache", "clear"])
    assert "deleted 1 cached model(s) and 2 other item(s)" in capsys.readouterr().out
    assert not entry.exists() and not tokenizer.exists() and not joined.exists()
    assert weights_cache.cached_entries() == [] and weights_cache.other_cached() == []
    with pytest.raises(ValueError, match="unknown cache folder"):
        weights_cache.cache_folder("models")


def test_cache_command(capsys, cache_dir):
    from patternlang.cli import main

    for argv, expected in ((["cache"], "empty"), (["cache", "clear"], "deleted 0 cached model(s)")):
        with pytest.raises(SystemExit) as code:
            main(argv)
        assert code.value.code in (0, None) and expected in capsys.readouterr().out
    with pytest.raises(SystemExit) as code:
        main(["cache", "wipe"])
    assert code.value.code == 1 and "unknown cache action" in capsys.readouterr().err


@pytest.mark.model
def test_the_second_load_reads_the_cache_and_gives_the_same_logits(cache_dir, monkeypatch, capsys):
    from patternlang.models import clear_model_cache, load_model, loaders

    clear_model_cache()
    cold = load_model()
    assert "de-quantising" in capsys.readouterr().err
    assert len(weights_cache.cached_entries()) == 1
    clear_model_cache()

    def no_gguf(*args, **kwargs):
        raise AssertionError("the GGUF file was read again instead of the cache")

    monkeypatch.setattr(loaders, "_read_gguf", no_gguf)
    warm = load_model()
    assert warm is not cold and "de-quantising" not in capsys.readouterr().err
    text = "The cat sat on the mat. The cat"
    # Tokenizing reads the same both ways. (Called bare, `tokenizer(text)` prepends BOS after the
    # cache, not before: TransformerLens gives a tokenizer add_bos_token=True where it can reload
    # it, which it cannot for the GGUF file's. Neither TransformerLens nor patternlang calls it so.)
    for kwargs in ({}, {"prepend_bos": False}):
        assert torch.equal(warm.to_tokens([text, "One two"], **kwargs), cold.to_tokens([text, "One two"], **kwargs))
    assert warm.to_str_tokens(text) == cold.to_str_tokens(text)
    for tokenizer_kwargs in ({"add_special_tokens": False}, {"add_special_tokens": False, "return_offsets_mapping": True}):
        assert warm.tokenizer(text, **tokenizer_kwargs) == cold.tokenizer(text, **tokenizer_kwargs)
    cold_tokens, cold_logits, cold_patterns = _patterns_and_logits(cold, text)
    warm_tokens, warm_logits, warm_patterns = _patterns_and_logits(warm, text)
    assert torch.equal(warm_tokens, cold_tokens)
    torch.testing.assert_close(warm_logits, cold_logits, rtol=0, atol=0)
    assert len(cold_patterns) == 30 and cold_patterns.keys() == warm_patterns.keys()
    for name in cold_patterns:
        torch.testing.assert_close(warm_patterns[name], cold_patterns[name], rtol=0, atol=0)
    clear_model_cache()


# ---------------------------------------------------------------------------
# The file's hash is kept in a stamp; a changed file is hashed (and cached) again


def test_the_stamp_spares_rehashing_an_unchanged_file_and_a_change_rekeys(tmp_path, cache_dir, monkeypatch):
    import os
    import time

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"one")
    # A stamp is trusted once the file's last change is over 2 s older than the stamp: here the
    # stamps are dated 10 s ahead instead of waiting.
    monkeypatch.setattr(weights_cache, "_now_ns", lambda: time.time_ns() + 10**10)
    hashed = []
    real_digest = weights_cache.file_digest
    monkeypatch.setattr(weights_cache, "file_digest", lambda path: hashed.append(path) or real_digest(path))
    first = weights_cache.entry_for(gguf, "float32")
    assert weights_cache.entry_for(gguf, "float32") == first and len(hashed) == 1  # read once
    stamp = os.stat(gguf)
    time.sleep(0.05)  # past the file system's time tick
    gguf.write_bytes(b"two")  # the same size, and the old modification time put back:
    os.utime(gguf, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the change time still moved
    assert weights_cache.entry_for(gguf, "float32") != first and len(hashed) == 2


def test_a_stamp_younger_than_the_change_is_not_trusted(tmp_path, cache_dir, monkeypatch):
    # File times are coarse: a file rewritten within the tick its stamp was taken in keeps its
    # times, so a stamp taken right after a change is checked again (git's racy-clean rule).
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"one")
    hashed = []
    real_digest = weights_cache.file_digest
    monkeypatch.setattr(weights_cache, "file_digest", lambda path: hashed.append(path) or real_digest(path))
    weights_cache.entry_for(gguf, "float32")
    weights_cache.entry_for(gguf, "float32")
    assert len(hashed) == 2


# ---------------------------------------------------------------------------
# The GGUF loader with the cache, on a tiny model standing in for a de-quantised file


def _patterns_and_logits(model, text="w1 w2 w3 w1 w2 w3 w5"):
    tokens = model.to_tokens(text)
    patterns = {}

    def save(pattern, hook):
        patterns[hook.name] = pattern.detach().clone()

    with torch.inference_mode():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("attn.hook_pattern"), save)])
    return tokens, logits, patterns


def test_the_cache_is_used_on_the_second_load_and_rebuilt_when_the_file_changes(tiny_gguf, capsys):
    from patternlang.models import clear_model_cache, load_model

    gguf, reads = tiny_gguf
    clear_model_cache()
    cold = load_model(gguf, device="cpu")
    err = capsys.readouterr().err
    assert len(reads) == 1 and "de-quantising tiny.gguf to float32 (first load of this file" in err
    assert "de-quantised tiny.gguf in" in err and "cached in" in err
    assert len(weights_cache.cached_entries()) == 1
    clear_model_cache()

    warm = load_model(gguf, device="cpu")
    assert len(reads) == 1 and capsys.readouterr().err == ""  # read from the cache, silently
    cold_tokens, cold_logits, cold_patterns = _patterns_and_logits(cold)
    warm_tokens, warm_logits, warm_patterns = _patterns_and_logits(warm)
    assert torch.equal(cold_tokens, warm_tokens)
    torch.testing.assert_close(warm_logits, cold_logits, rtol=0, atol=0)
    assert cold_patterns.keys() == warm_patterns.keys() and len(cold_patterns) == 2
    for name in cold_patterns:
        torch.testing.assert_close(warm_patterns[name], cold_patterns[name], rtol=0, atol=0)
    hf = warm.original_model
    assert hf.lm_head.weight is hf.model.embed_tokens.weight  # tied again, as the de-quantised model was
    clear_model_cache()

    gguf.write_bytes(b"version two")  # another file: a new entry, from a new de-quantising
    changed = load_model(gguf, device="cpu")
    assert len(reads) == 2 and "de-quantising tiny.gguf" in capsys.readouterr().err
    assert len(weights_cache.cached_entries()) == 2
    assert not torch.equal(_patterns_and_logits(changed)[1], cold_logits)
    clear_model_cache()


def test_the_weights_cache_can_be_turned_off(tiny_gguf, monkeypatch, capsys):
    from patternlang.models import clear_model_cache, load_model

    gguf, reads = tiny_gguf
    monkeypatch.setenv(weights_cache.SWITCH_ENV, "0")
    clear_model_cache()
    load_model(gguf, device="cpu")
    clear_model_cache()
    load_model(gguf, device="cpu")
    assert len(reads) == 2 and weights_cache.cached_entries() == []
    assert "the weights cache is off" in capsys.readouterr().err
    clear_model_cache()


def test_read_model_gives_what_from_pretrained_gives(tmp_path):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig
    from safetensors.torch import save_model

    for config in (LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                               num_attention_heads=4, max_position_embeddings=64),
                   GPT2Config(vocab_size=40, n_embd=16, n_layer=2, n_head=4, n_positions=64)):
        folder = tmp_path / config.model_type
        folder.mkdir()
        model = AutoModelForCausalLM.from_config(config)
        config.save_pretrained(folder)
        save_model(model, str(folder / weights_cache.WEIGHTS_FILE))
        fast = weights_cache.read_model(folder, torch.float32)
        slow = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
        assert not fast.training and fast.config._attn_implementation == "eager"
        assert dict(fast.named_parameters()).keys() == dict(slow.named_parameters()).keys()
        for (name, a), (_, b) in zip(fast.state_dict().items(), slow.state_dict().items()):
            assert torch.equal(a, b), name
        for (name, a), (_, b) in zip(fast.named_buffers(), slow.named_buffers()):
            assert torch.equal(a, b), name
        tokens = torch.tensor([[1, 5, 7, 5, 7]])
        with torch.inference_mode():
            torch.testing.assert_close(fast(tokens).logits, slow.eval()(tokens).logits, rtol=0, atol=0)
