"""odtlab.memory on tiny networks whose bytes we can count by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from odtlab import memory
from odtlab.memory import engine_saved_tensors, measure_optimizer_state, measure_saved_tensors
from odtlab.memory._session import run_trace

DEVICES = ["cpu", "meta"]


def tiny_mlp(device: str = "cpu") -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).to(device)


def mlp_batch(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(5, 4, device=device), torch.zeros(5, dtype=torch.long, device=device)


def tiny_cnn(act: nn.Module, device: str = "cpu") -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=False),  # 0
        nn.BatchNorm2d(2),  # 1
        act,  # 2
        nn.MaxPool2d(2),  # 3
        nn.Flatten(),  # 4
        nn.Linear(2 * 2 * 2, 3),  # 5
    ).to(device)


def cnn_batch(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 1, 4, 4).to(device), torch.tensor([0, 2]).to(device)


# Loss (cross-entropy) of B examples and C classes keeps: log-softmax B*C*4, targets B*8,
# and a float32 scalar "total weight" of 4 bytes.
MLP_LOSS = 5 * 2 * 4 + 5 * 8 + 4  # 84
CNN_LOSS = 2 * 3 * 4 + 2 * 8 + 4  # 44


@pytest.mark.parametrize("device", DEVICES)
def test_tiny_mlp_activation_bytes(device: str) -> None:
    # fc1 keeps its input x: 5*4 floats = 80 B (its weight is a parameter: excluded)
    # ReLU keeps its output: 5*3 floats = 60 B
    # fc2 keeps its input, the same ReLU output storage: counted once, 0 B more
    expected = 80 + 60 + MLP_LOSS
    saved = measure_saved_tensors(tiny_mlp(device), mlp_batch(device))
    assert saved.total_bytes == expected == 224
    assert saved.by_module() == {"0": 80, "1": 60, "loss": MLP_LOSS}
    assert memory.analytic_saved_tensors(tiny_mlp(device), mlp_batch(device)).total_bytes == 224


@pytest.mark.parametrize("device", DEVICES)
def test_tiny_mlp_frozen_backbone(device: str) -> None:
    # only fc2 ("2") trains: fc1 and ReLU see nothing that requires grad and keep nothing;
    # fc2 keeps its input (60 B)
    saved = measure_saved_tensors(tiny_mlp(device), mlp_batch(device), trainable=["2"])
    assert saved.total_bytes == 60 + MLP_LOSS
    assert saved.by_module() == {"2": 60, "loss": MLP_LOSS}


def test_parameters_are_not_activations() -> None:
    # only fc1 trains: fc2's weight is frozen but its input needs grad, so autograd keeps
    # fc2's *weight* (to get the input gradient); that is a parameter, not an activation.
    model = tiny_mlp()
    saved = measure_saved_tensors(model, mlp_batch(), trainable=["0"])
    assert saved.total_bytes == 80 + 60 + MLP_LOSS
    weight_shapes = {tuple(p.shape) for p in model.parameters()}
    assert not weight_shapes & {t.shape for t in saved.tensors}


@pytest.mark.parametrize("device", DEVICES)
def test_tiny_cnn_inplace_relu(device: str) -> None:
    # conv keeps the input batch:        2*1*4*4 floats          = 128 B
    # BN keeps its input (conv output):  2*2*4*4 floats          = 256 B
    #    plus mean and invstd:           2 + 2 floats            =  16 B
    # ReLU(inplace) keeps its output, written over the BN output = 256 B
    # MaxPool keeps its input (that same storage: 0 B more) and
    #    int64 indices of its output:   2*2*2*2 * 8             = 128 B
    # Flatten keeps nothing; Linear keeps its input: 2*8 floats =  64 B
    expected = 128 + 256 + 16 + 256 + 128 + 64 + CNN_LOSS
    model, batch = tiny_cnn(nn.ReLU(inplace=True), device), cnn_batch(device)
    saved = measure_saved_tensors(model, batch)
    assert saved.total_bytes == expected == 892
    assert saved.by_module() == {"0": 128, "1": 272, "2": 256, "3": 128, "5": 64, "loss": 44}
    assert memory.analytic_saved_tensors(model, batch).by_module() == saved.by_module()


@pytest.mark.parametrize("device", DEVICES)
def test_relu_inplace_or_not_costs_the_same(device: str) -> None:
    inplace = measure_saved_tensors(tiny_cnn(nn.ReLU(inplace=True), device), cnn_batch(device))
    fresh = measure_saved_tensors(tiny_cnn(nn.ReLU(), device), cnn_batch(device))
    assert inplace.total_bytes == fresh.total_bytes == 892


@pytest.mark.parametrize("device", DEVICES)
def test_inplace_relu6_keeps_a_clone(device: str) -> None:
    # ReLU6(inplace=True) clones its input before overwriting it and keeps the clone
    # (256 B); MaxPool then keeps the overwritten BN output itself (256 B, no longer shared)
    model, batch = tiny_cnn(nn.ReLU6(inplace=True), device), cnn_batch(device)
    saved = measure_saved_tensors(model, batch)
    assert saved.total_bytes == 892 + 256
    assert saved.by_module()["2"] == 256 and saved.by_module()["3"] == 256 + 128
    assert memory.analytic_saved_tensors(model, batch).by_module() == saved.by_module()


@pytest.mark.parametrize("device", DEVICES)
def test_tiny_cnn_frozen_backbone(device: str) -> None:
    # only the Linear head trains: nothing before it requires grad, so conv, BN, ReLU and
    # MaxPool keep nothing at all (even in train mode); the head keeps its 64 B input
    model, batch = tiny_cnn(nn.ReLU(inplace=True), device), cnn_batch(device)
    saved = measure_saved_tensors(model, batch, trainable=["5"])
    assert saved.total_bytes == 64 + CNN_LOSS
    assert memory.analytic_saved_tensors(model, batch, trainable=["5"]).total_bytes == 108


def test_batchnorm_in_eval_mode_on_cpu() -> None:
    # train=False keeps the model's own (eval) mode: BN keeps its input and two *empty*
    # statistics tensors on the CPU (0 B), so the total drops by the 16 B of statistics
    model, batch = tiny_cnn(nn.ReLU(inplace=True)).eval(), cnn_batch()
    saved = measure_saved_tensors(model, batch, train=False)
    assert saved.total_bytes == 892 - 16
    assert memory.analytic_saved_tensors(model, batch, train=False).total_bytes == 876
    assert not model.training


def test_dropout_mask_dtype_by_device() -> None:
    # the CPU keeps an fp32 mask (4 B/element); CUDA's fused dropout a bool mask (1 B/element)
    from odtlab.memory.formulas import dropout_kept

    x = torch.empty(10, 3, device="meta", requires_grad=True)
    assert dropout_kept(x, 0.5, True)[0].nbytes == 120
    assert dropout_kept(x, 0.5, True, "cuda")[0].nbytes == 30
    assert dropout_kept(x, 0.0, True, "cuda") == [] == dropout_kept(x, 0.5, False)


class TwoHeads(nn.Module):
    """Reads its input through two layers and a transposed view."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 2)
        self.b = nn.Linear(6, 2)
        self.c = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x) + self.b(x))  # x is kept by a and b: one storage
        view = x.view(4, 6).t()  # a view of x; matmul keeps it (same storage)
        return h + (view @ torch.ones(4, 2, device=x.device, requires_grad=True)).sum() * 0


@pytest.mark.parametrize("device", DEVICES)
def test_views_and_shared_inputs_count_once(device: str) -> None:
    x = torch.randn(4, 6, device=device)
    batch = (x, torch.zeros(4, dtype=torch.long, device=device))
    saved = measure_saved_tensors(TwoHeads().to(device), batch)
    # x (96 B) once, although a, b and the matmul (through a transposed view) keep it;
    # the ReLU output 32 B; the matmul does not keep the ones matrix (x needs no gradient)
    assert saved.by_module()["a"] == 96
    assert "b" not in saved.by_module()
    assert saved.total_bytes == 96 + 32 + (4 * 2 * 4 + 4 * 8 + 4)
    assert memory.analytic_saved_tensors(TwoHeads().to(device), batch).total_bytes == (
        saved.total_bytes
    )


def test_storage_identity_on_meta_is_not_data_ptr() -> None:
    a, b = torch.empty(3, device="meta"), torch.empty(3, device="meta")
    assert a.data_ptr() == b.data_ptr() == 0  # why we cannot use data_ptr on meta
    from odtlab.memory._setup import storage_key

    assert storage_key(a) != storage_key(b)
    assert storage_key(a) == storage_key(a.view(3, 1)) == storage_key(a[1:])


# ---- engine accounting --------------------------------------------------------------------


def _engine(model: nn.Module, batch: tuple, trainable: object = None) -> memory.SavedActivations:
    trace, _ = run_trace(model, batch, None, trainable, meta=True, record_saved=False)
    try:
        return engine_saved_tensors(trace)
    finally:
        trace.release()


def test_engine_rules_on_tiny_mlp() -> None:
    # fc1: input in 8 bits, 5*4 = 20 B; ReLU: 1-bit mask of 15 elements = ceil(15/8) = 2 B;
    # fc2: its input (the ReLU output) in 8 bits = 15 B;
    # loss: probabilities in 8 bits 5*2 = 10 B + targets in 1 byte (2 classes) 5 B
    saved = _engine(tiny_mlp(), mlp_batch())
    assert saved.by_module() == {"0": 20, "1": 2, "2": 15, "loss": 15}
    assert saved.total_bytes == 52


def test_engine_frozen_prefix_and_frozen_weight() -> None:
    # frozen prefix: fc1 and ReLU are frozen and see no gradient: 0 B
    assert _engine(tiny_mlp(), mlp_batch(), ["2"]).by_module() == {"2": 15, "loss": 15}
    # fc2 frozen but on the gradient path of fc1: keeps nothing for a weight gradient
    assert _engine(tiny_mlp(), mlp_batch(), ["0"]).by_module() == {"0": 20, "1": 2, "loss": 15}


@pytest.mark.parametrize("numel", [1, 7, 8, 9, 15, 64, 1001])
def test_relu_mask_is_one_bit_per_element(numel: int) -> None:
    model = nn.Sequential(nn.Linear(1, numel), nn.ReLU(), nn.Linear(numel, 2))
    saved = _engine(model, (torch.zeros(1, 1), torch.zeros(1, dtype=torch.long)))
    assert saved.by_module()["1"] == (numel + 7) // 8 == memory.mask_bytes(numel)


def test_engine_report_weights_and_frozen_batchnorm() -> None:
    model, batch = tiny_cnn(nn.ReLU(inplace=True)), cnn_batch()
    report = memory.profile_training(model, batch, trainable=["5"], accounting="engine")
    # weights: frozen conv 18 + BN 4 params at 1 B, head 27 params at 4 B; BN buffers as is
    assert report.totals["weights"] == 18 + 4 + 27 * 4 + (2 + 2) * 4 + 8
    # only the head trains: its 8-bit input 16 B; loss 6 + 2 targets of 1 B
    assert report.totals["activations"] == 16 + 6 + 2
    assert report.accounting == "engine"


# ---- optimizer state ----------------------------------------------------------------------


def test_optimizer_state_on_tiny_mlp() -> None:
    model = tiny_mlp()  # 4*3 + 3 + 3*2 + 2 = 23 floats = 92 B in 4 tensors
    assert measure_optimizer_state(model, "sgd").total_bytes == 0
    assert measure_optimizer_state(model, "momentum").total_bytes == 92
    adam = measure_optimizer_state(model, "adam")
    assert adam.total_bytes == 2 * 92 + 4 * 4  # exp_avg, exp_avg_sq, 4-byte step per tensor
    assert adam.step_bytes == 16
    assert measure_optimizer_state(model, "adamw").total_bytes == 200
    head = measure_optimizer_state(model, "adam", trainable=["2"])  # 8 floats, 2 tensors
    assert head.total_bytes == 2 * 32 + 2 * 4
    assert set(head.by_parameter) == {"2.weight", "2.bias"}


def test_optimizer_state_from_a_callable() -> None:
    rms = measure_optimizer_state(tiny_mlp(), lambda ps: torch.optim.RMSprop(ps, lr=0.1))
    assert rms.optimizer == "RMSprop"
    assert rms.total_bytes == 92 + 4 * 4  # square_avg + step counters
