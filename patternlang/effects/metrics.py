"""The metric registry: what an intervention's effect is measured by.

A metric reads the model's logits on a batch of prompts and gives one value per prompt. It says
which way is better (`direction`: "higher" or "lower"), so that a report can say whether an
ablation hurts. Built in:

- `loss`: the mean next-token cross-entropy over the prompt (lower is better);
- `induction_loss`: the same, only where induction can predict the token: target positions `t`
  with an earlier `j < t - 1` such that `tok[j] == tok[t - 1]` and `tok[j + 1] == tok[t]` (on
  `repeated_random` prompts: the repeated half after its first token; lower is better);
- `logit_diff(A, B)`: at the last token labelled `END`, the logit of the first token labelled
  `A` minus that of the first token labelled `B` (default `logit_diff(IO, S1)`: on `ioi`, the
  indirect object's name minus the subject's; higher is better);
- `retrieval`: the probability the model gives the tokens labelled `answer`, each read at the
  position before it (teacher forcing; on `needle`, the pass key said after the question;
  higher is better).

A user metric is a `Metric` built from a Python function `fn(logits, batch) -> [batch]` and its
direction, passed as `metric=` or registered with `register_metric`.

>>> METRICS.names()
('loss', 'induction_loss', 'logit_diff', 'retrieval')
>>> resolve_metric("logit_diff(IO, S2)").label
'logit_diff(IO, S2)'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor

from patternlang.errors import InputError, UnknownNameError, did_you_mean
from patternlang.registry import Registry

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class MetricBatch:
    """What a metric reads besides the logits: the prompts of the batch.

    `tokens` `[batch, pos]` (right-padded), `lengths` `[batch]`, `labels`: per prompt, each
    token's span label ("" outside every span; None for prompts without labelled spans),
    `indices`: each row's prompt number in the run."""

    tokens: Tensor
    lengths: Tensor
    labels: tuple[tuple[str, ...] | None, ...]
    indices: tuple[int, ...]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def real(self) -> Tensor:
        """`[batch, pos]` True on the prompts' own tokens (not padding)."""
        width = self.tokens.shape[1]
        return torch.arange(width, device=self.tokens.device)[None, :] < self.lengths[:, None]

    def mask(self, label: str) -> Tensor:
        """`[batch, pos]` True on the tokens carrying `label` (an error if a prompt has none)."""
        width = self.tokens.shape[1]
        rows = []
        for row, labels in enumerate(self.labels):
            if labels is None:
                raise InputError(f"prompt {self.indices[row]} has no labelled spans, and the metric reads span "
                                 f"{label!r}", hint="use a labelled probe (ioi, needle) or a JSONL file with \"spans\"")
            flags = [name == label for name in labels] + [False] * (width - len(labels))
            if not any(flags):
                raise InputError(f"prompt {self.indices[row]} has no token labelled {label!r}",
                                 hint=f"its labels are {', '.join(sorted({n for n in labels if n})) or 'none'}")
            rows.append(flags)
        return torch.tensor(rows, dtype=torch.bool, device=self.tokens.device)

    def first(self, label: str) -> Tensor:
        """`[batch]` the position of each prompt's first token labelled `label`."""
        mask = self.mask(label)
        return mask.int().argmax(dim=1)

    def last(self, label: str) -> Tensor:
        """`[batch]` the position of each prompt's last token labelled `label`."""
        mask = self.mask(label)
        width = mask.shape[1]
        return width - 1 - mask.flip(1).int().argmax(dim=1)

    def repeat(self, times: int) -> MetricBatch:
        """The batch `times` over along the batch axis (replicas with different interventions)."""
        if times == 1:
            return self
        return MetricBatch(self.tokens.repeat(times, 1), self.lengths.repeat(times), self.labels * times,
                           self.indices * times)


MetricFn = Callable[..., Tensor]


@dataclass(frozen=True)
class Metric:
    """A metric: `fn(logits, batch, *args) -> [batch]`, one value per prompt, and which way is better.

    `params`: the names of its arguments (span labels, for `logit_diff`), `args` their values;
    `needs`: "spans" when it reads labelled spans; `probe`: the probe it belongs to, where a run
    that names no prompts measures it (`patternlang effects --metric`, `detect --effects`, the
    atlas's default effects; None: the run's own prompts, else `natural`); `positions`: where
    its heads are intervened on when a run names no positions (None: every token; `logit_diff`:
    `END`, where it is read).

    >>> m = Metric("top_logit", lambda logits, batch: logits[:, -1].max(-1).values, "higher")
    >>> m.label, m.direction
    ('top_logit', 'higher')
    """

    name: str
    fn: MetricFn
    direction: Direction
    doc: str = ""
    params: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = field(default=())
    probe: str | None = None
    positions: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise InputError(f"metric {self.name!r}: direction must be 'higher' or 'lower' (which way is better), "
                             f"not {self.direction!r}")
        if not callable(self.fn):
            raise InputError(f"metric {self.name!r}: fn must be a function of (logits, batch)")

    @property
    def label(self) -> str:
        return f"{self.name}({', '.join(self.args)})" if self.args else self.name

    def __call__(self, logits: Tensor, batch: MetricBatch) -> Tensor:
        values = self.fn(logits, batch, *self.args)
        if not isinstance(values, Tensor) or values.shape != (len(batch),):
            shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise InputError(f"metric {self.label!r} must give one value per prompt, a tensor of shape "
                             f"[{len(batch)}], not {shape}")
        return values.float()

    def bind(self, args: Sequence[str]) -> Metric:
        if len(args) > len(self.params):
            raise InputError(f"metric {self.name!r} takes {len(self.params)} argument(s) "
                             f"({', '.join(self.params) or 'none'}), not {len(args)}")
        return replace(self, args=tuple(args) + self.args[len(args):])


METRICS: Registry[Metric] = Registry("metric")


def register_metric(metric: Metric) -> Metric:
    """Add a metric to the registry (`metric="name"` then finds it)."""
    if not isinstance(metric, Metric):
        raise InputError("register_metric takes a Metric(name, fn, direction)")
    return METRICS.register(metric)


def metric_of_probe(probe: str) -> str:
    """The metric a probe is measured by when a run names none: the first registered metric that
    belongs to it (`ioi`: `logit_diff`, `needle`: `retrieval`, `repeated_random`: `induction_loss`),
    else `loss`."""
    return next((metric.name for metric in METRICS.entries() if metric.probe == probe), "loss")


def probe_metrics() -> list[Metric]:
    """The registered metrics that belong to a probe, in registration order: the atlas's default
    effects (`loss` on `natural`, `induction_loss` on `repeated_random`, `logit_diff(IO, S1)` on
    `ioi`, `retrieval` on `needle`, and user metrics registered with a probe)."""
    return [metric for metric in METRICS.entries() if metric.probe]


_SPEC = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$")
_LABEL = re.compile(r"^[^\s,()]+$")


def resolve_metric(spec: Any) -> Metric:
    """A `Metric` from a `Metric`, a registered name, or `name(arg, ...)` (`logit_diff(IO, S2)`)."""
    if isinstance(spec, Metric):
        return spec
    if callable(spec):
        raise InputError("a metric given as a function must say which way is better",
                         hint="wrap it: Metric('my_metric', fn, direction='higher')")
    if not isinstance(spec, str):
        raise InputError(f"a metric is a name or a Metric, not {type(spec).__name__}")
    match = _SPEC.match(spec)
    if match is None:
        raise InputError(f"cannot read the metric {spec!r}", hint="write a name, or name(A, B) as in logit_diff(IO, S1)")
    name, inside = match.group(1), match.group(2)
    if name not in METRICS:
        raise UnknownNameError(f"unknown metric {name!r}",
                               hint=did_you_mean(name, METRICS.names()) or f"metrics are {', '.join(METRICS.names())}")
    metric = METRICS[name]
    if inside is None:
        return metric
    args = [part.strip() for part in inside.split(",")] if inside.strip() else []
    for arg in args:
        if not _LABEL.match(arg):
            raise InputError(f"metric {spec!r}: {arg!r} is not a span label", hint="write logit_diff(IO, S1)")
    return metric.bind(args)


# ---- the built-in metrics ---------------------------------------------------------------------
def token_losses(logits: Tensor, tokens: Tensor) -> Tensor:
    """`[batch, pos - 1]` the cross-entropy of each next token: position `t` of the result is the
    loss of predicting `tokens[:, t + 1]` from `logits[:, t]`."""
    log_probs = logits[:, :-1].float().log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    count = mask.sum(dim=1)
    total = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(dim=1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, torch.nan))


def loss(logits: Tensor, batch: MetricBatch) -> Tensor:
    targets = batch.real[:, 1:]  # a target is a real token after the first
    return _masked_mean(token_losses(logits, batch.tokens), targets)


def induction_targets(tokens: Tensor, real: Tensor) -> Tensor:
    """`[batch, pos - 1]` True at result position `t` (target token `t + 1`) when an earlier
    `j < t` has `tok[j] == tok[t]` and `tok[j + 1] == tok[t + 1]`: the token induction predicts."""
    previous, target = tokens[:, :-1], tokens[:, 1:]  # [batch, n]: the token before the target, the target
    same_previous = previous[:, :, None] == previous[:, None, :]  # [batch, t, j]
    same_next = target[:, :, None] == target[:, None, :]
    n = previous.shape[1]
    earlier = torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril(diagonal=-1)
    real_pair = real[:, 1:]
    found = (same_previous & same_next & earlier & real_pair[:, None, :]).any(dim=2)
    return found & real_pair


def induction_loss(logits: Tensor, batch: MetricBatch) -> Tensor:
    return _masked_mean(token_losses(logits, batch.tokens), induction_targets(batch.tokens, batch.real))


def logit_diff(logits: Tensor, batch: MetricBatch, a: str = "IO", b: str = "S1") -> Tensor:
    rows = torch.arange(len(batch), device=logits.device)
    end = batch.last("END")
    token_a = batch.tokens[rows, batch.first(a)]
    token_b = batch.tokens[rows, batch.first(b)]
    at_end = logits[rows, end].float()
    return at_end[rows, token_a] - at_end[rows, token_b]


def retrieval(logits: Tensor, batch: MetricBatch) -> Tensor:
    answer = batch.mask("answer")[:, 1:]  # target positions: tokens labelled answer (never the first)
    log_probs = -token_losses(logits, batch.tokens)
    total = torch.where(answer, log_probs, torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)).sum(dim=1)
    return total.exp()


# Each metric names its probe and default positions here, and nowhere else (the CLI, `detect
# --effects` and the atlas read them from the entry).
register_metric(Metric("loss", loss, "lower", "mean next-token cross-entropy over the prompt (nats)", probe="natural"))
register_metric(Metric("induction_loss", induction_loss, "lower",
                       "next-token loss where induction predicts the token (the repeated half of repeated_random)",
                       probe="repeated_random"))
register_metric(Metric("logit_diff", logit_diff, "higher",
                       "logit of span A's first token minus span B's, at the END span's last token "
                       "(default A=IO, B=S1: the ioi probe)", params=("A", "B"), args=("IO", "S1"), needs=("spans",),
                       probe="ioi", positions="END"))
register_metric(Metric("retrieval", retrieval, "higher",
                       "probability of the tokens labelled answer, each at the position before it "
                       "(teacher forcing: the needle probe's pass key)", needs=("spans",), probe="needle"))
