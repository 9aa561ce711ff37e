"""The parser's features (syntax extra): program == reference on random annotations, the
alignment of a parser's words to model tokens, the missing-extra error, and the shipped patterns."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patternlang import compile_rule
from patternlang.annotate import ParsedWord, align_words
from patternlang.compiler import reference_matrix
from tests.rule_strategies import SPECIAL_IDS, VOCAB, annotated_prompts, syntax_rules
from tests.rule_strategies import annotated_features as _features


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=syntax_rules(), batch=st.lists(annotated_prompts(), min_size=1, max_size=4))
def test_program_equals_reference_on_random_annotations(rule, batch):
    pattern = compile_rule(rule)
    result = pattern.evaluate(_features(batch))
    for i, (prompt, parsed) in enumerate(batch):
        n = len(prompt)
        expected = reference_matrix(pattern.program.expr, prompt, [VOCAB[t] for t in prompt], SPECIAL_IDS,
                                    syntax=parsed)
        torch.testing.assert_close(result[i, :n, :n], torch.tensor(expected), atol=1e-6, rtol=1e-6)
        assert not result[i, n:, :].any() and not result[i, :, n:].any(), "padding must stay zero"


# ---- alignment: the parser's words onto model tokens, by characters -----------------------------
def _word(start, text, pos, dep, head, ent="", ent_start=-1, tag="", lemma=""):
    return ParsedWord(start, start + len(text), pos, tag or pos, dep, head, ent, ent_start, lemma or text.lower())


def test_every_token_of_a_word_carries_the_word_and_dephead_points_at_the_head_words_first_token():
    text = "The unbelievable dog ran."
    words = [_word(0, "The", "DET", "det", 2), _word(4, "unbelievable", "ADJ", "amod", 2),
             _word(17, "dog", "NOUN", "nsubj", 3), _word(21, "ran", "VERB", "ROOT", 3), _word(24, ".", "PUNCT", "punct", 3)]
    #        BOS     The      " un"    "believ" "able"    " dog"     " ran"     "."
    spans = [(0, 0), (0, 3), (3, 6), (6, 12), (12, 16), (16, 20), (20, 24), (24, 25)]
    a = align_words(words, spans, text)
    assert a.pos == ("", "DET", "ADJ", "ADJ", "ADJ", "NOUN", "VERB", "PUNCT")
    assert a.dephead == (-1, 5, 5, 5, 5, 6, -1, 6)  # BOS: none; the root: -1; "." -> " ran"
    assert a.dep[2:5] == ("amod",) * 3 and a.lemma[3] == "unbelievable"


def test_contractions_multi_word_tokens_whitespace_tokens_and_entities():
    text = "I don't cannot\n\nNew York"
    #        I    do   n't  can  not  New         York
    words = [_word(0, "I", "PRON", "nsubj", 1), _word(2, "do", "AUX", "aux", 1), _word(4, "n't", "PART", "neg", 1),
             _word(8, "can", "AUX", "aux", 4), _word(11, "not", "PART", "neg", 1),
             _word(16, "New", "PROPN", "compound", 6, "GPE", 16), _word(20, "York", "PROPN", "npadvmod", 1, "GPE", 16)]
    #        BOS     "I"     " don"  "'t"    " cannot" "\n\n"    "New"     " York"
    spans = [(0, 0), (0, 1), (1, 5), (5, 7), (7, 14), (14, 16), (16, 19), (19, 24)]
    a = align_words(words, spans, text)
    assert a.pos == ("", "PRON", "AUX", "PART", "AUX", "", "PROPN", "PROPN")
    # " don" holds "do" and the "n" of "n't": it carries "do"; "'t" carries "n't".
    assert a.lemma[2:4] == ("do", "n't")
    # " cannot" is one token over "can" + "not": it carries "can", whose head "not" begins inside it.
    assert a.dep[4] == "aux" and a.dephead[4] == 4
    # heads inside " don" point at it: "not" -> "do" (word 1) -> token 2
    assert a.dephead[1] == 2 and a.dephead[3] == 2
    assert a.dep[5] == "" and a.dephead[5] == -1  # whitespace-only token
    assert a.ent == ("", "", "", "", "", "", "GPE", "GPE") and a.entstart[6:] == (6, 6)


def test_batch_features_need_annotations_for_parser_features():
    from patternlang.errors import InputError

    pattern = compile_rule('attend k where pos[k] == "NOUN"')
    try:
        pattern.matrix([1, 2, 3])
    except InputError as error:
        assert "parser's 'pos'" in str(error)
    else:
        raise AssertionError("expected an InputError")


# ---- spaCy on real text, aligned to the embedded tokenizer --------------------------------------
def _spacy_or_skip():
    import pytest

    from patternlang.annotate.spacy_parser import syntax_available

    if not syntax_available():
        pytest.skip("the syntax extra (spaCy) is not installed")


def _parsed(text: str):
    from patternlang.annotate.spacy_parser import annotate
    from patternlang.tokenization import default_tokenizer, token_offsets, token_texts

    tokenizer = default_tokenizer()
    ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    spans = token_offsets(tokenizer, ids, text)
    return ids, token_texts(tokenizer, ids), spans, annotate([text], [spans])[0]


def test_spacy_alignment_on_hand_written_sentences():
    _spacy_or_skip()
    text = "I don't think Barack Obama's dog-walker visited New York.\n\nIt rained, unbelievably."
    ids, texts, spans, a = _parsed(text)
    rows = dict(zip(texts, a.rows()))
    assert a.pos[0] == "" and a.dephead[0] == -1  # BOS
    assert rows[" don"]["lemma"] == "do" and rows["'t"]["dep"] == "neg"
    assert rows[" think"]["dep"] == "ROOT" and rows[" think"]["dephead"] == -1
    assert rows[" Barack"]["ent"] == rows[" Obama"]["ent"] == "PERSON"
    assert rows[" Barack"]["entstart"] == rows[" Obama"]["entstart"] == texts.index(" Barack")
    assert rows["\n"]["pos"] == ""  # whitespace-only tokens carry nothing
    # A word split over tokens: every token carries it; heads point at a word's first token.
    pieces = [p for p, (b, e) in enumerate(spans) if 69 <= b < 82]
    assert len(pieces) > 1 and {a.lemma[p] for p in pieces} == {"unbelievably"}
    assert {a.dephead[p] for p in pieces} == {texts.index(" ra")}  # " ra" + "ined": the first token


def test_program_equals_reference_on_parsed_text():
    _spacy_or_skip()
    from patternlang.library import shipped_library

    text = "The old man's dog chased a red ball into the garden, and Mary Smith watched it from Paris."
    ids, texts, spans, a = _parsed(text)
    for name in ("direct_object_head", "determiner_head", "subject_head", "possessive_head",
                 "preposition_object_head", "entity_head", "syntactic_parent_head", "object_of_verb_head"):
        pattern = shipped_library()[name]
        result = pattern.matrix(ids, texts, syntax=a)
        expected = reference_matrix(pattern.program.expr, ids, texts, {ids[0]}, syntax=a)
        torch.testing.assert_close(result, torch.tensor(expected))
    assert shipped_library()["determiner_head"].matrix(ids, texts, syntax=a).sum() >= 3


# ---- without the extra ---------------------------------------------------------------------------
def test_a_rule_reading_parser_features_without_the_extra_is_a_clear_error(monkeypatch):
    import pytest

    from patternlang import PatternError, load_pattern
    from patternlang.annotate import extras

    monkeypatch.setattr(extras, "syntax_available", lambda: False)
    with pytest.raises(PatternError) as caught:
        compile_rule('attend k where pos[k] == "NOUN"', name="nouns")
    message = str(caught.value)
    assert "pattern 'nouns' reads pos[...], which needs the syntax extra" in message
    assert "pip install 'patternlang[syntax]'" in message
    with pytest.raises(PatternError, match="reads ancestor"):
        compile_rule("attend k where ancestor(k, q)")
    with pytest.raises(PatternError, match="syntax extra"):
        load_pattern("direct_object_head")  # shipped, and still listed
    assert compile_rule("attend k where k == q - 1").needs == {"tokens"}  # the rest works


def test_checking_and_listing_never_import_spacy():
    import subprocess
    import sys

    code = ("import sys, patternlang\n"
            "patternlang.compile_rule('attend k where dep[k] == \"det\" and dephead[k] == q')\n"
            "assert 'direct_object_head' in patternlang.shipped_names()\n"
            "assert 'spacy' not in sys.modules, 'spacy imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.model
def test_the_engine_parses_text_prompts_and_refuses_token_ids():
    _spacy_or_skip()
    import patternlang as pl
    from patternlang.errors import InputError
    from patternlang.library import shipped_library

    model = pl.load_model()
    text = "The old man's dog chased a red ball into the garden."
    ids, texts, spans, annotations = _parsed(text)
    pattern = shipped_library()["determiner_head"]
    # The matrix the engine scored equals the pattern's own matrix over the same parse.
    explanation = pl.explain(model, pattern, "L1H2", text)
    assert list(explanation.token_ids) == ids
    torch.testing.assert_close(explanation.matrix, pattern.matrix(ids, texts, syntax=annotations))
    assert explanation.matrix.sum() >= 3
    scores = pl.detect(model, [text, text], pattern, progress=False)
    assert scores.evidence["determiner_head"].n_rows == 2 * int((explanation.matrix.sum(dim=1) > 0).sum())
    with pytest.raises(InputError, match="token ids"):
        pl.detect(model, [ids], pattern, progress=False)
