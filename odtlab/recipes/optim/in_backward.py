"""Update each parameter during backward: the 256 KB paper's in-place update.

A normal training step keeps the gradient of every trainable tensor until
``optimizer.step()``: at the end of backward the gradients of the whole
trainable set are alive at once. The Tiny Training Engine of the 256 KB
paper (Lin et al., NeurIPS 2022) reorders the operators so that each
trained tensor is *updated as soon as its gradient is computed*, and the
gradient buffer is freed at once: no whole-model gradient ever exists.

PyTorch does the same with :meth:`torch.Tensor.register_post_accumulate_grad_hook`
(the PyTorch tutorial "How to save memory by fusing the optimizer step into
the backward pass"): one optimizer per parameter, stepped in the hook that
runs right after autograd wrote the parameter's ``.grad``, then
``p.grad = None``. :class:`UpdateInBackward` asks a recipe for this;
:meth:`Recipe.make_optimizer` then returns a :class:`FusedBackwardOptimizer`.

>>> from odtlab.recipes import Recipe, Full, Adam
>>> recipe = Recipe(Full(), Adam(), UpdateInBackward())
>>> recipe.name
'full+adam+update-in-backward'

What it cannot do, and why (each raises :class:`~odtlab.errors.InvalidRecipe`):

* ``MicroBatch(n > 1)``: gradient accumulation needs the gradient to live
  across micro-batches, which is exactly what this part removes;
* ``MixedPrecision("fp16")``: the loss scaler must see *every* gradient
  (an inf anywhere skips the whole step) before any parameter changes;
  use ``MixedPrecision("bf16")``, which needs no scaler.

Gradient clipping by the global norm is impossible for the same reason
(the norm needs all gradients); per-parameter operations are fine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch.utils.weak import WeakIdKeyDictionary

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import RecipePart, register_kind

if TYPE_CHECKING:
    from odtlab.recipes.recipe import Recipe

__all__ = ["UpdateInBackward", "FusedBackwardOptimizer", "check_update_in_backward"]

#: The hook handle of the fused optimizer now hooked on each parameter (at most one).
_HOOKED = WeakIdKeyDictionary()  # by identity: a tensor's == is elementwise


@dataclass(frozen=True)
class UpdateInBackward(RecipePart):
    """Step each trained tensor inside backward, then free its gradient.

    The recipe's optimizer part (``SGD``, ``Momentum``, ``Adam``...) is
    built once *per trainable tensor*; each one steps in that tensor's
    post-accumulate-grad hook. The parameters after a step are the same as
    without this part (the per-tensor updates are independent), but the
    gradients of the whole trainable set are never alive together: the
    peak of a full update drops by about the gradient bytes (see
    :func:`odtlab.memory.simulate_training_step`, ``fused_update=True``).

    Examples
    --------
    >>> UpdateInBackward().name, UpdateInBackward().kind
    ('update-in-backward', 'update')
    """

    kind: ClassVar[str] = "update"

    @property
    def name(self) -> str:
        return "update-in-backward"

    def check(self, recipe: Recipe) -> None:
        """Refuse parts that need the whole gradient alive (micro-batches, fp16 loss scaling)."""
        check_update_in_backward(recipe)

    def wrap_optimizer(self, build: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
        """One optimizer per trained tensor, stepped in backward (:class:`FusedBackwardOptimizer`)."""
        return lambda params: FusedBackwardOptimizer(params, build)


def check_update_in_backward(recipe: Recipe) -> None:
    """Raise :class:`InvalidRecipe` if the other parts need the whole gradient alive."""
    if not isinstance(recipe.part("update"), UpdateInBackward):
        return
    mb = recipe.part("micro-batch")
    if getattr(mb, "n", 1) > 1:
        raise InvalidRecipe(
            f"UpdateInBackward() cannot be combined with {mb!r}: gradient accumulation needs each "
            "gradient to live until the last micro-batch, and UpdateInBackward frees it at once; "
            "drop MicroBatch (use a smaller batch, or Checkpointing to save activations), or "
            "drop UpdateInBackward"
        )
    precision = recipe.part("precision")
    if getattr(precision, "dtype", None) in ("fp16", torch.float16):
        raise InvalidRecipe(
            f"UpdateInBackward() cannot be combined with {precision!r}: fp16 loss scaling checks "
            "every gradient for inf/NaN before any parameter changes; use "
            "MixedPrecision('bf16') (no loss scaler), or drop UpdateInBackward"
        )


def _split_groups(params: Iterable[Any]) -> list[dict[str, Any]]:
    """One param group per tensor, keeping each group's options."""
    groups = []
    for item in params:
        if isinstance(item, dict):
            tensors = item["params"]
            tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
            options = {k: v for k, v in item.items() if k != "params"}
            groups.extend({"params": [p], **options} for p in tensors if p.requires_grad)
        elif item.requires_grad:
            groups.append({"params": [item]})
    return groups


class FusedBackwardOptimizer(torch.optim.Optimizer):
    """One optimizer per parameter, each stepped in backward; ``step()`` does nothing.

    Parameters
    ----------
    params : iterable of tensors or param-group dicts
        The trainable parameters (``requires_grad=False`` ones are left out).
    build : callable
        ``groups -> torch.optim.Optimizer``, e.g. ``SGD().build``; called
        once per parameter with a one-tensor param group.

    Notes
    -----
    The wrapper *is* a :class:`torch.optim.Optimizer` with one param group
    per tensor; the per-tensor optimizers share those very group dicts and
    one ``state`` dict with it. So ``param_groups`` (an LR scheduler
    changing ``lr``), ``state``, :meth:`state_dict` and
    :meth:`load_state_dict` (Trainer checkpoints and resume) behave as for
    an ordinary optimizer whose groups hold one tensor each.

    A parameter is hooked by one fused optimizer at a time: building a new
    one on it detaches the old one's hook (so the update never runs twice).
    :meth:`remove` detaches all hooks; the parameters then get ``.grad`` as
    usual and this optimizer no longer updates them.
    """

    def __init__(
        self, params: Iterable[Any], build: Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
    ) -> None:
        groups = _split_groups(params)
        if not groups:
            raise InvalidRecipe("FusedBackwardOptimizer got no parameter with requires_grad=True")
        self.optimizers = [build([g]) for g in groups]  # add_param_group keeps the dict
        super().__init__(groups, dict(self.optimizers[0].defaults))
        self._handles: list[Any] = []
        self._link()
        for inner in self.optimizers:
            p = inner.param_groups[0]["params"][0]
            old = _HOOKED.get(p)
            if old is not None:
                old.remove()
            handle = p.register_post_accumulate_grad_hook(self._hook(inner))
            _HOOKED[p] = handle
            self._handles.append(handle)

    def _link(self) -> None:
        """Make every per-tensor optimizer use our group dict and our state dict."""
        for inner, group in zip(self.optimizers, self.param_groups, strict=True):
            inner.param_groups = [group]
            inner.state = self.state

    @staticmethod
    def _hook(inner: torch.optim.Optimizer) -> Callable[[torch.Tensor], None]:
        def update(p: torch.Tensor) -> None:
            inner.step()
            p.grad = None  # the gradient buffer is freed now, not at zero_grad()

        return update

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Nothing to do: every parameter was updated in backward. Runs ``closure`` if given."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing to do: the hooks already set every ``.grad`` to ``None``."""
        return None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :meth:`state_dict` (one group per tensor) into the per-tensor optimizers."""
        super().load_state_dict(state_dict)
        self._link()

    def remove(self) -> None:
        """Detach the hooks: backward then leaves ``.grad`` in place and updates nothing."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def hooked(self) -> bool:
        """Whether the hooks are still attached."""
        return bool(self._handles)


register_kind("update", stage=80)
