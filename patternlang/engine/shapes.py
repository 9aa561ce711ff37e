"""The engine's tensor shapes, as jaxtyping annotations with TransformerLens' axis names.

    Attention   [batch, head_index, query_pos, key_pos]  one layer's attention (hook_pattern)
    Detection   [pattern, batch, query_pos, key_pos]     the patterns' detection tensors of a batch
    Tokens      [batch, pos]                             a padded batch's token ids
    TokenList   [pos]                                    one prompt's token ids
    Lengths     [batch]                                  the prompts' lengths in a batch
    Mask        [batch, pos]                             True on a batch's real (not padding) tokens
"""

from jaxtyping import Bool, Float, Int
from torch import Tensor

Attention = Float[Tensor, "batch head_index query_pos key_pos"]
Detection = Float[Tensor, "pattern batch query_pos key_pos"]
Tokens = Int[Tensor, "batch pos"]
TokenList = Int[Tensor, "pos"]
Lengths = Int[Tensor, "batch"]
Mask = Bool[Tensor, "batch pos"]

__all__ = ["Attention", "Detection", "Lengths", "Mask", "TokenList", "Tokens"]
