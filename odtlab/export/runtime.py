"""Train an exported ``.pte`` program in the ExecuTorch runtime, from Python.

The runtime runs the joint forward-backward graph (one call gives the loss
and the gradients of the trainable parameters) and its own SGD updates
those parameters in place, inside the runtime's memory: PyTorch's autograd
and optimizer play no part.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from odtlab.export.errors import CannotExport, ExecuTorchMissing, WrongBatch

__all__ = ["ExportedTraining", "load_runtime", "PREFIX"]

#: The name under which the training wrapper holds the model; stripped from parameter names.
PREFIX = "model."

INSTALL_HINT = (
    'ExecuTorch is not installed; install the extra with pip install -e ".[export]" '
    '(or pip install "executorch==1.5.1", which keeps torch 2.13)'
)


def load_runtime(path: Path) -> Any:
    """Load a training ``.pte`` from a file with ExecuTorch's training loader.

    From a path, not from bytes: the from-buffer loader reads freed memory
    once the bytes object is gone (executorch 1.5.1).

    Raises
    ------
    ExecuTorchMissing
        Where ``executorch`` cannot be imported.
    """
    try:
        from executorch.extension.training import _load_for_executorch_for_training
    except ImportError as error:
        raise ExecuTorchMissing(INSTALL_HINT) from error
    with warnings.catch_warnings():  # the API is marked experimental on every call
        warnings.simplefilter("ignore")
        return _load_for_executorch_for_training(str(path))


def _sgd(parameters: dict[str, torch.Tensor], lr: float, momentum: float, decay: float) -> Any:
    from executorch.extension.training import get_sgd_optimizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_sgd_optimizer(parameters, lr, momentum, 0.0, decay, False)


@dataclass
class ExportedTraining:
    """A training program in the ExecuTorch runtime: step it, read its parameters.

    Made by :func:`odtlab.export.export_training`; not built by hand.

    Parameters
    ----------
    path : Path
        The ``.pte`` file.
    example : tuple of Tensor
        The example batch ``(x, y)`` it was exported with; every batch must
        have the same shapes and dtypes.
    initial : dict of str to Tensor
        Every parameter at export time (model names, e.g. ``"classifier.bias"``).
    trainable : tuple of str
        The names the program computes gradients for; the rest are constants
        in the program and cannot change.
    lr, momentum, weight_decay : float
        The runtime's SGD settings (from the recipe's :class:`~odtlab.recipes.SGD`).

    Attributes
    ----------
    pte_bytes : int
        Size of the ``.pte`` file in bytes (graph, kernels' arguments and all
        weights, trainable and frozen).
    losses : list of float
        The loss of every step so far.

    Examples
    --------
    >>> from odtlab import export, models  # doctest: +SKIP
    >>> x, y = models.example_batch("mlp", 8)  # doctest: +SKIP
    >>> program = export.export_training(models.mlp(), (x, y))  # doctest: +SKIP
    >>> program.train([(x, y)] * 5)  # doctest: +SKIP
    [2.33..., ...]
    """

    path: Path
    example: tuple[torch.Tensor, torch.Tensor]
    initial: dict[str, torch.Tensor]
    trainable: tuple[str, ...]
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    losses: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._module = load_runtime(self.path)
        self._optimizer: Any = None

    @property
    def pte_bytes(self) -> int:
        """Size of the ``.pte`` file in bytes."""
        return self.path.stat().st_size

    @property
    def frozen(self) -> tuple[str, ...]:
        """Names of the parameters baked into the program as constants."""
        return tuple(n for n in self.initial if n not in self.trainable)

    def _check(self, x: Any, y: Any) -> None:
        for what, got, want in (("inputs", x, self.example[0]), ("targets", y, self.example[1])):
            if not isinstance(got, torch.Tensor):
                raise WrongBatch(f"{what} must be a torch.Tensor; got {type(got).__name__}")
            if got.shape != want.shape or got.dtype != want.dtype:
                raise WrongBatch(
                    f"{what} of shape {tuple(got.shape)} {got.dtype} do not match the exported "
                    f"{tuple(want.shape)} {want.dtype}; an exported program has fixed shapes: "
                    "use batches of that size (drop_last=True) or export again with this batch"
                )

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One training step in the runtime: forward, backward, SGD update; returns the loss.

        The loss is the one *before* the update (as ``loss.item()`` in an
        eager loop).

        Raises
        ------
        WrongBatch
            If ``x`` or ``y`` differ in shape or dtype from the example batch.
        CannotExport
            If the runtime cannot run the program (an operator without a kernel).
        """
        self._check(x, y)
        try:
            outputs = self._module.forward_backward("forward", (x, y))
        except RuntimeError as error:
            raise CannotExport(
                f"the ExecuTorch runtime could not run {self.path.name} ({error}); most often an "
                "operator of the graph has no kernel in the runtime (its log above names it, e.g. "
                "aten::avg_pool2d_backward): replace that layer in the model and export again"
            ) from error
        if self._optimizer is None:  # the runtime hands out its parameters after a first call
            self._optimizer = _sgd(
                self._module.named_parameters(), self.lr, self.momentum, self.weight_decay
            )
        self._optimizer.step(self._module.named_gradients())
        loss = float(outputs[0])
        self.losses.append(loss)
        return loss

    def train(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, lr: float | None = None
    ) -> list[float]:
        """Run :meth:`step` on every ``(x, y)`` of ``batches``; return their losses.

        Parameters
        ----------
        batches : iterable of (Tensor, Tensor)
            E.g. a list of batches, or a ``DataLoader`` with ``drop_last=True``.
        lr : float or None
            A new learning rate from now on (the runtime's SGD is rebuilt, so
            momentum buffers start again from zero); ``None`` keeps it.
        """
        if lr is not None:
            if not isinstance(lr, (int, float)) or not lr > 0:
                raise ValueError(f"lr must be a positive number; got {lr!r}")
            if float(lr) != self.lr:
                self.lr = float(lr)
                self._optimizer = None
        losses = []
        for item in batches:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise WrongBatch(f"each batch must be a pair (inputs, targets); got {item!r:.80}")
            losses.append(self.step(item[0], item[1]))
        return losses

    def parameters(self) -> dict[str, torch.Tensor]:
        """The trainable parameters as they are now in the runtime (copies, model names)."""
        try:
            live = self._module.named_parameters()
        except RuntimeError:  # the runtime hands them out only after a first step
            return {n: self.initial[n].clone() for n in self.trainable}
        return {name.removeprefix(PREFIX): t.clone() for name, t in live.items()}

    def fresh(self) -> ExportedTraining:
        """A new runtime loaded from the same ``.pte``: the exported weights, no steps, no losses."""
        return dataclasses.replace(self, losses=[])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every parameter: the runtime's trainable ones and the frozen constants.

        Load it into the eager model with ``model.load_state_dict(...,
        strict=False)`` (buffers such as BatchNorm statistics are not in it).
        """
        state = {n: t.clone() for n, t in self.initial.items()}
        state.update(self.parameters())
        return state
