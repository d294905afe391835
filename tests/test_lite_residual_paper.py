"""TinyTL's lite residual as the reference code builds it: add_lite_residuals(paper=True)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from odtlab import InvalidRecipe, models
from odtlab.recipes import (
    Full,
    LastLayer,
    LiteResidual,
    LiteResidualBranches,
    Recipe,
    add_lite_residuals,
    tinytl_methods,
)
from odtlab.recipes.layers.lite_residual import lite_residuals, paper_kernel_sizes


def test_kernels_shrink_as_the_reference_assumes_a_128_pixel_map():
    # ProxylessNAS-Mobile's blocks after the first: the map the reference assumes is 128,
    # halved by each stride-2 block; a branch sees half of it: 64, 32, 32, 16 ... 8, 4, 4.
    strides = [b[3] for b in models.PROXYLESS_MOBILE_BLOCKS[1:]]
    assert paper_kernel_sizes(strides) == [5] * 15 + [3] * 4
    # a branch that would see a single pixel pools globally with a 1x1 kernel
    assert paper_kernel_sizes([2] * 8) == [5, 5, 5, 5, 3, 1, 1, 1]


def test_every_block_but_the_first_gets_the_reference_branch():
    net = models.proxylessnas_mobile(102, norm="group", device="meta")
    added = add_lite_residuals(net, paper=True, norm="group")
    assert len(added) == 19 and not hasattr(net.features[1], "lite_residual")
    first = net.features[2].lite_residual  # block 16 -> 32, stride 2
    assert isinstance(first.pool, nn.AvgPool2d) and not first.pool.ceil_mode
    assert (first.conv.in_channels, first.conv.out_channels, first.conv.groups) == (16, 16, 2)
    assert first.conv.stride == (2, 2) and first.conv.kernel_size == (5, 5)
    assert isinstance(first.norm, nn.GroupNorm) and first.norm.num_groups == 2  # 8 per group
    assert net.features[-2].lite_residual.conv.kernel_size == (3, 3)
    assert len(add_lite_residuals(net, paper=True, norm="group")) == 0  # twice is safe


def test_the_network_computes_the_same_at_first():
    net = models.proxylessnas_mobile(5, norm="group").eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = net(x)
    add_lite_residuals(net, paper=True, norm="group")
    torch.testing.assert_close(net.eval()(x), before)
    assert all(torch.count_nonzero(m.final_norm.weight) == 0 for m in lite_residuals(net))


def test_a_global_pool_branch_and_groups_that_do_not_divide():
    lite = LiteResidual(16, 24, 1, kernel_size=1, paper=True, global_pool=True).eval()
    assert lite(torch.randn(1, 16, 3, 3), size=(3, 3)).shape == (1, 24, 3, 3)
    with pytest.raises(InvalidRecipe, match="divide"):
        LiteResidual(16, 16, 1, groups=3, paper=True)


def test_the_branches_part_attaches_them_for_any_trainable_part():
    backbone = models.proxylessnas_mobile(10, device="meta")
    last = Recipe(LastLayer(), LiteResidualBranches()).prepare(copy.deepcopy(backbone))
    full = Recipe(Full(), LiteResidualBranches()).prepare(copy.deepcopy(backbone))
    assert len(lite_residuals(last)) == len(lite_residuals(full)) == 19
    assert not any(p.requires_grad for m in lite_residuals(last) for p in m.parameters())
    assert all(p.requires_grad for m in lite_residuals(full) for p in m.parameters())


def test_tinytl_methods_as_the_paper_measures_them():
    backbone = models.proxylessnas_mobile(102, norm="group", device="meta")
    methods = tinytl_methods(paper=True)
    assert list(methods) == list(tinytl_methods())
    nets = {name: r.prepare(copy.deepcopy(backbone)) for name, r in methods.items()}
    assert all(len(lite_residuals(n)) == 19 for n in nets.values())  # in every method
    lite = nets["tinytl/lite"]
    trained = {n for n, p in lite.named_parameters() if p.requires_grad}
    assert trained and all(".lite_residual." in n or n.startswith("classifier.") for n in trained)
    # the course's recipes are unchanged: no branch outside the two TinyTL-L methods
    course = tinytl_methods()["tinytl/full"].prepare(copy.deepcopy(backbone))
    assert lite_residuals(course) == []
