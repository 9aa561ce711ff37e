"""Shared fixtures and helpers: every test module takes what it shares from here (or from
`patternlang.testing`), never from another test module. The embedded model loads once per test
session (load_model caches it)."""

from __future__ import annotations

import importlib
import json
import random
import sys
from pathlib import Path

import pytest
import torch

from patternlang.cli import main

BENCH = Path(__file__).resolve().parents[1] / "bench"
REAL_MODEL_FIXTURES = {"embedded_model"}  # a test taking one of these loads a real model


def pytest_collection_modifyitems(config, items):
    """A test that takes the embedded model is a `model` test, whether or not it says so (so that
    `make test-fast`, `-m "not model and not slow"`, never loads a real model)."""
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("model"):
            item.add_marker(pytest.mark.model)


# ---- the CLI ----------------------------------------------------------------------------------
def run(capsys, *args: str) -> tuple[int, str, str]:
    """`patternlang ARGS...` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err


def serve_instead_of_loading(monkeypatch, model) -> list:
    """The CLI gets `model` whenever it loads one; the returned list records each name asked for."""
    loads = []

    def load_model(name=None, **kwargs):
        loads.append(name)
        return model

    monkeypatch.setattr("patternlang.models.load_model", load_model)
    return loads


# ---- small TransformerLens legacy checkpoints on disk ------------------------------------------------
def tiny_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<bos>", "<eos>", "<pad>", "<unk>"] + [f"w{i}" for i in range(vocab_size - 4)]
    backend = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


def legacy_config(**overrides) -> dict:
    config = dict(d_model=32, d_head=8, n_heads=4, n_layers=2, n_ctx=24, d_vocab=50, attn_only=True,
                  normalization_type=None, positional_embedding_type="standard", act_fn="relu")
    config.update(overrides)
    return config


def legacy_state_dict(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under HookedTransformer's state-dict keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    H, D, E, V, C = cfg["n_heads"], cfg["d_model"], cfg["d_head"], cfg["d_vocab"], cfg["n_ctx"]
    M = cfg.get("d_mlp", 4 * D)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    rotary = cfg["positional_embedding_type"] == "rotary"
    state = {"embed.W_E": r(V, D)} if rotary else {"embed.W_E": r(V, D), "pos_embed.W_pos": r(C, D)}
    for layer in range(cfg["n_layers"]):
        a = f"blocks.{layer}.attn."
        state.update({a + "W_Q": r(H, D, E), a + "W_K": r(H, D, E), a + "W_V": r(H, D, E), a + "W_O": r(H, E, D) / 4,
                      a + "b_Q": r(H, E), a + "b_K": r(H, E), a + "b_V": r(H, E), a + "b_O": r(D),
                      a + "mask": torch.tril(torch.ones(C, C, dtype=torch.bool)), a + "IGNORE": torch.tensor(-1e5)})
        if rotary:  # buffers HookedTransformer saves; the loader recomputes them
            state.update({a + "rotary_sin": r(C, cfg["rotary_dim"]), a + "rotary_cos": r(C, cfg["rotary_dim"])})
        if cfg["normalization_type"] == "LN":
            state.update({f"blocks.{layer}.ln1.w": 1 + r(D) / 4, f"blocks.{layer}.ln1.b": r(D) / 4})
        if not cfg["attn_only"]:
            m = f"blocks.{layer}.mlp."
            state.update({m + "W_in": r(D, M) / 4, m + "b_in": r(M), m + "W_out": r(M, D) / 4, m + "b_out": r(D)})
            if cfg["normalization_type"] == "LN":
                state.update({f"blocks.{layer}.ln2.w": 1 + r(D) / 4, f"blocks.{layer}.ln2.b": r(D) / 4})
    if cfg["normalization_type"] == "LN":
        state.update({"ln_final.w": 1 + r(D) / 4, "ln_final.b": r(D) / 4})
    state["unembed.W_U"] = r(D, V)
    state["unembed.b_U"] = r(V)
    return state


def write_checkpoint(directory: Path, cfg: dict, state: dict, stem: str = "model") -> Path:
    torch.save(state, directory / f"{stem}.pt")
    (directory / f"{stem}.json").write_text(json.dumps(cfg))
    return directory / f"{stem}.pt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An ARENA-style attention-only 2-layer model.pt + model.json, with a word-level tokenizer."""
    directory = tmp_path_factory.mktemp("ckpt")
    cfg = legacy_config(positional_embedding_type="shortformer")
    tiny_tokenizer(cfg["d_vocab"]).save_pretrained(directory)
    return str(write_checkpoint(directory, cfg, legacy_state_dict(cfg)))


@pytest.fixture
def prompts(tmp_path):
    """A prompt file of the checkpoint's words (one blank line, which is skipped)."""
    path = tmp_path / "prompts.txt"
    path.write_text("w1 w2 w3 w1 w2 w3\nw5 w6 w7 w8 w5 w6 w7 w8\n\nw9 w9 w9\n")
    return str(path)


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


# ---- streamed, checkpointed and distributed runs (test_scale_*) ---------------------------------------
SCALE_PATTERNS = ["previous_token_head", "induction_head", "attend k where tok[k] == tok[q] and k < q"]
SPAN_RULES = ['attend k where span[q] == "END" and span[k] == "IO"', "previous_token_head"]
LABELLED_TEXT = "abcabdcabfe"  # one token per character (the CharTokenizer)
LABELLED_SPANS = {"IO": [[1, 2]], "END": [[10, 11]]}


def texts(n: int, seed: int = 0) -> list[str]:
    """`n` short random texts over a few letters (the hand-set model's CharTokenizer)."""
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdefg ") for _ in range(rng.randrange(2, 30))).strip() or "a" for _ in range(n)]


def word_prompts(n: int) -> str:
    """`n` lines of the legacy checkpoint's words (`w0` .. `w39`), as a prompt file's text."""
    rng = random.Random(5)
    return "".join(" ".join(f"w{rng.randrange(40)}" for _ in range(rng.randrange(3, 18))) + "\n" for _ in range(n))


def assert_same_scores(a, b, *, atol=1e-6):
    """Two `Scores` agree: values, intervals and evidence."""
    assert a.patterns == b.patterns and a.measures == b.measures and a.n_prompts == b.n_prompts
    for measure in a.measures:
        for grid in ("values", "ci_low", "ci_high"):
            torch.testing.assert_close(getattr(a, grid)[measure], getattr(b, grid)[measure], atol=atol, rtol=0,
                                       equal_nan=True)
    for name in a.patterns:
        ea, eb = a.evidence[name], b.evidence[name]
        assert (ea.n_rows, ea.n_prompts, ea.n_prompts_run) == (eb.n_rows, eb.n_prompts, eb.n_prompts_run)
