"""The tutor app as a phone would ship it: ExecuTorch programs with train, infer, save, restore.

TensorFlow Lite gives an on-device model *training signatures*: named entry
points ``train``, ``infer``, ``save`` and ``restore`` that the app calls.
:func:`export_tutor` builds the same four with ExecuTorch (chapter 9):

- ``train.pte``: the joint forward-backward graph of
  :func:`odtlab.export.export_training`; the runtime's SGD updates the
  recipe's trainable parameters in the runtime's memory, frozen ones are
  constants in the file;
- ``infer.pte``: the forward pass and a softmax, with the trainable
  parameters as explicit *inputs* (``torch.func.functional_call``), so the
  runtime is fed the training program's current parameters at every call;
- ``save`` writes those parameters (a few KiB for bias-only) atomically;
  ``restore`` copies them back into the training program's memory.

Examples
--------
>>> from odtlab import data, models, recipes  # doctest: +SKIP
>>> d = data.tracing_features(data.simulate_students(3, days=5, seed=0))  # doctest: +SKIP
>>> recipe = recipes.Recipe(recipes.BiasOnly(), recipes.SGD(lr=0.1))  # doctest: +SKIP
>>> app = export_tutor(models.pretrained("kt-mlp"), (d.x[:8], d.y[:8]), recipe, "phone")  # doctest: +SKIP
>>> loss = app.train(d.x[:8], d.y[:8])  # doctest: +SKIP
>>> app.infer(d.x[:3]).shape  # doctest: +SKIP
torch.Size([3])
"""

from __future__ import annotations

import copy
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from odtlab import export
from odtlab.errors import CorruptCheckpoint
from odtlab.recipes import Recipe

__all__ = ["TutorApp", "export_tutor", "CheckpointMismatch", "SAVE_FORMAT", "MAX_INFER_BATCH"]

#: Tag of the files :meth:`TutorApp.save` writes (checked by :meth:`TutorApp.restore`).
SAVE_FORMAT = "odtlab.tutor.app/1"
#: The training graph holds the model as ``model`` (:class:`odtlab.export.TrainingGraph`).
_PREFIX = "model."
#: Largest batch :meth:`TutorApp.infer` takes (the inference program's upper bound).
MAX_INFER_BATCH = 1024
_INSTALL = 'ExecuTorch is not installed; install the extra with pip install -e ".[export]"'


class CheckpointMismatch(CorruptCheckpoint):
    """A saved state from another model or recipe: other parameter names or shapes.

    The message names the parameters that differ; restore a file saved by an
    app exported from the same model with the same recipe. It is a
    :class:`~odtlab.CorruptCheckpoint`, so one ``except`` catches both:

    >>> issubclass(CheckpointMismatch, CorruptCheckpoint)
    True
    """


class _Infer(nn.Module):
    """``forward(x, *trainable)``: softmax of the model, with the trainable parameters given."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        logits = torch.func.functional_call(
            self.model, dict(zip(self.names, params, strict=True)), (x,)
        )
        return torch.softmax(logits, dim=-1)


def _export_infer(net: nn.Module, x: torch.Tensor, names: tuple[str, ...], path: Path) -> Path:
    """Lower the inference program (batch size free from 1 to 1024) and write it atomically."""
    try:
        from executorch.exir import to_edge
    except ImportError as error:
        raise export.ExecuTorchMissing(_INSTALL) from error
    params = dict(net.named_parameters())
    inputs = (x, *(params[n].detach() for n in names))
    batch = torch.export.Dim("batch", min=1, max=MAX_INFER_BATCH)
    shapes = ({0: batch}, (None,) * len(names))  # x, then forward's *params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exported = torch.export.export(
                _Infer(net, names), inputs, dynamic_shapes=shapes, strict=True
            )
            program = to_edge(exported).to_executorch()
        except Exception as error:
            raise export.CannotExport(
                f"ExecuTorch could not export the inference pass of {type(net).__name__} "
                f"({type(error).__name__}: {str(error).strip()[:200]}); the training program "
                "exported, so look for a layer whose forward depends on the batch size"
            ) from error
    return export.write_atomically(path, program.write_to_file)


def _load_method(path: Path) -> Any:
    try:
        from executorch.runtime import Runtime
    except ImportError as error:
        raise export.ExecuTorchMissing(_INSTALL) from error
    return Runtime.get().load_program(str(path)).load_method("forward")


class TutorApp:
    """The exported tutor: four entry points that run in the ExecuTorch runtime.

    Made by :func:`export_tutor`, not built by hand. ``train`` steps the
    joint forward-backward program with the runtime's SGD; ``infer`` runs the
    inference program fed with the training program's *current* trainable
    parameters, so what it answers always reflects the last ``train`` or
    ``restore``. No PyTorch autograd, optimizer or eager forward takes part.

    Attributes
    ----------
    trainable : tuple of str
        The parameters the app trains (model names, e.g. ``"classifier.bias"``).
    recipe_name : str
        The recipe it was exported with (stored in saved files).
    pte_bytes : dict of str to int
        Size in bytes of ``"train"`` and ``"infer"`` (the ``.pte`` files).
    losses : list of float
        The loss of every ``train`` call so far.

    Examples
    --------
    >>> app.train(x, y)  # doctest: +SKIP
    0.61...
    >>> app.save("student-7.pt"); app.restore("student-7.pt")  # doctest: +SKIP
    """

    def __init__(self, training: export.ExportedTraining, infer: Path, recipe_name: str) -> None:
        self.train_path = training.path
        self.infer_path = infer
        self.example = training.example
        self.trainable = training.trainable
        self.recipe_name = recipe_name
        self._training = training
        self._initial = {n: training.initial[n].clone() for n in self.trainable}
        self._sgd = (training.lr, training.momentum, training.weight_decay)
        self._runtime = export.load_runtime(self.train_path)
        self._infer = _load_method(self.infer_path)
        self._optimizer: Any = None
        self._started = False
        self.losses: list[float] = []

    @property
    def pte_bytes(self) -> dict[str, int]:
        """Bytes of each program file: ``{"train": ..., "infer": ...}``."""
        return {"train": self.train_path.stat().st_size, "infer": self.infer_path.stat().st_size}

    def fresh(self) -> TutorApp:
        """A new app loaded from the same ``.pte`` files: the exported parameters, no steps."""
        return TutorApp(self._training, self.infer_path, self.recipe_name)

    def _check(self, x: Any, y: Any | None = None) -> None:
        """Raise WrongBatch unless ``x`` (and ``y``) look like the example batch."""
        want_x, want_y = self.example
        ok = isinstance(x, torch.Tensor) and x.shape[1:] == want_x.shape[1:]
        ok = ok and x.dtype == want_x.dtype
        if not ok or not 1 <= len(x) <= MAX_INFER_BATCH:
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise export.WrongBatch(
                f"inputs {got} do not match the exported (1 to {MAX_INFER_BATCH}, "
                f"{tuple(want_x.shape[1:])}) {want_x.dtype}; pass rows of odtlab.data.tracing_features"
            )
        if y is not None and (
            not isinstance(y, torch.Tensor) or x.shape != want_x.shape or y.shape != want_y.shape
            or y.dtype != want_y.dtype
        ):  # fmt: skip
            raise export.WrongBatch(
                f"train needs batches of exactly {tuple(want_x.shape)} inputs and "
                f"{tuple(want_y.shape)} {want_y.dtype} targets (the program has fixed shapes); "
                "drop the last, smaller batch or export again with this batch size"
            )

    def _live(self) -> dict[str, torch.Tensor]:
        """The runtime's trainable parameters, model names, sharing the runtime's memory."""
        if not self._started:  # the runtime hands them out after a first call; no update here
            self._runtime.forward_backward("forward", self.example)
            self._started = True
        return {n.removeprefix(_PREFIX): t for n, t in self._runtime.named_parameters().items()}

    def train(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One training step in the runtime: forward, backward, SGD; returns the loss before it.

        Raises
        ------
        odtlab.export.WrongBatch
            If ``x`` or ``y`` differ in shape or dtype from the example batch.
        """
        self._check(x, y)
        outputs = self._runtime.forward_backward("forward", (x, y))
        self._started = True
        if self._optimizer is None:
            from executorch.extension.training import get_sgd_optimizer

            lr, momentum, decay = self._sgd
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._optimizer = get_sgd_optimizer(
                    self._runtime.named_parameters(), lr, momentum, 0.0, decay, False
                )
        self._optimizer.step(self._runtime.named_gradients())
        loss = float(outputs[0])
        self.losses.append(loss)
        return loss

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of a right answer (class 1) for each row of ``x``, from the runtime.

        Parameters
        ----------
        x : Tensor
            ``(batch, features)`` float32 rows of :func:`odtlab.data.tracing_features`;
            any batch size from 1 to 1024.

        Returns
        -------
        Tensor
            ``(batch,)`` probabilities in [0, 1].
        """
        self._check(x)
        live = self.parameters()
        inputs = [x.contiguous(), *(live[n].contiguous() for n in self.trainable)]
        probs = self._infer.execute(inputs)[0]
        return probs[:, 1].clone()

    def parameters(self) -> dict[str, torch.Tensor]:
        """The trainable parameters as they are now in the runtime (copies, model names)."""
        if not self._started:
            return {n: t.clone() for n, t in self._initial.items()}
        return {n: t.clone() for n, t in self._live().items()}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the trainable parameters to ``path`` atomically; return the path.

        The file is ``torch.save`` of ``{"format", "recipe", "parameters"}``
        and loads with ``torch.load(path, weights_only=True)``: a few KiB
        for bias-only, the file a phone keeps per student.
        """
        state = {"format": SAVE_FORMAT, "recipe": self.recipe_name, "parameters": self.parameters()}
        return export.write_atomically(path, lambda f: torch.save(state, f))

    def restore(self, path: str | os.PathLike[str]) -> None:
        """Load parameters written by :meth:`save` into the runtime; SGD momentum restarts at zero.

        Raises
        ------
        odtlab.CorruptCheckpoint
            If the file is missing, truncated or not written by :meth:`save`.
        CheckpointMismatch
            If it holds other parameter names or shapes (another model or recipe).
        """
        recipe, saved = _read_saved(Path(path))
        want = {n: t.shape for n, t in self._initial.items()}
        got = {n: t.shape for n, t in saved.items()}
        if want != got:
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            shapes = [f"{n} {tuple(got[n])} != {tuple(want[n])}" for n in want
                      if got.get(n, want[n]) != want[n]]  # fmt: skip
            raise CheckpointMismatch(
                f"{path} was saved by an app with recipe {recipe!r}, this one trains with "
                f"{self.recipe_name!r}: missing {missing or 'none'}, unexpected {extra or 'none'}, "
                f"other shapes {shapes or 'none'}; restore a file saved from the same model and recipe"
            )
        live = self._live()
        with torch.no_grad():
            for name, tensor in saved.items():
                live[name].copy_(tensor.to(live[name].dtype))
        self._optimizer = None


_UNREADABLE = (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError)  # fmt: skip


def _read_saved(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(recipe name, parameters) of a file written by :meth:`TutorApp.save`, or CorruptCheckpoint."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except _UNREADABLE as error:
        raise CorruptCheckpoint(
            f"cannot read {path} ({type(error).__name__}: {error}); it is missing, truncated or "
            "not a file written by TutorApp.save; restore an earlier copy or start from the app"
        ) from error
    if (
        not isinstance(state, dict) or state.get("format") != SAVE_FORMAT
        or not isinstance(state.get("parameters"), dict)
        or not all(isinstance(t, torch.Tensor) for t in state["parameters"].values())
    ):  # fmt: skip
        raise CorruptCheckpoint(
            f"{path} is not a file written by TutorApp.save (no {SAVE_FORMAT!r} tag with a dict "
            "of tensors); pass the path that save() returned"
        )
    return str(state.get("recipe")), state["parameters"]


def export_tutor(
    model: nn.Module,
    example_batch: tuple[torch.Tensor, torch.Tensor],
    recipe: Recipe,
    folder: str | os.PathLike[str],
) -> TutorApp:
    """Export ``model`` + ``recipe`` as the tutor app's two ExecuTorch programs and load them.

    The model is copied (yours does not change) and the recipe decides what
    the app trains: with ``Recipe(BiasOnly(), SGD(lr=0.1))`` only the biases
    change, the weights are constants in ``train.pte``. The loss is cross
    entropy over two classes (0 wrong, 1 right).

    Parameters
    ----------
    model : nn.Module
        The knowledge-tracing model, e.g. ``odtlab.models.pretrained("kt-mlp")``.
    example_batch : (Tensor, Tensor)
        ``(x, y)`` from :func:`odtlab.data.tracing_features`; fixes the
        training batch size (``infer`` accepts any batch from 1 to 1024).
    recipe : Recipe
        Trainable set and :class:`~odtlab.recipes.SGD` (see
        :func:`odtlab.export.export_training` for the parts allowed).
    folder : str or path-like
        Where ``train.pte`` and ``infer.pte`` are written (atomically).

    Returns
    -------
    TutorApp
        ``train(x, y)``, ``infer(x)``, ``save(path)``, ``restore(path)``, ``pte_bytes``.

    Raises
    ------
    odtlab.export.ExecuTorchMissing
        ``executorch`` is not installed (``pip install -e ".[export]"``).
    odtlab.export.CannotExport, odtlab.export.WrongBatch
        As :func:`odtlab.export.export_training`.

    Examples
    --------
    >>> app = export_tutor(models.pretrained("kt-mlp"), (x, y), recipe, "phone")  # doctest: +SKIP
    >>> app.pte_bytes  # doctest: +SKIP
    {'train': 33416, 'infer': ...}
    """
    if not isinstance(recipe, Recipe):
        raise export.CannotExport(
            f"recipe must be an odtlab.recipes.Recipe, e.g. Recipe(BiasOnly(), SGD(lr=0.1)); got {recipe!r}"
        )
    folder = Path(folder)
    training = export.export_training(model, example_batch, recipe, path=folder / "train.pte")
    net = recipe.prepare(copy.deepcopy(model)).eval()
    names = tuple(n for n, p in net.named_parameters() if p.requires_grad)
    if names != training.trainable:  # the same prepare on the same model: cannot differ
        raise export.CannotExport(f"trainable sets differ: {names} against {training.trainable}")
    infer_path = _export_infer(net, training.example[0], names, folder / "infer.pte")
    return TutorApp(training, infer_path, recipe.name)
