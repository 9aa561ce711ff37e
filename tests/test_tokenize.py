"""Token texts read the same for GPT-2-style and SentencePiece tokenizers."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers
from transformers import PreTrainedTokenizerFast

from patternlang import compile_rule
from patternlang.tokenization import token_texts


def sentencepiece_like_tokenizer() -> PreTrainedTokenizerFast:
    """A Llama-style tokenizer: "▁" marks a word start, and decoding a lone token drops the space."""
    vocab = ["<s>", "</s>", "<unk>", "▁The", "▁cat", "s", "▁sat"]
    backend = Tokenizer(models.Unigram([(piece, -1.0) for piece in vocab], unk_id=2))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_sentencepiece_word_starts_keep_their_space():
    tokenizer = sentencepiece_like_tokenizer()
    ids = [0, 3, 4, 5, 6]
    assert [tokenizer.decode([i]) for i in ids] == ["<s>", "The", "cat", "s", "sat"]  # the space is lost...
    texts = token_texts(tokenizer, ids)
    assert texts == ["<s>", " The", " cat", "s", " sat"]  # ...and put back
    # so "cats" is one word: "s" attends to " cat" as current_word_head says
    matrix = compile_rule("current_word_head").matrix(ids, texts, special_ids={0})
    assert matrix.nonzero().tolist() == [[3, 2]]


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE that knows no multi-byte character: each is split into bytes."""
    from tokenizers import pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["the cat sat", "a cat"], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>")


def test_characters_split_over_byte_tokens_read_their_text_not_replacement_characters():
    tokenizer = byte_level_tokenizer()
    text = "日本 🎉 Ελλά"
    ids = [0] + tokenizer(text, add_special_tokens=False)["input_ids"]
    lone = [tokenizer.decode([i]) for i in ids]
    assert sum("\ufffd" in t for t in lone) > 5  # decoded token by token, the bytes are lost
    texts = token_texts(tokenizer, ids, text=text)
    assert token_texts(tokenizer, ids) == texts  # from the ids alone too (issue 19, finding 14)
    assert not any("\ufffd" in t for t in texts)
    assert texts[0] == "<s>" and texts[1] == texts[2] == texts[3] == "日"  # three bytes, one character
    # so str compares characters: the copies of "日" match each other, never "本"
    same = compile_rule("attend k where str[k] == str[q] and k < q").matrix(ids, texts, special_ids={0})
    assert same[3, 1:4].tolist() == [1.0, 1.0, 0.0] and not same[4, 1:4].any()


@pytest.mark.model
def test_the_engine_reads_split_characters_by_their_text(embedded_model):
    from patternlang import detect
    from patternlang.engine.batching import tokenize
    from patternlang.engine.detection import split_character_texts
    from patternlang.engine.pattern_tensors import resolve_patterns

    text, rule = "日本 日本 🎉 🎉", "attend k where str[k] == str[q] and k < q"
    ids = tokenize(embedded_model, [text])
    texts = split_character_texts(embedded_model, [text], ids, resolve_patterns([rule]))[0]
    assert not any("\ufffd" in t for t in texts) and "日" in texts and " 🎉" in texts
    matrix = compile_rule(rule).matrix(ids[0].tolist(), texts, special_ids=set(embedded_model.tokenizer.all_special_ids))
    from_text = detect(embedded_model, [text], [rule], measures="mass", progress=False)
    from_matrix = detect(embedded_model, [ids[0]], [matrix], measures="mass", progress=False)
    torch.testing.assert_close(from_text.values["mass"], from_matrix.values["mass"], equal_nan=True)


@pytest.mark.model
def test_the_engine_gives_character_offsets_to_features_that_need_them(embedded_model):
    from patternlang import PatternError, detect
    from patternlang.engine.batching import tokenize
    from patternlang.pipeline import build
    from patternlang.syntax.features import FEATURES, register_feature
    from patternlang.tokenization import token_offsets

    register_feature("chars", "number", "characters the token covers (a test feature)", needs=("offsets",),
                     table=lambda batch: batch.offsets()[..., 1] - batch.offsets()[..., 0],
                     reference=lambda prompt: [end - start for start, end in prompt.spans()])
    try:
        pattern = build("attend k where chars[k] == chars[q] and k < q", "rule", library={})[0]
        text = "The cat sat on the mat. 日本"
        ids = tokenize(embedded_model, [text])[0]
        spans = token_offsets(embedded_model.tokenizer, ids.tolist(), text)
        assert spans[0] == (0, 0) and text[spans[1][0]:spans[1][1]] == "The"
        from_text = detect(embedded_model, [text], [pattern], measures="mass", progress=False)
        from_matrix = detect(embedded_model, [ids], [pattern.matrix(ids.tolist(), offsets=spans)], measures="mass",
                             progress=False)
        torch.testing.assert_close(from_text.values["mass"], from_matrix.values["mass"], equal_nan=True)
        with pytest.raises(PatternError, match="reads character offsets, but prompt 0 is token ids"):
            detect(embedded_model, [ids], [pattern], progress=False)
    finally:
        del FEATURES._entries["chars"]
