"""The prompt layer: every coercion and check of prompts and token ids, valid inputs beside their invalid twins."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from patternlang.errors import InputError
from patternlang.prompts import (
    MAX_PROMPT_CHARS,
    MAX_PROMPT_TOKENS,
    MAX_PROMPTS,
    Prompts,
    as_token_ids,
    as_token_tensor,
    check_text,
    check_token_ids,
    coerce_prompts,
    describe_value,
    model_limits,
    split_prompts,
    token_id_rows,
)

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# One prompt of token ids

@pytest.mark.parametrize("item, expected", [
    ([1, 2, 3], (1, 2, 3)),
    ((0,), (0,)),
    (range(3, 6), (3, 4, 5)),
    ([np.int64(7), np.uint8(8)], (7, 8)),
    ([torch.tensor(9), 10], (9, 10)),
    (torch.tensor([1, 2], dtype=torch.int32), (1, 2)),
    (torch.tensor([1, 2], dtype=torch.uint8), (1, 2)),
    (np.array([4, 5], dtype=np.int16), (4, 5)),
    (np.array([2**63 - 1], dtype=np.uint64), (2**63 - 1,)),
    (np.array([6, 7], dtype=object), (6, 7)),
    ([2**63 - 1], (2**63 - 1,)),
])
def test_token_ids_in_every_form(item, expected):
    assert as_token_ids(item, 0) == expected
    tensor = as_token_tensor(item, 0)
    assert tensor.dtype == torch.long and tensor.dim() == 1 and tuple(tensor.tolist()) == expected


@pytest.mark.parametrize("item, message", [
    ([], "prompt 3 is empty"),
    (np.array([], dtype=np.int64), "prompt 3 is empty"),
    (torch.tensor([], dtype=torch.long), "prompt 3 is empty"),
    ([1, 2**70], "prompt 3, position 1: token id 1180591620717411303424 does not fit in 64 bits"),
    ([2**63], "does not fit in 64 bits"),
    ([10**5000], "token id <an integer of 16610 bits> does not fit in 64 bits"),
    ([-(10**5000)], "cannot be negative, found -<an integer of 16610 bits>"),
    ([5, -1], "prompt 3, position 1: token ids cannot be negative, found -1"),
    (torch.tensor([5, -1]), "prompt 3, position 1: token ids cannot be negative, found -1"),
    (np.array([5, -2]), "prompt 3, position 1: token ids cannot be negative, found -2"),
    (np.array([1, 2**64 - 1], dtype=np.uint64), "prompt 3, position 1: token id 18446744073709551615 does not fit"),
    ([1, 2.0], "position 1: token ids must be integers, found 2.0"),
    ([1, float("nan")], "token ids must be integers, found nan"),
    ([True], "token ids must be integers, found True"),
    ([np.bool_(True)], "token ids must be integers"),
    ([torch.tensor(True)], "token ids must be integers"),
    ([torch.tensor(1.5)], "token ids must be integers"),
    ([1, "2"], "token ids must be integers, found '2'"),
    ([1, None], "token ids must be integers, found None"),
    ([[1, 2]], "token ids must be integers, found [1, 2]"),
    ("abc", "prompt 3 is text inside a set of token-id prompts"),
    (b"abc", "text inside"),
    ({"tokens": [1]}, "prompt 3 is a dict, not a list of token ids"),
    (5, "prompt 3 is an integer (5), not a list of token ids"),
    (torch.tensor([1.0, 2.0]), "a tensor of token ids must be 1-D integers, got torch.float32"),
    (torch.tensor([True]), "1-D integers, got torch.bool"),
    (torch.tensor([[1, 2]]), "1-D integers, got torch.int64 of shape (1, 2)"),
    (np.array([1.0]), "token ids must be integers, got an array of float64"),
    (np.array([[1, 2]]), "must be 1-D, got shape (1, 2)"),
    (np.array(["a"]), "got an array of <U1"),
    (range(MAX_PROMPT_TOKENS + 1), f"more than {MAX_PROMPT_TOKENS:,} token ids"),
    (itertools.count(), f"more than {MAX_PROMPT_TOKENS:,} token ids"),  # never read to the end
])
def test_bad_token_ids_are_clear_input_errors(item, message):
    for convert in (as_token_ids, as_token_tensor):
        with pytest.raises(InputError) as caught:
            convert(item, 3)
        assert message in caught.value.message, caught.value.message


def test_unsigned_64_bit_tensors_are_checked_without_wrapping():
    if not hasattr(torch, "uint64"):
        pytest.skip("this torch has no uint64 tensors")
    ok = torch.tensor([1, 2**63 - 1], dtype=torch.uint64)
    assert as_token_ids(ok, 0) == (1, 2**63 - 1)
    with pytest.raises(InputError, match="position 1: token id 18446744073709551615 does not fit in 64 bits"):
        as_token_tensor(torch.tensor([1, 2**64 - 1], dtype=torch.uint64), 0)


def test_text_prompts():
    assert check_text("The cat", 0) == "The cat"
    with pytest.raises(InputError, match="prompt 2 is empty"):
        check_text("", 2)
    with pytest.raises(InputError, match="prompt 2 is a bytes, not text"):
        check_text(b"x", 2)
    with pytest.raises(InputError, match=f"prompt 2 has {MAX_PROMPT_CHARS + 1:,} characters") as caught:
        check_text("a" * (MAX_PROMPT_CHARS + 1), 2)
    assert "split" in caught.value.hint


# ---------------------------------------------------------------------------
# Many prompts

def test_split_prompts_one_entry_per_prompt():
    assert split_prompts("hi") == ["hi"]
    assert split_prompts([1, 2, 3]) == [[1, 2, 3]]  # a flat list of ids is one prompt
    assert split_prompts([np.int64(1), np.int64(2)]) == [[1, 2]]
    assert split_prompts(["a", [1, 2]]) == ["a", [1, 2]]
    assert len(split_prompts(torch.zeros(3, 4, dtype=torch.long))) == 3
    assert len(split_prompts(np.zeros((2, 4), dtype=np.int32))) == 2
    assert len(split_prompts(np.zeros(4, dtype=np.int32))) == 1
    assert split_prompts(Prompts(texts=("a", "b"))) == ["a", "b"]
    assert split_prompts(x for x in ("a", "b")) == ["a", "b"]


@pytest.mark.parametrize("value, message", [
    ([], "no prompts given"),
    (iter(()), "no prompts given"),
    ({"text": "a"}, "cannot use dict as prompts"),
    (b"bytes", "cannot use bytes"),
    (3.5, "cannot use float"),
    (None, "cannot use NoneType"),
    (torch.zeros(2, 2, 2, dtype=torch.long), r"must be [batch, pos] or [pos]"),
    (torch.zeros(2, 3), "integer token ids, not torch.float32"),
    (np.zeros((2, 3)), "integer token ids, not float64"),
    (torch.zeros(0, 3, dtype=torch.long), "no rows"),
    (itertools.repeat("a"), f"more than {MAX_PROMPTS:,} prompts"),  # an endless generator is refused, not read
])
def test_split_prompts_refuses(value, message):
    with pytest.raises(InputError) as caught:
        split_prompts(value)
    assert message in caught.value.message


def test_coerce_prompts():
    assert coerce_prompts("The cat").texts == ("The cat",)
    assert coerce_prompts(np.array([[1, 2], [3, 4]])).tokens == ((1, 2), (3, 4))
    assert coerce_prompts([torch.tensor([1, 2]), (3,)]).tokens == ((1, 2), (3,))
    given = Prompts(tokens=((1,),))
    assert coerce_prompts(given) is given
    with pytest.raises(InputError, match="the prompt is empty"):
        coerce_prompts("")
    with pytest.raises(InputError, match="prompt 1 is text but prompt 0 is not"):
        coerce_prompts([[1], "a"])
    with pytest.raises(InputError, match="does not fit in 64 bits"):
        coerce_prompts([[1, 2**70]])


def test_prompts_container_refuses_endless_and_non_sequences():
    with pytest.raises(InputError, match=f"more than {MAX_PROMPTS:,} prompts"):
        Prompts(texts=itertools.repeat("a"))
    with pytest.raises(InputError, match="takes a sequence of prompts, not an integer"):
        Prompts(tokens=5)
    with pytest.raises(InputError, match="cannot take 0 prompts"):
        Prompts(texts=("a",)).take(0)


# ---------------------------------------------------------------------------
# Against a vocabulary and a context

@pytest.mark.parametrize("rows", [[(1, 2, 3), (4,)], [torch.tensor([1, 2, 3]), torch.tensor([4])]])
def test_check_token_ids_passes_what_fits(rows):
    check_token_ids(rows, d_vocab=5, n_ctx=3)
    check_token_ids(rows)  # no limits known: nothing to check against


@pytest.mark.parametrize("rows, kwargs, message", [
    ([(1, 2), (1, 5)], {"d_vocab": 5}, "prompt 1, position 1: token id 5 is outside the model's vocabulary of 5 "
                                        "tokens (ids 0..4)"),
    ([torch.tensor([7, 1])], {"d_vocab": 5}, "prompt 0, position 0: token id 7 is outside"),
    ([(1, 2, 3, 4)], {"n_ctx": 3}, "prompt 0 has 4 tokens, more than the model's context of 3"),
    ([()], {}, "prompt 0 is empty (no tokens)"),
    ([(1, -1)], {}, "prompt 0, position 1: token ids cannot be negative"),
    ([(1, 2**64)], {}, "does not fit in 64 bits"),
    ([(9,)], {"d_vocab": 5, "vocabulary": "the embedded model's", "indices": [4]},
     "prompt 4, position 0: token id 9 is outside the embedded model's vocabulary of 5"),
])
def test_check_token_ids_refuses(rows, kwargs, message):
    with pytest.raises(InputError) as caught:
        check_token_ids(rows, **kwargs)
    assert message in caught.value.message


def test_model_limits():
    class Cfg:
        d_vocab, n_ctx = 100, 64

    class Model:
        cfg = Cfg()

    assert model_limits(Model()) == (100, 64)
    assert model_limits(object()) == (None, None)


def test_describe_value_never_prints_a_huge_integer():
    assert describe_value(10**5000) == "an integer (<an integer of 16610 bits>)"
    assert describe_value("x" * 100).endswith("...)")


def test_the_prompt_layer_and_probe_checks_do_not_need_torch():
    """prompts, probes and their checks import neither torch nor numpy (the pattern checker uses them)."""
    script = textwrap.dedent("""
        import sys, types
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "numpy"):
                    raise ImportError(name + " imported")
        sys.meta_path.insert(0, Block())
        package = types.ModuleType("patternlang")  # skip patternlang/__init__, which loads the engine
        package.__path__ = [sys.argv[1]]
        sys.modules["patternlang"] = package
        from patternlang import probes, prompts
        probes.validate_probe_args("repeated_random", {"length": 5, "vocab_lo": 1, "vocab_hi": 9})
        probes.validate_probe_args("natural", {"batch": 2})
        assert prompts.coerce_prompts([[1, 2], [3]]).tokens == ((1, 2), (3,))
        assert len(probes.natural(batch=2)) == 2
        print("torch-free")
    """)
    result = subprocess.run([sys.executable, "-c", script, str(REPO / "patternlang")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "torch-free" in result.stdout, result.stderr


def test_token_id_rows_for_one_prompt_or_several():
    assert token_id_rows([1, 2]) == ([(1, 2)], True)
    assert token_id_rows(torch.tensor([1, 2])) == ([(1, 2)], True)
    assert token_id_rows(np.array([[1, 2], [3, 4]])) == ([(1, 2), (3, 4)], False)
    assert token_id_rows([[1], (2, 3)]) == ([(1,), (2, 3)], False)
    for bad, message in [("a b", "not a string"), (["a", "b"], "found the text 'a'"), ([1, 2**70], "64 bits"),
                         ([[1], []], "prompt 1 is empty"), (None, "not a NoneType"), ([], "no prompts given")]:
        with pytest.raises(InputError) as caught:
            token_id_rows(bad)
        assert message in caught.value.message, (bad, caught.value.message)
