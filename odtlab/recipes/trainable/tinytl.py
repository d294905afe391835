"""TinyTL (Cai et al., NeurIPS 2020) as recipe parts: :class:`TinyTL`, :class:`NormOnly`.

TinyTL's observation (Section 3.1, Eq. 2): a layer needs its input
activation for backward only to compute the gradient of its *weight*; the
gradient of its *bias* is the output gradient itself. So freezing the
weights and training the biases saves the activation memory, not just
parameters. To win back accuracy, TinyTL adds a *lite residual* branch to
every block (see :mod:`odtlab.recipes.layers.lite_residual`), small enough that
its own activations stay cheap.

:func:`odtlab.recipes.tinytl_methods` gives the six methods of the paper's
Table 2 as named recipes (``"tinytl/full"``, ``"tinytl/bn+last"``,
``"tinytl/last"``, ``"tinytl/bias"``, ``"tinytl/lite"``,
``"tinytl/lite+bias"``: FT-Full, FT-Norm+Last, FT-Last, TinyTL-B, TinyTL-L,
TinyTL-L+B), to train and to measure side by side. With ``paper=True`` they
are built as the paper measured Table 2: every method carries the reference
code's lite residual branches (:class:`LiteResidualBranches`), and on
ProxylessNAS-Mobile with GroupNorm, ``accounting="tinytl"`` reproduces the
table's seven figures within 1 % (``benchmarks/papers.py``).

Their activation memory (engine accounting, MobileNetV2-1.0, 102 classes,
224x224, batch 8, on ``meta``; ``benchmarks/papers.py`` prints the peaks):
full 108.5 MiB, BN+last and bias-only 56.9 MiB, lite residual + bias
62.9 MiB, lite residual only 11.0 MiB, last layer 0.01 MiB. Bias-only is
not free here: with batch statistics, the gradient that flows *through* a
BatchNorm to the layers before it needs the BatchNorm's input, which the
engine keeps in 8 bits (TinyTL's own profiler does not count it).

Examples
--------
>>> from odtlab import models
>>> from odtlab.recipes import Recipe
>>> recipe = Recipe(TinyTL())
>>> net = recipe.prepare(models.mobilenetv2(num_classes=10, width_mult=0.35))
>>> recipe.name, net.features[2].lite_residual.conv.weight.requires_grad
('tinytl(L+B)', True)
>>> net.features[2].conv.expand.conv.weight.requires_grad      # backbone weights frozen
False
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from odtlab.errors import InvalidRecipe
from odtlab.recipes.base import RecipePart, check_choice, check_positive_int, register_kind
from odtlab.recipes.layers.lite_residual import LITE_NAME, NORMS, add_lite_residuals
from odtlab.recipes.trainable.basic import BiasOnly, Rule, TrainablePart, find_head

__all__ = ["TinyTL", "NormOnly", "LiteResidualBranches", "NORM_TYPES"]

#: Normalisation layers whose gamma and beta ``NormOnly`` trains (subclasses count too).
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm2d,
)


def _in_lite(name: str) -> bool:
    """``name`` belongs to a lite residual branch (``...<block>.lite_residual.<...>``)."""
    return LITE_NAME in name.split(".")[:-1]


@dataclass(frozen=True)
class TinyTL(TrainablePart):
    """TinyTL: freeze the weights; train biases, lite residual branches and the classifier.

    A trainable-set part (the same kind as :class:`Full` and
    :class:`BiasOnly`, so a recipe holds only one of them). Preparing a
    model attaches a :class:`~odtlab.recipes.LiteResidual` to every
    inverted residual block (output unchanged: each branch starts at zero),
    then trains:

    * the biases of the backbone, "bias" meaning what it means for
      :class:`BiasOnly` (conv and linear biases, the BatchNorm/GroupNorm
      shifts beta), when ``bias=True``;
    * every parameter of the lite residual branches, when ``lite_residual=True``;
    * the classifier (weight and bias), always.

    Parameters
    ----------
    lite_residual : bool
        Attach and train lite residual branches (TinyTL-L). ``False`` gives
        bias-only training (TinyTL-B); branches attached earlier stay frozen.
    bias : bool
        Train the backbone's biases. ``lite_residual=True, bias=False`` is TinyTL-L.
    kernel_size, groups, norm :
        Of the branches (see :class:`~odtlab.recipes.LiteResidual`); 5, 2
        and ``"batch"`` by default. For TinyTL's GroupNorm everywhere, add
        ``BatchNormPolicy("group")`` to the recipe.
    seed : int
        Seed of the branches' initial weights.
    paper : bool
        Attach the branches as TinyTL's reference code does (none on the
        first block, smaller kernels late; see
        :mod:`odtlab.recipes.layers.lite_residual`); ``False`` (the default,
        chapter 3's numbers) gives every block the course's branch.

    Raises
    ------
    InvalidRecipe
        With both flags ``False`` (that is :class:`LastLayer`), or, when the
        model is prepared, if it has no inverted residual block.

    Examples
    --------
    >>> TinyTL().name, TinyTL(bias=False).name, TinyTL(lite_residual=False).name
    ('tinytl(L+B)', 'tinytl(L)', 'tinytl(B)')
    """

    lite_residual: bool = True
    bias: bool = True
    kernel_size: int = 5
    groups: int = 2
    norm: str = "batch"
    seed: int = 0
    paper: bool = False

    def __post_init__(self) -> None:
        for flag in ("lite_residual", "bias", "paper"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidRecipe(
                    f"TinyTL({flag}={getattr(self, flag)!r}): {flag} must be True or False"
                )
        if not (self.lite_residual or self.bias):
            raise InvalidRecipe(
                "TinyTL(lite_residual=False, bias=False) would train only the classifier; "
                "use LastLayer() for that"
            )
        check_positive_int("TinyTL", "kernel_size", self.kernel_size)
        check_positive_int("TinyTL", "groups", self.groups)
        check_choice("TinyTL", "norm", self.norm, NORMS)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidRecipe(f"TinyTL(seed={self.seed!r}): seed must be an int >= 0")

    @property
    def name(self) -> str:
        parts = [p for p, on in (("L", self.lite_residual), ("B", self.bias)) if on]
        return f"tinytl({'+'.join(parts)})"

    def apply(self, model: nn.Module) -> None:
        """Attach the lite residuals (if ``lite_residual``); safe to call twice."""
        if self.lite_residual:
            add_lite_residuals(
                model, kernel_size=self.kernel_size, groups=self.groups, norm=self.norm,
                seed=self.seed, paper=self.paper,
            )  # fmt: skip

    def rule(self, model: nn.Module | None) -> Rule:
        """The trainable rule for ``model`` (``None``: the zoo's naming).

        :meth:`Recipe.prepare` calls :meth:`apply` (which attaches the lite
        residuals) before asking for this rule.
        """
        head = find_head(model)
        is_bias = BiasOnly(include_classifier=False).rule(model)
        lite, bias = self.lite_residual, self.bias

        def trainable(name: str, param: nn.Parameter) -> bool:
            if name == head or name.startswith(head + "."):
                return True
            if _in_lite(name):
                return lite
            return bias and is_bias(name, param)

        return trainable


@dataclass(frozen=True)
class NormOnly(TrainablePart):
    """Train the normalisation layers' gamma and beta (and, by default, the classifier).

    TinyTL's "FT-Norm+Last" baseline (Table 2), after Mudrakarta et al.
    (2019): few parameters, yet, as every BatchNorm needs its input to
    compute the gradient of gamma, nearly as much activation memory as
    training everything. Norm layers are those in :data:`NORM_TYPES`
    (BatchNorm, frozen BatchNorm, GroupNorm, LayerNorm, InstanceNorm).

    Examples
    --------
    >>> from odtlab import models
    >>> rule = NormOnly().rule(models.mobilenetv2(num_classes=10, width_mult=0.35))
    >>> rule("features.1.conv.depthwise.bn.weight", None), rule("features.0.conv.weight", None)
    (True, False)
    """

    include_classifier: bool = True

    @property
    def name(self) -> str:
        return "norm+last" if self.include_classifier else "norm-only"

    def rule(self, model: nn.Module | None) -> Rule:
        head = find_head(model) if self.include_classifier else None
        if model is not None:
            norms = {n for n, m in model.named_modules() if isinstance(m, NORM_TYPES)}
        else:  # the zoo's naming: BatchNorm children are called "bn"
            norms = None

        def trainable(name: str, param: nn.Parameter) -> bool:
            if head is not None and (name == head or name.startswith(head + ".")):
                return True
            owner = name.rpartition(".")[0]
            return owner in norms if norms is not None else owner.rsplit(".", 1)[-1] == "bn"

        return trainable


@dataclass(frozen=True)
class LiteResidualBranches(RecipePart):
    """Attach TinyTL's lite residual branches to the network, whatever then trains.

    TinyTL's network always carries the branches (they are pretrained with
    it), so every row of its Table 2 counts them, full fine-tuning included:
    with FT-Full they train, with FT-Last or TinyTL-B they are frozen but
    still run. This part adds them for any trainable part; it changes the
    model's structure only (its kind, ``"branches"``, runs before the
    trainable part), and :class:`TinyTL` then finds them attached.

    Parameters
    ----------
    paper : bool
        The reference code's layout (default ``True``; see
        :mod:`odtlab.recipes.layers.lite_residual`).
    kernel_size, groups, norm, seed :
        As in :class:`TinyTL`; ``norm="group"`` is TinyTL's GroupNorm.

    Examples
    --------
    >>> from odtlab import models
    >>> from odtlab.recipes import Recipe, LastLayer
    >>> net = Recipe(LastLayer(), LiteResidualBranches()).prepare(models.mobilenetv2(10, 0.35))
    >>> hasattr(net.features[1], "lite_residual"), net.features[2].lite_residual.conv.weight.requires_grad
    (False, False)
    """

    kind = "branches"
    paper: bool = True
    kernel_size: int = 5
    groups: int = 2
    norm: str = "batch"
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.paper, bool):
            raise InvalidRecipe(
                f"LiteResidualBranches(paper={self.paper!r}): paper must be True or False"
            )
        check_positive_int("LiteResidualBranches", "kernel_size", self.kernel_size)
        check_positive_int("LiteResidualBranches", "groups", self.groups)
        check_choice("LiteResidualBranches", "norm", self.norm, NORMS)

    @property
    def name(self) -> str:
        return "lite-branches(paper)" if self.paper else "lite-branches"

    def apply(self, model: nn.Module) -> None:
        """Attach the branches (blocks that have one keep it); safe to call twice."""
        add_lite_residuals(
            model, kernel_size=self.kernel_size, groups=self.groups, norm=self.norm,
            seed=self.seed, paper=self.paper,
        )  # fmt: skip


register_kind("branches", stage=-10)
