"""The implicit-feedback strategies bpr, ials and popularity: what each computes, and that they rank a planted signal.

The planted problem: users fall in clusters, each cluster prefers its own group of items, and
item popularity is skewed (Zipf), so popularity alone already ranks better than chance and a
personalized model should rank clearly better still. Quality is judged as the evaluation code
will judge it, by ranking score ``<p_u, q_i> + b_i``: the AUC of held-out positives against
items the user never interacted with.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import mfbench
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.registry import collect
from mfbench.plugins.strategies.bpr import BPR, NEGATIVE_STREAM, unseen_item
from mfbench.plugins.strategies.ials import IALS
from mfbench.plugins.strategies.popularity import Popularity
from mfbench.run.plan import plan
from mfbench.run.runner import Runner
from mfbench.run.settings import RunConfig

MODULES = ["mfbench.plugins.strategies.bpr", "mfbench.plugins.strategies.ials", "mfbench.plugins.strategies.popularity"]
#: The L2 that suits the planted problem (a few thousand positives, 8 factors); the defaults are sized for real data.
PLANTED_PARAMS = {"bpr": {}, "ials": {"reg": 20.0, "alpha": 3.0}}


def clustered(seed: int = 0, n_users: int = 400, n_items: int = 240, groups: int = 4, per_user: int = 15) -> mfbench.Ratings:
    """Implicit data (values 1.0): 85% of each user's items from the user's cluster's item group, popular ones likelier."""
    rng = np.random.default_rng(seed)
    user_group = rng.integers(0, groups, n_users)
    item_group = rng.permutation(np.arange(n_items) % groups)
    weight = 1.0 / (1.0 + rng.permutation(n_items))  # Zipf popularity over a random item order
    users, items = [], []
    for u in range(n_users):
        off_cluster = rng.binomial(per_user, 0.15)
        for mask, m in ((item_group == user_group[u], per_user - off_cluster), (item_group != user_group[u], off_cluster)):
            candidates = np.flatnonzero(mask)
            items += list(rng.choice(candidates, m, replace=False, p=weight[candidates] / weight[candidates].sum()))
            users += [u] * m
    return mfbench.Ratings.from_arrays(users, items, np.ones(len(users)), n_users, n_items)


def score_matrix(model: nn.Module, n_users: int, n_items: int) -> np.ndarray:
    """The model's ranking score for every pair: its prediction less what shifts a user's items alike."""
    with torch.no_grad():
        users, items = torch.meshgrid(torch.arange(n_users), torch.arange(n_items), indexing="ij")
        users = users.reshape(-1).to(model.user_factors.weight.device)
        items = items.reshape(-1).to(users.device)
        scores = model(users, items)
        if hasattr(model, "user_bias"):
            scores = scores - model.global_mean - model.user_bias(users).squeeze(1)
    return scores.double().cpu().numpy().reshape(n_users, n_items)


def held_out_auc(model: nn.Module, train: mfbench.Ratings, test: mfbench.Ratings, draws: int = 50) -> float:
    """How often a held-out positive outscores an item the user never interacted with (ties count half)."""
    scores = score_matrix(model, train.n_users, train.n_items)
    seen = np.zeros_like(scores, dtype=bool)
    for part in (train, test):
        seen[part.users.numpy(), part.items.numpy()] = True
    users, items = test.users.numpy(), test.items.numpy()
    negatives = np.random.default_rng(0).integers(0, train.n_items, (len(users), draws))
    valid = ~seen[users[:, None], negatives]
    positive, negative = scores[users, items][:, None], scores[users[:, None], negatives]
    wins = (positive > negative) + 0.5 * (positive == negative)
    return float(wins[valid].mean())


@pytest.fixture(scope="module")
def planted_split() -> tuple[mfbench.Ratings, mfbench.Ratings]:
    return clustered().split(0.2, 0)


def small_model(kind: str, train: mfbench.Ratings, seed: int = 0) -> nn.Module:
    return testing.build_model(kind, train, seed=seed, n_factors=8, init_std=0.1)


# --- ranking the planted signal --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_bpr_and_ials_rank_the_planted_signal_far_better_than_popularity_and_chance(planted_split, kind):
    train, test = planted_split
    untrained = small_model(kind, train)
    chance = held_out_auc(untrained, train, test)
    popular = small_model(kind, train)
    testing.fit(Popularity, popular, train, 1)
    by_popularity = held_out_auc(popular, train, test)
    assert abs(chance - 0.5) < 0.05
    assert by_popularity > chance + 0.15, (chance, by_popularity)
    for cls, epochs in ((BPR, 20), (IALS, 8)):
        model = small_model(kind, train)
        result = testing.fit(cls, model, train, epochs, params=PLANTED_PARAMS[cls.name], seed=1)
        assert all(math.isfinite(loss) for loss in result.losses)
        auc = held_out_auc(model, train, test)
        assert auc > by_popularity + 0.1 and auc > 0.83, (cls.name, kind, auc, by_popularity)


def test_every_strategy_runs_its_cases_through_the_runner():
    pm = mfbench.make_plugin_manager(MODULES, entry_points=False, env=False)
    config = RunConfig(epochs=2, repeats=1, warmup=0)
    cases = plan(
        collect(pm),
        [testing.TINY_DATASET],
        ["dot[n_factors=4]", "biased[n_factors=4]"],
        ["bpr", "ials", "popularity"],
        ["cpu"],
        config,
    )
    records = Runner(config).run(cases)
    assert len(records) == 6
    for record in records:
        assert record["status"] == "ok", record.get("traceback", record.get("reason"))
        assert record["strategy"]["objective"] == "implicit"


def test_bad_params_are_refused_while_planning():
    pm = mfbench.make_plugin_manager(MODULES, entry_points=False, env=False)
    bad = ["bpr[lr=0,reg=-1,lr_decay=-0.5]", "ials[reg=0,alpha=-1,chunk=0]"]
    with pytest.raises(mfbench.SelectionError) as raised:
        plan(collect(pm), [testing.TINY_DATASET], ["dot"], bad, ["cpu"], RunConfig())
    message = str(raised.value)
    for line in (
        "'bpr': lr=0.0",
        "'bpr': reg=-1.0",
        "'bpr': lr_decay=-0.5",
        "'ials': reg=0.0",
        "'ials': alpha=-1.0",
        "'ials': chunk=0",
    ):
        assert line in message, message
    for cls in (BPR, IALS, Popularity):
        assert cls.check_params(cls.resolve_params({})) == []


def test_what_each_strategy_declares():
    for cls in (BPR, IALS, Popularity):
        assert cls.objective == "implicit" and cls.deterministic and not cls.exact
    assert BPR.devices == ("cpu",) and set(IALS.devices) == set(Popularity.devices) == {"cpu", "cuda"}
    assert set(BPR.search_space) == {"lr", "reg", "lr_decay"} and set(IALS.search_space) == {"reg", "alpha"}
    assert Popularity.params == {} and Popularity.search_space == {}
    train = testing.tiny_ratings()
    assert "cpu" in BPR().skip(small_model("dot", train), torch.device("cuda"))


# --- bpr ---------------------------------------------------------------------------------------------


def splitmix64(state: int):
    """The negatives' stream, written again in plain Python."""
    mask = (1 << 64) - 1
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def hand_written_bpr(model: nn.Module, train: mfbench.Ratings, epochs: int, seed: int, lr: float, reg: float) -> None:
    """BPR in plain Python, float64, in place: each negative the r-th item (by id) the user never interacted with."""
    P, Q = model.user_factors.weight.detach(), model.item_factors.weight.detach()
    bias = model.item_bias.weight.detach()[:, 0] if hasattr(model, "item_bias") else None
    users, items = train.users.tolist(), train.items.tolist()
    seen: dict[int, set[int]] = {}
    for u, i in zip(users, items, strict=True):
        seen.setdefault(u, set()).add(i)
    unseen = {u: sorted(set(range(train.n_items)) - s) for u, s in seen.items()}
    for epoch in range(epochs):
        state = int(np.random.SeedSequence([seed, epoch, NEGATIVE_STREAM]).generate_state(1, dtype=np.uint64)[0])
        draws = splitmix64(state)
        decay = 1.0 - 2.0 * lr * reg
        for t in mfbench.epoch_permutation(len(train), seed, epoch).tolist():
            u, i = users[t], items[t]
            free = unseen[u]
            if not free:
                continue
            r = min(int(float(next(draws) >> 11) * 2.0**-53 * len(free)), len(free) - 1)
            j = free[r]
            p, qi, qj = P[u].double().clone(), Q[i].double().clone(), Q[j].double().clone()
            x = float(p @ (qi - qj)) + (float(bias[i]) - float(bias[j]) if bias is not None else 0.0)
            step = lr / (1.0 + math.exp(x))
            P[u] = (decay * p + step * (qi - qj)).to(P.dtype)
            Q[i] = (decay * qi + step * p).to(Q.dtype)
            Q[j] = (decay * qj - step * p).to(Q.dtype)
            if bias is not None:
                bias[i], bias[j] = decay * float(bias[i]) + step, decay * float(bias[j]) - step


@pytest.mark.parametrize(
    ("kind", "dtype", "atol"), [("dot", torch.float64, 1e-12), ("biased", torch.float64, 1e-12), ("biased", torch.float32, 2e-5)]
)
def test_bpr_steps_exactly_as_written_with_its_order_and_negatives(kind, dtype, atol):
    train = testing.tiny_ratings(n_users=12, n_items=9, nnz=60)
    start = testing.model_off_zero(kind, train).to(dtype)
    expected, actual = copy.deepcopy(start), copy.deepcopy(start)
    hand_written_bpr(expected, train, epochs=2, seed=5, lr=0.1, reg=0.01)
    result = testing.fit(BPR, actual, train, 2, params={"lr": 0.1, "reg": 0.01}, seed=5)
    testing.assert_same_state(result.model, expected, start, atol)
    if kind == "biased":  # the user bias and the global mean do not rank: left as they were
        assert torch.equal(actual.user_bias.weight, start.user_bias.weight)
        assert torch.equal(actual.global_mean, start.global_mean)


def test_the_rank_of_an_unseen_item_maps_to_that_item():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n_items = int(rng.integers(1, 30))
        seen = np.sort(rng.choice(n_items, int(rng.integers(0, n_items + 1)), replace=False))
        padded = np.concatenate([[7, 7], seen])  # the user's row starts at offset 2 of the CSR
        missing = sorted(set(range(n_items)) - set(seen.tolist()))
        assert [unseen_item(padded, 2, len(padded), r) for r in range(len(missing))] == missing


def test_bpr_repeats_itself_bit_for_bit_and_changes_with_the_seed(planted_split):
    train, _ = planted_split
    states = {}
    for run, seed in (("a", 3), ("b", 3), ("c", 4)):
        model = small_model("biased", train)
        result = testing.fit(BPR, model, train, 2, seed=seed)
        states[run] = (result.losses, {k: v.clone() for k, v in model.state_dict().items()})
    assert states["a"][0] == states["b"][0]
    assert all(torch.equal(states["a"][1][k], states["b"][1][k]) for k in states["a"][1])
    assert states["a"][0] != states["c"][0]
    assert not torch.equal(states["a"][1]["item_factors.weight"], states["c"][1]["item_factors.weight"])


def test_bpr_skips_a_user_who_interacted_with_every_item():
    # user 0 has every item (one twice), user 1 two of them
    train = mfbench.Ratings.from_arrays([0, 0, 0, 0, 0, 1, 1], [0, 1, 2, 3, 3, 0, 2], np.ones(7), 2, 4)
    model = small_model("dot", train)
    before = model.user_factors.weight.detach().clone()
    strategy = BPR()
    result = testing.fit(strategy, model, train, 3)
    after = model.user_factors.weight.detach()
    assert torch.equal(after[0], before[0]) and not torch.equal(after[1], before[1])
    assert result.info["users_without_negatives"] == 1 and result.info["positives_skipped_per_epoch"] == 5
    assert all(loss is not None and math.isfinite(loss) for loss in result.losses)
    only_item = mfbench.Ratings.from_arrays([0, 1], [0, 0], np.ones(2), 2, 1)
    assert testing.fit(BPR, small_model("dot", only_item), only_item, 1).losses == [None]


def test_bpr_loss_is_the_mean_negative_log_likelihood_and_falls(planted_split):
    train, _ = planted_split
    result = testing.fit(BPR, small_model("dot", train, seed=2), train, 12, seed=2)
    assert abs(result.losses[0] - math.log(2.0)) < 0.02  # near-zero factors: x ~ 0, -ln sigma(0) = ln 2
    assert all(later < earlier for earlier, later in zip(result.losses, result.losses[1:], strict=False))
    assert result.losses[-1] < 0.6 * result.losses[0]


# --- ials --------------------------------------------------------------------------------------------


def implicit_problem() -> mfbench.Ratings:
    """7 users x 6 items; user 6 and item 5 have no pair, (0, 1) is listed twice, (2, 3) has value 0."""
    users = [0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 4, 5, 5, 0]
    items = [0, 1, 2, 1, 3, 0, 3, 2, 3, 4, 4, 0, 1, 1]
    values = [1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 0.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 0.5]
    return mfbench.Ratings.from_arrays(users, items, values, 7, 6)


def dense_problem(train: mfbench.Ratings, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, preference) of every pair, as Hu et al. define them."""
    values = np.zeros((train.n_users, train.n_items))
    np.add.at(values, (train.users.numpy(), train.items.numpy()), train.values.numpy().astype(np.float64))
    preference = (values > 0).astype(np.float64)
    return 1.0 + alpha * values * preference, preference


def dense_solve(fixed: np.ndarray, confidence: np.ndarray, preference: np.ndarray, reg: float) -> np.ndarray:
    """Each row's exact minimizer of sum_j c_j (p_j - <x, y_j>)^2 + reg ||x||^2, with the dense weights."""
    k = fixed.shape[1]
    rows = []
    for c, p in zip(confidence, preference, strict=True):
        system = fixed.T @ (c[:, None] * fixed) + reg * np.eye(k)
        rows.append(np.linalg.solve(system, fixed.T @ (c * p)))
    return np.array(rows)


def dense_objective(P, Q, confidence, preference, reg) -> float:
    return float((confidence * (preference - P @ Q.T) ** 2).sum() + reg * ((P**2).sum() + (Q**2).sum()))


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize("chunk", [262144, 3])
def test_ials_half_steps_solve_the_full_objective_exactly(dtype, atol, chunk):
    train = implicit_problem()
    reg, alpha = 0.5, 2.0
    model = testing.build_model("dot", train, n_factors=3, init_std=0.5).to(dtype)
    Q0 = model.item_factors.weight.detach().double().numpy().copy()
    result = testing.fit(IALS, model, train, 1, params={"reg": reg, "alpha": alpha, "chunk": chunk})
    P1 = model.user_factors.weight.detach().double().numpy()
    Q1 = model.item_factors.weight.detach().double().numpy()
    confidence, preference = dense_problem(train, alpha)
    np.testing.assert_allclose(P1, dense_solve(Q0, confidence, preference, reg), rtol=0, atol=atol)
    np.testing.assert_allclose(Q1, dense_solve(P1, confidence.T, preference.T, reg), rtol=0, atol=atol)
    assert not P1[6].any() and not Q1[5].any()  # no observed pair: the ridge minimizer, zero
    n_observed = int(preference.sum())
    objective = dense_objective(P1, Q1, confidence, preference, reg) / n_observed
    assert result.losses[0] == pytest.approx(objective, rel=atol)


def test_ials_lowers_its_objective_every_epoch_and_keeps_biases_at_zero(planted_split):
    train, _ = planted_split
    model = testing.model_off_zero("biased", train, k=8)
    mean = model.global_mean.clone()
    result = testing.fit(IALS, model, train, 4, params=PLANTED_PARAMS["ials"])
    assert all(later < earlier for earlier, later in zip(result.losses, result.losses[1:], strict=False))
    assert not model.user_bias.weight.any() and not model.item_bias.weight.any()
    assert torch.equal(model.global_mean, mean)


def test_ials_repeats_itself_on_cpu(planted_split):
    train, _ = planted_split
    models = [small_model("dot", train) for _ in range(2)]
    for model in models:
        testing.fit(IALS, model, train, 2, params={"chunk": 500})
    assert all(torch.equal(a, b) for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values(), strict=True))


# --- popularity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dot", "biased"])
def test_popularity_ranks_every_user_by_the_training_counts(kind):
    rng = np.random.default_rng(4)
    users = rng.integers(0, 30, 400)
    items = np.minimum(rng.zipf(1.6, 400) - 1, 24)  # skewed, with ties and items never seen
    train = mfbench.Ratings.from_arrays(users, items, rng.random(400) * 5, 30, 25)
    counts = np.bincount(items, minlength=25)
    model = testing.model_off_zero(kind, train)
    strategy = Popularity()
    result = testing.fit(strategy, model, train, 3)
    assert result.losses == [None, None, None]
    scores = score_matrix(model, 30, 25)
    # float32: the biased model adds the global mean and the user bias, which the score takes off again
    np.testing.assert_allclose(scores, np.broadcast_to(counts / counts.max(), scores.shape), rtol=0, atol=1e-6)
    by_count = np.argsort(-counts, kind="stable")
    for row in scores:
        assert np.array_equal(np.argsort(-row, kind="stable"), by_count)
    weights = model.user_factors.weight.detach()
    assert (weights[:, 0] == 1).all() and not weights[:, 1:].any() if kind == "dot" else not weights.any()


def test_popularity_counts_in_its_first_epoch_only():
    train = testing.tiny_ratings()
    model = small_model("dot", train)
    strategy = Popularity()
    strategy.setup(model, train, torch.device("cpu"), 0)
    start = model.item_factors.weight.detach().clone()
    strategy.run_epoch(0)
    trained = model.item_factors.weight.detach().clone()
    assert not torch.equal(start, trained)
    with torch.no_grad():
        model.item_factors.weight.fill_(7.0)
    strategy.run_epoch(1)  # nothing to do: the tables keep whatever they hold
    assert (model.item_factors.weight == 7.0).all()
    strategy.teardown()


def test_popularity_without_training_entries_scores_every_item_zero():
    empty = mfbench.Ratings.from_arrays([], [], [], 3, 4)
    model = small_model("biased", empty)
    testing.fit(Popularity, model, empty, 1)
    assert not score_matrix(model, 3, 4).any()


# --- on a GPU (marked cuda: benchmarks/gpu_check.sh runs these) --------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@needs_cuda
def test_ials_and_popularity_on_cuda_agree_with_the_cpu(planted_split):
    train, _ = planted_split
    for cls, params in ((IALS, PLANTED_PARAMS["ials"]), (Popularity, {})):
        cpu, gpu = small_model("biased", train), small_model("biased", train)
        testing.fit(cls, cpu, train, 3, params=params)
        testing.fit(cls, gpu, train, 3, params=params, device="cuda")
        for (name, want), got in zip(cpu.state_dict().items(), gpu.state_dict().values(), strict=True):
            torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-4, msg=f"{cls.name} {name}")
