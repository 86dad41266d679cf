"""transfer_matrix on tiny models with known answers: the diagonal and an exact copy give
the white-box PGD number, a constant model is unaffected by any surrogate."""
import copy

import pytest
import torch
from torch import nn

from drrdn_lib.attacks import PGD, AttackBudget
from drrdn_lib.stats import binomial_ci
from drrdn_lib.torch_utils import predict_labels
from drrdn_lib.transfer import craft_transfer_examples, transfer_matrix
from tiny import N_CLASSES, SIDE, train_tiny

BUDGET = AttackBudget(0.1, 0.02, 10)


def _linear():
    return nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, N_CLASSES))


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 32), nn.ReLU(),
                         nn.Linear(32, N_CLASSES))


class Constant(nn.Module):
    """Logits independent of the input: always class ``k``."""

    def __init__(self, k: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(N_CLASSES))
        with torch.no_grad():
            self.bias[k] = 5.0

    def forward(self, x):
        return self.bias.expand(len(x), -1) + 0.0 * x.flatten(1)[:, :1]


@pytest.fixture(scope="module")
def setup():
    a, x, y = train_tiny(_linear, 200)
    b, _, _ = train_tiny(_mlp, 0)
    return a, b, x, y


def _white_box_correct(model, x, y, seed=0):
    adv = PGD(BUDGET.eps, BUDGET.step_size, BUDGET.steps, seed=seed)(model, x, y)
    return int((predict_labels(model, adv) == y).sum())


def test_diagonal_equals_white_box_pgd(setup):
    a, b, x, y = setup
    result = transfer_matrix({"A": a, "B": b}, {"A": a, "B": b}, x, y, BUDGET, seed=3,
                             include_diagonal=True, batch_size=len(x))
    assert result.cells["A"]["A"].n_correct == _white_box_correct(a, x, y, seed=3)
    assert result.cells["B"]["B"].n_correct == _white_box_correct(b, x, y, seed=3)
    # the attack works: white box is below clean accuracy
    clean = int((predict_labels(a, x) == y).sum())
    assert result.cells["A"]["A"].n_correct < clean


def test_exact_copy_as_surrogate_gives_the_white_box_number(setup):
    a, _, x, y = setup
    result = transfer_matrix({"A": a}, {"copy of A": copy.deepcopy(a)}, x, y, BUDGET,
                             batch_size=len(x))
    cell = result.cells["A"]["copy of A"]
    assert cell.n_correct == _white_box_correct(a, x, y)
    assert cell.n == len(x) and cell.accuracy == cell.n_correct / len(x)
    assert (cell.lo, cell.hi) == binomial_ci(cell.n_correct, len(x))


def test_constant_model_is_unaffected(setup):
    a, b, x, y = setup
    result = transfer_matrix({"const": Constant(2)}, {"A": a, "B": b}, x, y, BUDGET)
    expected = int((y == 2).sum())
    assert expected > 0
    for surrogate in ("A", "B"):
        assert result.cells["const"][surrogate].n_correct == expected


def test_diagonal_empty_by_default_layout_and_kept_examples(setup):
    a, b, x, y = setup
    a.train()
    result = transfer_matrix({"A": a, "B": b}, {"A": a, "B": b}, x, y, BUDGET,
                             batch_size=64, keep_examples=True)
    assert a.training and not b.training            # modes restored
    a.eval()
    assert result.cells["A"]["A"] is None and result.cells["B"]["B"] is None
    assert result.accuracy("A", "A") is None
    frame = result.to_frame()
    assert len(frame) == 4 and frame["accuracy"].isna().sum() == 2
    table = result.table()
    assert list(table.index) == ["A", "B"] and list(table.columns) == ["A", "B"]
    assert table.loc["A", "B"] == pytest.approx(100 * result.accuracy("A", "B"))
    # kept examples: B's examples, rescored, give A's cell; crafting again gives the same
    adv_b = result.examples["B"]
    assert adv_b.shape == x.shape and (adv_b - x).abs().max() <= BUDGET.eps + 1e-6
    assert int((predict_labels(a, adv_b) == y).sum()) == result.cells["A"]["B"].n_correct
    assert torch.equal(adv_b, craft_transfer_examples(b, x, y, BUDGET, 0, batch_size=64))


def test_bad_inputs_are_named(setup):
    a, _, x, y = setup
    with pytest.raises(ValueError, match="AttackBudget"):
        transfer_matrix({"A": a}, {"A": a}, x, y, (0.1, 0.02, 10), include_diagonal=True)
    with pytest.raises(ValueError, match="surrogates must be a non-empty dict"):
        transfer_matrix({"A": a}, {}, x, y, BUDGET)
    with pytest.raises(ValueError, match="targets\\['A'\\]"):
        transfer_matrix({"A": "model"}, {"B": a}, x, y, BUDGET)
    with pytest.raises(ValueError, match="labels"):
        transfer_matrix({"A": a}, {"B": a}, x, y[:-1], BUDGET)
    with pytest.raises(ValueError, match="outside the allowed"):
        transfer_matrix({"A": a}, {"B": a}, x * 2 + 1, y, BUDGET)
