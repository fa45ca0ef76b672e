import hashlib

import pytest
import torch

from mfbench import Ratings, epoch_permutation
from mfbench.data.ratings import fingerprint_split


def make(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Ratings(
        torch.randint(0, 10, (n,), generator=g),
        torch.randint(0, 8, (n,), generator=g),
        torch.rand(n, generator=g),
        10,
        8,
    )


def test_split_is_deterministic_and_a_partition():
    r = make()
    train, test = r.split(0.1, seed=3)
    train2, test2 = r.split(0.1, seed=3)
    assert len(test) == 10 and len(train) == 90
    assert torch.equal(train.values, train2.values) and torch.equal(test.users, test2.users)
    both = sorted(
        zip(torch.cat([train.users, test.users]).tolist(), torch.cat([train.values, test.values]).tolist(), strict=True)
    )
    assert both == sorted(zip(r.users.tolist(), r.values.tolist(), strict=True))
    assert fingerprint_split(train, test) != fingerprint_split(*r.split(0.1, seed=4))


def test_fingerprint_tracks_content():
    a, b = make(), make()
    assert a.fingerprint() == b.fingerprint()
    changed = Ratings(a.users, a.items, a.values + 1, a.n_users, a.n_items)
    assert changed.fingerprint() != a.fingerprint()
    reshaped = Ratings(a.users, a.items, a.values, a.n_users + 1, a.n_items)
    assert reshaped.fingerprint() != a.fingerprint()


def test_validation():
    u = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="outside"):
        Ratings(u, torch.tensor([0, 5]), torch.ones(2), 2, 5)
    with pytest.raises(TypeError):
        Ratings(u.int(), u, torch.ones(2), 2, 2)
    with pytest.raises(ValueError, match="length"):
        Ratings(u, u, torch.ones(3), 2, 2)


def test_from_arrays_infers_shape():
    r = Ratings.from_arrays([0, 4], [2, 1], [1.0, 2.0])
    assert (r.n_users, r.n_items, r.values.dtype) == (5, 3, torch.float32)


def test_epoch_permutation_depends_on_seed_and_epoch():
    p = epoch_permutation(50, 0, 0)
    assert sorted(p.tolist()) == list(range(50))
    assert torch.equal(p, epoch_permutation(50, 0, 0))
    assert not torch.equal(p, epoch_permutation(50, 0, 1))
    assert not torch.equal(p, epoch_permutation(50, 1, 0))


def test_times_are_checked_carried_and_fingerprinted_only_when_present():
    plain = make()
    digest = hashlib.sha256(f"{plain.n_users}x{plain.n_items}:{len(plain)}".encode())
    for tensor in (plain.users, plain.items, plain.values):
        digest.update(tensor.numpy().tobytes())
    assert plain.fingerprint() == digest.hexdigest()[:16] and plain.times is None  # as before timestamps
    timed = Ratings(plain.users, plain.items, plain.values, plain.n_users, plain.n_items, torch.arange(100) * 7)
    assert timed.fingerprint() != plain.fingerprint() and timed.has_times and "timed" in repr(timed)
    assert torch.equal(timed.subset(torch.tensor([3, 1])).times, torch.tensor([21, 7]))
    assert torch.equal(timed.to("cpu").times, timed.times)
    assert timed.without_times().fingerprint() == plain.fingerprint()
    split = timed.split_three(0.1, 0.2, 0)
    for part in (split.train, split.valid, split.test):  # each rating's time is 7 x its position
        assert torch.equal(part.values, timed.values[part.times // 7])
    assert Ratings.from_arrays([0, 1], [1, 0], [1.0, 2.0], times=[5, 3]).times.dtype == torch.int64
    with pytest.raises(TypeError, match="int64"):
        Ratings(plain.users, plain.items, plain.values, 10, 8, torch.zeros(100))
    with pytest.raises(ValueError, match="as long as the ratings"):
        Ratings(plain.users, plain.items, plain.values, 10, 8, torch.zeros(99, dtype=torch.int64))
