"""Token texts read the same for GPT-2-style and SentencePiece tokenizers."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers
from transformers import PreTrainedTokenizerFast

from patternlang import compile_rule
from patternlang.tokenize import token_texts


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
