"""The Trainer: refuses early, trains for real, charges the device, stops on NaN."""

from __future__ import annotations

import json
import math

import matplotlib
import pytest
import torch
from test_train_helpers import make_recipe

from odtlab import data, devices, models
from odtlab.errors import DoesNotFit
from odtlab.train import (
    Trainer,
    TrainingDiverged,
    accuracy,
    read_checkpoint,
)
from odtlab.train.trainer import CHECKPOINT_NAME

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def digits():
    return data.digits("train"), data.digits("test")


@pytest.fixture(scope="module")
def shapes():
    return data.train_test("source", 64, 32, seed=0, resolution=32)


def test_full_training_of_mobilenetv2_is_refused_on_the_mcu_before_any_step(shapes):
    model = models.mobilenetv2(num_classes=10, width_mult=0.35)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = []
    trainer = Trainer(model, make_recipe("full"), "stm32f746", steps=5, batch_size=8,
                      progress=False, on_step=lambda s, loss: steps.append(s))  # fmt: skip
    with pytest.raises(DoesNotFit) as info:
        trainer.fit(*shapes)
    assert steps == [] and trainer.step == 0 and trainer.optimizer is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    verdict = info.value.verdict
    assert verdict.peak_bytes == trainer.memory_report.totals["peak"] > verdict.budget_bytes
    assert verdict.budget_bytes == devices.get("stm32f746").training_memory_bytes
    assert "over by" in str(info.value)


def test_a_tiny_mlp_fits_the_mcu_and_learns_digits(digits):
    model = models.mlp(hidden=(32,))
    trainer = Trainer(model, make_recipe("full", lr=0.05, momentum=0.9), "stm32f746",
                      epochs=3, batch_size=32, eval_every=40, progress=False)  # fmt: skip
    report = trainer.fit(*digits)
    assert report.fits is True and report.device == "stm32f746"
    assert report.peak_bytes <= report.budget_bytes
    assert report.steps == 3 * math.ceil(1347 / 32) == len(report.loss_curve) == 129
    first, last = sum(report.loss_curve[:10]) / 10, sum(report.loss_curve[-10:]) / 10
    assert last < 0.3 * first  # measured: 2.17 -> 0.13 (means of the first and last 10)
    assert report.final_accuracy > 0.88  # measured: 0.927 (0.89 after 40 steps)
    assert report.final_accuracy == accuracy(model, digits[1])
    assert [s for s, _ in report.accuracy_curve] == [40, 80, 120, 129]
    assert report.host_wall_time_s > 0


def test_report_agrees_with_devices_simulate_for_the_same_workload(digits):
    trainer = Trainer(models.mlp(hidden=(32,)), make_recipe("full"), "stm32f746", steps=25,
                      progress=False)  # fmt: skip
    report = trainer.fit(*digits)
    totals = trainer.memory_report.totals
    assert report.memory == {k: int(v) for k, v in totals.items()}
    assert report.flops_per_step == trainer.memory_report.flops["total"] > 0
    moved = devices.estimate_bytes_moved(
        totals["weights"], totals["activations"], trainable_param_bytes=totals["gradients"],
        optimizer_state_bytes=totals["optimizer"], input_bytes=trainer.memory_report.batch_bytes,
    )  # fmt: skip
    assert report.bytes_moved_per_step == moved
    job = devices.Workload(flops_per_step=report.flops_per_step, bytes_moved_per_step=moved,
                           peak_bytes=report.peak_bytes, steps=25)  # fmt: skip
    sim = devices.simulate(job, "stm32f746")
    assert report.sim_energy_j == pytest.approx(sim.total_energy_j, rel=1e-12)
    assert report.sim_time_s == pytest.approx(sim.total_time_s, rel=1e-12)
    assert report.peak_temperature_c == pytest.approx(sim.peak_temperature_c)
    assert report.throttled_steps == sim.throttled_steps
    assert report.battery_percent == sim.battery_percent
    assert report.simulation.steps == 25 and report.sim_energy_j > 0


def test_report_prints_serialises_and_plots(digits):
    report = Trainer(models.mlp(hidden=(16,)), make_recipe("full"), "stm32f746", steps=6,
                     progress=False).fit(*digits)  # fmt: skip
    text = str(report)
    for piece in ("stm32f746", "KiB", "fits", "ms", "J", "accuracy"):
        assert piece in text
    d = json.loads(json.dumps(report.to_dict()))
    assert d["steps"] == 6 and d["fits"] is True and len(d["loss_curve"]) == 6
    ax = report.plot()
    assert ax.get_ylabel() == "loss"


def test_host_only_training_simulates_nothing(digits):
    report = Trainer(models.mlp(hidden=(16,)), make_recipe("full"), None, steps=4,
                     progress=False).fit(digits[0])  # fmt: skip
    assert report.device is None and report.fits is None and report.simulation is None
    assert math.isnan(report.sim_energy_j) and report.final_accuracy is None
    assert "host only" in str(report)


def test_check_memory_false_trains_a_misfit_and_says_so(digits):
    model = models.mlp(hidden=(256, 128))  # 50k weights: weights + gradients > 256 KiB
    report = Trainer(model, make_recipe("full"), "stm32f746", steps=3, check_memory=False,
                     progress=False).fit(*digits)  # fmt: skip
    assert report.fits is False and report.steps == 3 and report.sim_energy_j > 0
    assert report.peak_bytes > report.budget_bytes
    assert "does NOT fit" in str(report)


def test_nan_loss_stops_with_training_diverged_and_keeps_the_checkpoint(digits, tmp_path):
    poisoned = {"on": False}

    def loss_fn(logits, targets):
        loss = torch.nn.functional.cross_entropy(logits, targets)
        return loss * float("nan") if poisoned["on"] else loss

    def poison_after_step_6(step, loss):
        poisoned["on"] = step >= 6

    recipe = make_recipe("full")
    trainer = Trainer(models.mlp(hidden=(16,)), recipe, "stm32f746", steps=20, loss_fn=loss_fn,
                      checkpoint_dir=tmp_path, checkpoint_every=5, progress=False,
                      on_step=poison_after_step_6)  # fmt: skip
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit(*digits)
    err = info.value
    assert err.step == 7 and math.isnan(err.loss) and err.recipe == recipe.name
    message = str(err)
    assert "step 7" in message and repr(recipe.name) in message and "learning rate" in message
    assert err.checkpoint == str(tmp_path / CHECKPOINT_NAME)
    ckpt = read_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert ckpt.step == 5
    assert all(torch.isfinite(v).all() for v in ckpt.model_state.values())


def test_bad_arguments_are_named():
    model = models.mlp()
    with pytest.raises(ValueError, match="epochs or steps"):
        Trainer(model, make_recipe(), steps=3, epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(model, make_recipe(), batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        Trainer(model, make_recipe(), dtype="fp64")


def test_resume_continues_the_curves_and_refuses_other_settings(digits, tmp_path):
    def make(steps: int, seed: int = 0) -> Trainer:
        return Trainer(models.mlp(hidden=(16,)), make_recipe("full"), "stm32f746", steps=steps,
                       seed=seed, checkpoint_dir=tmp_path, checkpoint_every=4,
                       progress=False)  # fmt: skip

    whole = make(10).fit(*digits)
    again = make(10).fit(*digits, resume=True)  # the checkpoint of step 10: nothing to do
    assert again.resumed_from == 10 and again.loss_curve == whole.loss_curve
    assert again.final_accuracy == whole.final_accuracy
    with pytest.raises(ValueError, match="seed"):
        make(10, seed=1).fit(*digits, resume=True)


def test_engine_accounting_on_the_mcu_keeps_frozen_weights_in_flash(shapes):
    from odtlab.recipes import SGD, Recipe, SparseUpdate

    recipe = Recipe(SparseUpdate(bias_layers=4), SGD(lr=0.01))
    trainer = Trainer(
        models.build("mcunet", num_classes=10), recipe, "stm32f746",
        batch_size=1, steps=2, accounting="engine", progress=False,
    )  # fmt: skip
    report = trainer.fit(shapes[0], shapes[1])
    verdict = devices.verdict(trainer.memory_report, "stm32f746")
    assert trainer.memory_report.accounting == "engine"
    assert report.flash_bytes == verdict.flash_bytes == trainer.memory_report.frozen_weight_bytes
    assert report.flash_bytes > 0 and report.fits is verdict.fits is True
    text = str(report)  # per memory: what SRAM holds against the budget, and what stays in flash
    ram = report.peak_bytes - report.flash_bytes
    assert f"SRAM         {devices.format_bytes(ram)} of" in text and "fits" in text
    assert f"flash        {devices.format_bytes(report.flash_bytes)} of frozen weights" in text
    with pytest.raises(ValueError, match="accounting must be"):
        Trainer(models.build("mlp"), recipe, "stm32f746", accounting="int8")


def test_the_precision_part_owns_the_number_format_the_device_is_charged_in():
    from odtlab.recipes import SGD, Int8, MixedPrecision, Recipe

    model = models.build("cnn", num_classes=10)
    assert Trainer(model, Recipe(SGD()), "rpi4", steps=1, progress=False).dtype == "fp32"
    assert Trainer(model, Recipe(Int8(), SGD()), "rpi4", steps=1, progress=False).dtype == "int8"
    assert Recipe(MixedPrecision("bf16")).device_dtype == "fp16"
    with pytest.raises(ValueError, match="disagrees with recipe"):
        Trainer(model, Recipe(Int8(), SGD()), "rpi4", dtype="fp32", progress=False)
