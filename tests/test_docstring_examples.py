"""The examples in the docstrings run: what the API reference shows is true.

The book's API reference (``chapters/api.md``) is generated from the
docstrings, and many of them carry ``>>>`` examples. Every module of the
package is run through :mod:`doctest` here, except those whose examples other
test files already run (named below), so a docstring cannot drift from the
code it documents.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import odtlab

pytestmark = pytest.mark.usefixtures("one_thread")

# run by their own test files already (running them twice would be harmless, only slower)
_RECIPES_PARTS = ["base", "trainable.basic", "optim.basic", "activations.batchnorm",
                  "activations.inplace", "activations.checkpointing", "activations.microbatch",
                  "trainable.summary", "registry", "recipe"]  # fmt: skip
ALREADY_RUN = {
    *(f"odtlab.fl.{m}" for m in ("aggregate", "client", "compression", "simulation", "strategies")),
    "odtlab.fl.robust",  # test_fl_trust_robust.py
    "odtlab.fl.attacks",  # test_fl_trust_attacks.py
    *(f"odtlab.fl.trust.{m}" for m in ("privacy", "dpsgd", "secagg", "secure_fedavg", "shamir")),
    *(f"odtlab.recipes.{m}" for m in _RECIPES_PARTS),  # test_recipes_parts.py
    *(f"odtlab.search.{m}" for m in ("contribution", "table", "scheme")),  # test_scheme_search.py
    "odtlab.recipes",
    "odtlab.recipes.optim.adam8bit",  # test_adam8bit.py
    "odtlab.recipes.trainable.lora",  # test_lora.py
    "odtlab.recipes.layers.lite_residual",  # test_tinytl.py
    "odtlab.recipes.trainable.tinytl",
    "odtlab.parallel",  # test_parallel.py
}
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(odtlab.__path__, "odtlab.")
    if info.name not in ALREADY_RUN and ".flower" not in info.name
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, report=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
