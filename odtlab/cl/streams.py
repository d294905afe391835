"""Streams of experiences: what a device that keeps learning sees, one chunk at a time.

A *stream* is a list of :class:`Experience` objects, each a small train set
(what arrives) and a test set (what we ask about later). Three scenarios
differ in what changes and what the learner is told at test time (van de
Ven, Tuytelaars and Tolias, Nature Machine Intelligence 2022):

``"class"`` (class-incremental)
    New classes arrive; at test time the model must tell *all* classes
    seen so far apart, without being told which experience a test
    example comes from. The hard one: :func:`class_incremental`.
``"task"`` (task-incremental)
    The same data, but the task id is given at test time: each task has
    its own head (here: the output rows of its classes), so the model only
    chooses among two classes. :func:`task_incremental`.
``"domain"`` (domain-incremental)
    The classes stay, the input distribution drifts: another user's
    sensor, rotated or noisier digits. :func:`domain_incremental`.

:func:`online` turns any stream into the setting a device lives in: each
example is seen once, in small batches.

Chapter 8 builds every experiment on these streams.

Examples
--------
>>> stream = class_incremental(seed=0)
>>> len(stream), stream[0].classes, stream.scenario
(5, (0, 1), 'class')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from odtlab import data
from odtlab.cl.errors import InvalidStream

__all__ = [
    "Experience",
    "Stream",
    "SCENARIOS",
    "class_incremental",
    "task_incremental",
    "domain_incremental",
    "online",
]

SCENARIOS = ("class", "task", "domain")


def _labels(ds: Dataset) -> torch.Tensor:
    y = getattr(ds, "y", None)
    if isinstance(y, torch.Tensor):
        return y
    return data.as_tensors(ds)[1]


@dataclass(frozen=True)
class Experience:
    """One step of a stream: the data that arrives, and the test set that asks about it later.

    Attributes
    ----------
    index : int
        Position in the stream, from 0.
    train, test : Dataset
        ``(x, y)`` pairs; ``y`` are labels of the whole problem (digit 7 is 7).
    classes : tuple of int
        The labels this experience holds.
    task_id : int
        The task label (task-incremental streams tell it at test time).
    name : str
        For tables and plots, e.g. ``"digits 2-3"`` or ``"user 4"``.
    """

    index: int
    train: Dataset
    test: Dataset
    classes: tuple[int, ...]
    task_id: int = 0
    name: str = ""


@dataclass(frozen=True)
class Stream:
    """An ordered list of experiences, and how a learner goes through each.

    Parameters
    ----------
    experiences : sequence of Experience
        At least one; none may be empty. In the ``"class"`` and ``"task"``
        scenarios no two experiences may share a class.
    scenario : {"class", "task", "domain"}
        What changes from one experience to the next (module docstring).
    num_classes : int
        Logits the model needs (every label is below it).
    name : str
        A short name for reports, e.g. ``"split-digits"``.
    epochs : int, default 5
        Passes over each experience's training data.
    batch_size : int, default 32
        Examples per step (from the experience; replay adds its own).

    Raises
    ------
    InvalidStream
        For an empty stream, an empty experience, overlapping classes in
        the class or task scenario, or labels outside ``num_classes``.
    """

    experiences: tuple[Experience, ...]
    scenario: str
    num_classes: int
    name: str = "stream"
    epochs: int = 5
    batch_size: int = 32
    online: bool = field(default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "experiences", tuple(self.experiences))
        if self.scenario not in SCENARIOS:
            raise InvalidStream(f"scenario={self.scenario!r}; choose one of {SCENARIOS}")
        if not self.experiences:
            raise InvalidStream("the stream has no experience; give at least one")
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidStream(
                f"epochs={self.epochs} and batch_size={self.batch_size} must be >= 1"
            )
        seen: dict[int, int] = {}
        for i, exp in enumerate(self.experiences):
            for part in ("train", "test"):
                if len(getattr(exp, part)) == 0:  # type: ignore[arg-type]
                    raise InvalidStream(
                        f"experience {i} ({exp.name or 'unnamed'}) has an empty {part} set; "
                        "drop it from the stream or give it examples"
                    )
                labels = _labels(getattr(exp, part))
                if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
                    raise InvalidStream(
                        f"experience {i}'s {part} labels reach {int(labels.max())}, outside "
                        f"0..{self.num_classes - 1}; raise num_classes or relabel"
                    )
                stray = set(labels.unique().tolist()) - set(exp.classes)
                if stray:
                    raise InvalidStream(
                        f"experience {i}'s {part} set holds labels {sorted(stray)} that are not in "
                        f"its classes {exp.classes}; list them in Experience.classes"
                    )
            if self.scenario in ("class", "task"):
                for c in exp.classes:
                    if c in seen:
                        raise InvalidStream(
                            f"class {c} is in experience {seen[c]} and in experience {i}: in the "
                            f"{self.scenario!r} scenario experiences must not overlap; give each "
                            "class to one experience, or use scenario='domain'"
                        )
                    seen[c] = i

    def __len__(self) -> int:
        return len(self.experiences)

    def __getitem__(self, i: int) -> Experience:
        return self.experiences[i]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.experiences)

    def __str__(self) -> str:
        parts = ", ".join(e.name or str(e.classes) for e in self.experiences)
        mode = "online, one pass" if self.online else f"{self.epochs} epochs"
        return (
            f"{self.name}: {self.scenario}-incremental, {len(self)} experiences "
            f"({parts}); {mode}, batch {self.batch_size}"
        )


def _subset(ds: data.ArrayDataset, mask: torch.Tensor) -> data.ArrayDataset:
    return data.ArrayDataset(ds.x[mask], ds.y[mask], classes=ds.classes, name=ds.name)


def _split_digits(scenario: str, classes_per_experience: int, seed: int) -> Stream:
    train, test = data.digits("train", seed=seed), data.digits("test", seed=seed)
    if classes_per_experience < 1 or 10 % classes_per_experience:
        raise InvalidStream(
            f"classes_per_experience={classes_per_experience} must divide the 10 digits (1, 2, 5)"
        )
    order = torch.randperm(10, generator=torch.Generator().manual_seed(seed)).tolist() if seed else \
        list(range(10))  # fmt: skip
    groups = [order[i : i + classes_per_experience] for i in range(0, 10, classes_per_experience)]
    experiences = []
    for i, group in enumerate(groups):
        pick = torch.tensor(sorted(group))
        experiences.append(Experience(
            index=i, train=_subset(train, torch.isin(train.y, pick)),
            test=_subset(test, torch.isin(test.y, pick)), classes=tuple(sorted(group)),
            task_id=i, name="digits " + "-".join(str(c) for c in sorted(group)),
        ))  # fmt: skip
    return Stream(tuple(experiences), scenario, 10, name=f"split-digits-{scenario}")


def class_incremental(*, classes_per_experience: int = 2, seed: int = 0) -> Stream:
    """Split digits, class-incremental: 5 experiences of 2 digits each (``0-1``, ``2-3``, ...).

    The digits are :func:`odtlab.data.digits` (8x8, 1347 train and 450 test
    images). ``seed=0`` keeps the natural order of the digits; another seed
    shuffles which digits come together and fixes the train/test split.

    Examples
    --------
    >>> [e.name for e in class_incremental()][:2]
    ['digits 0-1', 'digits 2-3']
    """
    return _split_digits("class", classes_per_experience, seed)


def task_incremental(*, classes_per_experience: int = 2, seed: int = 0) -> Stream:
    """The split digits of :func:`class_incremental`, with the task id given at test time.

    The model keeps one output layer; a task's "head" is the rows of its
    classes, and training and testing on task ``t`` only compare those
    logits (a multi-headed network with disjoint heads, as in split MNIST).

    Examples
    --------
    >>> task_incremental()[3].task_id
    3
    """
    return _split_digits("task", classes_per_experience, seed)


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate images ``(N, C, H, W)`` by ``degrees`` about their centre (bilinear, zero fill)."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    fill = float(x.min())  # the background of standardised digits is their minimum
    return F.grid_sample(x - fill, grid, align_corners=False) + fill


def domain_incremental(
    drift: str = "rotation",
    *,
    steps: Sequence[float] | None = None,
    users: Sequence[int] = (0, 1, 2, 3, 4),
    seed: int = 0,
) -> Stream:
    """Same classes, drifting inputs: rotated or noisier digits, or one sensor user after another.

    Parameters
    ----------
    drift : {"rotation", "noise", "users"}
        ``"rotation"``: all ten digits, rotated by ``steps`` degrees (default
        0, 45, 90, 135, 180). ``"noise"``: Gaussian noise of standard
        deviation ``steps`` (default 0, 0.5, 1, 1.5, 2, in units of the
        standardised pixels). ``"users"``: accelerometer windows of
        :class:`odtlab.data.SensorActivity`, one experience per user in
        ``users`` (each user moves with their own gain, tempo and offset),
        240 train and 80 test windows per user.
    seed : int
        Fixes the data and the noise.

    Examples
    --------
    >>> s = domain_incremental("rotation")
    >>> s.scenario, len(s), s[1].name
    ('domain', 5, 'rotated 45 deg')
    """
    if drift == "users":
        if not users:
            raise InvalidStream("domain_incremental('users') needs at least one user")
        experiences = []
        for i, u in enumerate(users):
            train = data.SensorActivity(240, user=int(u), seed=seed)
            test = data.SensorActivity(80, user=int(u), seed=seed + 1000)
            classes = tuple(range(train.num_classes))
            experiences.append(Experience(i, train, test, classes, 0, f"user {u}"))
        return Stream(tuple(experiences), "domain", experiences[0].train.num_classes,  # type: ignore[attr-defined]
                      name="sensor-users")  # fmt: skip
    if drift not in ("rotation", "noise"):
        raise InvalidStream(f"drift={drift!r}; choose 'rotation', 'noise' or 'users'")
    default = (0.0, 45.0, 90.0, 135.0, 180.0) if drift == "rotation" else (0.0, 0.5, 1.0, 1.5, 2.0)
    amounts = tuple(float(s) for s in (default if steps is None else steps))
    if not amounts:
        raise InvalidStream("steps is empty; give at least one rotation angle or noise level")
    train, test = data.digits("train", seed=seed), data.digits("test", seed=seed)
    gen = torch.Generator().manual_seed(seed)
    experiences = []
    for i, amount in enumerate(amounts):
        parts = []
        for ds in (train, test):
            if drift == "rotation":
                x = _rotate(ds.x, amount)
            else:
                x = ds.x + amount * torch.randn(ds.x.shape, generator=gen)
            parts.append(data.ArrayDataset(x, ds.y, classes=ds.classes, name=ds.name))
        name = f"rotated {amount:g} deg" if drift == "rotation" else f"noise {amount:g}"
        experiences.append(Experience(i, parts[0], parts[1], tuple(range(10)), 0, name))
    return Stream(tuple(experiences), "domain", 10, name=f"{drift}-digits")


def online(stream: Stream, *, batch_size: int = 10) -> Stream:
    """The same experiences seen as a device sees them: one pass, ``batch_size`` examples a step.

    Examples
    --------
    >>> s = online(class_incremental())
    >>> s.epochs, s.batch_size, s.online
    (1, 10, True)
    """
    return replace(
        stream, epochs=1, batch_size=batch_size, online=True, name=stream.name + "-online"
    )
