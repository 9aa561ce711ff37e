"""Shared fixtures. The embedded model loads once per test session (load_model caches it)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="session")
def embedded_model():
    from patternlang.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def import_bench():
    """`import_bench(name)`: the module `bench/name.py` (bench/ is on sys.path while the tests run)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def tl_checkpoint(tmp_path_factory):
    """A TransformerLens legacy model.pt + model.json (2 layers) with a word-level tokenizer beside it."""
    from tests.test_models import legacy_config, legacy_state_dict, tiny_tokenizer, write_checkpoint

    directory = tmp_path_factory.mktemp("model")
    cfg = legacy_config()
    tiny_tokenizer(cfg["d_vocab"]).save_pretrained(directory)
    return str(write_checkpoint(directory, cfg, legacy_state_dict(cfg)))


@pytest.fixture
def no_model(monkeypatch):
    """`load_model` fails the test if called: for what must be refused before the model loads."""
    import patternlang.models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(patternlang.models, "load_model", refuse)
