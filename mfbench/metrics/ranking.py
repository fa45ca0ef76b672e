"""Top-N ranking quality over the full item catalog: recall, precision, NDCG, MAP, MRR, hit rate, coverage.

RMSE judges a model by how close its predicted ratings are; a recommender is used by ranking,
so it is judged here by what it puts at the top of each user's list. Every user is ranked
against the whole catalog (no sampled negatives, which inflate and reorder results), with the
conventions RecBole and Elliot use, so figures compare with theirs.

What is ranked
--------------
For a user ``u`` the candidates are all items of the catalog except the ``exclude`` pairs of
``u`` (the items the model was trained on and, when judging on the test set, the validation
items). Each candidate's score is the model's: with the ``dot``/``biased`` layout of
:mod:`mfbench.plugin.model_layout`, ``<p_u, q_i> + b_i`` (the global mean and ``b_u`` are the
same for all of one user's items and cannot change their order), computed for a batch of users
against every item with one matrix product; for any other module, ``model(users, items)``
called in chunks of pairs (slow but correct). The ranked list ``L`` is the top ``k`` candidates
by score, in this order:

* higher score first; equal scores (exact ties) put the **lower item index first**;
* a NaN score ranks below every other candidate (``-inf`` included), the NaN candidates among
  themselves by item index; ``+inf`` and ``-inf`` are ordinary values; ``-0.0`` equals ``0.0``;
* when fewer than ``k`` candidates exist, ``L`` is every candidate (so ``|L| = min(k, n_cand)``).

The two scorers compute the same numbers up to floating-point rounding (the matrix product adds
in another order than ``forward``), so scores that are equal only up to rounding may order
differently between them; scores equal in exact arithmetic order the same.

Definitions
-----------
``R_u`` is the set of ``u``'s held-out items (binary relevance: every held-out pair is relevant),
``rel_r`` is 1 when the item at rank ``r`` (1-based) of ``L`` is in ``R_u``, else 0, and
``hits = |L ∩ R_u| = Σ_r rel_r``. For ``|R_u| >= 1``:

* ``recall@k = hits / |R_u|``
* ``precision@k = hits / k`` (``k`` itself, even when fewer than ``k`` candidates exist)
* ``ndcg@k = DCG / IDCG`` with ``DCG = Σ_{r=1..|L|} rel_r / log2(r + 1)`` and
  ``IDCG = Σ_{r=1..min(k, |R_u|)} 1 / log2(r + 1)``
* ``map@k = Σ_{r=1..|L|} precision@r · rel_r / min(k, |R_u|)`` with ``precision@r`` the hits
  among the first ``r`` ranks over ``r``
* ``mrr@k = 1 / (rank of the first relevant item in L)``, 0 when ``L`` holds none
* ``hit@k = 1`` when ``hits >= 1``, else 0

Each of these is averaged over the evaluated users. ``coverage@k`` is instead one figure for
the run: the number of distinct items that appear in at least one evaluated user's ``L`` over
the catalog size.

Users with no held-out item are skipped (no metric is defined for them) and counted in
:attr:`RankingResult.n_skipped`. A user whose every item is excluded is evaluated with an empty
list (0 for every metric). A held-out item that is also excluded still counts in ``|R_u|`` but
can never be ranked. With no user evaluated, every metric is NaN.

How it runs
-----------
The held-out and excluded pairs are deduplicated and sorted once per call (keys
``user * n_items + item``); users are then scored in batches whose score matrix stays within
:data:`MEMORY_BUDGET_BYTES` (on a CPU, near :data:`CPU_BLOCK_BYTES`, so that it is read back from
cache). The excluded candidates of a batch are set to ``-inf`` by scatter, one ``topk`` of
``k + 1`` (the largest requested ``k``) serves every request, and a row's list is exact whenever
its ``k``-th score is strictly above its ``(k + 1)``-th and no NaN is among them (any tie then lies
inside the list, and a stable sort puts it in item order). The other rows (a tie across the cut,
NaN, ``-inf`` or excluded items within reach of the list, ``k`` at least the catalog) are ranked
exactly on integer keys that order scores as above: the ``k``-th key, all keys above it, the
lowest-index items equal to it, then a stable sort. Relevance is found by binary search in the
sorted held-out keys, and the metrics are computed in float64 on the device of the model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..data.ratings import Ratings
from ..plugin.model_layout import LayoutError, find_tables

#: The metric names a request may use.
METRICS = ("recall", "precision", "ndcg", "map", "mrr", "hit", "coverage")
#: What one batch's score matrix may take; ``batch_users`` overrides the batch size it gives.
MEMORY_BUDGET_BYTES = 256 * 1024 * 1024
#: On a CPU, a batch's scores are kept to about this much so that they are still in the last-level
#: cache when the top-k reads them (on 2 cores, 100,000 users x 20,000 items x 64 factors: 5.3 s
#: against 6.8 s with 3,355-user batches, the budget's)...
CPU_BLOCK_BYTES = 16 * 1024 * 1024
#: ... but never fewer users than this, so that reading the item table is paid for by many rows.
CPU_MIN_BATCH_USERS = 64
#: (user, item) pairs per ``forward`` call when the model has no table layout.
FORWARD_CHUNK = 1 << 16
#: Bytes per score element that the exact ranking of tied rows needs (int64 keys, their running
#: count of ties, masks): those rows are ranked in groups that keep within the budget too.
_EXACT_BYTES_PER_SCORE = 24

Scorer = Literal["auto", "tables", "forward"]
ScoreBatch = Callable[[torch.Tensor], torch.Tensor]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class RankingResult:
    """What :func:`evaluate_ranking` measured.

    ``metrics`` maps ``"<metric>@<k>"`` (``"ndcg@10"``) to its mean over the evaluated users (a share
    of the catalog for ``coverage``), in the order requested; ``n_users`` users were evaluated and
    ``n_skipped`` had no held-out item. ``scorer`` is ``"tables"`` or ``"forward"``, ``batch_users``
    the users scored at once, and ``seconds`` the wall time of the whole call.
    """

    metrics: dict[str, float]
    n_users: int
    n_skipped: int
    seconds: float
    scorer: str
    batch_users: int

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]


def parse_requests(requests: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """The (metric, k) requests checked and without repeats, in their order; a ValueError names a bad one."""
    parsed: list[tuple[str, int]] = []
    for request in requests:
        if not (isinstance(request, tuple | list) and len(request) == 2):
            raise ValueError(f"a ranking request is a (metric, k) pair, got {request!r}")
        metric, k = request
        if metric not in METRICS:
            raise ValueError(f"unknown ranking metric {metric!r}: choose from {', '.join(METRICS)}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{metric}@k needs a whole k >= 1, got {k!r}")
        if (metric, k) not in parsed:
            parsed.append((metric, k))
    if not parsed:
        raise ValueError("no ranking metric requested")
    return parsed


@torch.no_grad()
def evaluate_ranking(
    model: nn.Module,
    heldout: Ratings,
    exclude: Sequence[Ratings],
    requests: Sequence[tuple[str, int]],
    *,
    batch_users: int | None = None,
    scorer: Scorer = "auto",
) -> RankingResult:
    """Rank the full catalog for every user with held-out items and score the lists (see the module's definitions).

    ``heldout`` holds the relevant (user, item) pairs; the pairs of ``exclude`` are never ranked
    for their user. ``requests`` are (metric, k) pairs, the metric one of :data:`METRICS`. Users
    with no held-out item are skipped and counted in ``n_skipped``. ``scorer``: ``"tables"`` ranks
    by ``<p_u, q_i> + b_i`` from the model's tables (a :class:`LayoutError` if it has none),
    ``"forward"`` calls the model, and ``"auto"`` uses the tables whenever
    :func:`~mfbench.plugin.model_layout.find_tables` accepts the model. ``batch_users`` overrides
    the batch size that :data:`MEMORY_BUDGET_BYTES` (and on a CPU :data:`CPU_BLOCK_BYTES`) gives.
    The model is scored on its own device, in eval mode (its mode is restored).
    """
    started = time.perf_counter()
    wanted = parse_requests(requests)
    if batch_users is not None and (isinstance(batch_users, bool) or not isinstance(batch_users, int) or batch_users < 1):
        raise ValueError(f"batch_users must be a whole number >= 1, got {batch_users!r}")
    n_users, n_items = heldout.n_users, heldout.n_items
    for other in exclude:
        if (other.n_users, other.n_items) != (n_users, n_items):
            raise ValueError(
                f"excluded ratings are {other.n_users} x {other.n_items} but the held-out ratings {n_users} x {n_items}"
            )
    was_training = model.training
    model.eval()
    try:
        kind, score, device, dtype = _scorer(model, scorer, n_users, n_items)
        held_keys = _pair_keys([heldout], n_items, device)
        excluded_keys = _pair_keys(exclude, n_items, device)
        n_relevant = torch.bincount(held_keys // n_items, minlength=n_users)
        excluded_ptr = _row_pointers(excluded_keys // n_items, n_users)
        excluded_items = excluded_keys % n_items
        users = torch.nonzero(n_relevant).squeeze(1)
        n_candidates = n_items - (excluded_ptr[1:] - excluded_ptr[:-1])
        batch = batch_users or _batch_size(n_items * torch.empty((), dtype=dtype).element_size(), device)
        exact_rows = max(1, MEMORY_BUDGET_BYTES // (n_items * _EXACT_BYTES_PER_SCORE))
        top = max(k for _, k in wanted)
        width = min(top, n_items)
        tally = _Tally(wanted, width, n_items, device)
        for start in range(0, len(users), batch):
            chunk = users[start : start + batch]
            rows, cols = _segments(excluded_ptr, excluded_items, chunk)
            scores = score(chunk)
            ranked = _rank(scores, rows, cols, top, exact_rows)
            length = torch.clamp(n_candidates[chunk], max=width)
            listed = torch.arange(width, device=device) < length[:, None]
            relevant = _lookup(held_keys, chunk[:, None] * n_items + ranked) & listed
            tally.add(ranked, listed, relevant, n_relevant[chunk])
        metrics = tally.means(len(users))
    finally:
        model.train(was_training)
    return RankingResult(
        metrics=metrics,
        n_users=len(users),
        n_skipped=n_users - len(users),
        seconds=time.perf_counter() - started,
        scorer=kind,
        batch_users=batch,
    )


def _scorer(model: nn.Module, scorer: Scorer, n_users: int, n_items: int) -> tuple[str, ScoreBatch, torch.device, torch.dtype]:
    """(name, scores of a batch of users against every item, device, score dtype) for ``model``."""
    if scorer not in ("auto", "tables", "forward"):
        raise ValueError(f"scorer must be 'auto', 'tables' or 'forward', got {scorer!r}")
    if scorer != "forward":
        try:
            tables = find_tables(model, "ranking evaluation")
        except LayoutError as exc:
            if scorer == "tables":
                raise LayoutError(f"scorer='tables' needs the dot or biased layout: {exc}") from exc
        else:
            if (tables.n_users, tables.n_items) != (n_users, n_items):
                raise ValueError(
                    f"the model's tables are {tables.n_users} x {tables.n_items} but the ratings {n_users} x {n_items}"
                )
            factors, items, biased = tables.user_factors, tables.item_factors, tables.item_bias is not None
            if tables.item_bias is not None:
                # b_i as one more factor, against a user column of ones: the bias lands in the
                # product instead of costing another pass over the score matrix
                items = torch.cat([items, tables.item_bias], 1)
            items = items.T

            def by_tables(users: torch.Tensor) -> torch.Tensor:
                rows = factors[users]
                if biased:
                    rows = torch.cat([rows, torch.ones((len(rows), 1), dtype=rows.dtype, device=rows.device)], 1)
                return rows @ items

            return "tables", by_tables, tables.device, tables.dtype
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    one = torch.zeros(1, dtype=torch.int64, device=device)
    dtype = _score_dtype(model(one, one).dtype)

    def by_forward(users: torch.Tensor) -> torch.Tensor:
        flat = torch.empty(len(users) * n_items, dtype=dtype, device=device)
        for begin in range(0, len(flat), FORWARD_CHUNK):
            position = torch.arange(begin, min(begin + FORWARD_CHUNK, len(flat)), device=device)
            flat[begin : begin + len(position)] = model(users[position // n_items], position % n_items).reshape(-1)
        return flat.view(len(users), n_items)

    return "forward", by_forward, device, dtype


def _batch_size(row_bytes: int, device: torch.device) -> int:
    """Users scored at once: within :data:`MEMORY_BUDGET_BYTES`, and on a CPU about :data:`CPU_BLOCK_BYTES`."""
    most = max(1, MEMORY_BUDGET_BYTES // row_bytes)
    if device.type != "cpu":
        return most
    return min(most, max(CPU_MIN_BATCH_USERS, CPU_BLOCK_BYTES // row_bytes))


def _score_dtype(dtype: torch.dtype) -> torch.dtype:
    """What scores are ranked in: float32 holds every float16/bfloat16/float32 value exactly, float64 the rest."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float64


def _pair_keys(sets: Sequence[Ratings], n_items: int, device: torch.device) -> torch.Tensor:
    """The distinct ``user * n_items + item`` keys of all ``sets``, sorted (so by user, then item)."""
    keys = [r.users.to(device) * n_items + r.items.to(device) for r in sets]
    if not keys:
        return torch.empty(0, dtype=torch.int64, device=device)
    return torch.unique(torch.cat(keys), sorted=True)


def _row_pointers(users: torch.Tensor, n_users: int) -> torch.Tensor:
    """CSR row pointers of sorted ``users``: user ``u``'s entries are ``[ptr[u], ptr[u + 1])``."""
    pointers = torch.zeros(n_users + 1, dtype=torch.int64, device=users.device)
    pointers[1:] = torch.cumsum(torch.bincount(users, minlength=n_users), 0)
    return pointers


def _segments(pointers: torch.Tensor, items: torch.Tensor, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row in ``users``, item) of every CSR entry of ``users``: the pairs to scatter into a batch."""
    starts = pointers[users]
    counts = pointers[users + 1] - starts
    rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
    first = torch.cumsum(counts, 0) - counts
    position = starts[rows] + torch.arange(len(rows), device=users.device) - first[rows]
    return rows, items[position]


def _lookup(sorted_keys: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Whether each of ``keys`` is in ``sorted_keys`` (binary search)."""
    if len(sorted_keys) == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    found = torch.searchsorted(sorted_keys, keys).clamp_(max=len(sorted_keys) - 1)
    return sorted_keys[found] == keys


def _rank(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, top: int, exact_rows: int) -> torch.Tensor:
    """The item indices of each row's top ``min(top, n_items)`` by the module's order (``scores`` is overwritten).

    ``(rows, cols)`` are the excluded pairs; they rank after every candidate, so a row's first
    ``min(top, n_candidates)`` entries are its list.
    """
    n_rows, n_items = scores.shape
    scores.index_put_((rows, cols), torch.tensor(-math.inf, dtype=scores.dtype, device=scores.device))
    if top < n_items:
        values, ranked = torch.topk(scores, top + 1, dim=1)
        exact = values[:, top - 1] > values[:, top]
        exact &= ~torch.isnan(values).any(1)
        by_item, order = torch.sort(ranked[:, :top], dim=1)
        values = torch.gather(values[:, :top], 1, order)
        ranked = torch.gather(by_item, 1, torch.sort(values, dim=1, descending=True, stable=True).indices)
        redo = torch.nonzero(~exact).squeeze(1)
    else:
        ranked = torch.empty((n_rows, n_items), dtype=torch.int64, device=scores.device)
        redo = torch.arange(n_rows, device=scores.device)
    if len(redo):
        where = torch.full((n_rows,), -1, dtype=torch.int64, device=scores.device)
        where[redo] = torch.arange(len(redo), device=scores.device)
        for begin in range(0, len(redo), exact_rows):
            group = redo[begin : begin + exact_rows]
            keep = (where[rows] >= begin) & (where[rows] < begin + len(group))
            ranked[group] = _rank_exactly(scores[group], where[rows[keep]] - begin, cols[keep], min(top, n_items))
    return ranked


def _order_keys(scores: torch.Tensor) -> torch.Tensor:
    """int64 keys that order ``scores`` as floats do (``-0.0`` equal to ``0.0``), with NaN below ``-inf``."""
    scores = scores + 0.0  # -0.0 + 0.0 is +0.0: one key for zero
    if scores.dtype == torch.float64:
        bits = scores.view(torch.int64)
        keys = torch.where(bits < 0, bits ^ _INT64_MAX, bits)
        lowest = -1 - 0x7FF0000000000000  # the key of -inf
    else:
        bits32 = scores.view(torch.int32)
        keys = torch.where(bits32 < 0, bits32 ^ 0x7FFFFFFF, bits32).to(torch.int64)
        lowest = -1 - 0x7F800000
    return keys.masked_fill_(torch.isnan(scores), lowest - 1)


def _rank_exactly(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, width: int) -> torch.Tensor:
    """Each row's top ``width`` items by (key descending, item ascending), ties at the cut included exactly."""
    keys = _order_keys(scores)
    keys.index_put_((rows, cols), torch.tensor(_INT64_MIN, device=keys.device))
    cut = torch.topk(keys, width, dim=1).values[:, -1:]
    above = keys > cut
    at_cut = keys == cut
    needed = width - above.sum(1, keepdim=True)
    chosen = above | (at_cut & (torch.cumsum(at_cut, 1) <= needed))
    items = torch.nonzero(chosen)[:, 1].view(len(keys), width)  # ascending item order within each row
    order = torch.sort(torch.gather(keys, 1, items), dim=1, descending=True, stable=True).indices
    return torch.gather(items, 1, order)


class _Tally:
    """Running float64 sums of each requested metric over the users seen, and the items each coverage@k saw."""

    def __init__(self, wanted: list[tuple[str, int]], width: int, n_items: int, device: torch.device):
        self.wanted = wanted
        self.n_items = n_items
        rank = torch.arange(1, width + 1, dtype=torch.float64, device=device)
        self.rank = rank
        self.discount = 1.0 / torch.log2(rank + 1.0)
        self.ideal = torch.cumsum(self.discount, 0)
        self.sums = {request: torch.zeros((), dtype=torch.float64, device=device) for request in wanted}
        self.seen = {k: torch.zeros(n_items, dtype=torch.bool, device=device) for metric, k in wanted if metric == "coverage"}

    def add(self, ranked: torch.Tensor, listed: torch.Tensor, relevant: torch.Tensor, n_relevant: torch.Tensor) -> None:
        rel = relevant.to(torch.float64)
        for (metric, k), total in self.sums.items():
            depth = min(k, rel.shape[1])
            if metric == "coverage":
                self.seen[k][ranked[:, :depth][listed[:, :depth]]] = True
                continue
            top = rel[:, :depth]
            hits = top.sum(1)
            if metric == "recall":
                value = hits / n_relevant
            elif metric == "precision":
                value = hits / k
            elif metric == "ndcg":
                value = (top * self.discount[:depth]).sum(1) / self.ideal[torch.clamp(n_relevant, max=k) - 1]
            elif metric == "map":
                precision_at = torch.cumsum(top, 1) / self.rank[:depth]
                value = (precision_at * top).sum(1) / torch.clamp(n_relevant, max=k)
            elif metric == "mrr":
                first = torch.argmax(top, 1) if depth else torch.zeros_like(hits, dtype=torch.int64)
                value = torch.where(hits > 0, 1.0 / (first + 1).to(torch.float64), 0.0)
            else:  # hit
                value = (hits > 0).to(torch.float64)
            total += value.sum()

    def means(self, n_users: int) -> dict[str, float]:
        out = {}
        for metric, k in self.wanted:
            if n_users == 0:
                out[f"{metric}@{k}"] = math.nan
            elif metric == "coverage":
                out[f"{metric}@{k}"] = int(self.seen[k].sum()) / self.n_items
            else:
                out[f"{metric}@{k}"] = float(self.sums[(metric, k)]) / n_users
        return out
