"""odtlab.tutor.app: the exported tutor trains, infers, saves and restores like eager PyTorch.

Two apps (kt-mlp, bias-only and last layer) are exported once for the module;
importing ExecuTorch's exporter takes about ten seconds, each export a few.
"""

from __future__ import annotations

import copy
import sys

import pytest
import torch

pytest.importorskip("executorch")

from odtlab import data, export, models  # noqa: E402
from odtlab.errors import CorruptCheckpoint  # noqa: E402
from odtlab.recipes import SGD, BiasOnly, LastLayer, Recipe  # noqa: E402
from odtlab.tutor.app import CheckpointMismatch, export_tutor  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 20
BATCH = 4
RECIPES = {"bias": Recipe(BiasOnly(), SGD(lr=0.1)), "last": Recipe(LastLayer(), SGD(lr=0.1))}


@pytest.fixture(scope="module")
def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    d = data.tracing_features(data.simulate_students(3, days=5, seed=0))
    n = len(d.y) // BATCH
    return [(d.x[i * BATCH : (i + 1) * BATCH], d.y[i * BATCH : (i + 1) * BATCH]) for i in range(n)][
        :STEPS
    ]


@pytest.fixture(scope="module")
def apps(batches, tmp_path_factory):
    return {
        key: export_tutor(
            models.pretrained("kt-mlp"), batches[0], recipe, tmp_path_factory.mktemp(key)
        )
        for key, recipe in RECIPES.items()
    }


def eager_steps(recipe: Recipe, batches, steps: int) -> torch.nn.Module:
    model = recipe.prepare(copy.deepcopy(models.pretrained("kt-mlp")))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for x, y in batches[:steps]:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def eager_probs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(x), dim=-1)[:, 1]


@pytest.mark.parametrize("key", list(RECIPES))
def test_runtime_steps_equal_eager_sgd_and_infer_equals_softmax(apps, batches, key):
    app = apps[key].fresh()
    x_all = torch.cat([x for x, _ in batches])
    before = eager_steps(RECIPES[key], batches, 0)
    assert torch.allclose(app.infer(x_all), eager_probs(before, x_all), atol=1e-5)
    for x, y in batches:
        app.train(x, y)
    assert len(app.losses) == STEPS
    eager = eager_steps(RECIPES[key], batches, STEPS)
    params = dict(eager.named_parameters())
    trained = app.parameters()
    assert set(trained) == {n for n, p in params.items() if p.requires_grad}
    moved = 0.0
    for name, value in trained.items():
        assert torch.allclose(value, params[name].detach(), atol=1e-5), name
        moved = max(moved, (value - before.state_dict()[name]).abs().max().item())
    assert moved > 1e-3  # it did learn
    for name, value in params.items():  # the frozen ones are where they were
        if name not in trained:
            assert torch.equal(value, before.state_dict()[name])
    assert torch.allclose(app.infer(x_all), eager_probs(eager, x_all), atol=1e-5)
    assert torch.allclose(app.infer(x_all[:1]), eager_probs(eager, x_all[:1]), atol=1e-5)
    assert app.pte_bytes["train"] > 0 and app.pte_bytes["infer"] > 0


def test_save_then_restore_into_a_fresh_app(apps, batches, tmp_path):
    app = apps["bias"].fresh()
    for x, y in batches[:5]:
        app.train(x, y)
    path = app.save(tmp_path / "student.pt")
    state = torch.load(path, weights_only=True)
    assert set(state["parameters"]) == set(app.trainable)
    other = apps["bias"].fresh()
    x = batches[0][0]
    assert not torch.allclose(other.infer(x), app.infer(x), atol=1e-4)
    other.restore(path)
    for name, value in app.parameters().items():
        assert torch.equal(other.parameters()[name], value), name
    assert torch.equal(other.infer(x), app.infer(x))
    other.train(*batches[5])  # and it keeps training from there
    app.train(*batches[5])
    assert torch.equal(other.infer(x), app.infer(x))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_wrong_files_are_refused_with_the_reason(apps, batches, tmp_path):
    app = apps["bias"].fresh()
    good = app.save(tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CorruptCheckpoint, match="truncated"):
        app.restore(truncated)
    with pytest.raises(CorruptCheckpoint, match="missing"):
        app.restore(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CorruptCheckpoint, match="not a file written by TutorApp.save"):
        app.restore(tmp_path / "foreign.pt")
    last = apps["last"].fresh().save(tmp_path / "last.pt")
    with pytest.raises(
        CheckpointMismatch, match=r"last-layer\+sgd.*bias-only\+sgd.*missing.*features\.fc1\.bias"
    ):
        app.restore(last)
    state = torch.load(good, weights_only=True)
    state["parameters"]["classifier.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(CheckpointMismatch, match=r"classifier\.bias \(3,\) != \(2,\)"):
        app.restore(tmp_path / "shape.pt")
    before = app.parameters()
    assert all(torch.equal(before[n], v) for n, v in app.fresh().parameters().items())


def test_batches_of_another_shape_are_refused(apps, batches):
    app = apps["bias"].fresh()
    x, y = batches[0]
    with pytest.raises(export.WrongBatch, match="fixed shapes"):
        app.train(x[:2], y[:2])
    with pytest.raises(export.WrongBatch, match="tracing_features"):
        app.infer(x.double())
    with pytest.raises(export.WrongBatch, match="1 to 1024"):
        app.infer(x[:0])
    assert app.losses == []


def test_missing_executorch_names_the_install_line(monkeypatch, batches, tmp_path):
    monkeypatch.setitem(sys.modules, "executorch.exir", None)  # the import fails
    with pytest.raises(export.ExecuTorchMissing, match=r'pip install -e "\.\[export\]"'):
        export_tutor(models.pretrained("kt-mlp"), batches[0], RECIPES["bias"], tmp_path)
