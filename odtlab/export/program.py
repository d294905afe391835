"""Turn model + loss + recipe into an ExecuTorch training program (a ``.pte`` file).

The steps, as ExecuTorch's training flow has them (torch 2.13, executorch 1.5.1):

1. wrap the model and the loss in one module whose ``forward(x, y)`` returns
   the loss (:class:`TrainingGraph`);
2. ``torch.export.export(..., strict=True)`` traces it into one graph with
   fixed shapes;
3. ``_export_forward_backward`` adds the backward: the joint graph returns
   the loss *and* the gradient of every parameter that requires grad; the
   others stay plain inputs with no gradient, constants once in the program;
4. ``to_edge(...).to_executorch()`` lowers it to ExecuTorch's operators and
   memory plan, written atomically to a ``.pte`` file.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from odtlab.export.atomic import write_atomically
from odtlab.export.errors import CannotExport, ExecuTorchMissing, WrongBatch
from odtlab.export.runtime import INSTALL_HINT, ExportedTraining
from odtlab.recipes import SGD, Recipe

__all__ = ["TrainingGraph", "export_training", "LOSSES", "EXPORTABLE_KINDS", "POOLS_WITHOUT_BACKWARD"]

#: Losses by name; a callable ``loss(outputs, targets) -> scalar`` works too.
LOSSES: dict[str, Callable[[], nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
}

#: Recipe part kinds the export understands: they only choose what trains, set BatchNorm's
#: mode or set the SGD. Micro-batches, checkpointing, precision and update-in-backward have
#: no counterpart in the runtime's single joint graph.
EXPORTABLE_KINDS = ("trainable", "branches", "batchnorm", "activations", "optimizer")


class TrainingGraph(nn.Module):
    """The model and its loss as one module: ``forward(x, y)`` returns the scalar loss.

    Examples
    --------
    >>> graph = TrainingGraph(nn.Linear(4, 3), nn.CrossEntropyLoss())
    >>> graph(torch.zeros(2, 4), torch.tensor([0, 2])).shape
    torch.Size([])
    """

    def __init__(self, model: nn.Module, loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.model = model  # parameter names in the program start with "model."
        self.loss = loss

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(self.model(x), y)


def _loss_module(loss: str | Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise CannotExport(f"loss must be one of {', '.join(map(repr, LOSSES))} or a callable; got {loss!r}")
        return LOSSES[loss]()
    if not callable(loss):
        raise CannotExport(f"loss must be a name or a callable (outputs, targets) -> scalar; got {loss!r}")
    return loss


def _check_recipe(recipe: Recipe | None) -> SGD:
    if recipe is None:
        return SGD()
    if not isinstance(recipe, Recipe):
        raise CannotExport(f"recipe must be an odtlab.recipes.Recipe or None; got {type(recipe).__name__}")
    unsupported = [p for p in recipe.parts if p.kind not in EXPORTABLE_KINDS]
    unsupported += [] if recipe.micro_batches == 1 else [recipe.part("micro-batch")]
    if unsupported:
        raise CannotExport(
            f"recipe {recipe.name!r} has parts the ExecuTorch runtime cannot run: "
            f"{', '.join(sorted({repr(p) for p in unsupported}))}; the exported program runs one "
            "fp32 joint forward-backward graph per batch and updates with SGD, so keep only the "
            "trainable set, BatchNormPolicy and SGD/Momentum"
        )
    optimizer = recipe.optimizer_part
    if not isinstance(optimizer, SGD):
        raise CannotExport(
            f"the ExecuTorch runtime trains with SGD only, the recipe has {optimizer!r}; use "
            "SGD(lr=...) or Momentum() in the recipe"
        )
    return optimizer


#: Pools whose backward the ExecuTorch 1.5.1 runtime gets wrong or lacks. Max pooling: the
#: portable ``max_pool2d_with_indices_backward`` adds into a gradient buffer it never zeroes,
#: so leftover memory becomes gradient (pytorch/executorch issue #21686, fixed by PR #21878
#: after 1.5.1; measured here: the gradients of a conv before a max-pool differ from eager by
#: 1e1). Average pooling: ``aten::avg_pool2d_backward`` has no portable kernel. Harmless when
#: nothing below the pool trains.
POOLS_WITHOUT_BACKWARD = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
)  # fmt: skip


def _check_pools(model: nn.Module) -> None:
    """Refuse a max/avg pool with a trainable parameter before it (in registration order,
    the order in which ``nn.Sequential`` runs its layers): its backward would run."""
    trainable_before = None
    for name, module in model.named_modules():
        if isinstance(module, POOLS_WITHOUT_BACKWARD) and trainable_before is not None:
            raise CannotExport(
                f"{type(module).__name__} {name!r} comes after the trainable {trainable_before!r}, "
                "so the program would need its backward, which the ExecuTorch 1.5.1 runtime "
                "computes wrongly (max pooling, executorch issue #21686) or lacks (average "
                "pooling); train only layers "
                "after the pool (e.g. Recipe(LastLayer())), or replace the pool by a stride-2 "
                "convolution or nn.AdaptiveAvgPool2d(1)"
            )
        for pname, param in module.named_parameters(recurse=False):
            if param.requires_grad and trainable_before is None:
                trainable_before = f"{name}.{pname}" if name else pname


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise CannotExport(f"model must be a torch.nn.Module; got {type(model).__name__}")
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise CannotExport(
                f"BatchNorm {name!r} is in train mode (batch statistics and running-stat updates), "
                "which ExecuTorch's operator set cannot train; freeze it with "
                "Recipe(..., BatchNormPolicy('frozen')), or swap it with BatchNormPolicy('group'), "
                "or fold it into the convolution (odtlab.recipes.fold_batchnorm)"
            )
    _check_pools(model)
    if not any(p.requires_grad for p in model.parameters()):
        raise CannotExport(
            f"{type(model).__name__} has no parameter that requires grad, so there is nothing to "
            "train; pass a recipe such as Recipe(BiasOnly()) or call requires_grad_(True)"
        )


def _check_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise WrongBatch(f"example_batch must be a pair (inputs, targets); got {type(batch).__name__}")
    x, y = batch
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise WrongBatch("example_batch must hold two torch.Tensors (inputs, targets)")
    if x.device.type != "cpu" or y.device.type != "cpu":
        raise WrongBatch(f"the ExecuTorch runtime here runs on the CPU; move the batch there (got {x.device})")
    return x.detach().clone(), y.detach().clone()


def _lower(graph: TrainingGraph, x: torch.Tensor, y: torch.Tensor) -> Any:
    """Export the joint forward-backward graph and lower it to an ExecuTorch program."""
    try:
        from executorch.exir import to_edge
    except ImportError as error:
        raise ExecuTorchMissing(INSTALL_HINT) from error
    from torch.export.experimental import _export_forward_backward

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exported = torch.export.export(graph, (x, y), strict=True)
            joint = _export_forward_backward(exported)
            return to_edge(joint).to_executorch()
        except Exception as error:  # torch's many export errors, one clear message
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CannotExport(
                f"ExecuTorch could not export {type(graph.model).__name__} for training "
                f"({type(error).__name__}: {first}). Common causes: Python control flow that "
                "depends on tensor values (write it with torch.where or torch.cond), operators "
                "outside the core ATen set, or a loss that does not return one scalar"
            ) from error


def export_training(
    model: nn.Module,
    example_batch: tuple[torch.Tensor, torch.Tensor],
    recipe: Recipe | None = None,
    loss: str | Callable[..., torch.Tensor] = "cross_entropy",
    *,
    path: str | os.PathLike[str] | None = None,
) -> ExportedTraining:
    """Export ``model`` + ``loss`` + ``recipe`` as an ExecuTorch training program and load it.

    The model is copied (yours is not changed); ``recipe.prepare`` runs on
    the copy, so only the recipe's trainable parameters get gradients in
    the program: with ``Recipe(BiasOnly())`` the weights are constants in
    the ``.pte`` and cannot change. Without a recipe the parameters that
    already require grad train, with ``SGD(lr=0.05)``. The copy is exported
    in the mode it is in (``train()`` for a fresh model).

    Parameters
    ----------
    model : nn.Module
        The model; BatchNorm must not be in train mode (freeze it with the
        recipe's ``BatchNormPolicy("frozen")``), and no max or average pool
        may come after a trainable layer (their backward is wrong or missing
        in the executorch 1.5.1 runtime; ``nn.AdaptiveAvgPool2d(1)`` is fine).
    example_batch : (Tensor, Tensor)
        ``(x, y)`` on the CPU; fixes the shapes and dtypes of every batch.
    recipe : Recipe or None
        Trainable set, BatchNorm policy and :class:`~odtlab.recipes.SGD`
        (or ``Momentum``); other parts are refused.
    loss : {"cross_entropy", "mse"} or callable
        ``loss(outputs, targets)`` giving a scalar.
    path : str, path-like or None
        Where to write the ``.pte``, atomically (temporary file, then
        ``os.replace``); ``None``: a new temporary folder.

    Returns
    -------
    ExportedTraining
        The program loaded in the ExecuTorch runtime: ``.step(x, y)``,
        ``.train(batches)``, ``.parameters()``, ``.pte_bytes`` (bytes).

    Raises
    ------
    ExecuTorchMissing
        ``executorch`` is not installed (``pip install -e ".[export]"``).
    CannotExport
        A model, loss or recipe the export cannot handle; the message says what to change.
    WrongBatch
        ``example_batch`` is not a pair of CPU tensors.

    Examples
    --------
    >>> from odtlab import models, recipes  # doctest: +SKIP
    >>> x, y = models.example_batch("mlp", 8)  # doctest: +SKIP
    >>> program = export_training(models.mlp(), (x, y), recipes.Recipe(recipes.BiasOnly()))  # doctest: +SKIP
    >>> program.trainable  # doctest: +SKIP
    ('features.fc1.bias', 'features.fc2.bias', 'classifier.weight', 'classifier.bias')
    """
    if not isinstance(model, nn.Module):
        raise CannotExport(f"model must be a torch.nn.Module; got {type(model).__name__}")
    optimizer = _check_recipe(recipe)
    x, y = _check_batch(example_batch)
    net = copy.deepcopy(model)
    if recipe is not None:
        recipe.prepare(net)
    _check_model(net)
    graph = TrainingGraph(net, _loss_module(loss))
    try:
        value = graph(x, y)
    except Exception as error:
        raise WrongBatch(f"the model and loss fail on the example batch: {error}") from error
    if not isinstance(value, torch.Tensor) or value.dim() != 0 or not value.is_floating_point():
        raise CannotExport("the loss must return one floating-point scalar (a 0-d tensor)")
    program = _lower(graph, x, y)
    target = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="odtlab-export-")) / "training.pte"
    written = write_atomically(target, program.write_to_file)
    return ExportedTraining(
        path=written,
        example=(x, y),
        initial={n: p.detach().clone() for n, p in net.named_parameters()},
        trainable=tuple(n for n, p in net.named_parameters() if p.requires_grad),
        lr=float(optimizer.lr),
        momentum=float(optimizer.momentum),
        weight_decay=float(optimizer.weight_decay),
    )

