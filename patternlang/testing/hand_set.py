"""A tiny TransformerLens-style model whose attention heads are set by hand.

Every head is an exact, known kind, so engine and end-to-end tests can check that a
detector ranks exactly the right heads first. The model is built from TransformerLens'
own `HookPoint` and `HookedRootModule`, so `run_with_hooks` is the real TL machinery, with
the real hook names and shapes (`blocks.{l}.attn.hook_pattern`:
`[batch, head_index, query_pos, key_pos]`).

Heads of `make_hand_set_model()` (2 layers x 3 heads; layers past 1 repeat layer 1):

    L0H0  previous_token_head   k = q-1                        (q = 0: itself)
    L0H1  duplicate_token_head  earlier k with tok[k] == tok[q] (none: BOS, k = 0)
    L0H2  bos_head              k = 0
    L1H0  induction_head        k with tok[k-1] == tok[q]       (none: BOS, k = 0)
    L1H1  current_token_head    k = q
    L1H2  uniform               every k <= q equally

With `strength` 40 (the attention score of a target; a fallback to BOS scores half) the
targets of a row get all but ~1e-7 of it, shared evenly. The induction head is real composition:
L0H0 writes the previous token into the residual stream, and L1H0's keys read it.

Tokens: characters. Id 0 is BOS ("<bos>"), 1 padding ("<pad>"), 2 unknown ("<unk>"),
then the printable ASCII characters; `d_vocab` is 100.

>>> model = make_hand_set_model()
>>> model.to_str_tokens("abca")
['<bos>', 'a', 'b', 'c', 'a']
>>> model.head_kinds[(0, 0)]
'previous_token_head'
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint
from transformer_lens.HookedRootModule import HookedRootModule

BOS_ID, PAD_ID, UNK_ID = 0, 1, 2
SPECIAL_TOKENS = ("<bos>", "<pad>", "<unk>")
CHARACTERS = tuple(c for c in string.printable if c not in "\r\x0b\x0c")

LAYER_HEAD_KINDS = (
    ("previous_token_head", "duplicate_token_head", "bos_head"),
    ("induction_head", "current_token_head", "uniform"),
)
"""Head kinds of layer 0 and of layer 1 (and of every later layer), by head index."""

PREVIOUS_TOKEN_HEAD = (0, 0)
DUPLICATE_TOKEN_HEAD = (0, 1)
BOS_HEAD = (0, 2)
INDUCTION_HEAD = (1, 0)
CURRENT_TOKEN_HEAD = (1, 1)
UNIFORM_HEAD = (1, 2)


class CharTokenizer:
    """One token per character, with the few attributes of a HF tokenizer the project reads."""

    bos_token, pad_token, unk_token, eos_token = "<bos>", "<pad>", "<unk>", None
    bos_token_id, pad_token_id, unk_token_id, eos_token_id = BOS_ID, PAD_ID, UNK_ID, None
    padding_side = "right"

    def __init__(self) -> None:
        self.vocab: tuple[str, ...] = SPECIAL_TOKENS + CHARACTERS
        self._ids = {token: index for index, token in enumerate(self.vocab)}

    @property
    def all_special_ids(self) -> list[int]:
        return [BOS_ID, PAD_ID, UNK_ID]

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(char, UNK_ID) for char in text]

    def __call__(self, text: str, add_special_tokens: bool = False,
                 return_offsets_mapping: bool = False) -> dict[str, Any]:
        """Encode as a fast HF tokenizer does, with each token's character span when asked (so
        that `span[k]` and the offset features run on the tiny models)."""
        encoding: dict[str, Any] = {"input_ids": self.encode(text)}
        if return_offsets_mapping:
            encoding["offset_mapping"] = [(i, i + 1) for i in range(len(text))]
        return encoding

    def convert_ids_to_tokens(self, ids: Any) -> list[str]:
        return [self.vocab[int(i)] for i in _as_id_list(ids)]

    def decode(self, ids: Any) -> str:
        return "".join(self.vocab[int(i)] for i in _as_id_list(ids) if int(i) not in (BOS_ID, PAD_ID))

    def batch_decode(self, rows: Any) -> list[str]:
        return [self.decode(row) for row in rows]


def _as_id_list(ids: Any) -> list[int]:
    if isinstance(ids, Tensor):
        flat: list[int] = ids.reshape(-1).tolist()
        return flat
    if isinstance(ids, int):
        return [ids]
    return list(ids)


@dataclass
class HandSetConfig:
    """The `cfg` of the tiny model, with the fields of a TransformerLens config the project reads."""

    n_layers: int
    n_heads: int
    n_ctx: int
    d_vocab: int
    d_model: int
    d_head: int
    strength: float
    device: str = "cpu"
    model_name: str = "hand-set-tiny"
    dtype: torch.dtype = torch.float32
    default_prepend_bos: bool = True
    tokenizer_prepends_bos: bool = False
    positional_embedding_type: str = "standard"
    normalization_type: str | None = None


class HandSetAttention(nn.Module):
    """Causal attention with fixed weights; scores are `q . k` (no 1/sqrt(d_head) scaling)."""

    def __init__(self, W_Q: Tensor, W_K: Tensor, W_V: Tensor, W_O: Tensor):
        super().__init__()
        # [head_index, d_model, d_head] and [head_index, d_head, d_model], like TransformerLens.
        self.register_buffer("W_Q", W_Q)
        self.register_buffer("W_K", W_K)
        self.register_buffer("W_V", W_V)
        self.register_buffer("W_O", W_O)
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()

    def forward(self, resid: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        seq = resid.shape[1]
        q = self.hook_q(torch.einsum("bpd,hde->bphe", resid, self.W_Q))
        k = self.hook_k(torch.einsum("bpd,hde->bphe", resid, self.W_K))
        v = self.hook_v(torch.einsum("bpd,hde->bphe", resid, self.W_V))
        masked = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=resid.device), diagonal=1)
        masked = masked[None, None]
        if attention_mask is not None:  # [batch, pos], 1 on real tokens: padding keys get no attention
            masked = masked | ~attention_mask.bool()[:, None, None, :]
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k).masked_fill(masked, float("-inf"))
        scores = self.hook_attn_scores(scores)
        # A row with every key masked (a padding query) gives NaN; such rows attend nowhere.
        pattern = torch.softmax(scores, dim=-1).nan_to_num(0.0).masked_fill(masked, 0.0)
        pattern = self.hook_pattern(pattern)
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O)


class HandSetBlock(nn.Module):
    def __init__(self, attn: HandSetAttention):
        super().__init__()
        self.attn = attn
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        resid = self.hook_resid_pre(resid)
        attn_out = self.hook_attn_out(self.attn(resid, attention_mask))
        return self.hook_resid_post(resid + attn_out)


class HandSetModel(HookedRootModule):
    """Attention-only model with one-hot token, position and previous-token subspaces.

    Residual stream: `[tok (d_vocab) | pos (n_ctx) | prev tok (d_vocab)]`.
    """

    def __init__(self, cfg: HandSetConfig, blocks: list[HandSetBlock]):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = CharTokenizer()
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.blocks = nn.ModuleList(blocks)
        self.ln_final = nn.Identity()  # no final norm: the logits are the token subspace itself
        self.unembed = TokenSubspace(0, cfg.d_vocab)
        self.head_kinds: dict[tuple[int, int], str] = {
            (layer, head): LAYER_HEAD_KINDS[min(layer, 1)][head]
            for layer in range(cfg.n_layers) for head in range(cfg.n_heads)
        }
        self.setup()

    @property
    def W_O(self) -> Tensor:
        """`[layer, head, d_head, d_model]`, as TransformerLens stacks it."""
        return torch.stack([block.attn.W_O for block in self.blocks])

    @property
    def W_U(self) -> Tensor:
        """`[d_model, d_vocab]`: the logits read the token subspace of the residual stream."""
        start = self.unembed.start
        W_U = torch.zeros(self.cfg.d_model, self.cfg.d_vocab, device=self.blocks[0].attn.W_O.device)
        W_U[start: start + self.cfg.d_vocab] = torch.eye(self.cfg.d_vocab, device=W_U.device)
        return W_U

    def heads_of_kind(self, kind: str) -> list[tuple[int, int]]:
        return [head for head, head_kind in self.head_kinds.items() if head_kind == kind]

    def to(self, *args: Any, **kwargs: Any) -> "HandSetModel":
        moved: HandSetModel = super().to(*args, **kwargs)
        self.cfg.device = str(self.blocks[0].attn.W_Q.device)
        return moved

    # --- tokens ---------------------------------------------------------

    def to_tokens(self, input: str | list[str], prepend_bos: bool | None = None,
                  padding_side: str | None = None, move_to_device: bool = True, truncate: bool = True) -> Tensor:
        texts = [input] if isinstance(input, str) else list(input)
        bos = self.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
        rows = [([BOS_ID] if bos else []) + self.tokenizer.encode(text) for text in texts]
        if truncate:
            rows = [row[: self.cfg.n_ctx] for row in rows]
        width = max(len(row) for row in rows)
        side = padding_side or self.tokenizer.padding_side
        padded = [row + [PAD_ID] * (width - len(row)) if side == "right" else [PAD_ID] * (width - len(row)) + row
                  for row in rows]
        tokens = torch.tensor(padded, dtype=torch.long)
        return tokens.to(self.cfg.device) if move_to_device else tokens

    def to_str_tokens(self, input: Any, prepend_bos: bool | None = None,
                      padding_side: str | None = None) -> list[str] | list[list[str]]:
        if isinstance(input, str):
            return self.tokenizer.convert_ids_to_tokens(self.to_tokens(input, prepend_bos)[0])
        if isinstance(input, Tensor):
            if input.dim() == 2:
                return [self.tokenizer.convert_ids_to_tokens(row) for row in input]
            return self.tokenizer.convert_ids_to_tokens(input)
        items = list(input)
        if items and all(isinstance(item, str) for item in items):
            return [self.tokenizer.convert_ids_to_tokens(self.to_tokens(item, prepend_bos)[0]) for item in items]
        return self.tokenizer.convert_ids_to_tokens(items)

    def to_string(self, tokens: Any) -> str | list[str]:
        if isinstance(tokens, Tensor) and tokens.dim() == 2:
            return self.tokenizer.batch_decode(tokens)
        return self.tokenizer.decode(tokens)

    def to_single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is not a single token")
        return ids[0]

    # --- forward --------------------------------------------------------

    def forward(self, input: Any, return_type: str | None = "logits", prepend_bos: bool | None = None,
                padding_side: str | None = None, attention_mask: Tensor | None = None, **kwargs: Any) -> Tensor | None:
        tokens = self.to_tokens(input, prepend_bos, padding_side) if isinstance(input, (str, list)) else input
        if tokens.dim() == 1:
            tokens = tokens[None]
        tokens = tokens.to(self.cfg.device)
        batch, seq = tokens.shape
        if seq > self.cfg.n_ctx:
            raise ValueError(f"input length {seq} exceeds n_ctx={self.cfg.n_ctx}")
        if int(tokens.max()) >= self.cfg.d_vocab or int(tokens.min()) < 0:
            raise ValueError(f"token ids must be in [0, {self.cfg.d_vocab})")
        d_vocab, n_ctx = self.cfg.d_vocab, self.cfg.n_ctx
        tok = self.hook_embed(nn.functional.one_hot(tokens, d_vocab).float())
        positions = torch.arange(seq, device=tokens.device).expand(batch, seq)
        pos = self.hook_pos_embed(nn.functional.one_hot(positions, n_ctx).float())
        resid = torch.cat([tok, pos, torch.zeros_like(tok)], dim=-1)
        for block in self.blocks:
            resid = block(resid, attention_mask)
        if return_type is None:
            return None
        return self.unembed(self.ln_final(resid))  # logits: the token subspace, enough for a stand-in


class TokenSubspace(nn.Module):
    """The hand-set model's unembedding: `d_vocab` coordinates of the residual stream from `start`
    (the token subspace, 0, unless a model reads its logits elsewhere)."""

    def __init__(self, start: int, d_vocab: int):
        super().__init__()
        self.start, self.d_vocab = start, d_vocab

    def forward(self, resid: Tensor) -> Tensor:
        return resid[..., self.start: self.start + self.d_vocab]


def make_hand_set_model(n_layers: int = 2, *, n_ctx: int = 64, strength: float = 40.0,
                        device: str = "cpu") -> HandSetModel:
    """The tiny model with the heads listed in the module docstring."""
    if n_layers < 1:
        raise ValueError("n_layers must be at least 1")
    d_vocab = len(SPECIAL_TOKENS) + len(CHARACTERS)
    tok, pos, prev = 0, d_vocab, d_vocab + n_ctx  # offsets of the residual subspaces
    d_model = 2 * d_vocab + n_ctx
    d_head = d_vocab + n_ctx + 1
    bonus = d_vocab + n_ctx  # the head dimension that gives key 0 (BOS) a fallback score
    c = strength
    vocab, ctx = torch.arange(d_vocab), torch.arange(n_ctx)

    def empty() -> tuple[Tensor, Tensor]:
        return torch.zeros(d_model, d_head), torch.zeros(d_model, d_head)

    def bos_fallback(W_Q: Tensor, W_K: Tensor) -> None:
        # Every query has exactly one token feature set, so this gives all queries c/2 on key 0.
        W_Q[tok + vocab, bonus] = c / 2
        W_K[pos + 0, bonus] = 1.0

    def previous_token() -> tuple[Tensor, Tensor]:
        W_Q, W_K = empty()
        W_Q[pos + ctx, ctx] = c                   # query at q  -> c * e_q
        W_K[pos + ctx[:-1], ctx[:-1] + 1] = 1.0   # key at k    -> e_{k+1}
        return W_Q, W_K

    def duplicate_token() -> tuple[Tensor, Tensor]:
        W_Q, W_K = empty()
        W_Q[tok + vocab, vocab] = c               # same token: +c
        W_K[tok + vocab, vocab] = 1.0
        W_Q[pos + ctx, d_vocab + ctx] = -c        # the query itself: -c
        W_K[pos + ctx, d_vocab + ctx] = 1.0
        bos_fallback(W_Q, W_K)
        return W_Q, W_K

    def bos() -> tuple[Tensor, Tensor]:
        W_Q, W_K = empty()
        W_Q[tok + vocab, 0] = c
        W_K[pos + 0, 0] = 1.0
        return W_Q, W_K

    def induction() -> tuple[Tensor, Tensor]:
        W_Q, W_K = empty()
        W_Q[tok + vocab, vocab] = c               # the query's token ...
        W_K[prev + vocab, vocab] = 1.0            # ... against the key's previous token
        bos_fallback(W_Q, W_K)
        return W_Q, W_K

    def current_token() -> tuple[Tensor, Tensor]:
        W_Q, W_K = empty()
        W_Q[pos + ctx, ctx] = c
        W_K[pos + ctx, ctx] = 1.0
        return W_Q, W_K

    builders = {"previous_token_head": previous_token, "duplicate_token_head": duplicate_token,
                "bos_head": bos, "induction_head": induction, "current_token_head": current_token,
                "uniform": empty}
    blocks = []
    for layer in range(n_layers):
        kinds = LAYER_HEAD_KINDS[min(layer, 1)]
        qk = [builders[kind]() for kind in kinds]
        W_V = torch.zeros(len(kinds), d_model, d_head)
        W_O = torch.zeros(len(kinds), d_head, d_model)
        if layer == 0:
            # The previous-token head copies the token it attends to into the prev-tok subspace.
            W_V[0, tok + vocab, vocab] = 1.0
            W_O[0, vocab, prev + vocab] = 1.0
        attn = HandSetAttention(torch.stack([q for q, _ in qk]), torch.stack([k for _, k in qk]), W_V, W_O)
        blocks.append(HandSetBlock(attn))
    cfg = HandSetConfig(n_layers=n_layers, n_heads=len(LAYER_HEAD_KINDS[0]), n_ctx=n_ctx, d_vocab=d_vocab,
                        d_model=d_model, d_head=d_head, strength=strength)
    model = HandSetModel(cfg, blocks)
    model.eval()
    return model.to(device)
