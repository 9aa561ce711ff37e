"""Prompts to batches: tokenize each prompt alone, bucket by length, right-pad.

Right padding keeps a causal model's attention exact on the real tokens (a real
query never sees a padding key), so the engine needs no attention mask; padded
query rows and key columns are masked out by the measures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.shapes import Lengths, Mask, TokenList, Tokens
from patternlang.errors import InputError
from patternlang.prompts import as_token_tensor, check_text, check_token_ids, model_limits, split_prompts
from patternlang.tokenization import token_texts

MAX_BATCH_ROWS = 128
"""Upper bound on prompts per batch when the batch size is chosen automatically."""
MEMORY_SHARE = 0.25
"""Share of the free memory an automatically sized batch may plan to use."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Right-padded prompts of similar length.

    `tokens` `[batch, pos]` (long), `mask` `[batch, pos]` (True on real tokens),
    `lengths` `[batch]`, and `indices`: each row's position in the caller's prompt list.
    """

    tokens: Tokens
    mask: Mask
    lengths: Lengths
    indices: tuple[int, ...]


def tokenize(model: Any, prompts: Any, *, prepend_bos: bool | None = True,
             indices: Sequence[int] | None = None) -> list[TokenList]:
    """Each prompt as a 1-D long tensor of token ids (CPU), checked against the model.

    Strings are tokenized one at a time with `model.to_tokens` (so padding never enters;
    `prepend_bos=None` keeps the model's default). Token ids (lists, 1-D tensors or
    arrays, the rows of a 2-D one) are used exactly as given. Coercion and every check
    (empty prompts, ids that are not integers, outside the vocabulary, prompts longer than
    the context) are `patternlang.prompts`'; token ids given as such are checked before
    any text is tokenized. `indices`: each prompt's number in messages (a chunk of a longer
    run), by default its position.

    >>> [t.tolist() for t in tokenize(model, [[1, 2, 3], "hi"])]   # doctest: +SKIP
    [[1, 2, 3], [1, 6664]]
    """
    items = split_prompts(prompts)
    d_vocab, n_ctx = model_limits(model)
    number = list(indices) if indices is not None else list(range(len(items)))
    given = {index: as_token_tensor(item, number[index]) for index, item in enumerate(items)
             if not isinstance(item, str)}
    check_token_ids(list(given.values()), d_vocab=d_vocab, n_ctx=n_ctx, indices=[number[i] for i in given])
    token_lists = [given[index] if index in given else
                   _tokenize_text(model, check_text(item, number[index]), prepend_bos, number[index])
                   for index, item in enumerate(items)]
    # The tokenizer's ids are checked too: a tokenizer with added tokens can outgrow the model's vocabulary.
    check_token_ids(token_lists, d_vocab=d_vocab, n_ctx=n_ctx, indices=number)
    return token_lists


def _tokenize_text(model: Any, text: str, prepend_bos: bool | None, index: int) -> Tensor:
    if getattr(model, "tokenizer", None) is None or not hasattr(model, "to_tokens"):
        raise InputError(f"prompt {index} is text, but the model has no tokenizer",
                         hint="pass token ids instead")
    kwargs = {} if prepend_bos is None else {"prepend_bos": prepend_bos}
    try:
        # TransformerLens cuts prompts to n_ctx by default; a long prompt must be an error instead.
        tokens = model.to_tokens(text, truncate=False, **kwargs)
    except TypeError:  # a model whose to_tokens cannot truncate anyway
        tokens = model.to_tokens(text, **kwargs)
    return tokens.reshape(-1).to("cpu", torch.long)




def plan_batches(lengths: Sequence[int], batch_size: int | None, *,
                 bytes_per_prompt: Callable[[int], float] | None = None,
                 memory_budget: float | None = None) -> list[list[int]]:
    """Group prompt indices into batches of similar length, longest first.

    With `batch_size`, every batch but the last has exactly that many prompts. Without,
    a batch grows while `rows * bytes_per_prompt(longest)` stays under `memory_budget`
    (at most `MAX_BATCH_ROWS` rows).

    >>> plan_batches([3, 9, 4, 8], 2)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    if batch_size is not None:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    current: list[int] = []
    rows_allowed = MAX_BATCH_ROWS
    for index in order:
        if not current:
            longest = lengths[index]
            per_prompt = bytes_per_prompt(longest) if bytes_per_prompt else 0
            rows_allowed = MAX_BATCH_ROWS
            if per_prompt and memory_budget:
                rows_allowed = max(1, min(MAX_BATCH_ROWS, int(memory_budget // per_prompt)))
        current.append(index)
        if len(current) >= rows_allowed:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


def pad_batch(token_lists: Sequence[TokenList], indices: Sequence[int], pad: int, device: torch.device) -> Batch:
    """Right-pad the chosen prompts into one `Batch` on `device`."""
    chosen = [token_lists[i] for i in indices]
    lengths = torch.tensor([t.numel() for t in chosen], dtype=torch.long)
    width = int(lengths.max())
    tokens = torch.full((len(chosen), width), pad, dtype=torch.long)
    for row, ids in enumerate(chosen):
        tokens[row, : ids.numel()] = ids
    mask = torch.arange(width)[None, :] < lengths[:, None]
    return Batch(tokens.to(device), mask.to(device), lengths.to(device), tuple(indices))


def free_memory(device: torch.device) -> float:
    """Bytes free for work on `device` (CUDA: `mem_get_info`; CPU: available RAM)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return float(free)
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 2.0 * 1024**3


def bytes_per_prompt_estimate(model: Any, n_patterns: int, n_measures: int) -> Callable[[int], float]:
    """A conservative memory estimate (bytes) for one prompt of length `L` in a batch.

    Counts the model's attention scores and probabilities, our float32 work copies of
    one layer's attention, the detection tensors and what the measures derive from them,
    and the residual stream and MLP activations of one layer (inference keeps no graph).
    """
    cfg = getattr(model, "cfg", None)
    heads = int(getattr(cfg, "n_heads", 16) or 16)
    d_model = int(getattr(cfg, "d_model", 1024) or 1024)
    d_mlp = int(getattr(cfg, "d_mlp", 4 * d_model) or 4 * d_model)
    element = 4

    def estimate(length: int) -> float:
        square = length * length
        attention = square * heads * (3 + 4)  # model: scores, probs, mask; ours: copies and scratch
        detection = square * max(1, n_patterns) * (6 + n_measures)  # tensors and their derived forms
        stream = length * (12 * d_model + 4 * d_mlp)
        return float(element * (attention + detection + stream))

    return estimate


def auto_budget(device: torch.device) -> float:
    """Bytes an automatically sized batch may plan for."""
    return MEMORY_SHARE * free_memory(device)


class TokenStrings:
    """Token id -> text, each token decoded on its own (`tokenize.token_texts`; the model's
    `to_str_tokens` for a model without a Hugging Face tokenizer), cached across batches.

    Called with a list of ids, returns their texts (the form `BatchFeatures` accepts).
    """

    def __init__(self, model: Any):
        self.model = model
        self.cache: dict[int, str] = {}

    def __call__(self, ids: list[int]) -> list[str]:
        missing = sorted({int(i) for i in ids} - self.cache.keys())
        if missing:
            self.cache.update(zip(missing, self._decode(missing)))
        return [self.cache[int(i)] for i in ids]

    def _decode(self, ids: list[int]) -> list[str]:
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens"):
            texts = token_texts(tokenizer, ids)  # the texts `patternlang compile --prompt` shows too
        else:
            texts = self.model.to_str_tokens(torch.tensor(ids, dtype=torch.long))
        if len(texts) != len(ids):
            raise InputError(f"the tokenizer decoded {len(ids)} token ids into {len(texts)} strings")
        return [str(t) for t in texts]
