"""odtlab.data: small data sets that are generated or shipped, never downloaded.

Every data set is a ``torch.utils.data.Dataset`` of ``(x, y)`` pairs, ``x`` a
float32 tensor and ``y`` an int64 scalar, with ``classes``, ``num_classes``
and the whole data at hand as ``ds.x`` and ``ds.y``.

Data sets
    :func:`digits`
        Real 8x8 handwritten digits from scikit-learn (1797 images),
        optionally upsampled.
    :class:`SyntheticShapes`, :func:`train_test`, :func:`domain`
        Procedural colour shapes with a pretraining ``"source"`` domain and
        shifted ``"target-..."`` domains for transfer learning.
    :class:`SensorActivity`, :class:`SensorFeatures`
        Synthetic accelerometer activities with per-user styles.
    :func:`mnist`, :func:`cifar10`
        Read the standard files from a folder you point at.
Tools
    :func:`partition`, :func:`split_by_user`, :func:`label_skew` for
    federated clients; :func:`class_counts`, :func:`as_tensors`,
    :func:`labels_of`, :func:`loader` for everyday work.

Examples
--------
>>> from odtlab import data
>>> train, test = data.train_test("source", n_train=200, n_test=100, seed=0)
>>> xb, yb = next(iter(data.loader(train, batch_size=16, seed=0)))
>>> xb.shape
torch.Size([16, 3, 32, 32])
"""

from __future__ import annotations

from odtlab.data.base import ArrayDataset
from odtlab.data.digits import Digits, digits, stratified_split
from odtlab.data.domains import (
    ALL_SHAPES,
    NEW_CLASSES,
    SOURCE_CLASSES,
    Domain,
    available_domains,
    domain,
)
from odtlab.data.errors import DatasetNotFound, InvalidDataArgument, InvalidDataFile, UnknownDomain
from odtlab.data.local import CIFAR10_CLASSES, LocalImages, cifar10, mnist, read_idx
from odtlab.data.partition import label_skew, partition, split_by_user
from odtlab.data.sensor_features import SensorFeatures, summary_features
from odtlab.data.sensors import ACTIVITIES, Activity, SensorActivity, UserStyle, user_style
from odtlab.data.shapes import SyntheticShapes, render_shapes, train_test
from odtlab.data.tools import as_tensors, class_counts, labels_of, loader

__all__ = [
    # base
    "ArrayDataset",
    # digits
    "Digits",
    "digits",
    "stratified_split",
    # procedural shapes
    "Domain",
    "domain",
    "available_domains",
    "SOURCE_CLASSES",
    "NEW_CLASSES",
    "ALL_SHAPES",
    "SyntheticShapes",
    "render_shapes",
    "train_test",
    # sensors
    "Activity",
    "ACTIVITIES",
    "UserStyle",
    "user_style",
    "SensorActivity",
    "SensorFeatures",
    "summary_features",
    # local files
    "mnist",
    "cifar10",
    "read_idx",
    "LocalImages",
    "CIFAR10_CLASSES",
    # tools
    "partition",
    "split_by_user",
    "label_skew",
    "class_counts",
    "as_tensors",
    "labels_of",
    "loader",
    # errors
    "DatasetNotFound",
    "InvalidDataArgument",
    "InvalidDataFile",
    "UnknownDomain",
]
