"""Strategies that keep examples: experience replay, latent replay and A-GEM.

All three store a few examples in a :mod:`~odtlab.cl.buffers` buffer
while the stream goes by (each new batch is offered to the buffer after its
step) and differ in what they do with them:

* :class:`Replay` mixes stored examples into every batch (Chaudhry et al.,
  "On Tiny Episodic Memories in Continual Learning", 2019; the remedy that
  works in the class-incremental scenario, van de Ven et al. 2022);
* :class:`LatentReplay` stores the *activations* at a cut of a frozen
  backbone instead of the raw input and trains only the layers above the
  cut (Pellegrini, Graffieti, Lomonaco and Maltoni, IROS 2020): smaller
  examples when the cut is narrow, and no backward through the backbone;
* :class:`AGEM` uses them only to constrain the gradient: if the step
  would raise the loss on the stored examples, it is projected so it does
  not (Chaudhry, Ranzato, Rohrbach and Elhoseiny, ICLR 2019).

Examples
--------
>>> from odtlab import models
>>> from odtlab.cl.streams import class_incremental
>>> stream, net = class_incremental(), models.mlp()
>>> Replay(capacity=100).planned_bytes(net, stream)      # 100 x (64 floats + 2-byte label)
25800
>>> LatentReplay(capacity=100).planned_bytes(net, stream)  # the 64 features above fc2
25800
>>> LatentReplay(capacity=100, storage="uint8").planned_bytes(net, stream)
7400
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from odtlab import data
from odtlab.cl.buffers import ClassBalancedBuffer, ReplayBuffer, ReservoirBuffer, state_bytes
from odtlab.cl.errors import InvalidStrategy, UnsupportedModel
from odtlab.cl.strategies.base import Strategy, trainable_bytes
from odtlab.cl.streams import Experience, Stream

if TYPE_CHECKING:
    from odtlab.recipes import Recipe

__all__ = ["Replay", "LatentReplay", "AGEM", "make_buffer"]

BUFFERS = ("reservoir", "class-balanced")


def make_buffer(kind: str, capacity: int, storage: str, seed: int) -> ReplayBuffer:
    """A ``"reservoir"`` or ``"class-balanced"`` buffer."""
    if kind == "reservoir":
        return ReservoirBuffer(capacity, storage=storage, seed=seed)
    if kind == "class-balanced":
        return ClassBalancedBuffer(capacity, storage=storage, seed=seed)
    raise InvalidStrategy(f"buffer={kind!r}; choose one of {BUFFERS}")


def _sample_shape(stream: Stream) -> tuple[int, ...]:
    x, _ = stream[0].train[0]
    return tuple(x.shape)


class Replay(Strategy):
    """Experience replay: every step trains on the new batch plus as many stored examples.

    Parameters
    ----------
    capacity : int, default 200
        Examples the buffer holds (about 15 % of the split digits).
    buffer : {"reservoir", "class-balanced"}
        Which examples stay (:mod:`odtlab.cl.buffers`).
    storage : {"float32", "uint8"}
        Bytes per stored value: 4, or 1 plus two floats per example.
    replay_batch : int or None
        Stored examples per step; None: the size of the new batch.
    seed : int
    """

    name = "replay"

    def __init__(self, capacity: int = 200, *, buffer: str = "reservoir", storage: str = "float32",
                 replay_batch: int | None = None, seed: int = 0) -> None:  # fmt: skip
        self.capacity, self.buffer_kind, self.storage = capacity, buffer, storage
        self.replay_batch = replay_batch
        self.buffer = make_buffer(buffer, capacity, storage, seed)

    def planned_bytes(self, model: nn.Module, stream: Stream) -> int:
        shape = self.latent_shape(model, stream)
        return ReplayBuffer.bytes_for(self.capacity, shape, self.storage)

    def latent_shape(self, model: nn.Module, stream: Stream) -> tuple[int, ...]:
        """Shape of one stored example (the raw input here)."""
        return _sample_shape(stream)

    def replay_size(self, batch_size: int) -> int:
        return batch_size if self.replay_batch is None else self.replay_batch

    def replay(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.buffer.sample(n, generator)

    def after_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.buffer.add(x, y)

    def memory(self) -> dict[str, int]:
        what = "replay buffer (raw)" if type(self) is not LatentReplay else "replay buffer (latent)"
        return {what: self.buffer.nbytes} if len(self.buffer) else {}


def _cut(model: nn.Module, path: list[str], cut: str) -> tuple[nn.Sequential, nn.Sequential]:
    """``model`` (nested ``nn.Sequential``) as (below the cut, from the cut on), names kept."""
    names = [n for n, _ in model.named_children()]
    if not isinstance(model, nn.Sequential) or path[0] not in names:
        raise UnsupportedModel(
            f"LatentReplay(cut={cut!r}) needs nested nn.Sequential modules with a child named "
            f"{path[0]!r}; {type(model).__name__} has children {names}. Pass cut= one of them "
            "(a dotted path reaches inside, e.g. 'features.fc2'), or wrap your model as "
            "nn.Sequential(backbone, head)"
        )
    children = list(model.named_children())
    at = names.index(path[0])
    below, above = children[:at], children[at:]
    if len(path) > 1:
        inner_below, inner_above = _cut(children[at][1], path[1:], cut)
        below, above = (
            below + [(path[0], inner_below)],
            [(path[0], inner_above)] + children[at + 1 :],
        )
    if not below or not list(nn.Sequential(OrderedDict(below)).modules())[1:]:
        raise UnsupportedModel(
            f"cut={cut!r} is at the very start: nothing would be frozen; cut later"
        )
    return nn.Sequential(OrderedDict(below)), nn.Sequential(OrderedDict(above))


class LatentReplay(Replay):
    """Replay activations at a cut of a frozen backbone; train only the layers above it.

    The whole model learns the first experience (the backbone needs some
    features to freeze; Pellegrini et al. start from a pre-trained one).
    Then the layers below the cut are frozen, the first experience's
    training data is stored as activations at the cut, and from the second
    experience on only the layers above the cut train, on new activations
    mixed with stored ones. No backward pass runs through the backbone.

    Parameters
    ----------
    cut : str, default "classifier"
        Name of a direct child of the model (an ``nn.Sequential``, as the
        zoo's models are): the children before it form the backbone, it and
        the ones after are trained. ``"classifier"`` stores the features the
        head sees (64 floats for the zoo MLP, as many as the 8x8 digit, so
        no saving there; an image CNN's features are far smaller than its input).
    train_first : bool, default True
        Train the whole model on the first experience before freezing;
        ``False`` freezes the backbone as given (a pre-trained one).
    capacity, buffer, storage, replay_batch, seed
        As for :class:`Replay`.

    Raises
    ------
    UnsupportedModel
        When the model is not an ``nn.Sequential`` or has no child ``cut``.
    """

    name = "latent-replay"

    def __init__(self, cut: str = "classifier", capacity: int = 200, *, train_first: bool = True,
                 **kwargs: object) -> None:  # fmt: skip
        super().__init__(capacity, **kwargs)  # type: ignore[arg-type]
        self.cut = cut
        self.frozen = not train_first

    def _split(self, model: nn.Module) -> tuple[nn.Sequential, nn.Sequential]:
        return _cut(model, self.cut.split("."), self.cut)

    def setup(self, model: nn.Module, recipe: Recipe, stream: Stream) -> None:
        self._split(model)

    def trained_module(self, model: nn.Module) -> nn.Module:
        if not self.frozen:
            return model
        backbone, head = self._split(model)
        for p in backbone.parameters():
            p.requires_grad_(False)
        return head

    def _backbone_out(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        backbone = self._split(model)[0]
        modes = [(m, m.training) for m in backbone.modules()]
        backbone.eval()  # frozen: BatchNorm statistics stay too
        with torch.no_grad():
            out = backbone(x)
        for m, mode in modes:
            m.training = mode
        return out

    def encode(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self._backbone_out(model, x) if self.frozen else x

    def after_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.frozen:
            self.buffer.add(x, y)

    def after_experience(self, model: nn.Module, experience: Experience) -> None:
        if not self.frozen:  # model is the whole network here: freeze it, store its activations
            self.frozen = True
            x, y = data.as_tensors(experience.train)
            self.buffer.add(self._backbone_out(model, x), y)

    def latent_shape(self, model: nn.Module, stream: Stream) -> tuple[int, ...]:
        """Shape of one stored activation: the backbone's output for one input."""
        x, _ = stream[0].train[0]
        return tuple(self._backbone_out(model, x.unsqueeze(0)).shape[1:])


class AGEM(Strategy):
    """Averaged GEM: keep the step from raising the loss on stored examples.

    Before each step, the gradient ``g_ref`` of the loss on ``ref_batch``
    stored examples is computed. If the new gradient ``g`` points against
    it (``g . g_ref < 0``) it is replaced by ``g - (g . g_ref) / (g_ref .
    g_ref) g_ref``, its projection onto the half-space where the stored loss
    does not rise (to first order).

    Parameters
    ----------
    capacity : int, default 200
    buffer, storage : as for :class:`Replay`
    ref_batch : int, default 64
        Stored examples per reference gradient.
    seed : int

    Raises
    ------
    UnsupportedModel
        With a recipe that steps inside backward (``UpdateInBackward``):
        the whole gradient never exists at once, so it cannot be projected.
    """

    name = "a-gem"

    def __init__(self, capacity: int = 200, *, buffer: str = "reservoir", storage: str = "float32",
                 ref_batch: int = 64, seed: int = 0) -> None:  # fmt: skip
        self.capacity, self.buffer_kind, self.storage, self.ref_batch = (
            capacity,
            buffer,
            storage,
            ref_batch,
        )
        self.buffer = make_buffer(buffer, capacity, storage, seed)
        self._ref: list[torch.Tensor] = []

    def setup(self, model: nn.Module, recipe: Recipe, stream: Stream) -> None:
        if recipe.update_in_backward:
            raise UnsupportedModel(
                "A-GEM projects the whole gradient before the step, but this recipe steps each "
                "tensor inside backward (UpdateInBackward); drop that part or use Replay"
            )

    def planned_bytes(self, model: nn.Module, stream: Stream) -> int:
        return ReplayBuffer.bytes_for(
            self.capacity, _sample_shape(stream), self.storage
        ) + trainable_bytes(model)

    def before_step(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        batch = self.buffer.sample(self.ref_batch)
        named = [
            (n, p) for n, p in model.named_parameters() if p.requires_grad and p.grad is not None
        ]
        if batch is None or not named:
            return None
        with torch.enable_grad():
            loss = F.cross_entropy(model(batch[0]), batch[1])
            ref = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        g_ref = torch.cat([(r if r is not None else torch.zeros_like(p)).flatten()
                           for r, (_, p) in zip(ref, named, strict=True)])  # fmt: skip
        self._ref = [g_ref]
        g = torch.cat([p.grad.flatten() for _, p in named])  # type: ignore[union-attr]
        dot = torch.dot(g, g_ref)
        if dot >= 0:
            return None
        g = g - dot / torch.dot(g_ref, g_ref).clamp_min(1e-12) * g_ref
        out, at = {}, 0
        for n, p in named:
            out[n] = g[at : at + p.numel()].view_as(p)
            at += p.numel()
        return out

    def after_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.buffer.add(x, y)

    def memory(self) -> dict[str, int]:
        out = {"replay buffer (raw)": self.buffer.nbytes} if len(self.buffer) else {}
        if self._ref:
            out["reference gradient"] = state_bytes(self._ref)
        return out
