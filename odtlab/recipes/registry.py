"""Named recipes: one registry, unique names, listable and fetchable by name.

The chapters compare the same recipes again and again; each has one name
here. :func:`recipe_names` lists them, :func:`named` builds a fresh copy,
:func:`register_recipe` adds your own (a name is refused if it is taken).

=====================  ======================================================  =======
name                   recipe                                                  chapter
=====================  ======================================================  =======
``full``               train everything, SGD (the baseline)                    1, 2
``last-layer``         the classifier only                                     2
``bias-only``          the biases (BatchNorm shifts) and the classifier        2
``full+ckpt``          everything, trunk checkpointed in 4 segments            2
``full+mb4``           everything, each batch in 4 micro-batches               2
``full+adam``          everything with Adam (two state buffers per parameter)  1
``tinytl/full``        TinyTL Table 2's FT-Full (Adam, lr 1e-3)                3
``tinytl/bn+last``     FT-Norm+Last: normalisation layers and the classifier   3
``tinytl/last``        FT-Last: the classifier                                 3
``tinytl/bias``        TinyTL-B: biases and the classifier                     3
``tinytl/lite``        TinyTL-L: lite residuals and the classifier             3
``tinytl/lite+bias``   TinyTL-L+B: lite residuals, biases, classifier          3
``mcu/sparse-100kb``   the 256 KB paper's 100 KB sparse-update scheme on the   4
                       int8 graph of MCUNet-5FPS, SGD
=====================  ======================================================  =======

Examples
--------
>>> from odtlab.recipes import named, recipe_names
>>> named("full+mb4").micro_batches
4
>>> [n for n in recipe_names() if n.startswith("tinytl/")][:2]
['tinytl/full', 'tinytl/bn+last']
>>> named("bias-only") is named("bias-only")    # a fresh recipe each time
False
"""

from __future__ import annotations

from collections.abc import Callable

from odtlab.errors import InvalidRecipe
from odtlab.recipes.activations.checkpointing import Checkpointing
from odtlab.recipes.activations.microbatch import MicroBatch
from odtlab.recipes.optim.basic import SGD, Adam, OptimizerPart
from odtlab.recipes.precision.int8 import Int8
from odtlab.recipes.recipe import Recipe
from odtlab.recipes.trainable.basic import BiasOnly, Full, LastLayer, TrainablePart
from odtlab.recipes.trainable.sparse_update import SparseUpdate
from odtlab.recipes.trainable.tinytl import LiteResidualBranches, NormOnly, TinyTL

__all__ = [
    "named",
    "recipe_names",
    "register_recipe",
    "tinytl_methods",
    "paper_scheme_100kb",
]

_REGISTRY: dict[str, Callable[[], Recipe]] = {}


def register_recipe(name: str, build: Callable[[], Recipe]) -> None:
    """Add a named recipe: ``build()`` must return a fresh :class:`Recipe` named ``name``.

    Raises
    ------
    InvalidRecipe
        If ``name`` is taken (names are unique across the course) or empty.
    """
    if not isinstance(name, str) or not name:
        raise InvalidRecipe(f"register_recipe(name={name!r}): give a non-empty string")
    if name in _REGISTRY:
        raise InvalidRecipe(
            f"a recipe called {name!r} is already registered; choose another name "
            f"(taken: {', '.join(_REGISTRY)})"
        )
    if not callable(build):
        raise InvalidRecipe(f"register_recipe({name!r}, build=...): build must be callable")
    _REGISTRY[name] = build


def recipe_names() -> list[str]:
    """The names of every registered recipe, in registration order."""
    return list(_REGISTRY)


def named(name: str) -> Recipe:
    """A fresh copy of the recipe called ``name`` (see :func:`recipe_names`).

    Raises
    ------
    InvalidRecipe
        For an unknown name; the message lists the known ones.
    """
    if name not in _REGISTRY:
        raise InvalidRecipe(
            f"no recipe is called {name!r}; known recipes: {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]()


def paper_scheme_100kb() -> SparseUpdate:
    """The reference's "100 KB" sparse-update scheme for MCUNet-5FPS (a trainable part).

    From ``mit-han-lab/tiny-training``, ``algorithm/scripts/sparse_update.sh``
    ("sparse update (100KB scheme): 88.84%" on Flowers-102):
    ``--n_bias_update 22 --manual_weight_idx 21-24-27-30-36-39
    --weight_update_ratio 1-1-1-1-0.125-0.25`` with ``--net_name mcunet-5fps``.
    Indices count every ``nn.Conv2d`` from 0 (``get_all_conv_ops``), as
    :func:`~odtlab.recipes.sparse_layers` does; build the model with
    ``models.mcunet(blocks="mcunet-5fps")``. The whole recipe is
    ``named("mcu/sparse-100kb")``.

    Examples
    --------
    >>> paper_scheme_100kb().name
    'sparse(b22,w6)'
    """
    return SparseUpdate(
        bias_layers=22,
        weights={21: 1.0, 24: 1.0, 27: 1.0, 30: 1.0, 36: 0.125, 39: 0.25},
    )


_TINYTL: dict[str, Callable[[], TrainablePart]] = {
    "tinytl/full": Full,
    "tinytl/bn+last": NormOnly,
    "tinytl/last": LastLayer,
    "tinytl/bias": BiasOnly,
    "tinytl/lite": lambda: TinyTL(lite_residual=True, bias=False),
    "tinytl/lite+bias": lambda: TinyTL(lite_residual=True, bias=True),
}


def tinytl_methods(
    optimizer: OptimizerPart | None = None, *, paper: bool = False, norm: str = "group"
) -> dict[str, Recipe]:
    """The six transfer-learning methods TinyTL compares (Table 2), as fresh recipes.

    Parameters
    ----------
    optimizer : OptimizerPart, optional
        The same for every method; the paper uses Adam, and so does the
        default, ``Adam(lr=1e-3)``.
    paper : bool
        ``False`` (chapter 3): lite residuals only in the two TinyTL-L
        methods, the course's branch on every block. ``True``: as the paper
        measures Table 2 (``cai2020tinytl``; reference ``mit-han-lab/tinyml``,
        ``tinytl_fgvc_train.py``): every method carries the reference's
        branches (:class:`LiteResidualBranches`, ``paper=True``), trained only
        where the method trains them (all of them in FT-Full, their norms in
        FT-Norm+Last, their biases in TinyTL-B).
    norm : {"group", "batch"}
        With ``paper=True``: the branches' normalisation (TinyTL: GroupNorm,
        8 channels a group; build the backbone with the same, e.g.
        ``models.proxylessnas_mobile(102, norm="group")``).

    Returns
    -------
    dict of str to Recipe
        Keys (and recipe names) ``"tinytl/full"`` (FT-Full), ``"tinytl/bn+last"``
        (FT-Norm+Last), ``"tinytl/last"`` (FT-Last), ``"tinytl/bias"``
        (TinyTL-B), ``"tinytl/lite"`` (TinyTL-L), ``"tinytl/lite+bias"``
        (TinyTL-L+B).

    Examples
    --------
    >>> methods = tinytl_methods()
    >>> list(methods)[-1], methods["tinytl/lite+bias"].trainable_part.name
    ('tinytl/lite+bias', 'tinytl(L+B)')
    """
    opt = Adam(lr=1e-3) if optimizer is None else optimizer
    if not isinstance(opt, OptimizerPart):
        raise InvalidRecipe(
            f"tinytl_methods(optimizer={optimizer!r}): give an optimizer part, e.g. Adam(lr=1e-3)"
        )
    if not paper:
        return {name: _tinytl(name, opt) for name in _TINYTL}
    branches = LiteResidualBranches(paper=True, norm=norm)
    parts: dict[str, TrainablePart] = {
        "tinytl/full": Full(),
        "tinytl/bn+last": NormOnly(),
        "tinytl/last": LastLayer(),
        "tinytl/bias": BiasOnly(),
        "tinytl/lite": TinyTL(bias=False, norm=norm, paper=True),
        "tinytl/lite+bias": TinyTL(norm=norm, paper=True),
    }
    return {name: Recipe(part, branches, opt, name=name) for name, part in parts.items()}


def _tinytl(name: str, optimizer: OptimizerPart) -> Recipe:
    return Recipe(_TINYTL[name](), optimizer, name=name)


def _register_builtins() -> None:
    simple: dict[str, Callable[[], Recipe]] = {
        "full": lambda: Recipe(Full(), name="full"),
        "last-layer": lambda: Recipe(LastLayer(), name="last-layer"),
        "bias-only": lambda: Recipe(BiasOnly(), name="bias-only"),
        "full+ckpt": lambda: Recipe(Full(), Checkpointing(4), name="full+ckpt"),
        "full+mb4": lambda: Recipe(Full(), MicroBatch(4), name="full+mb4"),
        "full+adam": lambda: Recipe(Full(), Adam(), name="full+adam"),
    }
    for name, build in simple.items():
        register_recipe(name, build)
    for name in _TINYTL:
        register_recipe(name, lambda name=name: _tinytl(name, Adam(lr=1e-3)))
    register_recipe(
        "mcu/sparse-100kb",
        lambda: Recipe(paper_scheme_100kb(), Int8(), SGD(), name="mcu/sparse-100kb"),
    )


_register_builtins()
