"""The model layout contract: where a model keeps the weights that hand-written strategies train.

A strategy that trains through autograd (``reference``, ``minibatch``, ``ddp``) needs
nothing but ``forward(users, items)``. A strategy that writes the step itself (an SGD
kernel, an ALS solve, a peer library whose factors are copied back) works on the weight
tensors directly, so it must know where they are and what they mean. mfbench's models
keep them in one of two layouts, told by attribute names:

``dot``
    ``user_factors``: ``nn.Embedding(n_users, k)`` and ``item_factors``:
    ``nn.Embedding(n_items, k)``; ``forward`` predicts ``<p_u, q_i>``.
``biased``
    the ``dot`` tables, plus ``user_bias``: ``nn.Embedding(n_users, 1)``,
    ``item_bias``: ``nn.Embedding(n_items, 1)`` and ``global_mean``: a one-element
    tensor that is not learned (a buffer); ``forward`` predicts
    ``global_mean + b_u + b_i + <p_u, q_i>``.

Any module with these attributes and that ``forward`` is accepted, whatever its class.
:func:`find_tables` applies the same rules for every strategy; a model that breaks one
is refused with a :class:`LayoutError` saying which:

1. the factor tables are ``nn.Embedding`` of the same width; a model with either bias
   table has both, one column each, as many rows as its factor table, and a
   one-element ``global_mean`` tensor;
2. every table is trainable (``requires_grad``): a frozen table would be trained anyway,
   since the strategy does not go through autograd;
3. the model has no other trainable parameter: the strategy would leave it untrained;
4. all tables share one dtype, one the strategy computes in (float32 or float64 unless
   it says otherwise), and one device;
5. when the training ratings are given, the tables have one row per user and per item.

A strategy may then assume what ``forward`` computes from the tables (it never calls
``forward`` to train), and must leave the trained values in those tables at the end of
each epoch: mfbench judges the model by calling it. ``Strategy.skip`` reports a refusal
as a skip reason (:func:`layout_problem`); ``setup`` lets the error propagate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..data.ratings import Ratings
from ..errors import MfbenchError

FACTOR_TABLES = ("user_factors", "item_factors")
BIAS_TABLES = ("user_bias", "item_bias")
GLOBAL_MEAN = "global_mean"
#: What a strategy computes in unless it says otherwise.
DEFAULT_DTYPES = (torch.float32, torch.float64)
#: Where the contract is written down for users.
SEE = "docs/plugins.md, 'The model layout contract'"


class LayoutError(MfbenchError):
    """A model whose tables a strategy cannot train: the message names the rule it breaks."""


@dataclass(frozen=True)
class Tables:
    """The tables of a ``dot`` or ``biased`` model, as detached tensors sharing the parameters' storage.

    A step written into them lands in the model itself; the bias tables are None on ``dot``,
    and ``global_mean`` is 0 there.
    """

    user_factors: torch.Tensor
    item_factors: torch.Tensor
    user_bias: torch.Tensor | None = None
    item_bias: torch.Tensor | None = None
    global_mean: float = 0.0

    @property
    def biased(self) -> bool:
        return self.user_bias is not None

    @property
    def n_users(self) -> int:
        return self.user_factors.shape[0]

    @property
    def n_items(self) -> int:
        return self.item_factors.shape[0]

    @property
    def n_factors(self) -> int:
        return self.user_factors.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.user_factors.dtype

    @property
    def device(self) -> torch.device:
        return self.user_factors.device

    def weights(self) -> dict[str, torch.Tensor]:
        """The tables by attribute name (``user_factors``, ..., the bias tables only when biased)."""
        named = {"user_factors": self.user_factors, "item_factors": self.item_factors}
        if self.user_bias is not None and self.item_bias is not None:
            named.update(user_bias=self.user_bias, item_bias=self.item_bias)
        return named


def find_tables(
    model: nn.Module,
    strategy: str,
    *,
    dtypes: Iterable[torch.dtype] = DEFAULT_DTYPES,
    ratings: Ratings | None = None,
) -> Tables:
    """The tables of ``model`` for ``strategy`` (its name, for messages); a :class:`LayoutError` if it breaks a rule.

    ``dtypes`` are the dtypes the strategy computes in; ``ratings`` (the training ratings,
    in ``setup``) adds the check that the tables have a row per user and per item.
    """
    kind = type(model).__name__

    def refuse(why: str) -> LayoutError:
        return LayoutError(f"{strategy} cannot train model {kind}: {why}")

    names = list(FACTOR_TABLES)
    biased = any(hasattr(model, name) for name in BIAS_TABLES)
    if biased:
        names += BIAS_TABLES
    embeddings = {}
    for name in names:
        table = getattr(model, name, None)
        if not isinstance(table, nn.Embedding):
            raise refuse(f"it has no nn.Embedding {name!r} ({strategy} trains the dot and biased layouts only; {SEE})")
        embeddings[name] = table
    mean = getattr(model, GLOBAL_MEAN, None)
    if biased and (not isinstance(mean, torch.Tensor) or mean.numel() != 1):
        raise refuse(f"it has bias tables but no one-element {GLOBAL_MEAN} tensor (the biased layout's; {SEE})")
    weights = {name: table.weight for name, table in embeddings.items()}
    if weights["user_factors"].shape[1] != weights["item_factors"].shape[1]:
        raise refuse(
            f"its user_factors and item_factors differ in width "
            f"({weights['user_factors'].shape[1]} and {weights['item_factors'].shape[1]})"
        )
    for bias, factors in zip(BIAS_TABLES, FACTOR_TABLES, strict=True):
        if bias in weights and (weights[bias].shape[1] != 1 or weights[bias].shape[0] != weights[factors].shape[0]):
            raise refuse(
                f"its {bias} is {tuple(weights[bias].shape)}, not one column of {factors}'s {weights[factors].shape[0]} rows"
            )
    frozen = sorted(f"{name}.weight" for name, weight in weights.items() if not weight.requires_grad)
    if frozen:
        raise refuse(
            f"it holds {', '.join(frozen)} frozen (requires_grad=False), which {strategy} would train anyway: "
            f"unfreeze it, or use a strategy that trains through autograd (minibatch)"
        )
    expected = {f"{name}.weight" for name in names}
    extra = sorted(name for name, p in model.named_parameters() if p.requires_grad and name not in expected)
    if extra:
        raise refuse(f"it has trainable parameters {strategy} does not train: {extra}")
    found = {weight.dtype for weight in weights.values()}
    if len(found) != 1:
        raise refuse(f"its tables must share one floating dtype, got {sorted(map(str, found))}")
    dtype, allowed = next(iter(found)), tuple(dtypes)
    if dtype not in allowed:
        words = " or ".join(str(d).replace("torch.", "") for d in allowed)
        raise refuse(f"its tables are {str(dtype).replace('torch.', '')}; {strategy} trains {words} tables")
    devices = {weight.device for weight in weights.values()}
    if len(devices) != 1:
        raise refuse(f"its tables are on several devices: {sorted(map(str, devices))}")
    if ratings is not None and (
        weights["user_factors"].shape[0] != ratings.n_users or weights["item_factors"].shape[0] != ratings.n_items
    ):
        raise refuse(
            f"its tables are {weights['user_factors'].shape[0]} x {weights['item_factors'].shape[0]} "
            f"but the ratings are {ratings.n_users} x {ratings.n_items}"
        )
    detached = {name: weight.detach() for name, weight in weights.items()}
    if not biased:
        return Tables(detached["user_factors"], detached["item_factors"])
    assert isinstance(mean, torch.Tensor)  # refused above when it is not
    return Tables(detached["user_factors"], detached["item_factors"], detached["user_bias"], detached["item_bias"], float(mean))


def layout_problem(model: nn.Module, strategy: str, *, dtypes: Iterable[torch.dtype] = DEFAULT_DTYPES) -> str | None:
    """Why :func:`find_tables` refuses ``model`` for ``strategy``, or None: what ``Strategy.skip`` returns."""
    try:
        find_tables(model, strategy, dtypes=dtypes)
    except LayoutError as exc:
        return str(exc)
    return None
