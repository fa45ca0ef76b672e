"""Peer-library strategies: surprise-svd, libmf, implicit-als.

Each test asks for its library with ``pytest.importorskip``, so the suite passes
where a peer is not installed; the unavailable path is tested by hiding the
library from ``import`` and reloading the plugin module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import time
from importlib import metadata

import numpy as np
import pytest
import torch
from torch import nn

import mfbench
from mfbench.errors import SelectionError
from mfbench.plugin import contract_checks as testing
from mfbench.plugin.contract_checks import TINY_DATASET as TINY
from mfbench.plugin.registry import collect
from mfbench.run.plan import RunConfig, plan
from mfbench.run.runner import Runner

#: strategy name -> (plugin module, module to import, distribution)
PEERS = {
    "surprise-svd": ("mfbench.plugins.peers.surprise_svd", "surprise", "scikit-surprise"),
    "libmf": ("mfbench.plugins.peers.libmf", "libmf", "libmf"),
    "implicit-als": ("mfbench.plugins.peers.implicit_als", "implicit", "implicit"),
}
DATA = "lowrank[n_users=120,n_items=80,nnz=3000]"
CPU = torch.device("cpu")


def plugin(name):
    """The peer's plugin module, skipping the test when its library is missing."""
    module, library, _ = PEERS[name]
    pytest.importorskip(library)
    return importlib.import_module(module)


def peer_class(name):
    module = plugin(name)
    return {"surprise-svd": "SurpriseSVD", "libmf": "LibMF", "implicit-als": "ImplicitALS"}[name], module


def cls_of(name):
    attr, module = peer_class(name)
    return getattr(module, attr)


def small_problem(model="dot", seed=0, **params):
    train, test = testing.planted_split(seed, n_users=120, n_items=80, nnz=3000)
    defaults = {"dot": {"n_factors": 4, "init_std": 0.1}, "biased": {"n_factors": 4}}[model]
    net = testing.build_model(model, train, **{**defaults, **params})
    return net, train, test


def run_peer(name, models, **config):
    module = PEERS[name][0]
    pm = mfbench.make_plugin_manager([module], entry_points=False, env=False)
    cfg = RunConfig(**{"epochs": 2, "repeats": 1, "warmup": 0, **config})
    cases = plan(collect(pm), [DATA], list(models), [name], ["cpu"], cfg)
    return Runner(cfg).run(cases)


# --- through the runner ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_trains_through_the_runner_and_records_its_version(name):
    plugin(name)
    records = run_peer(name, ["dot[n_factors=4,init_std=0.1]", "biased[n_factors=4]"])
    by_model = {r["model"]["name"]: r for r in records}
    dot = by_model["dot"]
    assert dot["status"] == "ok", dot.get("traceback", dot["reason"])
    info = dot["repeats"][0]["info"]
    assert info["library"] == PEERS[name][2]
    assert info["version"] == metadata.version(PEERS[name][2])
    epochs = dot["repeats"][0]["epochs"]
    if name == "implicit-als":  # stepwise: one timed entry per ALS iteration
        assert [e["epoch"] for e in epochs] == [0, 1]
        assert dot["strategy"]["objective"] == "implicit"
        assert "whole_fit" not in dot["summary"]
    else:  # one timed whole fit covering both epochs, and said so
        assert len(epochs) == 1 and epochs[0]["epochs_covered"] == 2
        assert info["whole_fit"] is True and dot["summary"]["whole_fit"] is True
        assert dot["summary"]["final_test_rmse"] < dot["repeats"][0]["initial"]["test_rmse"]
    biased = by_model["biased"]
    if name == "surprise-svd":
        assert biased["status"] == "ok", biased.get("traceback", biased["reason"])
    else:
        assert biased["status"] == "skipped"
        assert "no user or item biases" in biased["reason"]


def test_threaded_peers_scale_with_threads():
    for name in ("libmf", "implicit-als"):
        cls = cls_of(name)
        assert cls.scales_with == "threads" and "threads" in cls.params
    assert "threads" not in cls_of("surprise-svd").params  # Surprise is single-threaded


# --- the copied model predicts what the library predicts ---------------------------------------


def rated_pairs(train, test):
    """Held-out pairs whose user and item both have training ratings (the library knows them)."""
    known_u = torch.zeros(train.n_users, dtype=torch.bool)
    known_i = torch.zeros(train.n_items, dtype=torch.bool)
    known_u[train.users] = True
    known_i[train.items] = True
    keep = known_u[test.users] & known_i[test.items]
    return test.users[keep][:50], test.items[keep][:50]


@pytest.mark.parametrize("model", ["biased", "dot"])
def test_surprise_copy_predicts_what_surprise_estimates(model):
    cls = cls_of("surprise-svd")
    net, train, test = small_problem(model)
    strategy = cls()
    strategy.setup(net, train, CPU, 5)
    try:
        strategy.fit(3)
        users, items = rated_pairs(train, test)
        with torch.no_grad():
            ours = net(users, items).double().numpy()
        # estimate() is Surprise's unclipped prediction (predict() clips to the rating scale).
        theirs = np.array([strategy.algo.estimate(int(u), int(i)) for u, i in zip(users, items, strict=True)])
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
        if model == "biased":  # both predict around the model's own global mean
            assert strategy.trainset.global_mean == pytest.approx(float(net.global_mean))
    finally:
        strategy.teardown()


def test_libmf_copy_predicts_what_libmf_predicts_and_its_predict_needs_column_major_input():
    cls = cls_of("libmf")
    net, train, test = small_problem("dot")
    strategy = cls()
    strategy.setup(net, train, CPU, 0)
    try:
        strategy.fit(5)
        users, items = rated_pairs(train, test)
        with torch.no_grad():
            ours = net(users, items).numpy()
        theirs = strategy.predict(users.numpy(), items.numpy())
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
        # The bindings' predict() with the (n, 2) C-ordered array its docstring asks for pairs the
        # wrong users and items: its C side reads the buffer column-major.
        as_documented = strategy.mf.predict(np.column_stack([users.numpy(), items.numpy()]))
        assert np.abs(as_documented - ours).max() > 0.1
    finally:
        strategy.teardown()


def test_libmf_leaves_rows_it_did_not_train_to_the_model():
    cls = cls_of("libmf")
    net, train, _ = small_problem("dot")
    # User 3 and the last user (above LIBMF's largest index) lose their ratings; so does item 5.
    keep = (train.users != 3) & (train.users != train.n_users - 1) & (train.items != 5)
    train = train.subset(torch.nonzero(keep).squeeze(1))
    before = {name: getattr(net, name).weight.detach().clone() for name in ("user_factors", "item_factors")}
    strategy = cls()
    strategy.setup(net, train, CPU, 0)
    try:
        strategy.fit(3)
        users, items = net.user_factors.weight.detach(), net.item_factors.weight.detach()
        assert torch.isfinite(users).all() and torch.isfinite(items).all()
        for row in (3, train.n_users - 1):
            assert torch.equal(users[row], before["user_factors"][row])
        assert torch.equal(items[5], before["item_factors"][5])
        assert not torch.equal(users[0], before["user_factors"][0])
        assert strategy.trained_rows == (train.n_users - 2, train.n_items - 1)
    finally:
        strategy.teardown()


def test_implicit_copy_scores_what_implicit_recommends():
    cls = cls_of("implicit-als")
    net, train, _ = small_problem("dot")
    strategy = cls()
    strategy.setup(net, train, CPU, 0)
    try:
        for epoch in range(2):
            strategy.run_epoch(epoch)
        user = int(train.users[0])
        ids, scores = strategy.als.recommend(user, strategy.user_items[user], N=train.n_items, filter_already_liked_items=False)
        with torch.no_grad():
            ours = net(torch.full((len(ids),), user), torch.as_tensor(ids, dtype=torch.int64)).numpy()
        np.testing.assert_allclose(ours, scores, rtol=1e-5, atol=1e-5)
        assert strategy.als.user_factors.shape == tuple(net.user_factors.weight.shape)
    finally:
        strategy.teardown()


# --- parameters reach the library as the library names them -------------------------------------


def test_libmf_gets_l2_not_its_bindings_l1_default():
    cls = cls_of("libmf")
    net, train, _ = small_problem("dot")
    strategy = cls(lr=0.2, reg=0.05, threads=2, bins=9)
    strategy.setup(net, train, CPU, 0)
    try:
        strategy.fit(2)
        passed = strategy.mf._options  # the ctypes struct LIBMF received
        assert passed.lambda_p1 == passed.lambda_q1 == 0.0
        assert passed.lambda_p2 == pytest.approx(0.05) and passed.lambda_q2 == pytest.approx(0.05)
        assert passed.eta == pytest.approx(0.2)
        assert (passed.nr_threads, passed.nr_bins, passed.nr_iters, passed.k) == (2, 9, 2, 4)
        assert passed.fun == 0 and not passed.do_nmf  # real-valued, squared error
        assert strategy.info()["library_options"]["lambda_p2"] == 0.05
    finally:
        strategy.teardown()


def test_surprise_gets_the_step_that_means_mfbench_lr():
    cls = cls_of("surprise-svd")
    net, train, _ = small_problem("dot")
    strategy = cls(lr=0.02, reg=0.03, init_std=0.2)
    strategy.setup(net, train, CPU, 7)
    try:
        strategy.fit(1)
        algo = strategy.algo
        assert algo.lr_pu == algo.lr_qi == pytest.approx(0.04)
        assert algo.reg_pu == algo.reg_qi == pytest.approx(0.03)
        assert (algo.n_factors, algo.n_epochs, algo.biased, algo.init_std_dev, algo.random_state) == (4, 1, False, 0.2, 7)
        assert algo.init_mean == pytest.approx(np.sqrt(train.mean() / 4))  # dot starts at the mean
    finally:
        strategy.teardown()


def test_surprise_epoch_is_the_reference_step_in_surprise_order():
    """lr_all = 2 lr, reg_all = reg: one Surprise epoch equals mfbench's per-rating SGD in its order."""
    cls = cls_of("surprise-svd")
    from mfbench.plugins.peers.surprise_svd import build_trainset

    net, train, _ = small_problem("biased")
    lr, reg = 0.01, 0.05
    strategy = cls(lr=lr, reg=reg)
    strategy.setup(net, train, CPU, 3)
    try:
        strategy.fit(1)
        trainset = build_trainset(train, float(net.global_mean))
        rng = np.random.RandomState(3)  # Surprise's draws: user factors, then item factors
        P = rng.normal(0.0, 0.1, (train.n_users, 4))
        Q = rng.normal(0.0, 0.1, (train.n_items, 4))
        bu, bi = np.zeros(train.n_users), np.zeros(train.n_items)
        mean = float(net.global_mean)
        for u, i, r in trainset.all_ratings():
            err = mean + bu[u] + bi[i] + P[u] @ Q[i] - r  # mfbench's sign: pred - r
            # SGD on (pred - r)^2 + reg (|p|^2 + |q|^2 + bu^2 + bi^2), rows from their pre-step values
            P[u], Q[i] = P[u] - lr * (2 * err * Q[i] + 2 * reg * P[u]), Q[i] - lr * (2 * err * P[u] + 2 * reg * Q[i])
            bu[u], bi[i] = bu[u] - lr * (2 * err + 2 * reg * bu[u]), bi[i] - lr * (2 * err + 2 * reg * bi[i])
        np.testing.assert_allclose(strategy.algo.pu, P, atol=1e-10)
        np.testing.assert_allclose(strategy.algo.qi, Q, atol=1e-10)
        np.testing.assert_allclose(strategy.algo.bu, bu, atol=1e-10)
    finally:
        strategy.teardown()


def test_surprise_trainset_uses_mfbench_indices_in_surprise_order():
    plugin("surprise-svd")
    from mfbench.plugins.peers.surprise_svd import build_trainset

    train = mfbench.Ratings.from_arrays([4, 1, 4, 0, 1], [2, 0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0, 5.0], n_users=6, n_items=5)
    trainset = build_trainset(train)
    assert list(trainset.all_ratings()) == [(4, 2, 1.0), (4, 1, 3.0), (1, 0, 2.0), (1, 3, 5.0), (0, 2, 4.0)]
    assert dict(trainset.ir) == {0: [(1, 2.0)], 1: [(4, 3.0)], 2: [(4, 1.0), (0, 4.0)], 3: [(1, 5.0)]}
    assert (trainset.n_users, trainset.n_items, trainset.n_ratings) == (6, 5, 5)
    assert trainset.global_mean == pytest.approx(3.0)
    assert trainset.to_inner_uid(4) == 4 and trainset.to_raw_iid(3) == 3
    assert not trainset.knows_user(5) and trainset.knows_item(3)


def test_implicit_gets_its_regularization_threads_and_the_model_width():
    cls = cls_of("implicit-als")
    net, train, _ = small_problem("dot")
    strategy = cls(reg=0.1, alpha=2.0, threads=2)
    strategy.setup(net, train, CPU, 0)
    try:
        als = strategy.als
        assert (als.regularization, als.alpha, als.num_threads, als.factors, als.iterations) == (0.1, 2.0, 2, 4, 1)
        assert "lr" not in cls.params  # ALS has no step size
        assert strategy.user_items.shape == (train.n_users, train.n_items)
        assert strategy.user_items.nnz == len(train)
    finally:
        strategy.teardown()


# --- stepping and determinism ------------------------------------------------------------------


def test_implicit_iterations_one_at_a_time_equal_one_fit():
    cls = cls_of("implicit-als")
    from implicit.cpu.als import AlternatingLeastSquares

    net, train, _ = small_problem("dot")
    strategy = cls()
    strategy.setup(net, train, CPU, 4)
    try:
        for epoch in range(3):
            strategy.run_epoch(epoch)
        whole = AlternatingLeastSquares(**{**strategy.options, "iterations": 3})
        whole.fit(strategy.user_items, show_progress=False)
        assert np.array_equal(whole.user_factors, net.user_factors.weight.detach().numpy())
        assert np.array_equal(whole.item_factors, net.item_factors.weight.detach().numpy())
        assert strategy.info()["iterations"] == 3
    finally:
        strategy.teardown()


def test_surprise_and_implicit_are_deterministic():
    testing.assert_deterministic(cls_of("surprise-svd"), "biased")
    testing.assert_deterministic(cls_of("surprise-svd"), "dot")
    testing.assert_deterministic(cls_of("implicit-als"), "dot")


def test_libmf_on_one_thread_repeats_itself():
    cls = cls_of("libmf")
    assert cls.deterministic is False  # more threads: the block schedule follows thread timing
    states = []
    for _ in range(2):
        net, train, _ = small_problem("dot")
        testing.fit(cls, net, train, 3, params={"threads": 1})
        states.append(net.user_factors.weight.detach().clone())
    assert torch.equal(states[0], states[1])


def test_libmf_frees_its_model_and_fits_again():
    cls = cls_of("libmf")
    net, train, _ = small_problem("dot")
    strategy = cls()
    strategy.setup(net, train, CPU, 0)
    try:
        strategy.fit(2)
        first = net.user_factors.weight.detach().clone()
        strategy.fit(2)  # frees the first LIBMF model, trains a fresh one from LIBMF's fixed start
        assert torch.equal(first, net.user_factors.weight.detach())
    finally:
        strategy.teardown()
    assert strategy.mf is None


# --- learning (the contract's check, with the epochs each needs) -------------------------------


@pytest.mark.parametrize(("name", "model"), [("surprise-svd", "biased"), ("surprise-svd", "dot"), ("libmf", "dot")])
def test_defaults_learn_planted_data_in_30_epochs_at_its_l2(name, model):
    """At the planted problem's L2, as the contract's check (test_strategy_contract.PLANTED_L2)."""
    testing.assert_learns(cls_of(name), model, max_epochs=30, params={"reg": 0.02})


def test_implicit_runs_but_does_not_learn_ratings():
    cls = cls_of("implicit-als")
    assert cls.objective == "implicit"
    net, train, test = small_problem("dot")
    result = testing.fit(cls, net, train, 2, test=test)
    assert len(result.test_rmse) == 2 and all(np.isfinite(result.test_rmse))


# --- what each peer declines -------------------------------------------------------------------


class NotMF(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 1)


@pytest.mark.parametrize("name", sorted(PEERS))
def test_skip_reasons(name):
    cls = cls_of(name)
    dot, _, _ = small_problem("dot")
    biased, _, _ = small_problem("biased")
    assert cls().skip(dot, CPU) is None
    assert "runs on cpu, not cuda" in cls().skip(dot, torch.device("cuda"))
    assert "nn.Embedding 'user_factors'" in cls().skip(NotMF(), CPU)
    if name == "surprise-svd":
        assert cls().skip(biased, CPU) is None
        assert cls.check_params(cls.resolve_params({"init_mean": "high"})) == [
            "strategy 'surprise-svd': init_mean must be a number or None (picked from the data), got 'high'"
        ]
        assert cls.check_params(cls.resolve_params({"init_mean": 0.5})) == []
    else:
        assert "dot model only" in cls().skip(biased, CPU)
    # A bad value is a planning error (every problem listed), never a skip when the case runs.
    bad = "alpha" if name == "implicit-als" else "lr"
    assert cls(**{bad: -1.0}).skip(dot, CPU) is None
    with pytest.raises(SelectionError, match=rf"strategy '{name}': {bad}=-1.0, must be positive"):
        plan(
            collect(mfbench.make_plugin_manager(entry_points=False, env=False)),
            [TINY],
            ["dot"],
            [f"{name}[{bad}=-1.0]"],
            ["cpu"],
            RunConfig(),
        )


# --- the unavailable path ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PEERS))
def test_missing_library_sets_the_peer_aside_with_the_reason(name, monkeypatch):
    module_name, library, distribution = PEERS[name]
    module = plugin(name)
    attr, _ = peer_class(name)
    # `import library` (and of any submodule already imported) now fails, as if it were not installed.
    for loaded in [library] + [key for key in sys.modules if key.startswith(library + ".")]:
        monkeypatch.setitem(sys.modules, loaded, None)
    try:
        importlib.reload(module)
        reason = getattr(module, attr).unavailable
        assert reason.startswith(f"{distribution} is not installed (pip install 'mfbench[peers]')")
        registry = collect(mfbench.make_plugin_manager([module_name], entry_points=False, env=False))
        assert name not in registry.strategies
        assert registry.unavailable["strategy"][name].cls.unavailable == reason
        with pytest.raises(SelectionError, match="is unavailable: " + distribution):
            registry.get(mfbench.Strategy, name)
    finally:
        monkeypatch.undo()
        importlib.reload(module)
    assert getattr(module, attr).unavailable is None


@pytest.mark.timing
def test_a_libmf_fit_that_never_returns_ends_as_a_timeout_and_errors_pass_through():
    pytest.importorskip("libmf")
    from mfbench.plugins.peers.libmf import LibmfHung, fit_within

    release = threading.Event()

    class Busy:  # never asleep: only the timeout can end it
        def fit(self, X):
            while not release.is_set():
                sum(range(1000))

    class Broken:
        def fit(self, X):
            raise ValueError("bad input")

    started = time.monotonic()
    with pytest.raises(mfbench.CaseTimeout, match="did not return within call_timeout=0.2 s"):
        fit_within(Busy(), None, 0.2, stall=60)
    assert time.monotonic() - started < 5
    release.set()
    assert issubclass(LibmfHung, mfbench.CaseTimeout)
    with pytest.raises(ValueError, match="bad input"):
        fit_within(Broken(), None, 5)


@pytest.mark.timing
def test_a_deadlocked_libmf_fit_is_seen_when_all_its_threads_sleep_not_at_the_timeout():
    pytest.importorskip("libmf")
    from mfbench.plugins.peers.libmf import LibmfHung, fit_within, thread_ids

    if not thread_ids():
        pytest.skip("no /proc/self/task here: only the timeout catches a deadlock")
    release = threading.Event()

    class Deadlocked:  # what LIBMF's race leaves: the fit's threads wait for each other, asleep
        def fit(self, X):
            waiter = threading.Thread(target=release.wait, args=(30,))
            waiter.start()
            waiter.join()

    class Slow:  # asleep only in short spells between work: not a deadlock
        def fit(self, X):
            for _ in range(20):
                time.sleep(0.01)
                sum(range(10_000))

    started = time.monotonic()
    with pytest.raises(LibmfHung, match="deadlocked: every thread it started slept for 0.3 s"):
        fit_within(Deadlocked(), None, 60, stall=0.3)
    assert time.monotonic() - started < 10
    release.set()
    fit_within(Slow(), None, 60, stall=0.3)


@pytest.mark.timing
def test_libmf_tries_a_deadlocked_fit_again_and_says_so_in_its_info(monkeypatch):
    cls = cls_of("libmf")
    module = sys.modules[cls.__module__]
    original, calls, real = module.fit_within, [], []

    def hangs_once(engine, X, timeout):
        """The first attempt 'deadlocks'; the others are real fits, which LIBMF's own race may deadlock too."""
        calls.append(timeout)
        if len(calls) == 1:
            raise module.LibmfHung("deadlocked")
        try:
            original(engine, X, timeout)
        except module.LibmfHung:
            real.append(timeout)
            raise

    monkeypatch.setattr(module, "fit_within", hangs_once)
    net, train, _ = small_problem("dot")
    info = testing.fit(cls, net, train, 2, params={"threads": 1}).info
    assert len(calls) == 2 + len(real) and len(info["hung_attempts"]) == 1 + len(real)
    retried = net.user_factors.weight.detach().clone()
    hangs = []

    def counted(engine, X, timeout):
        try:
            original(engine, X, timeout)
        except module.LibmfHung:
            hangs.append(timeout)
            raise

    monkeypatch.setattr(module, "fit_within", counted)
    net, train, _ = small_problem("dot")
    # The real fit: LIBMF's own scheduler may deadlock it too (11 of 1,500 fits under load), and then it
    # is retried as well; one thread makes every attempt the same fit, so the outcome is the same, and
    # the info records exactly the attempts that hung (none, most of the time).
    plain = testing.fit(cls, net, train, 2, params={"threads": 1}).info
    assert torch.equal(retried, net.user_factors.weight.detach())  # one thread: the retry is the same fit
    assert len(plain["hung_attempts"]) == len(hangs)

    def always_hangs(engine, X, timeout):
        raise module.LibmfHung("deadlocked")

    monkeypatch.setattr(module, "fit_within", always_hangs)
    net, train, _ = small_problem("dot")
    with pytest.raises(module.LibmfHung):
        testing.fit(cls, net, train, 2)


def test_libmf_picks_fewer_bins_on_small_data_and_26_on_large():
    pytest.importorskip("libmf")
    from mfbench.plugins.peers.libmf import auto_bins

    assert auto_bins(3000, 1) == 3 and auto_bins(3000, 4) == 9  # at least 2 * threads + 1
    assert auto_bins(100_000, 1) == 10
    assert auto_bins(900_000, 2) == 26 and auto_bins(9_000_000, 2) == 26  # the bindings' default
