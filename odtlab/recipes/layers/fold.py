"""Fold each BatchNorm into the convolution before it: :func:`fold_batchnorm`.

A trained network deployed on a microcontroller has no BatchNorm layers:
in eval mode a BatchNorm is a fixed per-channel affine map
``y = gamma * (x - mean) / sqrt(var + eps) + beta``, so it folds into the
convolution before it, which gains a bias. The 256 KB paper (Lin et al.,
NeurIPS 2022) trains this folded graph: "the bias of a convolution" there is
the old BatchNorm shift, and updating it needs no activation at all.

We fold with PyTorch's own :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`.
Only a ``Conv2d`` directly followed by a ``BatchNorm2d`` *inside an*
``nn.Sequential`` is folded (a Sequential runs its children in order, so
"followed by" is certain); the BatchNorm becomes ``nn.Identity`` and keeps
its name, so every other module name stays the same. The zoo's
``ConvBNAct`` blocks are such Sequentials.

Examples
--------
>>> import torch
>>> from odtlab import models
>>> net = models.build("mcunet").eval()
>>> x = torch.randn(2, 3, 32, 32)
>>> before = net(x)
>>> folded = fold_batchnorm(net)
>>> torch.allclose(before, folded(x), atol=1e-5), folded.features[0].conv.bias is not None
(True, True)
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "count_batchnorms"]


def count_batchnorms(model: nn.Module) -> int:
    """How many ``BatchNorm2d`` layers ``model`` still has."""
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``Conv2d -> BatchNorm2d`` pair of a ``nn.Sequential`` into one biased conv.

    Uses the BatchNorm's *running* statistics (what inference uses), so the
    folded model in eval mode computes what the original computed in eval
    mode. Changes ``model`` in place and returns it; safe to call twice
    (nothing is left to fold the second time). The train/eval mode of
    ``model`` is kept.

    Returns
    -------
    nn.Module
        ``model``, with each folded BatchNorm replaced by ``nn.Identity``.
    """
    training = model.training
    for parent in list(model.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = parent._modules[first], parent._modules[second]
            if not (isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d):
                continue
            if bn.num_features != conv.out_channels or bn.running_mean is None:
                continue
            fused = fuse_conv_bn_eval(conv.eval(), bn.eval())
            fused.weight.requires_grad_(conv.weight.requires_grad)
            parent._modules[first] = fused
            parent._modules[second] = nn.Identity()
    return model.train(training)
