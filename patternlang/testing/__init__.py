"""Fakes and tiny models for tests, benchmarks and users' own checks; no real weights needed.

- `make_hand_set_model()`: a 2-layer x 3-head TransformerLens-style model whose heads are set by
  hand (previous-token, duplicate-token, BOS, induction by composition, current-token, uniform),
  so a detector can be checked to rank exactly the right heads first.
- `FakeAttentionModel`: attention as a seeded function of tokens and positions, cheap at any size.
- `hook_pattern_blocks`: the block path's attention sliced from `hook_pattern` (its oracle);
  `random_attention_blocks`: random blocks without a model (the block path's memory benchmark).
- `make_linear_model()`: a hand-set model whose logits are linear in every head's `z` (attribution
  patching is exact on it: the effects' oracle).
- `oracle_scores`: the engine's measures computed prompt by prompt, head by head in plain Python,
  on `random_attention` / `random_detection` tensors.

Nothing else in `patternlang` imports this package (it pulls in TransformerLens' hook machinery
and exists for tests, `bench/` and users).

>>> from patternlang.testing import INDUCTION_HEAD, make_hand_set_model
>>> make_hand_set_model().head_kinds[INDUCTION_HEAD]
'induction_head'
"""

from patternlang.testing.block_providers import (
    RandomAttentionBlocks,
    SlicedAttention,
    hook_pattern_blocks,
    random_attention_blocks,
)
from patternlang.testing.fake_attention import ByteTokenizer, FakeAttentionModel
from patternlang.testing.hand_set import (
    BOS_HEAD,
    BOS_ID,
    CHARACTERS,
    CURRENT_TOKEN_HEAD,
    DUPLICATE_TOKEN_HEAD,
    INDUCTION_HEAD,
    LAYER_HEAD_KINDS,
    PAD_ID,
    PREVIOUS_TOKEN_HEAD,
    SPECIAL_TOKENS,
    UNIFORM_HEAD,
    UNK_ID,
    CharTokenizer,
    HandSetConfig,
    HandSetModel,
    make_hand_set_model,
)
from patternlang.testing.linear import make_linear_model
from patternlang.testing.oracle import oracle_rows, oracle_scores, random_attention, random_detection

__all__ = [
    "RandomAttentionBlocks", "SlicedAttention", "hook_pattern_blocks", "random_attention_blocks",
    "BOS_HEAD", "BOS_ID", "CHARACTERS", "CURRENT_TOKEN_HEAD", "DUPLICATE_TOKEN_HEAD", "INDUCTION_HEAD",
    "LAYER_HEAD_KINDS", "PAD_ID", "PREVIOUS_TOKEN_HEAD", "SPECIAL_TOKENS", "UNIFORM_HEAD", "UNK_ID",
    "ByteTokenizer", "CharTokenizer", "FakeAttentionModel", "HandSetConfig", "HandSetModel",
    "make_hand_set_model", "make_linear_model", "oracle_rows", "oracle_scores", "random_attention", "random_detection",
]
