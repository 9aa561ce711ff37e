"""The cache of de-quantised GGUF weights: keyed by the file, written atomically, safe to delete."""

from __future__ import annotations

import pytest
import torch

from patternlang.models import weights_cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(weights_cache.SWITCH_ENV, raising=False)
    return tmp_path / "cache" / "weights"


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
    tokens = cold.to_tokens("The cat sat on the mat. The cat")
    with torch.inference_mode():
        torch.testing.assert_close(warm(tokens), cold(tokens), rtol=0, atol=0)
    clear_model_cache()
