"""Recipes for the odtlab.train tests, built from ``odtlab.recipes`` parts.

(While ``odtlab.recipes`` was being written, these tests ran against a
stand-in class with the same methods; they now use the real ``Recipe``.)
"""

from __future__ import annotations

from odtlab.recipes import SGD, Adam, Full, LastLayer, Recipe


def make_recipe(kind: str = "full", optimizer: str = "sgd", lr: float = 0.1,
                momentum: float = 0.0) -> Recipe:  # fmt: skip
    """``kind`` "full" or "last" (the classifier only); ``optimizer`` "sgd" or "adam"."""
    what = Full() if kind == "full" else LastLayer()
    opt = Adam(lr=lr) if optimizer == "adam" else SGD(lr=lr, momentum=momentum)
    return Recipe(what, opt)


def test_make_recipe_builds_real_recipes():
    recipe = make_recipe("last", "adam", lr=1e-3)
    assert isinstance(recipe, Recipe) and recipe.name.startswith("last-layer")
    assert recipe.micro_batches == 1


def test_accuracy_slices_in_memory_tensors_like_a_dataloader_reads_them():
    import torch
    from torch.utils.data import Subset

    from odtlab import data, models
    from odtlab.train import accuracy

    digits = data.digits("test")
    net = models.mlp(seed=0)
    every = Subset(digits, list(range(len(digits))))  # not an ArrayDataset: the DataLoader path
    assert accuracy(net, digits, batch_size=100) == accuracy(net, every, batch_size=100)
    with torch.no_grad():
        by_hand = int((net(digits.x).argmax(-1) == digits.y).sum()) / len(digits.y)
    assert accuracy(net, digits) == by_hand
