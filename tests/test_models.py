"""Tests of odtlab.models: the zoo, its registry and its building blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import odtlab
from odtlab import models
from odtlab.models import (
    DEFAULT_MCUNET_BLOCKS,
    Attention,
    BlockSpec,
    InvertedResidual,
    available,
    build,
    count_parameters,
    example_batch,
    make_divisible,
)

ZOO_NAMES = ["mlp", "cnn", "mobilenetv2", "mcunet", "proxylessnas-mobile", "transformer"]
#: Smaller settings for tests that build a model several times.
FAST_KWARGS: dict[str, dict] = {
    "mlp": {},
    "cnn": {},
    "mobilenetv2": {"width_mult": 0.35, "num_classes": 10},
    "mcunet": {},
    "proxylessnas-mobile": {"num_classes": 10},
    "transformer": {},
}


def _num_classes(name: str, kwargs: dict) -> int:
    return kwargs.get("num_classes", 1000 if name in ("mobilenetv2", "proxylessnas-mobile") else 10)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- registry -------------------------------------------------------------------------


def test_available_lists_the_zoo_in_order() -> None:
    assert available() == ZOO_NAMES
    assert list(models.ZOO) == ZOO_NAMES
    assert all(name in models.__all__ for name in ["ZOO", "build", "example_batch", "mlp"])


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_forward_and_backward_on_example_batch(name: str) -> None:
    model = build(name)
    # the ImageNet-sized networks at 64 px: the same layers, a twelfth of the work
    small = {"resolution": 64} if name in ("mobilenetv2", "proxylessnas-mobile") else {}
    x, y = example_batch(name, batch_size=3, **small)
    logits = model(x)
    assert logits.shape == (3, _num_classes(name, {}))
    assert y.dtype == torch.long and y.shape == (3,)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_zoo_model_has_a_linear_classifier(name: str) -> None:
    model = build(name, device="meta")
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.out_features == _num_classes(name, {})


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_seed_makes_weights_reproducible(name: str) -> None:
    kwargs = FAST_KWARGS[name]
    a = build(name, seed=3, **kwargs)
    b = build(name, seed=3, **kwargs)
    c = build(name, seed=4, **kwargs)
    assert _same_weights(a, b)
    assert not _same_weights(a, c)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_building_leaves_global_rng_untouched(name: str) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    build(name, seed=0, **FAST_KWARGS[name])
    example_batch(name, seed=0, **FAST_KWARGS[name])
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_meta_build_allocates_nothing_and_counts_the_same(name: str) -> None:
    meta = build(name, device="meta")
    tensors = list(meta.parameters()) + list(meta.buffers())
    assert tensors and all(t.is_meta for t in tensors)
    assert count_parameters(meta) == count_parameters(build(name))


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_example_batch_on_meta(name: str) -> None:
    x, y = example_batch(name, batch_size=5, device="meta")
    assert x.is_meta and y.is_meta and y.shape == (5,) and y.dtype == torch.long
    out = build(name, device="meta")(x)
    assert out.is_meta and out.shape == (5, _num_classes(name, {}))


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("mlp", {}, (2, 1, 8, 8)),
        ("mlp", {"in_features": 10}, (2, 10)),
        ("mlp", {"in_features": 16}, (2, 1, 4, 4)),
        ("cnn", {}, (2, 1, 32, 32)),
        ("cnn", {"in_channels": 3}, (2, 3, 32, 32)),
        ("mobilenetv2", {}, (2, 3, 224, 224)),
        ("mcunet", {}, (2, 3, 64, 64)),
        ("transformer", {}, (2, 32)),
        ("transformer", {"seq_len": 12}, (2, 12)),
    ],
)
def test_example_batch_shapes(name: str, kwargs: dict, shape: tuple) -> None:
    x, _ = example_batch(name, device="meta", **kwargs)
    assert tuple(x.shape) == shape


def test_example_batch_values_and_resolution() -> None:
    x, y = example_batch("cnn", batch_size=64, resolution=8, num_classes=3)
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32
    assert y.min() >= 0 and y.max() < 3 and len(y.unique()) == 3
    tokens, labels = example_batch("transformer", batch_size=64, vocab_size=5, num_classes=2)
    assert tokens.dtype == torch.long and 0 <= tokens.min() and tokens.max() < 5
    assert labels.max() < 2
    a, _ = example_batch("mcunet", seed=1)
    b, _ = example_batch("mcunet", seed=1)
    c, _ = example_batch("mcunet", seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_example_batch_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="resolution"):
        example_batch("transformer", resolution=32)
    with pytest.raises(ValueError, match="in_features"):
        example_batch("mlp", resolution=5)
    with pytest.raises(ValueError, match="batch_size"):
        example_batch("cnn", batch_size=0)
    with pytest.raises(TypeError, match="width"):
        example_batch("mlp", width=3)
    with pytest.raises(odtlab.UnknownModel):
        example_batch("resnet")


def test_unknown_model_lists_names_and_suggests_closest() -> None:
    with pytest.raises(odtlab.UnknownModel) as info:
        build("mobilenet")
    message = str(info.value)
    assert all(name in message for name in ZOO_NAMES)
    assert "Did you mean 'mobilenetv2'?" in message
    assert isinstance(info.value, odtlab.OdtlabError) and isinstance(info.value, KeyError)
    with pytest.raises(odtlab.UnknownModel, match="'transformer'"):
        build("transfomer")
    with pytest.raises(odtlab.UnknownModel) as info:
        build("zzzz")
    assert "Did you mean" not in str(info.value)


def test_build_passes_arguments_to_the_builder() -> None:
    model = build("cnn", num_classes=3, in_channels=3, width=4)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 3)


def test_count_parameters_trainable_only() -> None:
    model = models.mlp(4, (3,), 2)
    assert count_parameters(model) == (4 * 3 + 3) + (3 * 2 + 2)
    model.features.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 3 * 2 + 2


# --- MobileNetV2 ------------------------------------------------------------------------


def test_mobilenetv2_matches_the_reference_parameter_count() -> None:
    model = models.mobilenetv2(device="meta")
    assert count_parameters(model) == 3_504_872  # torchvision.models.mobilenet_v2()
    assert model(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 1000)
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    assert sum(b.use_residual for b in blocks) == 10
    assert model.features[0].conv.out_channels == 32
    assert model.classifier.in_features == 1280
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU6)]
    assert relus and all(r.inplace for r in relus)


@pytest.mark.parametrize(("width", "count"), [(0.35, 1_677_128), (0.5, 1_968_680)])
def test_mobilenetv2_width_multiplier(width: float, count: int) -> None:
    model = models.mobilenetv2(width_mult=width, device="meta")
    assert count_parameters(model) == count
    assert model.classifier.in_features == 1280  # not scaled down below 1.0
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))


def test_mobilenetv2_last_conv_scales_above_one() -> None:
    assert models.mobilenetv2(width_mult=1.4, device="meta").classifier.in_features == 1792


@pytest.mark.parametrize("resolution", [32, 128])
def test_mobilenetv2_other_resolutions(resolution: int) -> None:
    model = models.mobilenetv2(num_classes=10, width_mult=0.5).eval()
    x, _ = example_batch("mobilenetv2", resolution=resolution, num_classes=10)
    with torch.no_grad():
        assert model(x).shape == (2, 10)


def test_make_divisible() -> None:
    assert make_divisible(32 * 0.35) == 16
    assert make_divisible(16 * 0.35) == 8
    assert make_divisible(24 * 0.75) == 24  # 18 rounds to 16, which loses >10%: go up
    assert make_divisible(96 * 1.4) == 136
    assert all(make_divisible(v) % 8 == 0 for v in range(1, 400))


# --- InvertedResidual ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_ch", "out_ch", "stride", "residual"),
    [(16, 16, 1, True), (16, 24, 1, False), (16, 16, 2, False), (16, 24, 2, False)],
)
def test_inverted_residual_uses_residual_only_when_shapes_match(
    in_ch: int, out_ch: int, stride: int, residual: bool
) -> None:
    block = InvertedResidual(in_ch, out_ch, stride, expand_ratio=6).eval()
    assert block.use_residual is residual
    x = torch.randn(2, in_ch, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = block(x)
        expected = block.conv(x) + x if residual else block.conv(x)
    assert out.shape == (2, out_ch, 8 // stride, 8 // stride)
    torch.testing.assert_close(out, expected)


def test_inverted_residual_structure() -> None:
    block = InvertedResidual(8, 8, 1, expand_ratio=4, kernel_size=5)
    assert list(block.conv._modules) == ["expand", "depthwise", "project"]
    dw = block.conv.depthwise.conv
    assert dw.groups == dw.in_channels == 32 and dw.kernel_size == (5, 5)
    assert not hasattr(block.conv.project, "act")
    assert isinstance(block.conv.expand.act, nn.ReLU6)
    thin = InvertedResidual(8, 16, 2, expand_ratio=1)
    assert list(thin.conv._modules) == ["depthwise", "project"]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"stride": 3}, "stride"),
        ({"expand_ratio": 0.5}, "expand_ratio"),
        ({"kernel_size": 4}, "kernel_size"),
    ],
)
def test_inverted_residual_rejects_bad_arguments(kwargs: dict, argument: str) -> None:
    args = {"in_ch": 8, "out_ch": 8, "stride": 1, "expand_ratio": 6} | kwargs
    with pytest.raises(ValueError, match=argument):
        InvertedResidual(**args)


# --- MCUNet-like --------------------------------------------------------------------------


def test_mcunet_default_blocks_mix_kernels_and_expansions() -> None:
    assert {b.kernel_size for b in DEFAULT_MCUNET_BLOCKS} == {3, 5, 7}
    assert {3, 4, 6} <= {b.expand_ratio for b in DEFAULT_MCUNET_BLOCKS}
    model = models.mcunet()
    kernels = {b.kernel_size for b in model.modules() if isinstance(b, InvertedResidual)}
    assert kernels == {3, 5, 7}
    # int8 weights must fit comfortably in an MCU's flash (about 1 MB).
    assert count_parameters(model) < 500_000


@pytest.mark.parametrize("resolution", [32, 64])
def test_mcunet_resolutions(resolution: int) -> None:
    model = models.mcunet().eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, resolution, resolution)).shape == (2, 10)


def test_mcunet_custom_blocks_and_tuples() -> None:
    model = models.mcunet([BlockSpec(1, 8), (6, 16, 7, 2)], num_classes=4, stem_channels=8)
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert [(b.out_channels, b.kernel_size, b.stride) for b in blocks] == [(8, 3, 1), (16, 7, 2)]
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


def test_mcunet_rejects_empty_blocks_and_bad_specs() -> None:
    with pytest.raises(ValueError, match="blocks"):
        models.mcunet([])
    with pytest.raises(ValueError, match="kernel_size"):
        BlockSpec(6, 16, kernel_size=2)
    with pytest.raises(ValueError, match="stride"):
        BlockSpec(6, 16, stride=4)


# --- Transformer ---------------------------------------------------------------------------


def test_attention_is_explicit_and_matches_fused_attention() -> None:
    attn = Attention(dim=16, heads=4).eval()
    assert not any(isinstance(m, nn.MultiheadAttention) for m in attn.modules())
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0))
    b, t = 2, 5

    def heads(z: torch.Tensor) -> torch.Tensor:
        return z.view(b, t, 4, 4).transpose(1, 2)

    q, k, v = heads(attn.q_proj(x)), heads(attn.k_proj(x)), heads(attn.v_proj(x))
    reference = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, 16)
    torch.testing.assert_close(attn(x), attn.out_proj(reference))


def test_transformer_structure_and_shorter_sequences() -> None:
    model = models.tiny_transformer(depth=3)
    assert len(model.blocks) == 3
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert "blocks.0.attn.q_proj" in linears and "blocks.0.mlp.fc1" in linears
    assert model.blocks[0].mlp.fc1.out_features == 128
    assert model(torch.zeros(2, 7, dtype=torch.long)).shape == (2, 10)
    with pytest.raises(ValueError, match="seq_len"):
        model(torch.zeros(2, 33, dtype=torch.long))


# --- argument checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "kwargs", "expected"),
    [
        (models.mobilenetv2, {"width_mult": 0}, "width_mult must be a number > 0, got 0"),
        (models.mobilenetv2, {"width_mult": -1.0}, "width_mult must be a number > 0, got -1.0"),
        (models.mobilenetv2, {"dropout": 1.0}, "dropout must be a probability in [0, 1), got 1.0"),
        (models.tiny_transformer, {"heads": 3}, "heads must divide dim, got heads=3 and dim=64"),
        (models.tiny_transformer, {"depth": 0}, "depth must be an integer >= 1, got 0"),
        (models.mlp, {"hidden": (8, 0)}, "hidden[1] must be an integer >= 1, got 0"),
        (models.small_cnn, {"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
        (models.small_cnn, {"width": 2.5}, "width must be an integer >= 1, got 2.5"),
        (models.mcunet, {"stem_channels": -4}, "stem_channels must be an integer >= 1, got -4"),
    ],
)
def test_bad_arguments_name_themselves(builder, kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        builder(device="meta", **kwargs)
    assert expected in str(info.value)


def test_heads_error_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"heads=3 and dim=64.*\[1, 2, 4, 8, 16, 32, 64\]"):
        models.tiny_transformer(heads=3)


def test_init_weights_refuses_unknown_layers() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.ones(3))

    with pytest.raises(TypeError, match="gain"):
        models.init_weights(nn.Sequential(nn.Linear(3, 3), Scale()))


def test_resnet50_matches_the_reference_count_and_the_memory_model():
    from odtlab import memory

    assert models.count_parameters(models.resnet50(device="meta")) == 25_557_032
    assert "resnet50" not in models.available()  # a yardstick, not an on-device zoo model
    net = models.resnet50(num_classes=10)
    batch = (torch.randn(2, 3, 64, 64), torch.tensor([1, 7]))
    measured = memory.saved_activation_bytes(net, batch)
    assert measured == memory.analytic_saved_tensors(net, batch).total_bytes
