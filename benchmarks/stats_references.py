"""Where the reference numbers in tests/test_stats_seeds.py and tests/test_stats_across_workloads.py come from.

The tests hard-code what statsmodels, autorank and rliable compute for fixed inputs, so the project's
tests need none of them. To compute the numbers again, in a virtual environment of its own (rliable 1.2.0
needs arch 7.2 and pandas < 3):

    python3 -m venv /tmp/refs && /tmp/refs/bin/pip install statsmodels==0.15.0 autorank==1.3.0 \
        rliable==1.2.0 arch==7.2.0 'pandas<3' scipy numpy
    /tmp/refs/bin/python benchmarks/stats_references.py > refs.json

and compare with the numbers in the tests.
"""

import json

import numpy as np
import pandas as pd
import statsmodels
from autorank import autorank as ar
from autorank._util import get_sorted_rank_groups
from rliable import library as rly, metrics
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

out = {"versions": {"statsmodels": statsmodels.__version__, "autorank": "1.3.0", "rliable": "1.2.0", "numpy": np.__version__}}
P1 = [0.01, 0.04, 0.03, 0.005, 0.20, 0.04]
P2 = [0.001, 0.5, 0.02]
for name, p in (("P1", P1), ("P2", P2)):
    out[name] = {m: list(multipletests(p, method=m)[1]) for m in ("holm", "fdr_bh")}
out["wilson"] = {
    f"{k}/{n}": list(proportion_confint(k, n, alpha=0.05, method="wilson")) for k, n in [(3, 5), (0, 5), (5, 5), (1, 1), (7, 20)]
}

# Friedman / Nemenyi: 10 workloads x 5 strategies, lower is better
M = [
    [1.00, 1.10, 1.30, 2.00, 1.05],
    [0.90, 1.20, 1.10, 1.80, 1.00],
    [1.20, 1.15, 1.40, 2.20, 1.25],
    [0.80, 1.00, 1.20, 1.90, 0.95],
    [1.10, 1.30, 1.20, 2.10, 1.00],
    [0.95, 1.05, 1.50, 1.70, 1.10],
    [1.00, 1.20, 1.10, 2.30, 1.15],
    [0.85, 0.90, 1.30, 1.60, 0.88],
    [1.05, 1.25, 1.35, 1.95, 1.02],
    [0.99, 1.10, 1.25, 2.05, 1.20],
]
cols = ["als", "numba", "vectorized", "surprise", "native"]
df = pd.DataFrame(M, columns=cols)
res = ar(df, alpha=0.05, order="ascending", force_mode="nonparametric", verbose=False)
sorted_ranks, names, groups = get_sorted_rank_groups(res, reverse=False)
out["autorank"] = {
    "omnibus": res.omnibus,
    "posthoc": res.posthoc,
    "pvalue": float(res.pvalue),
    "cd": float(res.cd),
    "meanrank": {k: float(v) for k, v in res.rankdf.meanrank.items()},
    "groups": [[names[i] for i in range(a, b + 1)] for a, b in groups],
}

# rliable: scores (num_runs x num_tasks), higher is better as rliable assumes
X = np.array([[0.9, 1.4, 0.3], [1.1, 1.2, 0.5], [0.7, 1.9, 0.2], [1.3, 1.1, 0.6], [0.8, 1.5, 0.4]])
Y = np.array([[0.8, 1.0, 0.35], [0.9, 1.3, 0.1], [0.6, 1.2, 0.3], [1.0, 0.9, 0.5], [0.7, 1.1, 0.25]])
np.random.seed(0)
pe, ie = rly.get_interval_estimates({"x": X}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=50000)
out["rliable_iqm"] = {"estimate": float(pe["x"][0]), "low": float(ie["x"][0][0]), "high": float(ie["x"][1][0])}
np.random.seed(0)
pe, ie = rly.get_interval_estimates(
    {"x,y": (X, Y)}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=50000
)
out["rliable_poi"] = {"estimate": float(pe["x,y"][0]), "low": float(ie["x,y"][0][0]), "high": float(ie["x,y"][1][0])}
print(json.dumps(out, indent=1))
