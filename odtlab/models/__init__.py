"""odtlab.models: the model zoo, plain ``torch.nn.Module`` builders.

Every builder takes keyword-only ``device`` (``"meta"`` builds without
allocating memory) and ``seed`` (same seed, same weights on every device;
torch's global random state is left untouched).

=========================  ===========================  =======================
zoo name                   builder                      default example input
=========================  ===========================  =======================
``"mlp"``                  :func:`mlp`                  ``(B, 1, 8, 8)`` digits
``"cnn"``                  :func:`small_cnn`            ``(B, 1, 32, 32)``
``"mobilenetv2"``          :func:`mobilenetv2`          ``(B, 3, 224, 224)``
``"mcunet"``               :func:`mcunet`               ``(B, 3, 64, 64)``
``"proxylessnas-mobile"``  :func:`proxylessnas_mobile`  ``(B, 3, 224, 224)``
``"transformer"``          :func:`tiny_transformer`     ``(B, 32)`` token ids
=========================  ===========================  =======================

Every zoo model has a ``classifier`` attribute, its final ``nn.Linear``.

Examples
--------
>>> from odtlab import models
>>> model = models.build("cnn", num_classes=10)
>>> x, y = models.example_batch("cnn", batch_size=4)
>>> model(x).shape
torch.Size([4, 10])
"""

from __future__ import annotations

from odtlab.models.blocks import ConvBNAct, InvertedResidual, make_divisible
from odtlab.models.cnn import small_cnn
from odtlab.models.initialization import init_weights
from odtlab.models.mcunet import (
    DEFAULT_MCUNET_BLOCKS,
    MCUNET_5FPS_BLOCKS,
    MCUNET_PRESETS,
    BlockSpec,
    MCUNetLike,
    mcunet,
)
from odtlab.models.mlp import mlp
from odtlab.models.mobilenetv2 import MOBILENETV2_BLOCKS, MobileNetV2, mobilenetv2
from odtlab.models.pretrained import available_pretrained, pretrained, pretrained_info
from odtlab.models.proxyless import (
    PROXYLESS_MOBILE_BLOCKS,
    ProxylessNASMobile,
    WSConv2d,
    proxylessnas_mobile,
)
from odtlab.models.resnet import Bottleneck, ResNet, resnet50
from odtlab.models.tracing import TracingGRU, tracing_gru, tracing_mlp
from odtlab.models.transformer import Attention, TinyTransformer, TransformerBlock, tiny_transformer
from odtlab.models.zoo import ZOO, available, build, count_parameters, example_batch

__all__ = [
    # registry
    "ZOO",
    "available",
    "build",
    "example_batch",
    "count_parameters",
    # builders
    "mlp",
    "small_cnn",
    "mobilenetv2",
    "mcunet",
    "proxylessnas_mobile",
    "tiny_transformer",
    "resnet50",
    "tracing_mlp",
    "tracing_gru",
    "TracingGRU",
    "pretrained",
    "pretrained_info",
    "available_pretrained",
    "ResNet",
    "Bottleneck",
    # building blocks and model classes
    "InvertedResidual",
    "ConvBNAct",
    "make_divisible",
    "BlockSpec",
    "DEFAULT_MCUNET_BLOCKS",
    "MCUNetLike",
    "MCUNET_5FPS_BLOCKS",
    "MCUNET_PRESETS",
    "MOBILENETV2_BLOCKS",
    "MobileNetV2",
    "PROXYLESS_MOBILE_BLOCKS",
    "ProxylessNASMobile",
    "WSConv2d",
    "Attention",
    "TransformerBlock",
    "TinyTransformer",
    "init_weights",
]
