"""The one continual training loop: a recipe over a stream, a strategy's hooks, the matrix ``R``.

:func:`run_stream` trains a copy of a model on each experience in turn,
through the recipe's own training step (``recipe.train_step``: trainable
set, optimizer, precision, micro-batches), so a bias-only continual learner
is one argument: ``recipe=Recipe(BiasOnly())``. After each experience it
tests on every experience's test set and fills one row of ``R``; the
metrics are pure functions of ``R`` (:mod:`odtlab.cl.metrics`). With a
device it first checks that one training step plus the strategy's state
fits, and refuses early with :class:`~odtlab.errors.DoesNotFit` if not.

Examples
--------
>>> from odtlab import cl, models
>>> res = cl.run_stream(models.mlp(), cl.online(cl.class_incremental()), cl.Naive(), seed=0)
>>> res.R.shape, res.metrics["acc"] < 0.5      # naive forgets the old digits
(torch.Size([5, 5]), True)
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from odtlab import data, devices, viz
from odtlab.cl.errors import StrategyDiverged, UnsupportedModel
from odtlab.cl.metrics import metrics
from odtlab.cl.price import MemoryPrice
from odtlab.cl.strategies.base import Naive, Strategy
from odtlab.cl.streams import Stream
from odtlab.recipes import Recipe
from odtlab.train import accuracy, default_recipe, profile

__all__ = ["run_stream", "StreamResult", "TaskHead", "price_on"]


class TaskHead(nn.Module):
    """``model`` with every logit outside ``classes`` set to minus infinity (one task's head)."""

    def __init__(self, model: nn.Module, classes: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.model = model
        mask = torch.ones(num_classes, dtype=torch.bool)
        mask[list(classes)] = False
        self.register_buffer("hidden", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).masked_fill(self.hidden, float("-inf"))


@dataclass
class StreamResult:
    """What a run over a stream gives: the accuracy matrix, the metrics and the memory price.

    Attributes
    ----------
    stream, strategy, scenario : str
    R : Tensor, shape (T, T)
        ``R[i, j]``: test accuracy on experience ``j`` after training through ``i``.
    b : Tensor, shape (T,)
        Test accuracy of the untrained model on each experience.
    memory : dict of str to int
        The strategy's state at the end of the stream, bytes by category.
    price : MemoryPrice or None
        Step plus state against the device, when a device was given.
    experiences : list of str
        Names of the experiences, for tables and plots.
    seconds : float
        Wall-clock time of the run on this machine.
    model : nn.Module
        The trained copy.
    """

    stream: str
    strategy: str
    scenario: str
    R: torch.Tensor
    b: torch.Tensor
    memory: dict[str, int]
    price: MemoryPrice | None = None
    experiences: list[str] = field(default_factory=list)
    seconds: float = 0.0
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def metrics(self) -> dict[str, float]:
        """:func:`odtlab.cl.metrics` of ``R`` and ``b``: acc, bwt, forgetting, fwt."""
        return metrics(self.R, self.b)

    @property
    def memory_bytes(self) -> int:
        """Bytes the strategy keeps, all categories."""
        return sum(self.memory.values())

    def line(self) -> str:
        """``cl <stream> <strategy>: acc=... bwt=... forgetting=... memory_bytes=...``."""
        m = self.metrics
        return (f"cl {self.stream} {self.strategy}: acc={m['acc']:.3f} bwt={m['bwt']:.3f} "
                f"forgetting={m['forgetting']:.3f} memory_bytes={self.memory_bytes}")  # fmt: skip

    def plot(self, ax: Any = None) -> Any:
        """Heat-map of ``R`` (:func:`odtlab.viz.plot_accuracy_matrix`)."""
        return viz.plot_accuracy_matrix(self.R, self.experiences, ax=ax,
                                        title=f"{self.strategy} on {self.stream}")  # fmt: skip

    def __str__(self) -> str:
        rows = [self.line()]
        for name, row in zip(self.experiences, self.R.tolist(), strict=True):
            rows.append(f"  after {name:<16}" + " ".join(f"{v:5.2f}" for v in row))
        if self.price is not None:
            rows.append("  " + str(self.price))
        return "\n".join(rows)


def _evaluate(model: nn.Module, stream: Stream) -> torch.Tensor:
    out = []
    seen: dict[int, float] = {}  # experiences that share one test set (a tutor's held-out days)
    for exp in stream:
        if stream.scenario == "task":
            out.append(accuracy(TaskHead(model, exp.classes, stream.num_classes), exp.test))
            continue
        if id(exp.test) not in seen:
            seen[id(exp.test)] = accuracy(model, exp.test)
        out.append(seen[id(exp.test)])
    return torch.tensor(out)


def _same_task(stream: Stream) -> torch.Tensor | None:
    """``[c, k]``: whether classes c and k share a task (task scenario only)."""
    if stream.scenario != "task":
        return None
    task = torch.full((stream.num_classes,), -1)
    for exp in stream:
        task[list(exp.classes)] = exp.task_id
    return task[:, None] == task[None, :]


def _check_outputs(model: nn.Module, stream: Stream) -> None:
    x, _ = data.as_tensors(stream[0].train)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # BatchNorm in train mode refuses a single example
    try:
        with torch.no_grad():
            out = model(x[:2])
    except (RuntimeError, ValueError) as err:
        raise UnsupportedModel(
            f"the model cannot read the stream's inputs of shape {tuple(x.shape[1:])}: {err}"
        ) from err
    finally:
        for m, mode in modes:
            m.training = mode
    if out.ndim != 2 or out.shape[1] != stream.num_classes:
        raise UnsupportedModel(
            f"the model gives outputs of shape {tuple(out.shape)} but stream {stream.name!r} has "
            f"{stream.num_classes} classes; build it with num_classes={stream.num_classes}"
        )


def run_stream(
    model: nn.Module,
    stream: Stream,
    strategy: Strategy | None = None,
    *,
    recipe: Recipe | None = None,
    device: str | devices.DeviceProfile | None = None,
    seed: int = 0,
) -> StreamResult:
    """Train a copy of ``model`` on each experience of ``stream`` with ``strategy``; fill ``R``.

    Parameters
    ----------
    model : nn.Module
        Maps a batch of the stream's inputs to ``stream.num_classes``
        logits. Not changed: a deep copy is trained (``result.model``).
    stream : Stream
        The experiences, with ``epochs`` and ``batch_size`` (see :func:`online`).
    strategy : Strategy or None
        None is :class:`Naive`. Use a fresh strategy per run: it keeps state.
    recipe : Recipe or None
        How each step trains (default: full training, SGD lr 0.05).
    device : str, DeviceProfile or None
        With a device, one step plus the strategy's planned state must fit
        its training memory (``result.price``).
    seed : int
        Seeds the batch order, the replay draws and dropout.

    Raises
    ------
    UnsupportedModel
        When the model's outputs do not match the stream, or the strategy
        cannot handle the model or recipe.
    DoesNotFit
        When step plus state exceed the device's budget (before training).
    """
    strategy = Naive() if strategy is None else strategy
    recipe = default_recipe() if recipe is None else recipe
    start = time.perf_counter()
    net = copy.deepcopy(model)
    _check_outputs(net, stream)
    strategy.setup(net, recipe, stream)
    module = recipe.prepare(strategy.trained_module(net))
    gen = torch.Generator().manual_seed(seed)
    extra = strategy.replay_size(stream.batch_size)
    price = None
    if device is not None:
        x, y = data.as_tensors(stream[0].train)
        index = torch.arange(stream.batch_size + extra) % len(y)  # one full step, replay included
        batch = (strategy.encode(net, x[index]), y[index])
        step = devices.verdict(profile(module, batch, recipe, device, flops=False), device)
        price = MemoryPrice(step.device_name, {"planned state": strategy.planned_bytes(net, stream)},
                            step.peak_bytes, step.budget_bytes).check(repr(strategy))  # fmt: skip
    same_task = _same_task(stream)
    seen: list[torch.Tensor] = []

    def loss_fn(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = outputs if same_task is None else outputs.masked_fill(~same_task[y], float("-inf"))
        loss = F.cross_entropy(logits, y)
        penalty = strategy.before_backward(module, seen[0], y, outputs)
        return loss if penalty is None else loss + penalty

    def project(optimizer: Any, args: Any, kwargs: Any) -> None:
        grads = strategy.before_step(module)
        for name, p in module.named_parameters():
            if grads and name in grads:
                p.grad = grads[name].detach().clone()

    b = _evaluate(net, stream)
    rows, steps = [], 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for exp in stream:
            module = recipe.prepare(strategy.trained_module(net))  # latent replay: the head, later
            strategy.before_experience(module, exp)
            x, y = data.as_tensors(strategy.training_data(exp))
            x = strategy.encode(net, x)
            opt = recipe.make_optimizer(module.parameters())
            handles = [opt.register_step_pre_hook(project), module.register_forward_pre_hook(
                lambda m, args: seen.__setitem__(slice(None), [args[0]]))]  # fmt: skip
            module.train()
            try:
                for _ in range(stream.epochs):
                    for index in torch.randperm(len(y), generator=gen).split(stream.batch_size):
                        xb, yb = x[index], y[index]
                        old = strategy.replay(extra, gen) if extra else None
                        xs, ys = (
                            (xb, yb)
                            if old is None
                            else (torch.cat([xb, old[0]]), torch.cat([yb, old[1]]))
                        )
                        loss = recipe.train_step(module, xs, ys, loss_fn, opt)
                        steps += 1
                        if not math.isfinite(loss):
                            raise StrategyDiverged(steps, loss, recipe.name, repr(strategy))
                        strategy.after_step(module, xb, yb)
            finally:
                for handle in handles:
                    handle.remove()
            strategy.after_experience(module, exp)
            rows.append(_evaluate(net, stream))
    memory = strategy.memory()
    if price is not None:
        price = MemoryPrice(price.device, memory, price.step_bytes, price.budget_bytes)
    return StreamResult(
        stream=stream.name, strategy=strategy.name, scenario=stream.scenario, R=torch.stack(rows),
        b=b, memory=memory, price=price, experiences=[e.name or str(e.index) for e in stream],
        seconds=time.perf_counter() - start, model=net,
    )  # fmt: skip


def price_on(result: StreamResult, strategy: Strategy, stream: Stream,
             device: str | devices.DeviceProfile, *, recipe: Recipe | None = None) -> MemoryPrice:  # fmt: skip
    """What ``strategy``'s run would cost on ``device``: one training step plus its state.

    The step is that of the module the strategy trains at the end of the run
    (latent replay: only the layers above the cut, on activations), on a
    batch of ``stream.batch_size`` new examples plus its replayed ones,
    profiled by :func:`odtlab.train.profile` as the device holds it (an
    MCU keeps frozen weights in flash); the state is ``result.memory``.
    Unlike ``run_stream(..., device=...)``, which refuses to start when the
    plan does not fit, this prices a finished run, fitting or not, so that
    chapter 8 can say by how much each strategy is over.
    """
    if result.model is None:
        raise UnsupportedModel(
            "price_on needs a result that holds its trained model (run_stream's)"
        )
    x, y = data.as_tensors(stream[0].train)
    index = torch.arange(stream.batch_size + strategy.replay_size(stream.batch_size)) % len(y)
    module = strategy.trained_module(result.model)
    batch = (strategy.encode(result.model, x[index]), y[index])
    report = profile(module, batch, default_recipe() if recipe is None else recipe, device,
                     flops=False)  # fmt: skip
    step = devices.verdict(report, device)
    return MemoryPrice(step.device_name, dict(result.memory), step.peak_bytes, step.budget_bytes)
