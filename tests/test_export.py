"""odtlab.export: training in the ExecuTorch runtime equals eager PyTorch.

Two programs are exported once for the module (a tiny MLP, all parameters
and bias-only); each export takes a few seconds, importing ExecuTorch's
exporter about ten more. Tests that need ExecuTorch skip where it is not
installed (``pip install -e ".[export]"``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest
import torch
from torch import nn

from odtlab import export, models
from odtlab.recipes import SGD, Adam, BatchNormPolicy, BiasOnly, Full, LastLayer, MicroBatch, Recipe

pytestmark = pytest.mark.usefixtures("one_thread")

needs_executorch = pytest.mark.skipif(
    importlib.util.find_spec("executorch") is None,
    reason='executorch is not installed: pip install -e ".[export]"',
)

STEPS = 20
LR = 0.1


def tiny_mlp() -> nn.Module:
    return models.mlp(in_features=64, hidden=(16,), num_classes=4, seed=0)


def batches(n: int = STEPS, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(size, 1, 8, 8, generator=gen), torch.randint(0, 4, (size,), generator=gen)) for _ in range(n)]


def eager_run(recipe: Recipe, data, momentum: float = 0.0, model=None) -> tuple[list[float], nn.Module]:
    net = recipe.prepare(tiny_mlp() if model is None else model)
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=LR, momentum=momentum)
    losses = []
    for x, y in data:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, net


@pytest.fixture(scope="module")
def full_program(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "mlp_full.pte"
    return export.export_training(tiny_mlp(), batches(1)[0], Recipe(Full(), SGD(lr=LR)), path=path)


@pytest.fixture(scope="module")
def bias_program(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "mlp_bias.pte"
    recipe = Recipe(BiasOnly(include_classifier=False), SGD(lr=LR))
    model = tiny_mlp()
    program = export.export_training(model, batches(1)[0], recipe, path=path)
    assert all(p.requires_grad for p in model.parameters()), "the export changed the user's model"
    return program


@needs_executorch
def test_twenty_runtime_steps_equal_eager_sgd(full_program):
    program = full_program.fresh()  # a new runtime from the same .pte
    data = batches()
    ours = program.train(data)
    theirs, net = eager_run(Recipe(Full(), SGD(lr=LR)), data)
    assert len(ours) == STEPS
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(theirs), rtol=1e-5, atol=1e-5)
    for name, value in program.parameters().items():
        torch.testing.assert_close(value, net.get_parameter(name).detach(), rtol=1e-5, atol=1e-5)
    assert not torch.equal(program.parameters()["classifier.weight"], program.initial["classifier.weight"])
    assert program.path.exists() and program.pte_bytes == program.path.stat().st_size > 0


@needs_executorch
def test_runtime_momentum_equals_eager_momentum(full_program):
    program = dataclasses.replace(full_program, momentum=0.9, losses=[])
    data = batches(10)
    ours = program.train(data)
    theirs, _ = eager_run(Recipe(Full(), SGD(lr=LR)), data, momentum=0.9)
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(theirs), rtol=1e-5, atol=1e-5)


@needs_executorch
def test_bias_only_program_trains_the_biases_and_never_the_weights(bias_program):
    program = bias_program.fresh()
    assert program.trainable == ("features.fc1.bias", "classifier.bias")
    assert program.frozen == ("features.fc1.weight", "classifier.weight")
    before = program.state_dict()
    data = batches()
    ours = program.train(data)
    after = program.state_dict()
    assert set(program.parameters()) == set(program.trainable)  # the runtime holds only these
    for name in program.trainable:
        assert not torch.equal(after[name], before[name]), f"{name} did not learn"
    theirs, net = eager_run(Recipe(BiasOnly(include_classifier=False)), data)
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(theirs), rtol=1e-5, atol=1e-5)
    # the runtime computed with the original weights: eager with the original weights and the
    # runtime's biases gives the loss that the runtime reports for the next batch
    check = tiny_mlp()
    check.load_state_dict(after)
    for name in program.frozen:
        assert torch.equal(check.get_parameter(name), tiny_mlp().get_parameter(name))
        assert torch.equal(net.get_parameter(name), check.get_parameter(name))
    x, y = batches(1)[0]
    expected = nn.functional.cross_entropy(check(x), y).item()
    assert program.step(x, y) == pytest.approx(expected, rel=1e-5)


@needs_executorch
def test_small_cnn_last_layer_in_the_runtime_equals_eager(tmp_path):
    # BatchNorm frozen (the runtime cannot train batch statistics); the max-pools lie below the
    # trained head, so their backward (wrong in executorch 1.5.1) never runs
    recipe = Recipe(LastLayer(), BatchNormPolicy("frozen"), SGD(lr=LR))
    gen = torch.Generator().manual_seed(2)
    # 5 steps: the runtime's portable convolutions are slow (about 30x eager)
    data = [(torch.randn(4, 1, 8, 8, generator=gen), torch.randint(0, 10, (4,), generator=gen)) for _ in range(5)]
    program = export.export_training(models.small_cnn(width=4), data[0], recipe, path=tmp_path / "cnn.pte")
    assert program.trainable == ("classifier.weight", "classifier.bias")
    ours = program.train(data)
    theirs, net = eager_run(recipe, data, model=models.small_cnn(width=4))
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(theirs), rtol=1e-5, atol=1e-5)
    for name, value in program.parameters().items():
        torch.testing.assert_close(value, net.get_parameter(name).detach(), rtol=1e-5, atol=1e-5)


def test_write_is_atomic_no_partial_file_on_failure(tmp_path):
    target = tmp_path / "model.pte"

    def fails_half_way(f):
        f.write(b"half a program")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export.write_atomically(target, fails_half_way)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file
    export.write_atomically(target, lambda f: f.write(b"complete"))
    with pytest.raises(OSError):
        export.write_atomically(target, fails_half_way)
    assert target.read_bytes() == b"complete"
    assert list(tmp_path.iterdir()) == [target]


def test_missing_executorch_names_the_install_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "executorch.extension.training", None)  # import fails
    with pytest.raises(export.ExecuTorchMissing, match=r'pip install -e "\.\[export\]"'):
        export.load_runtime(tmp_path / "x.pte")


def test_refused_before_exporting():
    x, y = batches(1)[0]
    with pytest.raises(export.CannotExport, match="SGD"):
        export.export_training(tiny_mlp(), (x, y), Recipe(Adam()))
    with pytest.raises(export.CannotExport, match="MicroBatch"):
        export.export_training(tiny_mlp(), (x, y), Recipe(MicroBatch(2)))
    with pytest.raises(export.CannotExport, match="loss must be one of"):
        export.export_training(tiny_mlp(), (x, y), loss="hinge")
    with pytest.raises(export.WrongBatch, match="pair"):
        export.export_training(tiny_mlp(), x)
    with pytest.raises(export.WrongBatch, match="fail on the example batch"):
        export.export_training(tiny_mlp(), (torch.randn(8, 10), y))
    with pytest.raises(export.CannotExport, match="BatchNormPolicy"):  # BatchNorm in train mode
        export.export_training(models.small_cnn(width=4), models.example_batch("cnn", 4, resolution=8))
    cnn_full = Recipe(Full(), BatchNormPolicy("frozen"))  # a max-pool after trainable layers
    with pytest.raises(export.CannotExport, match="MaxPool2d 'features.pool1'.*LastLayer"):
        export.export_training(models.small_cnn(width=4), models.example_batch("cnn", 4, resolution=8), cnn_full)
    frozen = tiny_mlp().requires_grad_(False)
    with pytest.raises(export.CannotExport, match="nothing to train"):
        export.export_training(frozen, (x, y))


class ValueDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


@needs_executorch
def test_data_dependent_control_flow_names_the_fix(tmp_path):
    with pytest.raises(export.CannotExport, match="torch.where"):
        export.export_training(ValueDependent(), batches(1)[0], path=tmp_path / "v.pte")
    assert not (tmp_path / "v.pte").exists()


@needs_executorch
def test_runtime_refuses_batches_of_another_shape(full_program):
    program = full_program.fresh()
    x, y = batches(1, size=4)[0]
    with pytest.raises(export.WrongBatch, match=r"\(8, 1, 8, 8\)"):
        program.step(x, y)
    with pytest.raises(export.WrongBatch, match="dtype|do not match"):
        program.step(x.repeat(2, 1, 1, 1).double(), y.repeat(2))
    with pytest.raises(ValueError, match="lr"):
        program.train([], lr=-1.0)
    assert program.losses == []
