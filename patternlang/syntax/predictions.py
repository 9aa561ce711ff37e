"""What the model itself predicts: `pred[q]`, `predicted(x, p, N)` and `lens_predicted(x, p, N, L)`.

- `pred[q]`: the token the model predicts next at position q: the top-1 of its final logits.
- `predicted(tok[k], q, 5)`: true where `tok[k]` is among the model's top 5 predictions at q
  (final logits; ties broken the way `torch.topk` breaks them).
- `lens_predicted(tok[k], q, 5, 9)`: the same, as read from the residual stream after block 9
  (counted from 0) by the logit lens: the model's final norm and unembedding applied to
  `blocks.9.hook_resid_post`. `lens_predicted(x, q, N, n_layers - 1)` equals `predicted(x, q, N)`.

N is a whole number written in the rule, 1 to `MAX_TOP`; L a block index written in the rule,
checked against the model when it runs. They need "predictions": the engine then runs the
model's whole forward pass (to the logits) and scores every head after it, on the same pass
(`engine/model_outputs.py`); runs without such patterns are unchanged.

The reference evaluator reads `ReferencePrompt.predictions(layer)`: per position, the ranked
top ids (layer None: the final logits).
"""

from __future__ import annotations

from collections.abc import Iterable

from . import ast
from .builtins import FUNCTIONS, Function
from .feature_registry import register_feature

MAX_TOP = 100
"""The most predictions `predicted(x, p, N)` may read (N)."""
MAX_LENS_LAYER = 10_000
"""The largest block index a rule may write (the model's own is checked when it runs)."""

PREDICTION_FUNCTIONS = ("predicted", "lens_predicted")


def _predicted(predictions: list[list[int]], token: int, position: int, top: int) -> bool:
    return token in predictions[position][:top]


FUNCTIONS["predicted"] = Function(
    "predicted", ("token", "position", "count"), "bool", _predicted,
    "predicted(x, p, N): token x is among the model's top N predictions at position p (final logits)",
    needs=("tokens", "predictions"))
FUNCTIONS["lens_predicted"] = Function(
    "lens_predicted", ("token", "position", "count", "layer"), "bool", _predicted,
    "lens_predicted(x, p, N, L): token x is among the top N predictions at p of the logit lens after "
    "block L (final norm and unembedding applied to blocks.L.hook_resid_post)",
    needs=("tokens", "predictions"))

register_feature(
    "pred", "token", "the token the model predicts next at the position: the top-1 of its final logits "
    "(`tok[k] == pred[q]`: k holds the token the model predicts at q)",
    needs=("tokens", "predictions"),
    table=lambda batch: batch.predictions(None)[..., 0],
    reference=lambda prompt: [ranked[0] for ranked in prompt.predictions(None)],
)


def prediction_requests(exprs: Iterable[ast.PExpr]) -> dict[int | None, int]:
    """What the patterns read of the model's predictions: `{layer: top N}`, layer None for the
    final logits (each with the largest N any pattern reads there)."""
    requests: dict[int | None, int] = {}
    for expr in exprs:
        for node in ast.walk(expr):
            key = top = None
            if isinstance(node, ast.Index) and node.feature == "pred":
                key, top = None, 1
            elif isinstance(node, ast.Call) and node.func in PREDICTION_FUNCTIONS:
                key, top = call_request(node)
            if top is not None:
                requests[key] = max(requests.get(key, 0), top)
    return requests


def call_request(node: ast.Call) -> tuple[int | None, int]:
    """`(layer, top)` of one `predicted`/`lens_predicted` call (its literal arguments)."""
    layer = _int_argument(node, 3) if node.func == "lens_predicted" else None
    return layer, _int_argument(node, 2)


def _int_argument(node: ast.Call, index: int) -> int:
    """`node.args[index]`, a whole number written in the rule (the kinds pass allows nothing else)."""
    arg = node.args[index]
    if not isinstance(arg, ast.IntLit):
        raise TypeError(f"argument {index + 1} of {node.func}() must be an integer literal, not {type(arg).__name__}")
    return arg.value
