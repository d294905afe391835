"""The shipped backbone: its metadata is honest, and it transfers better than scratch."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import torch

from odtlab import data, models
from odtlab.errors import UnknownModel
from odtlab.models.pretrained import available_pretrained, pretrained, pretrained_info
from odtlab.recipes import Adam, Full, LastLayer, Recipe
from odtlab.train import Trainer, accuracy

WEIGHTS = resources.files("odtlab.models").joinpath("weights")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def info():
    return pretrained_info("mbv2-shapes")


@pytest.fixture(scope="module")
def backbone():
    return pretrained("mbv2-shapes")


def test_shipped_files_are_small_and_described(info):
    assert available_pretrained() == ["kt-gru", "kt-mlp", "mbv2-shapes"]
    size = len(WEIGHTS.joinpath("mbv2-shapes.pt").read_bytes())
    assert size < 2 * 1024 * 1024 and size == info["file_bytes"]
    assert info["architecture"] == {"num_classes": 10, "width_mult": 0.35, "in_channels": 3,
                                    "dropout": 0.2}  # fmt: skip
    for key in ("data", "seed", "training", "test_accuracy", "train_seconds", "torch_version",
                "date"):  # fmt: skip
        assert key in info, key
    assert json.loads(WEIGHTS.joinpath("mbv2-shapes.json").read_text()) == info


def test_loaded_backbone_is_float32_in_eval_mode(backbone):
    assert isinstance(backbone, models.MobileNetV2) and not backbone.training
    assert all(p.dtype == torch.float32 for p in backbone.parameters())
    assert backbone.classifier.out_features == 10


def test_backbone_reaches_the_accuracy_its_metadata_reports(backbone, info):
    d = info["data"]
    # train_test's test set is stream 1 of the seed, whatever n_train is
    held_out = data.SyntheticShapes(d["n_test"], domain=d["domain"], seed=d["seed"],
                                    resolution=d["resolution"], stream=1)  # fmt: skip
    assert accuracy(backbone, held_out) == pytest.approx(info["test_accuracy"], abs=0.005)
    assert info["test_accuracy"] > 0.95  # measured: 0.998


def test_unknown_names_list_the_shipped_ones():
    with pytest.raises(UnknownModel, match="mbv2-shapes") as err:
        pretrained("mbv2-shape")
    assert "Did you mean 'mbv2-shapes'" in str(err.value)


def test_transfer_beats_training_from_scratch_for_the_same_steps():
    # heavy sensor noise: the target domain the pretrained features carry over to
    train_set, test_set = data.train_test("target-noise", 400, 300, seed=1, resolution=32)
    steps = dict(steps=30, batch_size=32, progress=False)
    tuned = Trainer(pretrained("mbv2-shapes"), Recipe(LastLayer(), Adam(lr=1e-2)), None, **steps)
    scratch = Trainer(models.mobilenetv2(num_classes=10, width_mult=0.35, seed=0),
                      Recipe(Full(), Adam(lr=1e-3)), None, **steps)  # fmt: skip
    transfer_acc = tuned.fit(train_set, test_set).final_accuracy
    scratch_acc = scratch.fit(train_set, test_set).final_accuracy
    # measured: 0.96 (last layer of the pretrained backbone) vs 0.10 (all layers from scratch)
    assert transfer_acc > 0.9
    assert transfer_acc > scratch_acc + 0.3
