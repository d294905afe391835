"""Mixed precision as a recipe part: MixedPrecision("bf16" | "fp16").

Byte counts were measured with torch 2.13.0 on the CPU.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from odtlab import data, memory, models
from odtlab.errors import InvalidRecipe
from odtlab.memory import AnalyticUnsupported, MemoryArgumentError
from odtlab.memory.autocast import AutocastEmulator, EmulatedAutocast, autocast_policy
from odtlab.recipes import SGD, BiasOnly, Checkpointing, Full, LastLayer, MicroBatch, Recipe
from odtlab.recipes.base import KINDS
from odtlab.recipes.precision.int8 import Int8
from odtlab.recipes.precision.mixed import DTYPES, MixedPrecision, PrecisionPart
from odtlab.train import profile
from odtlab.train.profile import profiled_recipe_peak


def _layers(report: object) -> dict[str, int]:
    return {layer.name: layer.activation_bytes for layer in report.layers}  # type: ignore[attr-defined]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_16_bit_activations_are_half_plus_a_16_bit_weight_copy(dtype: str) -> None:
    """The CNN, 8 images of 32x32, measured under autocast.

    Every conv and linear layer keeps its input in 16 bits (half the fp32
    bytes) plus autocast's 16-bit copy of its weight (2 bytes per weight):
    block1.conv 32,768 -> 16,384 + 288 = 16,672 bytes, block2.conv 131,072 ->
    65,536 + 9,216 = 74,752, block3.conv 65,536 -> 32,768 + 36,864 = 69,632
    (more than fp32: its weight is bigger than its input at this batch size),
    classifier 2,048 -> 1,024 + 1,280 = 2,304. BatchNorm and ReLU keep 16-bit
    inputs/outputs too (BatchNorm's per-channel statistics stay fp32). In
    all: 2,460,932 -> 1,475,364 bytes of activations (0.600x).
    """
    model = models.build("cnn")
    batch = models.example_batch("cnn", 8)
    fp32 = profile(model, batch, Recipe(Full()))
    half = profile(model, batch, Recipe(Full(), MixedPrecision(dtype)))
    a, b = _layers(fp32), _layers(half)
    weights = {n: m.weight.numel() for n, m in model.named_modules() if hasattr(m, "weight")}
    for name in ["features.block1.conv", "features.block2.conv", "features.block3.conv",
                 "classifier"]:  # fmt: skip
        assert b[name] == a[name] // 2 + 2 * weights[name]
    assert (a["features.block1.conv"], b["features.block1.conv"]) == (32768, 16672)
    assert b["features.block1.relu"] == a["features.block1.relu"] // 2 == 262144
    assert b["features.block1.bn"] == 262144 + 2 * 16 * 4  # bf16 input, fp32 mean and invstd
    assert (fp32.totals["activations"], half.totals["activations"]) == (2460932, 1475364)
    assert half.totals["peak"] < fp32.totals["peak"]
    assert half.totals["weights"] == fp32.totals["weights"]  # fp32 master weights


def _digits_run(recipe: Recipe, steps: int = 40) -> tuple[list[float], torch.nn.Module]:
    x, y = data.as_tensors(data.digits("train", resolution=16))
    net = recipe.prepare(models.build("cnn")).train()
    opt = recipe.make_optimizer(net.parameters())
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g)
        losses.append(recipe.train_step(net, x[idx], y[idx], None, opt))
    return losses, net


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_mixed_precision_training_loss_falls(dtype: str) -> None:
    """The CNN on 16x16 digits, 40 SGD steps (lr 0.2) of 32: first loss vs mean of the last 5.

    Measured (seed 0): fp32 2.344 -> 1.284, bf16 2.344 -> 1.308, fp16
    2.344 -> 1.303. Bounds: below 0.7x the first loss, within 0.05 of fp32.
    """
    losses, net = _digits_run(Recipe(Full(), MixedPrecision(dtype), SGD(lr=0.2)))
    reference, _ = _digits_run(Recipe(Full(), SGD(lr=0.2)))
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]
    assert abs(sum(losses[-5:]) - sum(reference[-5:])) / 5 < 0.05
    assert all(p.dtype == torch.float32 for p in net.parameters())  # master weights


def test_fp16_scales_the_loss_and_bf16_does_not() -> None:
    net = models.build("cnn")
    batch = models.example_batch("cnn", 8)
    for dtype, expected in [("bf16", None), ("fp16", torch.amp.GradScaler)]:
        recipe = Recipe(Full(), MixedPrecision(dtype), MicroBatch(2))
        opt = recipe.make_optimizer(recipe.prepare(net).parameters())
        recipe.train_step(net, *batch, None, opt)
        scaler = recipe.part("precision").scaler(opt)  # type: ignore[union-attr]
        assert scaler is None if expected is None else isinstance(scaler, expected)
    assert 0 < scaler.get_scale() <= 2.0**16  # type: ignore[union-attr]


def test_autocast_follows_the_model() -> None:
    part = MixedPrecision()
    net = models.build("cnn")
    x, _ = models.example_batch("cnn", 2)
    with part.autocast(net):
        assert net(x).dtype == torch.bfloat16
    assert net(x).dtype == torch.float32


def test_bad_dtype_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidRecipe, match="dtype must be one of 'bf16', 'fp16'"):
        MixedPrecision("fp8")
    with pytest.raises(InvalidRecipe, match="'bf16', 'fp16'"):
        MixedPrecision(torch.bfloat16)  # type: ignore[arg-type]


def test_precision_is_a_recipe_slot() -> None:
    assert "precision" in KINDS
    recipe = Recipe(Full(), MixedPrecision("bf16"))
    assert recipe.name == "full+bf16" and recipe.part("precision") == MixedPrecision()
    assert isinstance(recipe.precision_part, PrecisionPart)
    assert Recipe(Full()).part("precision") is None
    with pytest.raises(InvalidRecipe, match="one precision part"):
        Recipe(Int8(), MixedPrecision())
    batch = models.example_batch("cnn", 4)
    net = recipe.prepare(models.build("cnn"))
    assert math.isfinite(
        recipe.train_step(net, *batch, None, recipe.make_optimizer(net.parameters()))
    )


# ---- the memory model follows autocast: analytic == measured, CPU and meta ----------------

# name: (builder kwargs, example_batch kwargs besides the builder's); batch 2, small sizes.
_ZOO_SMALL: dict[str, tuple[dict, dict]] = {
    "mlp": ({}, {}),
    "cnn": ({}, {"resolution": 16}),
    "mobilenetv2": ({"width_mult": 0.35, "num_classes": 10}, {"resolution": 32}),
    "mcunet": ({}, {"resolution": 32}),
    "transformer": ({"seq_len": 16}, {}),
    "mbv2-shapes": ({}, {}),
}

#: Activation bytes measured on the CPU (torch 2.13), full training, batch 2, fp32 vs 16 bits.
#: Under autocast every conv/linear also keeps a 16-bit copy of its weight, which at batch 2
#: outweighs the halved inputs for MobileNetV2 and the MLP; the Transformer keeps three
#: 16-bit copies of each LayerNorm output (q, k and v each cast their own).
_FULL_BYTES = {
    "mlp": (2148, 18788),
    "cnn": (155108, 137988),
    "mobilenetv2": (1454308, 1545060),
    "mcunet": (1162916, 952660),
    "transformer": (223460, 281828),
    "mbv2-shapes": (1454308, 1545060),
}


def _zoo(name: str, device: str) -> tuple[torch.nn.Module, tuple]:
    build_kw, batch_kw = _ZOO_SMALL[name]
    if name == "mbv2-shapes":  # MobileNetV2-0.35, 10 classes, 32x32, in eval mode
        with warnings.catch_warnings():  # loading weights into a meta model is a no-op
            warnings.simplefilter("ignore", UserWarning)
            model = models.pretrained(name, device=device)
        batch = models.example_batch("mobilenetv2", 2, resolution=32, num_classes=10, device=device)
        return model, batch
    model = models.build(name, device=device, **build_kw)
    return model, models.example_batch(name, 2, device=device, **batch_kw, **build_kw)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("part", [Full(), BiasOnly(), LastLayer()], ids=lambda p: p.name)
@pytest.mark.parametrize("name", list(_ZOO_SMALL))
def test_analytic_equals_measured_under_autocast(name: str, part: object, dtype: str) -> None:
    """Measured on the CPU under torch.autocast == analytic (CPU and meta model).

    With bf16 also the *measured* path on meta (autograd's hooks over the
    emulated casts), the path a recipe's memory report takes for a meta model.
    """
    half = DTYPES[dtype]
    model, batch = _zoo(name, "cpu")
    rule = part.rule(model)  # type: ignore[attr-defined]
    measured = memory.measure_saved_tensors(model, batch, trainable=rule, autocast=half)
    results = [memory.analytic_saved_tensors(model, batch, trainable=rule, autocast=half)]
    meta_model, meta_batch = _zoo(name, "meta")
    meta_rule = part.rule(meta_model)  # type: ignore[attr-defined]
    results.append(
        memory.analytic_saved_tensors(meta_model, meta_batch, trainable=meta_rule, autocast=half)
    )
    if dtype == "bf16":
        results.append(
            memory.measure_saved_tensors(meta_model, meta_batch, trainable=meta_rule, autocast=half)
        )
    for other in results:
        assert other.total_bytes == measured.total_bytes  # to the byte
        assert other.by_module() == measured.by_module()  # and layer by layer
    if isinstance(part, Full):
        fp32 = memory.measure_saved_tensors(model, batch, trainable=rule).total_bytes
        assert (fp32, measured.total_bytes) == _FULL_BYTES[name]


def test_analytic_report_follows_autocast() -> None:
    """The whole report (timeline peak, inference peak, engine accounting) agrees too."""
    model, batch = _zoo("transformer", "cpu")
    for accounting in ("pytorch", "engine"):
        kw = {"accounting": accounting, "flops": False, "autocast": torch.bfloat16}
        measured = memory.profile_training(model, batch, optimizer="momentum", **kw)
        analytic = memory.analytic_report(model, batch, optimizer="momentum", **kw)
        assert analytic.totals == measured.totals
        assert analytic.inference_peak == measured.inference_peak
    assert measured.totals["activations"] == 56774  # the engine counts 1 byte per element anyway


def test_analytic_follows_an_enclosing_autocast() -> None:
    model, batch = _zoo("cnn", "cpu")
    explicit = memory.analytic_saved_tensors(model, batch, autocast="bf16").total_bytes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert memory.analytic_saved_tensors(model, batch).total_bytes == explicit == 137988
    assert memory.analytic_saved_tensors(model, batch).total_bytes == 155108  # fp32 again


def test_a_trainable_weight_is_cast_once_a_frozen_one_at_every_use() -> None:
    """A 1x1 stem, one 3x3 conv (3 -> 3 channels, 81 weights) applied twice, a linear head.

    Conv weight trainable: autocast caches its bf16 copy (a leaf that requires
    grad), both calls keep the same 162 bytes. Conv weight frozen (only the
    stem's bias and the head train, so the conv's input still needs grad):
    each call casts the weight anew and keeps its own 162-byte copy.
    """

    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 3, 1, bias=True)
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1, bias=False)
            self.classifier = torch.nn.Linear(3 * 4 * 4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.conv(self.conv(self.stem(x))).flatten(1))

    net = Twice()
    batch = (torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))
    weight_copy = 81 * 2

    def kept(trainable: object) -> list[int]:
        saved = memory.measure_saved_tensors(net, batch, trainable=trainable, autocast="bf16")
        predicted = memory.analytic_saved_tensors(net, batch, trainable=trainable, autocast="bf16")
        assert predicted.by_module() == saved.by_module()
        return [t.nbytes for t in saved.tensors if t.module == "conv" and t.shape == (3, 3, 3, 3)]

    assert kept(None) == [weight_copy]  # cached: one copy for both calls
    assert kept(["stem.bias", "classifier"]) == [weight_copy, weight_copy]  # frozen: one per call


def test_every_cpu_autocast_operation_has_a_policy() -> None:
    """Every aten op PyTorch gives an AutocastCPU kernel is classified (fails on a new one)."""
    names = torch._C._dispatch_get_all_op_names()
    listed = {
        n.removeprefix("aten::").split(".")[0]
        for n in names
        if torch._C._dispatch_has_kernel_for_dispatch_key(n, "AutocastCPU")
    }
    assert len(listed) > 100
    assert sorted(n for n in listed if autocast_policy(n) is None) == []


_X = torch.randn(2, 3, 6, 6)
_W = torch.randn(4, 3, 3, 3)
_T = torch.tensor([0, 1])
_OPS = {
    "conv2d": lambda x: F.conv2d(x, _W.to(x.device)),
    "linear": lambda x: F.linear(x, torch.ones(4, 6, device=x.device)),
    "matmul": lambda x: x @ x.transpose(-2, -1),
    "bmm": lambda x: torch.bmm(x.flatten(0, 1), x.flatten(0, 1).transpose(1, 2)),
    "batch_norm": lambda x: F.batch_norm(x, None, None, training=True),
    "relu6_": lambda x: F.relu6(x.clone(), inplace=True),
    "layer_norm": lambda x: F.layer_norm(x, (6,)),
    "softmax": lambda x: torch.softmax(x, -1),
    "gelu": lambda x: F.gelu(x),
    "sum": lambda x: x.sum(),
    "prod": lambda x: x.prod(),
    "cross_entropy": lambda x: F.cross_entropy(x.flatten(1)[:, :4], _T.to(x.device)),
    "mse_loss": lambda x: F.mse_loss(x, torch.zeros_like(x)),
    "cat": lambda x: torch.cat([x, x.float()]),
    "pad-reflect": lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect"),
    "pad-constant": lambda x: F.pad(x, (1, 1)),
}


@pytest.mark.parametrize("op", list(_OPS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32-in", "bf16-in"])
def test_emulated_autocast_gives_the_dtype_of_real_autocast(op: str, dtype: torch.dtype) -> None:
    x = _X.to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real = _OPS[op](x).dtype
    with EmulatedAutocast(torch.bfloat16):
        emulated = _OPS[op](x.to("meta")).dtype
    assert emulated == real


def test_autocast_argument_is_checked() -> None:
    model, batch = _zoo("mlp", "cpu")
    with pytest.raises(MemoryArgumentError, match="'bf16' or 'fp16'; got 'fp8'"):
        memory.measure_saved_tensors(model, batch, autocast="fp8")
    with pytest.raises(AnalyticUnsupported, match="CPU autocast policy only"):
        AutocastEmulator(torch.bfloat16, "cuda")


@pytest.mark.parametrize("extra", [(), (Checkpointing(2),)], ids=["plain", "checkpointed"])
def test_mixed_precision_recipe_on_meta_equals_the_cpu_measurement(extra: tuple) -> None:
    """A MixedPrecision recipe sized on ``meta`` (nothing allocated) gives the CPU's bytes.

    With checkpointing the segments are probed under the emulated autocast
    too: 16-bit recomputation (1,223,840 bytes for the first segment, against
    2,250,880 in fp32) and a 16-bit kept input for the second.
    """
    recipe = Recipe(Full(), MixedPrecision("bf16"), *extra)
    reports = []
    for device in ("cpu", "meta"):
        net = models.mobilenetv2(width_mult=0.35, num_classes=10, device=device)
        batch = models.example_batch("mobilenetv2", 2, resolution=32, num_classes=10, device=device)
        reports.append(profile(net, batch, recipe))
    cpu, meta = reports
    assert meta.totals == cpu.totals  # activations, peak and all
    assert [r.activation_bytes for r in meta.layers] == [r.activation_bytes for r in cpu.layers]
    assert meta.segments == cpu.segments
    if not extra:
        assert cpu.totals["activations"] == 1545060


def test_mixed_precision_recipe_for_full_size_mobilenetv2_on_meta() -> None:
    """MobileNetV2 1.0, 224x224, batch 8: bf16 autocast halves the activations (and a bit)."""
    batch = models.example_batch("mobilenetv2", 8, device="meta")
    fp32 = profile(models.mobilenetv2(device="meta"), batch, Recipe(Full()))
    bf16 = profile(models.mobilenetv2(device="meta"), batch, Recipe(Full(), MixedPrecision("bf16")))
    assert (fp32.totals["activations"], bf16.totals["activations"]) == (625844804, 319946180)
    assert bf16.totals["weights"] == fp32.totals["weights"]  # fp32 master weights


def test_timeline_peak_under_autocast_is_within_a_fifth_of_the_profiler() -> None:
    # The timeline does not model autocast's short-lived casts (16-bit copies nobody keeps,
    # 16-bit gradients cast back to fp32), and which of them CPU kernels make depends on the
    # processor: MCUNet's bf16 peak came out 16 % below the profiler on one x86 CPU and 2.5 %
    # above it on an AMD EPYC (AVX2). The claim that holds on every CPU is the bound below;
    # the fp32 timeline, with no casts, is held to the byte in test_recipes_memory.py.
    model, batch = _zoo("mcunet", "cpu")
    recipe = Recipe(Full(), MixedPrecision("bf16"))
    predicted = profile(model, batch, recipe).totals["peak"]
    real = profiled_recipe_peak(recipe, model, batch)
    assert abs(predicted - real) <= 0.20 * real, (predicted, real)


def test_fp16_without_loss_scaling_has_no_scaler_and_its_own_name():
    plain = MixedPrecision("fp16", loss_scaling=False)
    scaled = MixedPrecision("fp16")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    assert plain.scaler(opt) is None and isinstance(scaled.scaler(opt), torch.amp.GradScaler)
    assert Recipe(plain).name == "full+fp16-unscaled" and Recipe(scaled).name == "full+fp16"
    with pytest.raises(InvalidRecipe, match="loss_scaling"):
        MixedPrecision("fp16", loss_scaling="no")
