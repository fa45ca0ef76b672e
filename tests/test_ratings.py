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
