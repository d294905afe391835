"""Adafactor as a recipe part: PyTorch's optimizer, its factored state measured and hand-counted."""

from __future__ import annotations

import pytest
import torch

from odtlab import InvalidRecipe
from odtlab import recipes as R
from odtlab.memory import measure_optimizer_state
from odtlab.train import profile


def test_the_factored_state_of_a_linear_layer_is_rows_plus_columns():
    net = torch.nn.Sequential(torch.nn.Linear(256, 128))
    state = measure_optimizer_state(net, lambda ps: R.Adafactor().build(ps, foreach=False))
    # weight (128, 256): one statistic per row and per column, fp32, plus a 4-byte step counter;
    # bias (128,): a full second moment plus its step counter. Adam would keep 2 x 128 x 256 x 4.
    assert state.by_parameter == {"0.weight": (128 + 256) * 4 + 4, "0.bias": 128 * 4 + 4}


def test_a_recipe_with_adafactor_trains_and_is_charged_its_state():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    recipe = R.Recipe(R.Adafactor(lr=0.05))
    report = profile(net, (x, y), recipe, flops=False)
    expected = (16 + 8) * 4 + 4 + 16 * 4 + 4 + (3 + 16) * 4 + 4 + 3 * 4 + 4
    assert report.totals["optimizer"] == expected
    model = recipe.prepare(net)
    opt = recipe.make_optimizer(model.parameters())
    losses = [recipe.train_step(model, x, y, None, opt) for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"beta2_decay": 0.5}, {"weight_decay": -1.0}])
def test_bad_settings_name_the_argument(kwargs):
    with pytest.raises(InvalidRecipe, match=next(iter(kwargs))):
        R.Adafactor(**kwargs)
