"""Top-N ranking metrics over the full item catalog (``mfbench.metrics.ranking`` computes them).

For each user with held-out items, every item the user has not interacted with in the data the
model saw (training; for the test set, validation too) is scored and the top ``k`` are ranked:
sampled candidate sets are known to mislead (Krichene and Rendle, 2020). Every held-out item is
relevant (on ratings made implicit with ``--implicit``, the positives). The definitions, the tie
rule and what happens to users without held-out items are in ``mfbench.metrics.ranking``; all the
ranking metrics of one evaluation share one ranking pass.
"""

from __future__ import annotations

import mfbench

#: The cut-off when a selection does not give one.
DEFAULT_K = 10


class RankingMetric(mfbench.Metric):
    """What the built-in ranking metrics share: a cut-off ``k``, higher is better, the shared pass."""

    params = {"k": DEFAULT_K}
    constraints = {"k": ">= 1"}
    direction = "higher"
    ranking = True
    #: How tables name the measure (``NDCG`` in ``NDCG@10``).
    label = ""

    def title(self) -> str:
        return f"{self.label}@{self.params['k']}"


class Recall(RankingMetric):
    """Recall@k: the share of a user's held-out items in the top k."""

    name = measure = "recall"
    label = "Recall"


class Precision(RankingMetric):
    """Precision@k: the share of the top k that are held-out items."""

    name = measure = "precision"
    label = "Precision"


class NDCG(RankingMetric):
    """NDCG@k: discounted gain of the hits in the top k over the best possible."""

    name = measure = "ndcg"
    label = "NDCG"


class MAP(RankingMetric):
    """MAP@k: mean over a user's possible hits of the precision at each hit's rank."""

    name = measure = "map"
    label = "MAP"


class MRR(RankingMetric):
    """MRR@k: the reciprocal rank of the first hit in the top k (0 without one)."""

    name = measure = "mrr"
    label = "MRR"


class Hit(RankingMetric):
    """Hit@k: 1 when the top k holds any held-out item."""

    name = measure = "hit"
    label = "Hit"


class Coverage(RankingMetric):
    """Coverage@k: the share of the catalog in at least one evaluated user's top k."""

    name = measure = "coverage"
    label = "Coverage"


METRICS = (Recall, Precision, NDCG, MAP, MRR, Hit, Coverage)


@mfbench.hookimpl
def mfbench_register_metrics(register):
    for metric in METRICS:
        register(metric)
