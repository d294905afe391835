"""One experimental protocol for comparing recipes: same task, optimizer, steps and seeds.

A comparison of training recipes means something only when everything but the
recipe is the same: the data, the starting model, the optimizer and its rate,
the number of steps, the batch size and the seeds. :class:`Protocol` fixes all
of them once, so that the chapters on activation memory, TinyTL and sparse
update compare their recipes under one set of rules, and "last layer" scores
the same wherever it appears.

``Protocol.run`` trains every recipe with every seed (each seed draws new
training images and a new order) and returns a :class:`ProtocolResult` with
the mean and the seed-to-seed spread of each recipe's test accuracy: a gap
between two recipes means something only when it is larger than the spread.

Runs are expensive, and several chapters ask for the same ones, so ``run`` can
keep each (recipe, seed) result in a cache directory. The cache key holds the
protocol, the recipe, the seed, the device and a hash of odtlab's own source
code, so a change to the library recomputes everything; a file lock lets two
processes share the cache without computing the same run twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from odtlab import data as odata
from odtlab import devices, models
from odtlab.errors import OdtlabError
from odtlab.parallel import map_in_processes
from odtlab.recipes import Adam, OptimizerPart, Recipe, SparseUpdate, sparse_layers, tinytl_methods
from odtlab.train.compare import Comparison, compare
from odtlab.viz import plot_protocol

__all__ = ["Protocol", "ProtocolResult", "source_fingerprint", "cache_dir"]

_PACKAGE = Path(__file__).resolve().parents[1]


# What a training run depends on: the floors below odtlab.train and train itself (DESIGN.md's
# arrows point down, so federated, continual, search, export, viz and grading code cannot
# change a run's result).
_RUN_PACKAGES = ("train", "recipes", "models", "data", "memory", "devices")
_RUN_MODULES = ("__init__.py", "errors.py", "units.py", "parallel.py")


def source_fingerprint() -> str:
    """SHA-256 (hex, first 16 characters) of the code and weights a training run depends on.

    That is odtlab's ``train``, ``recipes``, ``models``, ``data``, ``memory``
    and ``devices`` packages, its top-level helpers and the shipped weights. A
    cached result is reused only when this is unchanged, so editing any of them
    invalidates every cached run.
    """
    digest = hashlib.sha256()
    files = [_PACKAGE / name for name in _RUN_MODULES]
    for package in _RUN_PACKAGES:
        files += sorted((_PACKAGE / package).rglob("*.py"))
    files += sorted((_PACKAGE / "models" / "weights").glob("*"))
    for path in files:
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Protocol:
    """The fixed rules of a recipe comparison.

    Parameters
    ----------
    domain : str
        A shapes domain (:func:`odtlab.data.available_domains`): the transfer task.
    n_train, n_test : int
        Training images per seed and test images (the test set is the same
        for every seed: stream 1 of seed 0).
    resolution : int
        Image side in pixels.
    model : str
        The shipped backbone every run starts from (:func:`odtlab.models.pretrained`).
    optimizer : OptimizerPart
        The optimizer of every recipe (:meth:`recipe` adds it; :meth:`run`
        refuses a recipe with another one).
    steps, batch_size : int
        Training steps and images per step, the same for every recipe.
    seeds : tuple of int
        One run per seed and recipe; the spread over seeds is reported.

    Examples
    --------
    >>> p = Protocol(steps=5, seeds=(0,))
    >>> p.recipe(name="full").parts[-1] == p.optimizer
    True
    """

    domain: str = "target-shift"
    n_train: int = 500
    n_test: int = 1000
    resolution: int = 32
    model: str = "mbv2-shapes"
    optimizer: OptimizerPart = field(default_factory=lambda: Adam(lr=1e-3))
    steps: int = 80
    batch_size: int = 32
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        if self.domain not in odata.available_domains():
            raise OdtlabError(
                f"Protocol(domain={self.domain!r}): unknown domain; "
                f"choose one of {', '.join(odata.available_domains())}."
            )
        for name in ("n_train", "n_test", "resolution", "steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise OdtlabError(f"Protocol({name}={value!r}): give a positive integer.")
        if not isinstance(self.optimizer, OptimizerPart):
            raise OdtlabError(
                f"Protocol(optimizer={self.optimizer!r}): give an optimizer part, e.g. Adam(lr=1e-3)."
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise OdtlabError(f"Protocol(seeds={self.seeds!r}): give one or more distinct seeds.")

    def __str__(self) -> str:
        opt = self.optimizer
        rate = f" lr={opt.lr:g}" if hasattr(opt, "lr") else ""
        return (
            f"protocol: task {self.domain!r} ({self.n_train} training images per seed, "
            f"{self.n_test} test images, {self.resolution} px), from {self.model!r}; "
            f"{type(opt).__name__}{rate}, {self.steps} steps at batch {self.batch_size}; "
            f"seeds {', '.join(map(str, self.seeds))}"
        )

    def data(self, seed: int | None = None) -> tuple[odata.SyntheticShapes, odata.SyntheticShapes]:
        """The training set of ``seed`` (default: the first seed) and the fixed test set."""
        seed = self.seeds[0] if seed is None else seed
        train, _ = odata.train_test(self.domain, self.n_train, 1, seed, resolution=self.resolution)
        _, test = odata.train_test(self.domain, 1, self.n_test, 0, resolution=self.resolution)
        return train, test

    def build_model(self) -> nn.Module:
        """A fresh copy of the starting model (the shipped pretrained backbone)."""
        return models.pretrained(self.model)

    def recipe(self, *parts: Any, name: str | None = None) -> Recipe:
        """``Recipe(*parts, optimizer)``: the parts with the protocol's optimizer added.

        A part list that already holds an optimizer is refused: under one
        protocol every recipe trains with the same optimizer.
        """
        if any(isinstance(p, OptimizerPart) for p in parts):
            raise OdtlabError(
                "Protocol.recipe: the protocol sets the optimizer; leave it out of the parts "
                "(or make another Protocol with optimizer=...)."
            )
        return Recipe(*parts, self.optimizer, name=name)

    def run(
        self,
        recipes: Sequence[Recipe],
        device: str | devices.DeviceProfile | None = None,
        *,
        train_unfit: bool = True,
        workers: int = 1,
        cache: str | Path | None = None,
        progress: bool = False,
    ) -> ProtocolResult:
        """Train every recipe once per seed; return accuracies with their spread.

        Parameters
        ----------
        recipes : sequence of Recipe
            Recipes with unique names (build them with :meth:`recipe`).
        device : str, DeviceProfile or None
            Charged as in :func:`odtlab.train.compare`.
        train_unfit : bool
            Train the recipes that do not fit the device anyway (default: yes,
            a protocol compares accuracies).
        workers : int
            Processes that train at the same time (see :func:`compare`).
        cache : path or None
            A directory that keeps each (recipe, seed) result; ``None`` keeps nothing.
        """
        names = [r.name for r in recipes]
        if not names:
            raise OdtlabError("Protocol.run: give at least one recipe, e.g. [protocol.recipe(name='full')].")
        if len(set(names)) != len(names):
            raise OdtlabError(f"Protocol.run: recipe names must be unique; got {names}.")
        for r in recipes:
            if r.optimizer_part != self.optimizer:
                raise OdtlabError(
                    f"Protocol.run: recipe {r.name!r} trains with {r.optimizer_part!r}, the protocol "
                    f"with {self.optimizer!r}; build it with Protocol.recipe(...)."
                )
        profile = None if device is None else devices.get(device)
        code = source_fingerprint()  # hashes the sources: once per run, not once per key
        keys = {(i, s): self._key(r, s, profile, code) for i, r in enumerate(recipes) for s in self.seeds}
        with _locked(cache):
            found = {pair: _read(cache, key) for pair, key in keys.items()}
            missing = [pair for pair, row in found.items() if row is None]

            def train_one(k: int) -> dict[str, Any]:
                i, seed = missing[k]
                train, test = self.data(seed)
                done = compare(
                    [recipes[i]], self.build_model, train, test, profile, steps=self.steps,
                    batch_size=self.batch_size, seed=seed, train_unfit=train_unfit,
                )  # fmt: skip
                return done.rows[0]

            bar = _progress(len(missing), progress)
            fresh = map_in_processes(train_one, len(missing), workers=workers,
                                     on_done=lambda _: bar.update())  # fmt: skip
            bar.close()
            for pair, row in zip(missing, fresh, strict=True):
                found[pair] = row
                _write(cache, keys[pair], row)
        rows = {s: [dict(found[i, s], recipe=r.name) for i, r in enumerate(recipes)] for s in self.seeds}  # type: ignore[arg-type]
        return ProtocolResult(
            protocol=self,
            names=names,
            rows=rows,
            device=None if profile is None else profile.name,
            budget_bytes=None if profile is None else profile.training_memory_bytes,
        )

    def methods(self) -> dict[str, Recipe]:
        """The standard fine-tuning methods under this protocol, by name.

        TinyTL's six (:func:`odtlab.recipes.tinytl_methods`: ``tinytl/full``,
        ``tinytl/bn+last``, ``tinytl/last``, ``tinytl/bias``, ``tinytl/lite``,
        ``tinytl/lite+bias``) and ``"sparse update"``: the biases of every
        convolution, the whole weights of the last three pointwise (1 x 1)
        convolutions, half of the input channels of the two before them and a
        quarter of the two before those, and the classifier (a scheme in the
        style of Lin et al., 2022, fixed here rather than searched).
        """
        methods = dict(tinytl_methods(self.optimizer))
        layers = sparse_layers(self.build_model())
        pointwise = [i for i, _, conv in layers if conv.groups == 1 and conv.kernel_size == (1, 1)]
        ratios = (1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25)
        weights = {i: r for i, r in zip(reversed(pointwise), ratios, strict=False)}
        scheme = SparseUpdate(bias_layers=len(layers), weights=weights)
        methods["sparse update"] = Recipe(scheme, self.optimizer, name="sparse update")
        return methods

    def _key(self, recipe: Recipe, seed: int, profile: devices.DeviceProfile | None, code: str) -> str:
        # the parts, not the name: "tinytl/full" and "full" are the same run
        text = repr((dataclasses.astuple(self), repr(recipe.parts), seed, repr(profile), code))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class ProtocolResult:
    """What :meth:`Protocol.run` measured.

    Attributes
    ----------
    protocol : Protocol
    names : list of str
        The recipes, in the order given.
    rows : dict of int to list of dict
        Per seed, :func:`compare`'s rows (accuracy, memory, simulated cost).
    """

    protocol: Protocol
    names: list[str]
    rows: dict[int, list[dict[str, Any]]]
    device: str | None = None
    budget_bytes: int | None = None

    def accuracies(self, name: str) -> list[float]:
        """Test accuracy (0..1) of recipe ``name``, one per seed."""
        if name not in self.names:
            raise OdtlabError(f"ProtocolResult: no recipe {name!r}; the recipes are {self.names}.")
        i = self.names.index(name)
        return [float(self.rows[s][i]["final_accuracy"]) for s in self.protocol.seeds]

    def mean(self, name: str) -> float:
        """Mean test accuracy of ``name`` over the seeds."""
        acc = self.accuracies(name)
        return sum(acc) / len(acc)

    def spread(self, name: str) -> float:
        """Seed-to-seed standard deviation (sample, n - 1) of ``name``'s accuracy; 0 with one seed."""
        acc = self.accuracies(name)
        if len(acc) < 2:
            return 0.0
        m = sum(acc) / len(acc)
        return math.sqrt(sum((a - m) ** 2 for a in acc) / (len(acc) - 1))

    def separated(self, better: str, worse: str) -> bool:
        """True when ``better`` beats ``worse`` by more than either recipe's seed-to-seed spread."""
        gap = self.mean(better) - self.mean(worse)
        return gap > max(self.spread(better), self.spread(worse))

    def comparison(self, seed: int | None = None) -> Comparison:
        """The rows of one seed (default: the first) as a :class:`Comparison` (no training reports)."""
        seed = self.protocol.seeds[0] if seed is None else seed
        return Comparison(rows=self.rows[seed], reports={}, device=self.device, budget_bytes=self.budget_bytes)

    def to_dataframe(self) -> Any:
        """One row per recipe: mean and spread of accuracy (percent), memory and cost of the first seed."""
        import pandas as pd

        first = {r["recipe"]: r for r in self.rows[self.protocol.seeds[0]]}
        return pd.DataFrame(
            [{"recipe": n, "accuracy_mean": 100 * self.mean(n), "accuracy_spread": 100 * self.spread(n),
              **{k: first[n][k] for k in ("peak_bytes", "activations_bytes", "sim_time_s",
                                          "sim_energy_j", "fits")}}
             for n in self.names]
        ).set_index("recipe")  # fmt: skip

    def table(self) -> str:
        """Mean +- spread of accuracy per recipe, and its peak memory, as aligned text."""
        width = max(len("recipe"), *(len(n) for n in self.names))
        first = {r["recipe"]: r for r in self.rows[self.protocol.seeds[0]]}
        lines = [f"{'recipe':<{width}} {'accuracy (mean +- spread)':>26} {'peak':>10}"]
        for n in self.names:
            acc = f"{100 * self.mean(n):.1f} % +- {100 * self.spread(n):.1f}"
            lines.append(f"{n:<{width}} {acc:>26} {devices.format_bytes(first[n]['peak_bytes']):>10}")
        lines.append(f"{len(self.protocol.seeds)} seeds, {self.protocol.steps} steps each")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, ax: Any = None) -> Any:
        """Mean accuracy per recipe with the seed-to-seed spread as error bars (:func:`odtlab.viz.plot_protocol`)."""
        return plot_protocol(self, ax)


def cache_dir() -> Path:
    """Where chapters keep protocol runs: ``$ODTLAB_CACHE``, else ``~/.cache/odtlab/protocol``.

    ``make chapters`` sets ``ODTLAB_CACHE`` to ``_build/.odtlab_cache``, so
    ``make clean`` (or deleting ``_build``) starts from nothing.
    """
    env = os.environ.get("ODTLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "odtlab" / "protocol"


def _progress(total: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="protocol runs", disable=not show or total == 0)


@contextlib.contextmanager
def _locked(cache: str | Path | None) -> Iterator[None]:
    if cache is None:
        yield
        return
    Path(cache).mkdir(parents=True, exist_ok=True)
    with open(Path(cache) / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the runs cached
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(cache: str | Path | None, key: str) -> dict[str, Any] | None:
    if cache is None:
        return None
    path = Path(cache) / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: run it again


def _write(cache: str | Path | None, key: str, row: dict[str, Any]) -> None:
    if cache is None:
        return
    path = Path(cache) / f"{key}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row))
    os.replace(tmp, path)  # atomic: a reader sees the old file or the new, never half


