"""The model layout contract: which models a hand-written strategy may train, by one set of rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mfbench
from mfbench.plugin.model_layout import LayoutError, Tables, find_tables, layout_problem
from mfbench.plugins.models.biased import BiasedDotProduct
from mfbench.plugins.models.dot import DotProduct


class Custom(nn.Module):
    """Not a built-in class: the layout is told by attribute names, not by type."""

    def __init__(self, n_users: int = 4, n_items: int = 3, k: int = 2) -> None:
        super().__init__()
        self.user_factors = nn.Embedding(n_users, k)
        self.item_factors = nn.Embedding(n_items, k)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.register_buffer("global_mean", torch.tensor(3.5))
        self.register_buffer("popularity", torch.ones(n_items))  # a buffer is not a trainable parameter

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(1)
        return self.global_mean + self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1) + dot


def refusal(model: nn.Module, **options) -> str:
    """find_tables' refusal; without ratings, also what a skip reports."""
    with pytest.raises(LayoutError) as raised:
        find_tables(model, "my-sgd", **options)
    if "ratings" not in options:
        assert layout_problem(model, "my-sgd", **options) == str(raised.value)
    return str(raised.value)


def test_dot_gives_the_factor_tables_and_no_biases():
    model = DotProduct(4, 3, 2)
    tables = find_tables(model, "my-sgd")
    assert not tables.biased and tables.user_bias is None and tables.global_mean == 0.0
    assert (tables.n_users, tables.n_items, tables.n_factors, tables.dtype) == (4, 3, 2, torch.float32)
    assert list(tables.weights()) == ["user_factors", "item_factors"]
    assert layout_problem(model, "my-sgd") is None


def test_biased_gives_the_bias_tables_and_the_mean():
    tables = find_tables(BiasedDotProduct(4, 3, 2, global_mean=2.5), "my-sgd")
    assert tables.biased and tables.global_mean == 2.5
    assert tables.user_bias.shape == (4, 1) and tables.item_bias.shape == (3, 1)
    assert list(tables.weights()) == ["user_factors", "item_factors", "user_bias", "item_bias"]


def test_the_tables_share_storage_with_the_model():
    model = DotProduct(4, 3, 2)
    tables = find_tables(model, "my-sgd")
    tables.user_factors[1].fill_(7.0)  # no autograd: a detached view, written in place
    assert not tables.user_factors.requires_grad
    assert torch.equal(model.user_factors.weight.detach()[1], torch.full((2,), 7.0))


def test_a_custom_model_with_the_attributes_is_accepted():
    tables = find_tables(Custom(), "my-sgd")
    assert isinstance(tables, Tables) and tables.biased and tables.global_mean == 3.5


def test_a_frozen_table_is_refused():
    model = DotProduct(4, 3, 2)
    model.item_factors.weight.requires_grad_(False)
    reason = refusal(model)
    assert "item_factors.weight frozen" in reason and reason.startswith("my-sgd cannot train model DotProduct")


def test_an_extra_trainable_parameter_is_refused():
    model = Custom()
    model.scale = nn.Parameter(torch.ones(()))
    assert "does not train: ['scale']" in refusal(model)
    model.scale.requires_grad_(False)  # a frozen extra parameter is the model's own business
    assert layout_problem(model, "my-sgd") is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dtypes_other_than_float32_and_float64_are_refused_unless_allowed(dtype):
    model = DotProduct(4, 3, 2).to(dtype)
    assert "trains float32 or float64 tables" in refusal(model)
    assert find_tables(model, "my-sgd", dtypes=(dtype,)).dtype == dtype
    assert "trains float32 tables" in refusal(DotProduct(4, 3, 2).double(), dtypes=(torch.float32,))


def test_mixed_dtypes_are_refused():
    model = BiasedDotProduct(4, 3, 2, 1.0)
    model.user_bias.double()
    assert "share one floating dtype" in refusal(model)


class Shapes(nn.Module):
    def __init__(self, item_width: int = 2, bias_width: int = 1, bias_rows: int = 4, mean: bool = True, both: bool = True):
        super().__init__()
        self.user_factors = nn.Embedding(4, 2)
        self.item_factors = nn.Embedding(3, item_width)
        self.user_bias = nn.Embedding(bias_rows, bias_width)
        if both:
            self.item_bias = nn.Embedding(3, 1)
        if mean:
            self.register_buffer("global_mean", torch.tensor(1.0))


@pytest.mark.parametrize(
    "model, words",
    [
        (Shapes(item_width=3), "differ in width (2 and 3)"),
        (Shapes(bias_width=2), "user_bias is (4, 2), not one column"),
        (Shapes(bias_rows=5), "user_bias is (5, 1), not one column of user_factors's 4 rows"),
        (Shapes(mean=False), "no one-element global_mean"),
        (Shapes(both=False), "no nn.Embedding 'item_bias'"),
        (nn.Linear(2, 2), "no nn.Embedding 'user_factors' (my-sgd trains the dot and biased layouts only"),
    ],
)
def test_shapes_and_attributes_that_do_not_fit_are_refused(model, words):
    assert words in refusal(model)


def test_the_ratings_shape_is_checked_when_given():
    ratings = mfbench.Ratings.from_arrays([0], [0], [1.0], 5, 3)
    assert "tables are 4 x 3 but the ratings are 5 x 3" in refusal(DotProduct(4, 3, 2), ratings=ratings)
    assert find_tables(DotProduct(5, 3, 2), "my-sgd", ratings=ratings).n_users == 5


def test_the_contract_is_exported_for_plugin_authors():
    assert mfbench.find_tables is find_tables and mfbench.Tables is Tables
    assert issubclass(mfbench.LayoutError, mfbench.MfbenchError) and mfbench.layout_problem is layout_problem
